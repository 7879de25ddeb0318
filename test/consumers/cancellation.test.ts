/**
 * order.cancelled against the real broker and database: the inventory group
 * releases what the cancelled order reserved, once, whatever the order and
 * number of deliveries; a cancel processed before its order.placed makes that
 * order.placed reserve nothing. Analytics counts placements and ignores
 * cancels.
 */
import { describe, expect, it } from 'vitest';
import { orderCancelledCloudEvent, toKafkaMessage } from '../../src/activities/events.ts';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { inventoryProjection } from '../../src/consumers/projections/inventory.ts';
import type { OrderPlacedData } from '../../src/shared/events.ts';
import { consumerScenario, db, recordOf, reservations, useConsumerClients } from './support.ts';

useConsumerClients();

const cancelRecordOf = (data: OrderPlacedData) =>
  toKafkaMessage(
    orderCancelledCloudEvent({ ...data, reason: 'customer asked' }, new Date()),
    data.orderId,
  );

/** An inventory scenario: two orders on one SKU (2 + 3 units) and one on a second SKU. */
async function inventoryScenario(partitions: number) {
  const s = await consumerScenario('inventory', partitions);
  const sku = s.sku('a');
  const other = s.sku('b');
  const kept = s.order({ items: [{ sku, quantity: 2, unitPriceCents: 100 }] });
  const cancelled = s.order({
    items: [
      { sku, quantity: 3, unitPriceCents: 100 },
      { sku, quantity: 1, unitPriceCents: 100 },
      { sku: other, quantity: 7, unitPriceCents: 100 },
    ],
  });
  return { s, sku, other, kept, cancelled };
}

describe.each(['per-event', 'per-batch'] as const)('with a transaction %s', (transaction) => {
  it('releases the reservation of a cancelled order once, however often the cancel is delivered', async () => {
    const { s, sku, other, kept, cancelled } = await inventoryScenario(3);
    await s.produce([
      recordOf(kept),
      recordOf(cancelled),
      cancelRecordOf(cancelled),
      cancelRecordOf(cancelled),
      recordOf(cancelled),
    ]);

    const runner = await s.consumeAll({ projection: inventoryProjection, transaction });

    // A SKU with nothing reserved any more has no row.
    expect(await reservations([sku, other])).toEqual([
      { sku, reservedQuantity: 2n, orderCount: 1 },
    ]);
    expect(await s.processedCount()).toBe(3);
    expect(await runner.outcomes('duplicate')).toBe(2);
  });

  it('reserves nothing for an order.placed processed after its cancel (replay, redelivery)', async () => {
    const { s, sku, other, kept, cancelled } = await inventoryScenario(1);
    // The cancel first, the placed event later: one key per partition prevents it, a replay must not care.
    await s.produce([cancelRecordOf(cancelled), recordOf(kept), recordOf(cancelled)]);

    await s.consumeAll({ projection: inventoryProjection, transaction });

    // A cancel of an order never reserved subtracts nothing; its placed event then adds nothing.
    expect(await reservations([sku, other])).toEqual([
      { sku, reservedQuantity: 2n, orderCount: 1 },
    ]);
    expect(await s.processedCount()).toBe(3);
  });
});

it('releases what was reserved when the cancel arrives in a later run of the group', async () => {
  const { s, sku, other, kept, cancelled } = await inventoryScenario(2);
  await s.publish([kept, cancelled]);
  const first = await s.start({ projection: inventoryProjection });
  await s.waitCaughtUp('placed events committed');
  expect(await reservations([sku, other])).toEqual([
    { sku, reservedQuantity: 6n, orderCount: 2 },
    { sku: other, reservedQuantity: 7n, orderCount: 1 },
  ]);
  await first.stop();

  await s.produce([cancelRecordOf(cancelled)]);
  await s.start({ projection: inventoryProjection });
  await s.waitCaughtUp('the cancel committed');
  expect(await reservations([sku, other])).toEqual([{ sku, reservedQuantity: 2n, orderCount: 1 }]);
  const states = await db.inventoryOrder.findMany({
    where: { orderId: { in: [kept.orderId, cancelled.orderId] } },
    select: { orderId: true, state: true },
  });
  expect(Object.fromEntries(states.map((row) => [row.orderId, row.state]))).toEqual({
    [kept.orderId]: 'RESERVED',
    [cancelled.orderId]: 'RELEASED',
  });
});

it('analytics counts placements and acknowledges cancels as ignored', async () => {
  const s = await consumerScenario('analytics', 1);
  const day = '2013-03-03';
  const order = s.order({ day, totalCents: 900 });
  await s.produce([recordOf(order), cancelRecordOf(order)]);

  const runner = await s.consumeAll({ projection: analyticsProjection });

  expect(await s.analyticsRows()).toEqual([
    { day, currency: s.currency, orderCount: 1, revenueCents: 900n },
  ]);
  expect(await runner.outcomes('ignored')).toBe(1);
  expect(await s.processedCount()).toBe(1);
});
