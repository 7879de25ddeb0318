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
import {
  analyticsRows,
  caughtUp,
  consumeAll,
  db,
  freshTopic,
  orderPlaced,
  outcomes,
  processedCount,
  produce,
  recordOf,
  reservations,
  startRunner,
  uniqueCurrency,
  uniqueGroupId,
  useConsumerClients,
  waitFor,
} from './support.ts';

useConsumerClients();

const cancelRecordOf = (data: OrderPlacedData) =>
  toKafkaMessage(
    orderCancelledCloudEvent({ ...data, reason: 'customer asked' }, new Date()),
    data.orderId,
  );

/** Two orders on one SKU (2 + 3 units) and one on a second SKU. */
function orders() {
  const sku = `SKU-${uniqueGroupId('a')}`;
  const other = `SKU-${uniqueGroupId('b')}`;
  const kept = orderPlaced({ items: [{ sku, quantity: 2, unitPriceCents: 100 }] });
  const cancelled = orderPlaced({
    items: [
      { sku, quantity: 3, unitPriceCents: 100 },
      { sku, quantity: 1, unitPriceCents: 100 },
      { sku: other, quantity: 7, unitPriceCents: 100 },
    ],
  });
  return { sku, other, kept, cancelled };
}

describe.each(['per-event', 'per-batch'] as const)('with a transaction %s', (transaction) => {
  it('releases the reservation of a cancelled order once, however often the cancel is delivered', async () => {
    const topic = await freshTopic(3);
    const groupId = uniqueGroupId('inventory');
    const { sku, other, kept, cancelled } = orders();
    await produce(topic, [
      recordOf(kept),
      recordOf(cancelled),
      cancelRecordOf(cancelled),
      cancelRecordOf(cancelled),
      recordOf(cancelled),
    ]);

    const runner = await consumeAll({
      groupId,
      topic,
      projection: inventoryProjection,
      transaction,
    });

    // A SKU with nothing reserved any more has no row.
    expect(await reservations([sku, other])).toEqual([
      { sku, reservedQuantity: 2n, orderCount: 1 },
    ]);
    expect(await processedCount(groupId)).toBe(3);
    expect(await outcomes(runner.metrics, 'duplicate')).toBe(2);
  });

  it('reserves nothing for an order.placed processed after its cancel (replay, redelivery)', async () => {
    const topic = await freshTopic(1);
    const groupId = uniqueGroupId('inventory');
    const { sku, other, kept, cancelled } = orders();
    // The cancel first, the placed event later: one key per partition prevents it, a replay must not care.
    await produce(topic, [cancelRecordOf(cancelled), recordOf(kept), recordOf(cancelled)]);

    await consumeAll({ groupId, topic, projection: inventoryProjection, transaction });

    // A cancel of an order never reserved subtracts nothing; its placed event then adds nothing.
    expect(await reservations([sku, other])).toEqual([
      { sku, reservedQuantity: 2n, orderCount: 1 },
    ]);
    expect(await processedCount(groupId)).toBe(3);
  });
});

it('releases what was reserved when the cancel arrives in a later run of the group', async () => {
  const topic = await freshTopic(2);
  const groupId = uniqueGroupId('inventory');
  const { sku, other, kept, cancelled } = orders();
  await produce(topic, [recordOf(kept), recordOf(cancelled)]);
  const first = await startRunner({ groupId, topic, projection: inventoryProjection });
  await waitFor('placed events committed', () => caughtUp(groupId, topic));
  expect(await reservations([sku, other])).toEqual([
    { sku, reservedQuantity: 6n, orderCount: 2 },
    { sku: other, reservedQuantity: 7n, orderCount: 1 },
  ]);
  await first.stop();

  await produce(topic, [cancelRecordOf(cancelled)]);
  await startRunner({ groupId, topic, projection: inventoryProjection });
  await waitFor('the cancel committed', () => caughtUp(groupId, topic));
  expect(await reservations([sku, other])).toEqual([{ sku, reservedQuantity: 2n, orderCount: 1 }]);
  const states = await db.inventoryOrder.findMany({
    where: { orderId: { in: [kept.orderId, cancelled.orderId] } },
    select: { orderId: true, state: true },
  });
  expect(Object.fromEntries(states.map((s) => [s.orderId, s.state]))).toEqual({
    [kept.orderId]: 'RESERVED',
    [cancelled.orderId]: 'RELEASED',
  });
});

it('analytics counts placements and acknowledges cancels as ignored', async () => {
  const topic = await freshTopic(1);
  const groupId = uniqueGroupId('analytics');
  const currency = uniqueCurrency();
  const day = '2013-03-03';
  const order = orderPlaced({ currency, day, totalCents: 900 });
  await produce(topic, [recordOf(order), cancelRecordOf(order)]);

  const runner = await consumeAll({ groupId, topic, projection: analyticsProjection });

  expect(await analyticsRows([currency])).toEqual([
    { day, currency, orderCount: 1, revenueCents: 900n },
  ]);
  expect(await outcomes(runner.metrics, 'ignored')).toBe(1);
  expect(await processedCount(groupId)).toBe(1);
});
