/**
 * What a consumer group maintains: a projection of `order.placed` events in
 * PostgreSQL, changed only inside the transaction that records the events as
 * processed (see processed-events.ts).
 */
import type { Prisma } from '../../generated/prisma/client.ts';
import type { OrderPlacedEvent } from '../runtime/order-placed-decoder.ts';

/** The Prisma client inside an interactive transaction. */
export type Tx = Prisma.TransactionClient;

export interface Projection {
  /** The projection's tables, for operators (reset, docs). */
  tables: readonly string[];
  /**
   * Applies the effects of events not applied before (already deduplicated),
   * in the caller's transaction. Effects are additive, so one call may apply
   * a whole batch.
   */
  apply(tx: Tx, events: readonly OrderPlacedEvent[]): Promise<void>;
  /** Empties the projection, before it is rebuilt from the log. */
  clear(tx: Tx): Promise<void>;
}
