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
