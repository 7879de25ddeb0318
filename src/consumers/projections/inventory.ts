/**
 * The `inventory` projection: stock reserved by placed orders per SKU (sum of
 * quantities) and how many orders reserved it. `order.cancelled` releases what
 * the order reserved.
 *
 * `inventory_orders` remembers, per order, what this projection did: RESERVED
 * (with the lines it reserved), RELEASED (reserved, then released by its
 * cancel) or CANCELLED (the cancel came first, nothing was reserved). So a
 * cancel subtracts only what its order.placed added, once; and an
 * order.placed processed after its cancel (a replay, a dead letter replayed
 * late) reserves nothing. Within one batch the placed events are applied
 * before the cancels; the sum is the same in any order. A SKU whose
 * reservations were all released has no row.
 */
import type {
  OrderCancelledEvent,
  OrderEvent,
  OrderPlacedEvent,
} from '../runtime/order-placed-decoder.ts';
import type { Projection, Tx } from './projection.ts';

interface ReservationDelta {
  sku: string;
  quantity: bigint;
  orderCount: number;
}

type Line = { sku: string; quantity: number };

function addLines(deltas: Map<string, ReservationDelta>, items: readonly Line[], sign: 1n | -1n) {
  const skusOfOrder = new Set<string>();
  for (const item of items) {
    const delta = deltas.get(item.sku) ?? { sku: item.sku, quantity: 0n, orderCount: 0 };
    delta.quantity += sign * BigInt(item.quantity);
    // An order listing a SKU on two lines is still one order for it.
    if (!skusOfOrder.has(item.sku)) delta.orderCount += Number(sign);
    skusOfOrder.add(item.sku);
    deltas.set(item.sku, delta);
  }
}

const bySku = (a: ReservationDelta, b: ReservationDelta) =>
  a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0;

/** The events' reservations per SKU, in SKU order (rows are locked in one order: no deadlocks). */
export function reservationDeltas(events: readonly OrderPlacedEvent[]): ReservationDelta[] {
  const deltas = new Map<string, ReservationDelta>();
  for (const { data } of events) addLines(deltas, data.items, 1n);
  return [...deltas.values()].sort(bySku);
}

const isCancel = (e: OrderEvent): e is OrderCancelledEvent => e.type === 'order.cancelled';

/** Order ids, once each, sorted (rows are locked in one order). */
const orderIds = (events: readonly OrderEvent[]): string[] =>
  [...new Set(events.map((e) => e.data.orderId))].sort();

export const inventoryProjection: Projection = {
  tables: ['stock_reservations', 'inventory_orders'],
  handles: ['order.placed', 'order.cancelled'],

  async apply(tx: Tx, events: readonly OrderEvent[]): Promise<void> {
    const placed = events.filter((e): e is OrderPlacedEvent => !isCancel(e));
    const cancelled = events.filter(isCancel);
    const deltas = new Map<string, ReservationDelta>();

    if (placed.length > 0) {
      // An order reserves only if nothing is known of it yet (no earlier cancel).
      const linesOf = new Map(placed.map((e) => [e.data.orderId, e.data.items]));
      const ids = orderIds(placed);
      const reserved = await tx.$queryRaw<{ order_id: string }[]>`
        INSERT INTO inventory_orders (order_id, state, items)
        SELECT o.order_id, 'RESERVED', o.items
        FROM unnest(${ids}::text[], ${ids.map((id) => JSON.stringify(linesOf.get(id)))}::jsonb[])
          WITH ORDINALITY AS o(order_id, items, n)
        ORDER BY o.n
        ON CONFLICT (order_id) DO NOTHING
        RETURNING order_id`;
      for (const { order_id } of reserved) addLines(deltas, linesOf.get(order_id)!, 1n);
    }

    if (cancelled.length > 0) {
      const ids = orderIds(cancelled);
      // Release exactly what was reserved (the lines stored with the reservation).
      const released = await tx.$queryRaw<{ order_id: string; items: Line[] }[]>`
        UPDATE inventory_orders SET state = 'RELEASED', updated_at = now()
        WHERE order_id = ANY(${ids}::text[]) AND state = 'RESERVED'
        RETURNING order_id, items`;
      for (const { items } of released) addLines(deltas, items, -1n);
      // A cancel before its order.placed: remembered, so that order.placed reserves nothing.
      await tx.$executeRaw`
        INSERT INTO inventory_orders (order_id, state)
        SELECT o.order_id, 'CANCELLED'
        FROM unnest(${ids}::text[]) WITH ORDINALITY AS o(order_id, n)
        ORDER BY o.n
        ON CONFLICT (order_id) DO NOTHING`;
    }

    const changes = [...deltas.values()]
      .filter((d) => d.quantity !== 0n || d.orderCount !== 0)
      .sort(bySku);
    if (changes.length === 0) return;
    await tx.$executeRaw`
      INSERT INTO stock_reservations (sku, reserved_quantity, order_count)
      SELECT r.sku, r.reserved_quantity, r.order_count
      FROM unnest(
        ${changes.map((d) => d.sku)}::text[],
        ${changes.map((d) => d.quantity.toString())}::bigint[],
        ${changes.map((d) => d.orderCount)}::int[]
      ) WITH ORDINALITY AS r(sku, reserved_quantity, order_count, n)
      ORDER BY r.n
      ON CONFLICT (sku) DO UPDATE SET
        reserved_quantity = stock_reservations.reserved_quantity + EXCLUDED.reserved_quantity,
        order_count = stock_reservations.order_count + EXCLUDED.order_count`;
    // A SKU nothing is reserved for any more has no row, as if never reserved (whatever the
    // batching). Only a release can bring a row down to zero: a batch of placements alone
    // (the usual one) has nothing to delete and skips the statement.
    const lowered = changes.filter((d) => d.quantity < 0n || d.orderCount < 0).map((d) => d.sku);
    if (lowered.length === 0) return;
    await tx.$executeRaw`
      DELETE FROM stock_reservations
      WHERE sku = ANY(${lowered}::text[])
        AND reserved_quantity = 0 AND order_count = 0`;
  },

  async clear(tx: Tx): Promise<void> {
    await tx.$executeRaw`DELETE FROM inventory_orders`;
    await tx.$executeRaw`DELETE FROM stock_reservations`;
  },
};
