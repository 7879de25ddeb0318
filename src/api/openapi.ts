/**
 * OpenAPI 3.1 document of the API, generated from the same zod schemas that
 * validate requests (JSON Schema 2020-12, which OpenAPI 3.1 uses as is).
 */
import { z } from 'zod';
import {
  CURRENCIES,
  MAX_TOTAL_CENTS,
  ORDER_STATUSES,
  createOrderSchema,
} from '../shared/orders.ts';
import { STEPS } from '../shared/steps.ts';
import { cancelOrderSchema, idempotencyKeySchema, listOrdersQuerySchema } from './orders/routes.ts';
import { problemKinds, problemTypeUri } from './problems.ts';
import { webhookPaths, webhookSchemas } from './webhooks/openapi.ts';

const orderViewSchema = z.object({
  id: z.uuid(),
  status: z.enum(ORDER_STATUSES),
  workflowId: z.string(),
  customerEmail: z.email(),
  currency: z.enum(CURRENCIES),
  totalCents: z.number().int(),
  items: z.array(
    z.object({ sku: z.string(), quantity: z.number().int(), unitPriceCents: z.number().int() }),
  ),
  failedStep: z.string().nullable(),
  lastError: z.string().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

const problemSchema = z.object({
  type: z.enum(problemKinds.map(problemTypeUri) as [string, ...string[]]),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  instance: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output' = 'output') =>
  z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' });

const problem = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
});
const orderResponse = (description: string, headers = {}) => ({
  description,
  headers,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Order' } } },
});
const orderIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  schema: { type: 'string', format: 'uuid' },
};

export function buildOpenApiDocument() {
  const listQuery = jsonSchema(listOrdersQuerySchema, 'input') as {
    properties: Record<string, unknown>;
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'orderflow',
      version: '0.1.0',
      description:
        'Durable order processing: orders are persisted, then processed by Temporal workflows.',
    },
    servers: [{ url: '/' }],
    security: [{ bearerAuth: [] }],
    paths: {
      '/orders': {
        post: {
          operationId: 'createOrder',
          summary: 'Accept an order',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description: 'Same key and body: the same order again. Same key, other body: 422.',
              schema: jsonSchema(idempotencyKeySchema),
            },
          ],
          requestBody: {
            required: true,
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/CreateOrderRequest' } },
            },
          },
          responses: {
            '201': orderResponse('Accepted; its workflow is being started', {
              Location: { schema: { type: 'string' } },
            }),
            '202': orderResponse(
              'Accepted while Temporal is unreachable; the workflow starts when it is back',
            ),
            '400': problem('Invalid body (the problem lists each field)'),
            '401': problem('Missing or invalid API key'),
            '413': problem('Body over 64 KiB'),
            '415': problem('Not application/json'),
            '422': problem('Idempotency-Key reused with another body'),
            '503': problem('Database unreachable'),
          },
        },
        get: {
          operationId: 'listOrders',
          summary: 'List orders, newest first',
          parameters: Object.entries(listQuery.properties).map(([name, schema]) => ({
            name,
            in: 'query',
            required: false,
            schema,
          })),
          responses: {
            '200': {
              description: 'A page of orders',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['items', 'nextCursor'],
                    properties: {
                      items: { type: 'array', items: { $ref: '#/components/schemas/Order' } },
                      nextCursor: { type: ['string', 'null'] },
                    },
                  },
                },
              },
            },
            '400': problem('Invalid query'),
            '401': problem('Missing or invalid API key'),
          },
        },
      },
      '/orders/{id}': {
        get: {
          operationId: 'getOrder',
          summary: 'An order with its live status',
          parameters: [orderIdParam],
          responses: {
            '200': orderResponse('The order'),
            '400': problem('The id is not a UUID'),
            '401': problem('Missing or invalid API key'),
            '404': problem('No such order'),
          },
        },
      },
      ...webhookPaths(),
      '/orders/{id}/retry': {
        post: {
          operationId: 'retryOrder',
          summary: 'Re-run the failed steps of a parked order',
          parameters: [orderIdParam],
          responses: {
            '202': {
              description: 'The steps that will run again',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['id', 'retrying'],
                    properties: {
                      id: { type: 'string', format: 'uuid' },
                      retrying: { type: 'array', items: { type: 'string', enum: [...STEPS] } },
                    },
                  },
                },
              },
            },
            '400': problem('The id is not a UUID'),
            '401': problem('Missing or invalid API key'),
            '404': problem('No such order'),
            '409': problem('The order is not parked'),
            '503': problem('Temporal unreachable'),
          },
        },
      },
      '/orders/{id}/cancel': {
        post: {
          operationId: 'cancelOrder',
          summary: 'End an order as CANCELLED',
          parameters: [orderIdParam],
          requestBody: {
            required: false,
            content: { 'application/json': { schema: jsonSchema(cancelOrderSchema, 'input') } },
          },
          responses: {
            '202': {
              description: 'The cancel was sent to the order’s workflow',
              content: {
                'application/json': {
                  schema: {
                    type: 'object',
                    required: ['id', 'cancelling'],
                    properties: {
                      id: { type: 'string', format: 'uuid' },
                      cancelling: { type: 'boolean' },
                    },
                  },
                },
              },
            },
            '400': problem('Invalid id or body'),
            '401': problem('Missing or invalid API key'),
            '404': problem('No such order'),
            '409': problem('The order already completed or was cancelled'),
            '503': problem('Temporal unreachable'),
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'health',
          security: [],
          responses: { '200': { description: 'The process is up' } },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readiness',
          security: [],
          responses: {
            '200': { description: 'Database and Temporal reachable' },
            '503': { description: 'A dependency is unreachable' },
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics of this API process',
          security: [],
          responses: {
            '200': {
              description: 'Prometheus text format',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          security: [],
          responses: { '200': { description: 'This document' } },
        },
      },
    },
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'Required when API_KEYS is set',
        },
      },
      schemas: {
        CreateOrderRequest: {
          ...jsonSchema(createOrderSchema, 'input'),
          // A rule JSON Schema cannot express; the API enforces it (400 on "items").
          description: `The order total (sum of quantity × unitPriceCents) may not exceed ${MAX_TOTAL_CENTS} minor units.`,
        },
        Order: jsonSchema(orderViewSchema),
        Problem: jsonSchema(problemSchema),
        ...webhookSchemas(),
      },
    },
  };
}
