/**
 * Rebuilding a projection from the log: `consumers reset` moves a stopped
 * group's offsets; from the earliest offset the projection is rebuilt to
 * exactly what was built incrementally.
 */
import { expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { GroupOperationError, resetGroup } from '../../src/consumers/runtime/group-admin.ts';
import {
  admin,
  analyticsRows,
  caughtUp,
  db,
  freshTopic,
  orderPlaced,
  outcomes,
  processedCount,
  produce,
  randomDay,
  recordOf,
  startRunner,
  uniqueCurrency,
  uniqueGroupId,
  useConsumerClients,
  waitFor,
} from './support.ts';

useConsumerClients();

const projection = analyticsProjection;

it('rebuilds the analytics projection from the earliest offset to exactly the rows built incrementally', async () => {
  const topic = await freshTopic(6);
  const groupId = uniqueGroupId('analytics');
  const currencies = [uniqueCurrency(), uniqueCurrency()];
  const days = Array.from({ length: 5 }, () => randomDay());
  const order = (i: number) =>
    orderPlaced({ currency: currencies[i % 2], day: days[i % 5], totalCents: 100 + i });
  const records = Array.from({ length: 400 }, (_, i) => recordOf(order(i)));
  // Built incrementally: events arrive in three bursts, some of them twice.
  let runner = await startRunner({ groupId, topic, projection });
  for (const burst of [records.slice(0, 150), records.slice(150, 300), records.slice(300)]) {
    await produce(topic, burst);
    await produce(topic, burst.slice(0, 10));
    await waitFor('the burst committed', () => caughtUp(groupId, topic));
  }
  await runner.stop();
  const incremental = await analyticsRows(currencies);
  expect(incremental.reduce((n, r) => n + r.orderCount, 0)).toBe(400);

  const reset = await resetGroup({ admin, db, groupId, projection, topic, to: 'earliest' });

  expect(reset).toMatchObject({ groupId, to: 'earliest', forgotten: 400, projectionCleared: true });
  expect(reset.offsets).toEqual(
    [0, 1, 2, 3, 4, 5].map((partition) => ({ partition, offset: '0' })),
  );
  expect(await analyticsRows(currencies)).toEqual([]);
  expect(await processedCount(groupId)).toBe(0);

  runner = await startRunner({ groupId, topic, projection, transaction: 'per-batch' });
  await waitFor('the rebuild committed', () => caughtUp(groupId, topic));

  expect(await analyticsRows(currencies)).toEqual(incremental);
  expect(await outcomes(runner.metrics, 'processed')).toBe(400);
  expect(await outcomes(runner.metrics, 'duplicate')).toBe(30);
});

it('refuses to reset a group that has active members', async () => {
  const topic = await freshTopic(1);
  const groupId = uniqueGroupId('analytics');
  await produce(topic, [recordOf(orderPlaced())]);
  const runner = await startRunner({ groupId, topic, projection });
  await waitFor('the group caught up', () => caughtUp(groupId, topic));

  const error = await resetGroup({ admin, db, groupId, projection, topic, to: 'earliest' }).catch(
    (e: unknown) => e,
  );

  expect(error).toBeInstanceOf(GroupOperationError);
  expect((error as Error).message).toMatch(
    /is Stable with 1 member\(s\); stop its processes first/,
  );
  expect(await processedCount(groupId)).toBe(1);
  await runner.stop();
});

it('resets to a time by moving only the offsets: events already applied are skipped, the projection stays', async () => {
  const topic = await freshTopic(1);
  const groupId = uniqueGroupId('analytics');
  const currency = uniqueCurrency();
  const day = '2015-05-05';
  const old = orderPlaced({ currency, day, placedAt: '2015-05-05T08:00:00.000Z', totalCents: 1 });
  const recent = orderPlaced({
    currency,
    day,
    placedAt: '2015-05-05T18:00:00.000Z',
    totalCents: 2,
  });
  await produce(topic, [recordOf(old), recordOf(recent)]);
  let runner = await startRunner({ groupId, topic, projection });
  await waitFor('the group caught up', () => caughtUp(groupId, topic));
  await runner.stop();

  const reset = await resetGroup({
    admin,
    db,
    groupId,
    projection,
    topic,
    to: new Date('2015-05-05T12:00:00.000Z'),
  });

  expect(reset).toMatchObject({
    forgotten: 0,
    projectionCleared: false,
    offsets: [{ partition: 0, offset: '1' }],
  });
  runner = await startRunner({ groupId, topic, projection });
  await waitFor('the group caught up again', () => caughtUp(groupId, topic));
  expect(await outcomes(runner.metrics, 'duplicate')).toBe(1);
  expect(await analyticsRows([currency])).toEqual([
    { day, currency, orderCount: 2, revenueCents: 3n },
  ]);
});
