import { Router, type Request } from 'express';
import { z } from 'zod';
import { ORDER_STATUSES, createOrderSchema } from '../../shared/orders.ts';
import type { OutboxRelay } from '../outbox-relay.ts';

/** When the API starts an order's workflow: after answering (async) or before (inline). */
export type WorkflowStartMode = 'async' | 'inline' | 'relay';
import { ProblemError, type FieldError } from '../problems.ts';
import type { OrderCancellation } from './order-cancellation.ts';
import type { OrderOperations } from './order-operations.ts';
import type { OrderService } from './order-service.ts';
import { ORDER_CURSOR_PATTERN } from './order-cursor.ts';
import { requireJsonBody } from '../request-body.ts';

export const idempotencyKeySchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII');
export const listOrdersQuerySchema = z.strictObject({
  status: z.enum(ORDER_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(ORDER_CURSOR_PATTERN, 'is not a cursor returned by this API')
    .optional()
    .describe('nextCursor of the previous page'),
});
export const orderIdSchema = z.uuid('must be a UUID');

/** Zod issues as problem-detail field errors ("items[0].quantity"). */
export function fieldErrors(error: z.ZodError, prefix = ''): FieldError[] {
  return error.issues.flatMap((issue) => {
    const base = issue.path.reduce<string>(
      (acc, p) =>
        typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p),
      prefix,
    );
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({
        field: base ? `${base}.${k}` : k,
        message: 'is not a known field',
      }));
    }
    return [{ field: base || '(body)', message: issue.message }];
  });
}

export function parseOrThrow<T extends z.ZodType>(
  schema: T,
  value: unknown,
  prefix = '',
): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new ProblemError(
      'validation-error',
      'Some fields are invalid',
      fieldErrors(r.error, prefix),
    );
  return r.data;
}

/** The /orders routes: parse, call the use case, map the result. */
export const cancelOrderSchema = z.strictObject({
  reason: z
    .string()
    .min(1)
    .max(500)
    // Stored on the order and shown by the CLI: text, no control characters (PostgreSQL refuses
    // NUL). Written as \u escapes, which the OpenAPI pattern carries to every regex dialect.
    // eslint-disable-next-line no-control-regex -- matching control characters is the rule
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must be text without control characters')
    .optional(),
});

export function orderRoutes(
  orders: OrderService,
  relay: OutboxRelay,
  operations: OrderOperations,
  cancellation: OrderCancellation,
  startMode: WorkflowStartMode = 'async',
): Router {
  const router = Router();

  router.post('/orders', async (req, res) => {
    const body = parseOrThrow(createOrderSchema, requireJsonBody(req));
    const rawKey = req.get('idempotency-key');
    const key =
      rawKey === undefined
        ? undefined
        : parseOrThrow(idempotencyKeySchema, rawKey, 'Idempotency-Key');
    const idem = key === undefined ? undefined : { scope: principal(req), key };
    const { order, created } = await orders.createOrder(body, idem);
    // async: answer at the commit and start right after; inline: start first;
    // relay: answer at the commit, the relay process starts it.
    let started = relay.temporalReachable;
    if (created && startMode === 'inline') started = await relay.startOne(order.id);
    else if (created && startMode === 'async') relay.kick(order.id);
    // 202 when Temporal is unreachable: the order is safe, its workflow starts later.
    res
      .status(started ? 201 : 202)
      .location(`/orders/${order.id}`)
      .set(created ? {} : { 'Idempotent-Replayed': 'true' })
      .json(order);
  });

  router.get('/orders/:id', async (req, res) => {
    const id = parseOrThrow(orderIdSchema, req.params.id, 'id');
    res.json(await orders.getOrder(id));
  });

  router.post('/orders/:id/retry', async (req, res) => {
    const id = parseOrThrow(orderIdSchema, req.params.id, 'id');
    await orders.getOrder(id); // 404 for an unknown order
    const { retrying } = await operations.retry(id);
    res.status(202).json({ id, retrying });
  });

  router.post('/orders/:id/cancel', async (req, res) => {
    const id = parseOrThrow(orderIdSchema, req.params.id, 'id');
    const { reason } = parseOrThrow(cancelOrderSchema, req.body ?? {});
    const outcome = await cancellation.cancel(id, reason ?? 'cancelled by operator');
    // Cancelled now (before its workflow began, or after it was ended in Temporal): the order.
    if (outcome.kind === 'cancelled') res.status(200).json(await orders.getOrder(id));
    else res.status(202).json({ id, cancelling: true });
  });

  router.get('/orders', async (req, res) => {
    const q = parseOrThrow(listOrdersQuerySchema, req.query);
    res.json(await orders.listOrders(q));
  });

  return router;
}

const principal = (req: Request): string => (req.res?.locals.principal as string | undefined) ?? '';
