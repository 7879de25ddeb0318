import { log } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import type { OrderCursor } from '../shared/messages.ts';
import type { OrderStatus } from '../shared/orders.ts';

export interface RecordStatusInput {
  orderId: string;
  status: OrderStatus;
  failedStep?: string | null;
  lastError?: string | null;
}

export interface OrderPageInput {
  since: string;
  until?: string;
  after?: OrderCursor | null;
  limit: number;
}
export interface OrderPage {
  ids: string[];
  next: OrderCursor | null;
}

/** Activities that keep the order's row in step with its workflow (task queue `orders`). */
export function createOrderRecordActivities({ db }: { db: Db }) {
  return {
    /** Writes the order's status (and, when parked, why); idempotent. */
    async recordOrderStatus(input: RecordStatusInput): Promise<void> {
      const { count } = await db.order.updateMany({
        where: { id: input.orderId },
        data: {
          status: input.status,
          failedStep: input.failedStep ?? null,
          lastError: input.lastError ?? null,
        },
      });
      if (count === 0) log.warn('order row missing', { orderId: input.orderId });
    },

    /**
     * The order's first bookkeeping in one statement: marks it PROCESSING and
     * returns the ids of the enabled endpoints subscribed to `eventType`
     * (sorted: the order's webhook fan-out). Idempotent.
     */
    async beginOrderProcessing(input: { orderId: string; eventType: string }): Promise<string[]> {
      const [row] = await db.$queryRaw<{ began: number; ids: string[] }[]>`
        WITH began AS (
          UPDATE orders SET status = 'PROCESSING', failed_step = NULL, last_error = NULL,
                            updated_at = now()
          WHERE id = ${input.orderId}::uuid
          RETURNING id
        )
        SELECT (SELECT count(*) FROM began)::int AS began,
               coalesce((SELECT array_agg(e.id::text ORDER BY e.id) FROM webhook_endpoints e
                         WHERE e.status = 'ENABLED' AND ${input.eventType} = ANY(e.event_types)),
                        '{}') AS ids`;
      if (!row?.began) log.warn('order row missing', { orderId: input.orderId });
      log.info('webhook targets', { orderId: input.orderId, count: row?.ids.length ?? 0 });
      return row?.ids ?? [];
    },

    /** A page of order ids created in [since, until), oldest first, after a cursor (for bulk resends). */
    async listOrderIdsPage(input: OrderPageInput): Promise<OrderPage> {
      const rows = await db.order.findMany({
        where: {
          createdAt: {
            gte: new Date(input.since),
            ...(input.until ? { lt: new Date(input.until) } : {}),
          },
          status: { not: 'CANCELLED' },
          ...(input.after
            ? {
                OR: [
                  { createdAt: { gt: new Date(input.after.createdAt) } },
                  { createdAt: new Date(input.after.createdAt), id: { gt: input.after.id } },
                ],
              }
            : {}),
        },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        take: input.limit,
        select: { id: true, createdAt: true },
      });
      const last = rows.at(-1);
      return {
        ids: rows.map((r) => r.id),
        next:
          rows.length === input.limit && last
            ? { createdAt: last.createdAt.toISOString(), id: last.id }
            : null,
      };
    },
  };
}

export type OrderRecordActivities = ReturnType<typeof createOrderRecordActivities>;
