/**
 * OpenAPI 3.1 document of the API, generated from the same zod schemas that
 * validate requests (JSON Schema 2020-12, which OpenAPI 3.1 uses as is), and
 * from the same access rules the server enforces: which routes need a key.
 */
import { z } from 'zod';
import {
  CURRENCIES,
  MAX_TOTAL_CENTS,
  ORDER_STATUSES,
  createOrderSchema,
} from '../shared/orders.ts';
import { STEPS } from '../shared/steps.ts';
import { orderIdSchema } from '../orders/rules.ts';
import { cancelOrderSchema, idempotencyKeySchema, listOrdersQuerySchema } from './orders/routes.ts';
import {
  badIdProblem,
  bodyProblems,
  databaseProblems,
  jsonSchema,
  problem,
  retryAfterHeader,
} from './openapi-parts.ts';
import { problemKinds, problemTypeUri } from './problems.ts';
import { webhookPaths, webhookSchemas } from './webhooks/openapi.ts';

const orderViewSchema = z.object({
  id: z.uuid(),
  status: z.enum(ORDER_STATUSES),
  workflowId: z.string(),
  // What the database holds (rows of any age), not the rules a new request is checked by.
  customerEmail: z.string().describe('As accepted at creation (see CreateOrderRequest)'),
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

const readinessSchema = z.object({
  status: z.enum(['ready', 'not ready']),
  checks: z.object({
    database: z.enum(['ok', 'unreachable']),
    temporal: z.enum(['ok', 'unreachable']),
  }),
});

/** Retry and cancel talk to Temporal and, for retry, to a worker, within ORDER_ACTION_TIMEOUT_MS. */
const temporalProblems = {
  '503': problem('The database or Temporal is unreachable', retryAfterHeader),
  '504': problem('No worker answered within ORDER_ACTION_TIMEOUT_MS', retryAfterHeader),
};
const orderResponse = (description: string, headers = {}) => ({
  description,
  headers,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Order' } } },
});
const orderIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  schema: jsonSchema(orderIdSchema),
};

/** Who may call what: the server's access rules (see app.ts), as the document states them. */
export interface DocumentAccess {
  /** API keys are configured: every route but the open ones needs one. */
  apiKeys: boolean;
  /** Where /metrics is: open on PORT, behind a key on PORT, or on a listener of its own (absent here). */
  metrics: 'open' | 'key' | 'elsewhere';
}

/** Operations anyone may call, whatever the keys. */
const OPEN_OPERATIONS = new Set(['health', 'readiness', 'openapi']);

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch'];

interface Operation {
  operationId?: string;
  responses?: Record<string, unknown>;
  security?: unknown;
  [field: string]: unknown;
}
type Paths = Record<string, Record<string, Operation>>;

/**
 * States on each operation whether it needs a key (`security`) and, when it does,
 * its 401; an open one neither names the scheme nor lists 401.
 */
function withAccess(paths: Paths, access: DocumentAccess): Paths {
  for (const item of Object.values(paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!HTTP_METHODS.includes(method)) continue;
      const open =
        !access.apiKeys ||
        OPEN_OPERATIONS.has(op.operationId ?? '') ||
        (op.operationId === 'metrics' && access.metrics === 'open');
      const responses = { ...op.responses };
      delete responses['401'];
      op.security = open ? [] : [{ bearerAuth: [] }];
      op.responses = open
        ? responses
        : { ...responses, '401': problem('Missing or invalid API key') };
    }
  }
  return paths;
}

export function buildOpenApiDocument(access: DocumentAccess = { apiKeys: false, metrics: 'open' }) {
  const listQuery = jsonSchema(listOrdersQuerySchema, 'input') as {
    properties: Record<string, unknown>;
  };
  const paths: Paths = {
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
            { Location: { schema: { type: 'string' } } },
          ),
          '400': problem('Invalid or missing body (the problem lists each field)'),
          ...bodyProblems,
          '422': problem('Idempotency-Key reused with another body'),
          ...databaseProblems,
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
          '400': problem('Invalid query, or a cursor this API did not return'),
          ...databaseProblems,
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
          '400': badIdProblem,
          '404': problem('No such order'),
          ...databaseProblems,
        },
      },
    },
    ...(webhookPaths() as Paths),
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
          '400': badIdProblem,
          '404': problem('No such order'),
          '409': problem(
            'The order is not parked, or its workflow has not started yet (then with Retry-After)',
            retryAfterHeader,
          ),
          ...temporalProblems,
        },
      },
    },
    '/orders/{id}/cancel': {
      post: {
        operationId: 'cancelOrder',
        summary: 'End an order as CANCELLED',
        description:
          'Before the order’s workflow began (it waits in the outbox), the cancel wins at once: 200 with the CANCELLED order, and nothing is sent. While the workflow runs, it gets the cancel signal (202): running email and webhook attempts are stopped where they have not sent yet, the order ends CANCELLED with what was already sent in lastError, and order.cancelled goes to Kafka and to the webhook subscribers of that event type. An order whose workflow was terminated in Temporal is set CANCELLED (200).',
        parameters: [orderIdParam],
        requestBody: {
          required: false,
          content: { 'application/json': { schema: jsonSchema(cancelOrderSchema, 'input') } },
        },
        responses: {
          '200': orderResponse('The order, CANCELLED now'),
          '202': {
            description: 'The cancel was sent to the order’s workflow, which ends it CANCELLED',
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
          '404': problem('No such order'),
          '409': problem('The order already completed or was cancelled'),
          ...bodyProblems,
          ...temporalProblems,
        },
      },
    },
    '/healthz': {
      get: {
        operationId: 'health',
        summary: 'The process is up',
        responses: {
          '200': {
            description: 'The process is up',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['status'],
                  properties: { status: { const: 'ok' } },
                },
              },
            },
          },
        },
      },
    },
    '/readyz': {
      get: {
        operationId: 'readiness',
        summary: 'Database and Temporal reachable',
        responses: {
          '200': {
            description: 'Database and Temporal reachable',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Readiness' } } },
          },
          '503': {
            description: 'A dependency is unreachable',
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Readiness' } } },
          },
        },
      },
    },
    ...(access.metrics === 'elsewhere'
      ? {}
      : {
          '/metrics': {
            get: {
              operationId: 'metrics',
              summary: 'Prometheus metrics of this API process',
              responses: {
                '200': {
                  description: 'Prometheus text format',
                  content: { 'text/plain': { schema: { type: 'string' } } },
                },
              },
            },
          },
        }),
    '/openapi.json': {
      get: {
        operationId: 'openapi',
        summary: 'This document',
        responses: {
          '200': {
            description: 'This document',
            content: { 'application/json': { schema: { type: 'object' } } },
          },
        },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'orderflow',
      version: '0.1.0',
      description:
        'Durable order processing: orders are persisted, then processed by Temporal workflows.' +
        (access.apiKeys
          ? ' Every operation whose `security` names bearerAuth needs `Authorization: Bearer <API key>`.'
          : ' This server has no API keys configured: every operation is open.'),
    },
    servers: [{ url: '/' }],
    paths: withAccess(paths, access),
    components: {
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'One of the keys in API_KEYS',
        },
      },
      schemas: {
        CreateOrderRequest: {
          ...jsonSchema(createOrderSchema, 'input'),
          description: `The server computes the total; the item limits bound it at ${MAX_TOTAL_CENTS} minor units.`,
        },
        Order: jsonSchema(orderViewSchema),
        Problem: jsonSchema(problemSchema),
        Readiness: jsonSchema(readinessSchema),
        ...webhookSchemas(),
      },
    },
  };
}
