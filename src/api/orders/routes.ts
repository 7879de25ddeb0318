/**
 * The /orders routes: parse the request, call the use case (src/orders), map
 * the result. The use cases' errors become problem documents in the one error
 * middleware (problems.ts).
 */
import { Router, type Request } from 'express';
import { z } from 'zod';
import { validOrThrow } from '../../orders/errors.ts';
import type { OrderCancellation } from '../../orders/order-cancellation.ts';
import { ORDER_CURSOR_PATTERN } from '../../orders/order-cursor.ts';
import type { OrderOperations } from '../../orders/order-operations.ts';
import type { OrderService } from '../../orders/order-service.ts';
import { cancelReasonSchema, orderIdSchema } from '../../orders/rules.ts';
import type { WorkflowStartMode } from '../../orders/workflow-start.ts';
import { ORDER_STATUSES, createOrderSchema } from '../../shared/orders.ts';
import type { OutboxRelay } from '../outbox-relay.ts';
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
/** The body of POST /orders/{id}/cancel; the reason's rule is the domain's (rules.ts). */
export const cancelOrderSchema = z.strictObject({ reason: cancelReasonSchema.optional() });

export function orderRoutes(
  orders: OrderService,
  relay: OutboxRelay,
  operations: OrderOperations,
  cancellation: OrderCancellation,
  startMode: WorkflowStartMode = 'async',
): Router {
  const router = Router();

  router.post('/orders', async (req, res) => {
    const body = validOrThrow(createOrderSchema, requireJsonBody(req));
    const rawKey = req.get('idempotency-key');
    const key =
      rawKey === undefined
        ? undefined
        : validOrThrow(idempotencyKeySchema, rawKey, 'Idempotency-Key');
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
    const id = validOrThrow(orderIdSchema, req.params.id, 'id');
    res.json(await orders.getOrder(id));
  });

  router.post('/orders/:id/retry', async (req, res) => {
    const id = validOrThrow(orderIdSchema, req.params.id, 'id');
    await orders.getOrder(id); // 404 for an unknown order
    const { retrying } = await operations.retry(id);
    res.status(202).json({ id, retrying });
  });

  router.post('/orders/:id/cancel', async (req, res) => {
    const id = validOrThrow(orderIdSchema, req.params.id, 'id');
    const { reason } = validOrThrow(cancelOrderSchema, req.body ?? {});
    const outcome = await cancellation.cancel(id, reason);
    // Cancelled now (before its workflow began, or after it was ended in Temporal): the order.
    if (outcome.kind === 'cancelled') res.status(200).json(await orders.getOrder(id));
    else res.status(202).json({ id, cancelling: true });
  });

  router.get('/orders', async (req, res) => {
    const q = validOrThrow(listOrdersQuerySchema, req.query);
    res.json(await orders.listOrders(q));
  });

  return router;
}

const principal = (req: Request): string => (req.res?.locals.principal as string | undefined) ?? '';
