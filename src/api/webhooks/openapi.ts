/**
 * The webhook part of the OpenAPI document (merged by ../openapi.ts), from the
 * same zod schemas that validate the requests.
 */
import { z } from 'zod';
import {
  badIdProblem,
  bodyProblems,
  databaseProblems,
  jsonSchema,
  problem,
  ref,
  retryAfterHeader,
} from '../openapi-parts.ts';
import {
  WEBHOOK_EVENT_TYPES,
  changeWebhookEndpointSchema,
  createWebhookEndpointSchema,
  webhookEndpointIdSchema,
} from '../../webhooks/endpoint-rules.ts';

const endpointSchema = z.object({
  id: z.uuid(),
  url: z.string().describe('As registered, in its WHATWG URL serialization'),
  eventTypes: z.array(z.enum(WEBHOOK_EVENT_TYPES)),
  status: z.enum(['ENABLED', 'DISABLED']),
  disabledReason: z
    .string()
    .nullable()
    .describe(
      'Why it is disabled: the receiver answered 410 Gone, its deliveries failed for good WEBHOOK_DISABLE_AFTER_FAILURES times in a row, or an operator disabled it',
    ),
  disabledAt: z.iso.datetime().nullable(),
  consecutiveFailures: z
    .number()
    .int()
    .min(0)
    .describe('Permanent delivery failures since the last delivery'),
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
    .describe(
      "Why the last attempt failed, in orderflow's words: the status and its verdict (e.g. `HTTP 404 Not Found (rejected, not retried)`), a network error code or the refused target; never the receiver's body",
    ),
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
          "Deliveries are signed per Standard Webhooks with the returned secret, which is shown only here. The URL's host is resolved: a URL with any address that is private, loopback or link-local (unless WEBHOOK_ALLOWED_TARGETS allows it), a cloud metadata address (always), or none at all is refused. An event type has at most WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE endpoints.",
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
          '409': problem(
            'An event type already has WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE endpoints (type urn:orderflow:problem:endpoint-limit-reached)',
          ),
          ...bodyProblems,
          '503': problem(
            "The URL's host could not be resolved now (DNS), or the database is unreachable; retry after Retry-After",
            retryAfterHeader,
          ),
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
      patch: {
        operationId: 'changeWebhookEndpoint',
        summary: 'Enable or disable a subscriber',
        description:
          'ENABLED delivers to it again (later orders, and parked ones when retried) and clears its reason and failure count; DISABLED makes orders skip it.',
        parameters: [idParam('Webhook endpoint id')],
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: ref('ChangeWebhookEndpointRequest') },
            'application/merge-patch+json': { schema: ref('ChangeWebhookEndpointRequest') },
          },
        },
        responses: {
          '200': json('The subscriber as it is now', ref('WebhookEndpoint')),
          '400': problem('The id is not a UUID, or the body is invalid or missing'),
          '401': unauthorized,
          '404': problem('No such endpoint'),
          ...bodyProblems,
          ...databaseProblems,
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
    ChangeWebhookEndpointRequest: jsonSchema(changeWebhookEndpointSchema, 'input'),
    WebhookEndpoint: jsonSchema(endpointSchema),
    CreatedWebhookEndpoint: jsonSchema(createdEndpointSchema),
    WebhookDelivery: jsonSchema(deliverySchema),
  };
}
