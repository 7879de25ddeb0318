/**
 * The `inventory` projection: stock reserved by placed orders per SKU (sum of
 * quantities) and how many orders reserved it.
 */
import type { OrderPlacedEvent } from '../runtime/order-placed-decoder.ts';
import type { Projection, Tx } from './projection.ts';

interface ReservationDelta {
  sku: string;
  quantity: bigint;
  orderCount: number;
}

/** The events' reservations per SKU, in SKU order (rows are locked in one order: no deadlocks). */
export function reservationDeltas(events: readonly OrderPlacedEvent[]): ReservationDelta[] {
  const deltas = new Map<string, ReservationDelta>();
  for (const { data } of events) {
    const skusOfOrder = new Set<string>();
    for (const item of data.items) {
      const delta = deltas.get(item.sku) ?? { sku: item.sku, quantity: 0n, orderCount: 0 };
      delta.quantity += BigInt(item.quantity);
      // An order listing a SKU on two lines is still one order for it.
      if (!skusOfOrder.has(item.sku)) delta.orderCount += 1;
      skusOfOrder.add(item.sku);
      deltas.set(item.sku, delta);
    }
  }
  return [...deltas.values()].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
}

export const inventoryProjection: Projection = {
  tables: ['stock_reservations'],

  async apply(tx: Tx, events: readonly OrderPlacedEvent[]): Promise<void> {
    const deltas = reservationDeltas(events);
    if (deltas.length === 0) return;
    await tx.$executeRaw`
      INSERT INTO stock_reservations (sku, reserved_quantity, order_count)
      SELECT r.sku, r.reserved_quantity, r.order_count
      FROM unnest(
        ${deltas.map((d) => d.sku)}::text[],
        ${deltas.map((d) => d.quantity.toString())}::bigint[],
        ${deltas.map((d) => d.orderCount)}::int[]
      ) WITH ORDINALITY AS r(sku, reserved_quantity, order_count, n)
      ORDER BY r.n
      ON CONFLICT (sku) DO UPDATE SET
        reserved_quantity = stock_reservations.reserved_quantity + EXCLUDED.reserved_quantity,
        order_count = stock_reservations.order_count + EXCLUDED.order_count`;
  },

  async clear(tx: Tx): Promise<void> {
    await tx.$executeRaw`DELETE FROM stock_reservations`;
  },
};
