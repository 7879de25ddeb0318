import { log } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import type { OrderCursor } from '../shared/messages.ts';
import { STATUS_PREDECESSORS, type OrderStatus } from '../shared/orders.ts';

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
    /**
     * Writes the order's status (and, when parked or cancelled, why); idempotent.
     * Never backwards: the write applies only from the status's predecessors
     * (STATUS_PREDECESSORS), so a late PROCESSING after COMPLETED, or anything
     * after CANCELLED, is refused. Returns the row's status after the write
     * (null when the row is missing).
     */
    async recordOrderStatus(input: RecordStatusInput): Promise<OrderStatus | null> {
      // One statement, written or refused: `written` is the new status when the
      // update applied, `current` the row's status as this statement found it
      // (null when the row is missing), so a refusal needs no second read.
      const [row] = await db.$queryRaw<
        { written: OrderStatus | null; current: OrderStatus | null }[]
      >`
        WITH w AS (
          UPDATE orders SET status = ${input.status}::"OrderStatus",
                            failed_step = ${input.failedStep ?? null},
                            last_error = ${input.lastError ?? null},
                            updated_at = now()
          WHERE id = ${input.orderId}::uuid
            AND status = ANY(${[...STATUS_PREDECESSORS[input.status]]}::"OrderStatus"[])
          RETURNING status::text
        )
        SELECT (SELECT status FROM w) AS written,
               (SELECT status::text FROM orders WHERE id = ${input.orderId}::uuid) AS current`;
      if (row?.written) return row.written;
      const current = row?.current ?? null;
      if (!current) log.warn('order row missing', { orderId: input.orderId });
      else
        log.warn('status write refused: it would move the order backwards', {
          orderId: input.orderId,
          status: current,
          refused: input.status,
        });
      return current;
    },

    /**
     * The order's first bookkeeping in one statement: marks it PROCESSING and
     * returns the ids of the enabled endpoints subscribed to `eventType`
     * (sorted: the order's webhook fan-out). Idempotent. Returns null when the
     * order was cancelled before its workflow began (a cancel while it waited
     * in the outbox): the row stays CANCELLED and nothing may be sent. The
     * row lock orders this against the API's cancel: whichever commits first wins.
     */
    async beginOrderProcessing(input: {
      orderId: string;
      eventType: string;
    }): Promise<string[] | null> {
      const [row] = await db.$queryRaw<{ began: number; ids: string[] }[]>`
        WITH began AS (
          UPDATE orders SET status = 'PROCESSING', failed_step = NULL, last_error = NULL,
                            updated_at = now()
          WHERE id = ${input.orderId}::uuid AND status IN ('RECEIVED', 'PROCESSING')
          RETURNING id
        )
        SELECT (SELECT count(*) FROM began)::int AS began,
               coalesce((SELECT array_agg(e.id::text ORDER BY e.id) FROM webhook_endpoints e
                         WHERE e.status = 'ENABLED' AND ${input.eventType} = ANY(e.event_types)),
                        '{}') AS ids`;
      if (!row?.began) {
        // Read after the update: its snapshot may predate a cancel it waited for.
        const order = await db.order.findUnique({
          where: { id: input.orderId },
          select: { status: true },
        });
        if (order?.status === 'CANCELLED') {
          log.info('order cancelled before its workflow began; nothing is sent', {
            orderId: input.orderId,
          });
          return null;
        }
        log.warn(order ? 'order not begun' : 'order row missing', {
          orderId: input.orderId,
          status: order?.status,
        });
      }
      // Info only when there is a fan-out: most orders have no subscriber, and a line per order costs.
      const count = row?.ids.length ?? 0;
      if (count) log.info('webhook targets', { orderId: input.orderId, count });
      else log.debug('webhook targets', { orderId: input.orderId, count });
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
