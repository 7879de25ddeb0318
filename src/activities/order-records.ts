import { log } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import type { OrderStatus } from '../shared/orders.ts';

export interface RecordStatusInput {
  orderId: string;
  status: OrderStatus;
  failedStep?: string | null;
  lastError?: string | null;
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
  };
}

export type OrderRecordActivities = ReturnType<typeof createOrderRecordActivities>;
