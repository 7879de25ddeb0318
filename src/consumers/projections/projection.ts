/**
 * What a consumer group maintains: a projection of order events in
 * PostgreSQL, changed only inside the transaction that records the events as
 * processed (see processed-events.ts).
 */
import type { Prisma } from '../../generated/prisma/client.ts';
import type { OrderEvent, OrderEventType } from '../runtime/order-placed-decoder.ts';

/** The Prisma client inside an interactive transaction. */
export type Tx = Prisma.TransactionClient;

export interface Projection {
  /** The projection's tables, for operators (reset, docs). */
  tables: readonly string[];
  /**
   * The event types it applies (default: order.placed only); records of
   * other types are acknowledged as ignored (not recorded in processed_events).
   */
  handles?: readonly OrderEventType[];
  /**
   * Applies the effects of events not applied before (already deduplicated),
   * in the caller's transaction, only of the types in `handles`, in partition
   * order. The combined effect of a batch must not depend on the order of its
   * events, so one call may apply a whole batch.
   */
  apply(tx: Tx, events: readonly OrderEvent[]): Promise<void>;
  /** Empties the projection, before it is rebuilt from the log. */
  clear(tx: Tx): Promise<void>;
}

/** Whether `projection` applies events of `type`. */
export const projectionHandles = (projection: Projection, type: OrderEventType): boolean =>
  (projection.handles ?? ['order.placed']).includes(type);
