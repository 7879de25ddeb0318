/**
 * The `analytics` projection: per UTC day of `placedAt` and currency, how many
 * orders were placed and their revenue (sum of totals, in cents). It counts
 * placements: `order.cancelled` is not handled (acknowledged as ignored), so a
 * cancelled order still counts on the day it was placed.
 */
import type { OrderEvent, OrderPlacedEvent } from '../runtime/order-placed-decoder.ts';
import type { Projection, Tx } from './projection.ts';

interface DailyDelta {
  day: string;
  currency: string;
  orderCount: number;
  revenueCents: bigint;
}

/** The events' contribution per (day, currency), in key order (rows are locked in one order: no deadlocks). */
export function dailyDeltas(events: readonly OrderEvent[]): DailyDelta[] {
  const deltas = new Map<string, DailyDelta>();
  const placed = events.filter((e): e is OrderPlacedEvent => e.type !== 'order.cancelled');
  for (const { data } of placed) {
    const day = new Date(data.placedAt).toISOString().slice(0, 10);
    const key = `${day} ${data.currency}`;
    const delta = deltas.get(key) ?? {
      day,
      currency: data.currency,
      orderCount: 0,
      revenueCents: 0n,
    };
    delta.orderCount += 1;
    delta.revenueCents += BigInt(data.totalCents);
    deltas.set(key, delta);
  }
  return [...deltas.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, d]) => d);
}

export const analyticsProjection: Projection = {
  tables: ['analytics_daily'],
  handles: ['order.placed'],

  async apply(tx: Tx, events: readonly OrderEvent[]): Promise<void> {
    const deltas = dailyDeltas(events);
    if (deltas.length === 0) return;
    await tx.$executeRaw`
      INSERT INTO analytics_daily (day, currency, order_count, revenue_cents)
      SELECT d.day, d.currency, d.order_count, d.revenue_cents
      FROM unnest(
        ${deltas.map((d) => d.day)}::date[],
        ${deltas.map((d) => d.currency)}::text[],
        ${deltas.map((d) => d.orderCount)}::int[],
        ${deltas.map((d) => d.revenueCents.toString())}::bigint[]
      ) WITH ORDINALITY AS d(day, currency, order_count, revenue_cents, n)
      ORDER BY d.n
      ON CONFLICT (day, currency) DO UPDATE SET
        order_count = analytics_daily.order_count + EXCLUDED.order_count,
        revenue_cents = analytics_daily.revenue_cents + EXCLUDED.revenue_cents`;
  },

  async clear(tx: Tx): Promise<void> {
    await tx.$executeRaw`DELETE FROM analytics_daily`;
  },
};
