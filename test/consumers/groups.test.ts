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
  consumerScenario,
  randomDay,
  recordingProjection,
  recordOf,
  reservations,
  uniqueGroupId,
  useConsumerClients,
  waitFor,
} from './support.ts';

useConsumerClients();

it('delivers every event to each of two groups, which keep their own projections', async () => {
  const s = await consumerScenario('analytics');
  const { currency, groupId: analytics } = s;
  const inventory = uniqueGroupId('inventory');
  const skus = ['A', 'B', 'C'].map((label) => `${label}-${currency}-${analytics.slice(-8)}`);
  // Order i: day i % 2, SKU i % 3, 1 + i % 4 units of 100 cents. The first day has 15 orders
  // each of 1 and 3 units, the second 15 each of 2 and 4; each SKU 20 orders, 5 of each size.
  const orders = Array.from({ length: 60 }, (_, i) =>
    s.order({
      day: ['2001-03-01', '2001-03-02'][i % 2],
      items: [{ sku: skus[i % 3]!, quantity: 1 + (i % 4), unitPriceCents: 100 }],
    }),
  );
  await s.publish(orders);

  await Promise.all([
    s.start({ projection: analyticsProjection }),
    s.start({ groupId: inventory, projection: inventoryProjection, transaction: 'per-batch' }),
  ]);
  await waitFor(
    'both groups caught up',
    async () => (await s.caughtUp()) && (await s.caughtUp(inventory)),
  );

  expect(await s.processedCount()).toBe(60);
  expect(await s.processedCount(inventory)).toBe(60);
  expect(await s.analyticsRows()).toEqual([
    { day: '2001-03-01', currency, orderCount: 30, revenueCents: 6_000n },
    { day: '2001-03-02', currency, orderCount: 30, revenueCents: 9_000n },
  ]);
  expect(await reservations(skus)).toEqual(
    skus.map((sku) => ({ sku, reservedQuantity: 50n, orderCount: 20 })),
  );
});

it('splits the partitions between two instances of a group and applies each event once across rebalances', async () => {
  const s = await consumerScenario('analytics', 6);
  // 1500 orders of 2500 cents each, on days picked at random (some of them more than once).
  const days = Array.from({ length: 1500 }, () => randomDay());
  const orders = days.map((day) => s.order({ day, totalCents: 2500 }));
  const publish = (from: number, to: number) => s.publish(orders.slice(from, to));

  await publish(0, 500);
  const first = await s.start({ projection: analyticsProjection });
  await waitFor('the first instance is under way', async () => (await s.processedCount()) > 50);

  // A second instance joins while the first is busy: the group rebalances.
  const second = await s.start({ projection: analyticsProjection });
  await publish(500, 1000);
  await waitFor('both instances own partitions', async () => {
    const [a, b] = await Promise.all([
      first.consumer.describeGroup(),
      second.consumer.describeGroup(),
    ]);
    return a.state === 'Stable' && a.members.length === 2 && b.members.length === 2;
  });
  await waitFor(
    'the second instance processed events',
    async () => (await second.outcomes('processed')) > 0,
  );

  // The first leaves mid-stream: its partitions move to the second.
  await publish(1000, 1500);
  await first.stop();
  await s.waitCaughtUp('the group caught up', 60_000);

  const processedByFirst = await first.outcomes('processed');
  const processedBySecond = await second.outcomes('processed');
  expect(processedByFirst).toBeGreaterThan(0);
  expect(processedBySecond).toBeGreaterThan(0);
  expect(processedByFirst + processedBySecond).toBe(1500);
  expect(await s.processedCount()).toBe(1500);
  // One row a day: as many orders as the day was picked, 2500 cents each.
  const perDay = new Map<string, number>();
  for (const day of days) perDay.set(day, (perDay.get(day) ?? 0) + 1);
  expect(await s.analyticsRows()).toEqual(
    [...perDay.keys()].sort().map((day) => {
      const orderCount = perDay.get(day)!;
      return { day, currency: s.currency, orderCount, revenueCents: 2500n * BigInt(orderCount) };
    }),
  );
});

it('keeps the order of one key’s events while partitions are worked on concurrently', async () => {
  const s = await consumerScenario('ordering', 6);
  const { projection, applied, maxInFlight } = recordingProjection(5);
  // 12 orders, each with 5 events in sequence (distinct event ids, same key).
  const orders = Array.from({ length: 12 }, () => s.order());
  const records = [];
  for (let seq = 0; seq < 5; seq++) {
    for (const o of orders) records.push(recordOf(o, `${o.orderId}/${seq}`));
  }
  await s.produce(records);

  await s.consumeAll({ projection });

  for (const o of orders) {
    const seen = applied.filter((a) => a.orderId === o.orderId).map((a) => a.id);
    expect(seen).toEqual([0, 1, 2, 3, 4].map((seq) => `${o.orderId}/${seq}`));
  }
  expect(maxInFlight()).toBeGreaterThan(1);
  await sleep(0);
  expect(await s.processedCount()).toBe(60);
});
