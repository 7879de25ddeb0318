/**
 * Consumer groups against the real broker and database: groups are
 * independent, instances of one group share its partitions, each partition is
 * worked on in order while partitions run concurrently.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { inventoryProjection } from '../../src/consumers/projections/inventory.ts';
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
  randomDay,
  recordingProjection,
  recordOf,
  reservations,
  startRunner,
  uniqueCurrency,
  uniqueGroupId,
  useConsumerClients,
  waitFor,
} from './support.ts';

useConsumerClients();

/** Expected analytics rows of `orders`, as analyticsRows returns them. */
function expectedDaily(orders: ReturnType<typeof orderPlaced>[]) {
  const rows = new Map<
    string,
    { day: string; currency: string; orderCount: number; revenueCents: bigint }
  >();
  for (const o of orders) {
    const day = o.placedAt.slice(0, 10);
    const row = rows.get(`${day} ${o.currency}`) ?? {
      day,
      currency: o.currency,
      orderCount: 0,
      revenueCents: 0n,
    };
    row.orderCount += 1;
    row.revenueCents += BigInt(o.totalCents);
    rows.set(`${day} ${o.currency}`, row);
  }
  return [...rows.values()].sort(
    (a, b) => a.day.localeCompare(b.day) || a.currency.localeCompare(b.currency),
  );
}

it('delivers every event to each of two groups, which keep their own projections', async () => {
  const topic = await freshTopic();
  const analytics = uniqueGroupId('analytics');
  const inventory = uniqueGroupId('inventory');
  const currency = uniqueCurrency();
  const skus = ['A', 'B', 'C'].map((s) => `${s}-${currency}-${analytics.slice(-8)}`);
  const orders = Array.from({ length: 60 }, (_, i) =>
    orderPlaced({
      currency,
      day: ['2001-03-01', '2001-03-02'][i % 2],
      items: [{ sku: skus[i % 3]!, quantity: 1 + (i % 4), unitPriceCents: 100 }],
    }),
  );
  await produce(
    topic,
    orders.map((o) => recordOf(o)),
  );

  await Promise.all([
    startRunner({ groupId: analytics, topic, projection: analyticsProjection }),
    startRunner({
      groupId: inventory,
      topic,
      projection: inventoryProjection,
      transaction: 'per-batch',
    }),
  ]);
  await waitFor(
    'both groups caught up',
    async () => (await caughtUp(analytics, topic)) && (await caughtUp(inventory, topic)),
  );

  expect(await processedCount(analytics)).toBe(60);
  expect(await processedCount(inventory)).toBe(60);
  expect(await analyticsRows([currency])).toEqual(expectedDaily(orders));
  const reserved = (sku: string) =>
    orders.filter((o) => o.items[0]!.sku === sku).reduce((n, o) => n + o.items[0]!.quantity, 0);
  expect(await reservations(skus)).toEqual(
    skus.map((sku) => ({ sku, reservedQuantity: BigInt(reserved(sku)), orderCount: 20 })),
  );
});

it('splits the partitions between two instances of a group and applies each event once across rebalances', async () => {
  const topic = await freshTopic(6);
  const groupId = uniqueGroupId('analytics');
  const currency = uniqueCurrency();
  const orders = Array.from({ length: 1500 }, () => orderPlaced({ currency, day: randomDay() }));
  const batch = (from: number, to: number) => orders.slice(from, to).map((o) => recordOf(o));

  await produce(topic, batch(0, 500));
  const first = await startRunner({ groupId, topic, projection: analyticsProjection });
  await waitFor(
    'the first instance is under way',
    async () => (await processedCount(groupId)) > 50,
  );

  // A second instance joins while the first is busy: the group rebalances.
  const second = await startRunner({ groupId, topic, projection: analyticsProjection });
  await produce(topic, batch(500, 1000));
  await waitFor('both instances own partitions', async () => {
    const [a, b] = await Promise.all([
      first.consumer.describeGroup(),
      second.consumer.describeGroup(),
    ]);
    return a.state === 'Stable' && a.members.length === 2 && b.members.length === 2;
  });
  await waitFor(
    'the second instance processed events',
    async () => (await outcomes(second.metrics, 'processed')) > 0,
  );

  // The first leaves mid-stream: its partitions move to the second.
  await produce(topic, batch(1000, 1500));
  await first.stop();
  await waitFor('the group caught up', () => caughtUp(groupId, topic), 60_000);

  const processedByFirst = await outcomes(first.metrics, 'processed');
  const processedBySecond = await outcomes(second.metrics, 'processed');
  expect(processedByFirst).toBeGreaterThan(0);
  expect(processedBySecond).toBeGreaterThan(0);
  expect(processedByFirst + processedBySecond).toBe(1500);
  expect(await processedCount(groupId)).toBe(1500);
  expect(await analyticsRows([currency])).toEqual(expectedDaily(orders));
});

it('keeps the order of one key’s events while partitions are worked on concurrently', async () => {
  const topic = await freshTopic(6);
  const groupId = uniqueGroupId('ordering');
  const { projection, applied, maxInFlight } = recordingProjection(5);
  // 12 orders, each with 5 events in sequence (distinct event ids, same key).
  const orders = Array.from({ length: 12 }, () => orderPlaced());
  const records = [];
  for (let seq = 0; seq < 5; seq++) {
    for (const o of orders) records.push(recordOf(o, `${o.orderId}/${seq}`));
  }
  await produce(topic, records);

  await consumeAll({ groupId, topic, projection });

  for (const o of orders) {
    const seen = applied.filter((a) => a.orderId === o.orderId).map((a) => a.id);
    expect(seen).toEqual([0, 1, 2, 3, 4].map((seq) => `${o.orderId}/${seq}`));
  }
  expect(maxInFlight()).toBeGreaterThan(1);
  await sleep(0);
  expect(await db.processedEvent.count({ where: { groupId } })).toBe(60);
});
