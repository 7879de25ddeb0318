/**
 * The webhook part of the OpenAPI document (merged by ../openapi.ts), from the
 * same zod schemas that validate the requests.
 */
import { z } from 'zod';
import { MAX_RESPONSE_BODY_BYTES } from '../../webhooks/http-delivery.ts';
import {
  badIdProblem,
  bodyProblems,
  databaseProblems,
  jsonSchema,
  problem,
  ref,
} from '../openapi-parts.ts';
import {
  WEBHOOK_EVENT_TYPES,
  createWebhookEndpointSchema,
  webhookEndpointIdSchema,
} from './routes.ts';

const endpointSchema = z.object({
  id: z.uuid(),
  url: z.string().describe('As registered, in its WHATWG URL serialization'),
  eventTypes: z.array(z.enum(WEBHOOK_EVENT_TYPES)),
  status: z.enum(['ENABLED', 'DISABLED']),
  disabledReason: z.string().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

const createdEndpointSchema = endpointSchema.extend({
  secret: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/)
    .describe('Standard Webhooks signing secret; shown only in this response'),
});

const deliverySchema = z.object({
  webhookId: z.string().describe('The `webhook-id` header: stable per (event, endpoint)'),
  endpointId: z.uuid(),
  eventType: z.enum(WEBHOOK_EVENT_TYPES),
  attempts: z.number().int(),
  lastStatus: z.number().int().nullable().describe('HTTP status of the last attempt'),
  lastError: z
    .string()
    .nullable()
    .describe(`Why the last attempt failed (at most ${MAX_RESPONSE_BODY_BYTES} bytes of body)`),
  deliveredAt: z.iso.datetime().nullable(),
  updatedAt: z.iso.datetime(),
});

const json = (description: string, schema: object, headers = {}) => ({
  description,
  headers,
  content: { 'application/json': { schema } },
});
const list = (name: string) => ({
  type: 'object',
  required: ['items'],
  properties: { items: { type: 'array', items: ref(name) } },
});
const idParam = (description: string) => ({
  name: 'id',
  in: 'path',
  required: true,
  description,
  schema: jsonSchema(webhookEndpointIdSchema),
});
const unauthorized = problem('Missing or invalid API key');

export function webhookPaths() {
  return {
    '/webhook-endpoints': {
      post: {
        operationId: 'createWebhookEndpoint',
        summary: 'Subscribe a URL to order events',
        description:
          'Deliveries are signed per Standard Webhooks with the returned secret, which is shown only here. URLs that target private, loopback or link-local addresses are refused unless WEBHOOK_ALLOWED_TARGETS allows them.',
        requestBody: {
          required: true,
          content: { 'application/json': { schema: ref('CreateWebhookEndpointRequest') } },
        },
        responses: {
          '201': json('Created, with its signing secret', ref('CreatedWebhookEndpoint'), {
            Location: { schema: { type: 'string' } },
          }),
          '400': problem(
            'Invalid or missing body, or a refused target (the problem lists each field)',
          ),
          '401': unauthorized,
          ...bodyProblems,
          ...databaseProblems,
        },
      },
      get: {
        operationId: 'listWebhookEndpoints',
        summary: 'All subscribers, oldest first (without secrets)',
        responses: {
          '200': json('The subscribers', list('WebhookEndpoint')),
          '401': unauthorized,
          ...databaseProblems,
        },
      },
    },
    '/webhook-endpoints/{id}': {
      get: {
        operationId: 'getWebhookEndpoint',
        summary: 'One subscriber (without its secret)',
        parameters: [idParam('Webhook endpoint id')],
        responses: {
          '200': json('The subscriber', ref('WebhookEndpoint')),
          '400': badIdProblem,
          '401': unauthorized,
          ...databaseProblems,
          '404': problem('No such endpoint'),
        },
      },
      delete: {
        operationId: 'deleteWebhookEndpoint',
        summary: 'Unsubscribe; deliveries still pending to it stop',
        parameters: [idParam('Webhook endpoint id')],
        responses: {
          '204': { description: 'Deleted' },
          '400': badIdProblem,
          '401': unauthorized,
          ...databaseProblems,
          '404': problem('No such endpoint'),
        },
      },
    },
    '/orders/{id}/webhook-deliveries': {
      get: {
        operationId: 'listOrderWebhookDeliveries',
        summary: "An order's webhook delivery log, one row per endpoint",
        parameters: [idParam('Order id')],
        responses: {
          '200': json('The delivery log', list('WebhookDelivery')),
          '400': badIdProblem,
          '401': unauthorized,
          ...databaseProblems,
          '404': problem('No such order'),
        },
      },
    },
  };
}

export function webhookSchemas() {
  return {
    CreateWebhookEndpointRequest: jsonSchema(createWebhookEndpointSchema, 'input'),
    WebhookEndpoint: jsonSchema(endpointSchema),
    CreatedWebhookEndpoint: jsonSchema(createdEndpointSchema),
    WebhookDelivery: jsonSchema(deliverySchema),
  };
}
