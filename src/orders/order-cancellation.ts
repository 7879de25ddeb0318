/**
 * Cancelling an order, for the API and the CLI alike. A cancel that arrives
 * before the workflow began wins in the database, in one statement: the order
 * becomes CANCELLED and its pending start leaves the outbox, so the relay
 * never starts it; a workflow a relay started meanwhile finds the row
 * CANCELLED in its first bookkeeping step (beginOrderProcessing) and ends
 * without sending anything. Later, the `cancel` signal reaches the running
 * workflow, which writes CANCELLED and announces `order.cancelled`. An order
 * whose workflow was terminated or cancelled outside orderflow is put right
 * here too (and by the relay's reconciler, see workflow-reconciler.ts, which
 * also announces order.cancelled for it).
 */
import type { Db } from '../db/client.ts';
import { OrderError } from './errors.ts';
import type { OrderOperations } from './order-operations.ts';
import {
  ABANDONED_WORKFLOW_STATUSES,
  CANCELLABLE_STATUSES,
  abandonedReason,
  assertCancellable,
  cancelReason,
} from './rules.ts';

export type CancelOutcome =
  /** The row is CANCELLED now: before the workflow began, or after it was ended in Temporal. */
  | { kind: 'cancelled' }
  /** The running workflow got the cancel signal; it writes CANCELLED itself. */
  | { kind: 'cancelling' };

/**
 * Cancels a RECEIVED order in the database, and removes its start from the
 * outbox unless a relay confirmed it already; returns whether it did. The row
 * lock orders this against the workflow's first status write.
 */
export async function cancelBeforeStart(db: Db, orderId: string, reason: string): Promise<boolean> {
  const [row] = await db.$queryRaw<{ cancelled: number }[]>`
    WITH c AS (
      UPDATE orders SET status = 'CANCELLED', failed_step = NULL, last_error = ${reason},
                        updated_at = now()
      WHERE id = ${orderId}::uuid AND status = 'RECEIVED'
      RETURNING id
    ), unstarted AS (
      DELETE FROM workflow_starts s USING c WHERE s.order_id = c.id AND s.started_at IS NULL
    )
    SELECT count(*)::int AS cancelled FROM c`;
  return (row?.cancelled ?? 0) > 0;
}

/**
 * Marks an unfinished order CANCELLED because its workflow ended in Temporal
 * without saying so (terminated, or cancelled by code that could not write);
 * never moves a finished order. Returns whether it changed the row.
 */
export async function cancelAbandonedOrder(
  db: Db,
  orderId: string,
  workflowStatus: string,
): Promise<boolean> {
  const { count } = await db.order.updateMany({
    where: { id: orderId, status: { in: [...CANCELLABLE_STATUSES] } },
    data: {
      status: 'CANCELLED',
      failedStep: null,
      lastError: abandonedReason(workflowStatus),
    },
  });
  return count > 0;
}

export class OrderCancellation {
  constructor(
    private readonly db: Db,
    private readonly operations: OrderOperations,
  ) {}

  /**
   * Cancels the order (see the module comment) with the reason given, checked
   * (`invalid`), or the default; `not-found` when unknown, `not-cancellable`
   * when it already ended.
   */
  async cancel(orderId: string, givenReason?: string): Promise<CancelOutcome> {
    const reason = cancelReason(givenReason);
    if (await cancelBeforeStart(this.db, orderId, reason)) return { kind: 'cancelled' };
    const order = await this.db.order.findUnique({
      where: { id: orderId },
      select: { status: true },
    });
    if (!order) throw new OrderError('not-found', `Order ${orderId} does not exist`);
    assertCancellable(orderId, order.status);
    try {
      await this.operations.cancel(orderId, reason);
      return { kind: 'cancelling' };
    } catch (err) {
      // The workflow is gone although the row says it runs: put the row right.
      if (!(err instanceof OrderError) || err.code !== 'workflow-ended') throw err;
      const status = await this.operations.workflowStatus(orderId);
      if (status && (ABANDONED_WORKFLOW_STATUSES as readonly string[]).includes(status)) {
        await cancelAbandonedOrder(this.db, orderId, status);
        return { kind: 'cancelled' };
      }
      throw err;
    }
  }
}
