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
  consumerScenario,
  db,
  randomDay,
  uniqueCurrency,
  useConsumerClients,
} from './support.ts';

useConsumerClients();

const projection = analyticsProjection;

it('rebuilds the analytics projection from the earliest offset to exactly the rows built incrementally', async () => {
  const s = await consumerScenario('analytics', 6);
  const { topic, groupId } = s;
  const second = await uniqueCurrency();
  const currencies = [s.currency, second];
  const days = Array.from({ length: 5 }, () => randomDay());
  const orders = Array.from({ length: 400 }, (_, i) =>
    s.order({ currency: currencies[i % 2], day: days[i % 5], totalCents: 100 + i }),
  );
  // Built incrementally: events arrive in three bursts, some of them twice.
  let runner = await s.start({ projection });
  for (const burst of [orders.slice(0, 150), orders.slice(150, 300), orders.slice(300)]) {
    await s.publish(burst);
    await s.publish(burst.slice(0, 10));
    await s.waitCaughtUp('the burst committed');
  }
  await runner.stop();
  const incremental = await s.analyticsRows(second);
  expect(incremental.reduce((n, r) => n + r.orderCount, 0)).toBe(400);

  const reset = await resetGroup({ admin, db, groupId, projection, topic, to: 'earliest' });

  expect(reset).toMatchObject({ groupId, to: 'earliest', forgotten: 400, projectionCleared: true });
  expect(reset.offsets).toEqual(
    [0, 1, 2, 3, 4, 5].map((partition) => ({ partition, offset: '0' })),
  );
  expect(await s.analyticsRows(second)).toEqual([]);
  expect(await s.processedCount()).toBe(0);

  runner = await s.start({ projection, transaction: 'per-batch' });
  await s.waitCaughtUp('the rebuild committed');

  expect(await s.analyticsRows(second)).toEqual(incremental);
  expect(await runner.outcomes('processed')).toBe(400);
  expect(await runner.outcomes('duplicate')).toBe(30);
});

it('refuses to reset a group that has active members', async () => {
  const s = await consumerScenario('analytics', 1);
  const { topic, groupId } = s;
  await s.publish([s.order()]);
  const runner = await s.start({ projection });
  await s.waitCaughtUp('the group caught up');

  const error = await resetGroup({ admin, db, groupId, projection, topic, to: 'earliest' }).catch(
    (e: unknown) => e,
  );

  expect(error).toBeInstanceOf(GroupOperationError);
  expect((error as Error).message).toMatch(
    /is Stable with 1 member\(s\); stop its processes first/,
  );
  expect(await s.processedCount()).toBe(1);
  await runner.stop();
});

it('resets to a time by moving only the offsets: events already applied are skipped, the projection stays', async () => {
  const s = await consumerScenario('analytics', 1);
  const { topic, groupId, currency } = s;
  const day = '2015-05-05';
  const old = s.order({ day, placedAt: '2015-05-05T08:00:00.000Z', totalCents: 1 });
  const recent = s.order({ day, placedAt: '2015-05-05T18:00:00.000Z', totalCents: 2 });
  await s.publish([old, recent]);
  let runner = await s.start({ projection });
  await s.waitCaughtUp('the group caught up');
  await runner.stop();

  const to = new Date('2015-05-05T12:00:00.000Z');
  const reset = await resetGroup({ admin, db, groupId, projection, topic, to });

  expect(reset).toMatchObject({
    forgotten: 0,
    projectionCleared: false,
    offsets: [{ partition: 0, offset: '1' }],
  });
  runner = await s.start({ projection });
  await s.waitCaughtUp('the group caught up again');
  expect(await runner.outcomes('duplicate')).toBe(1);
  expect(await s.analyticsRows()).toEqual([{ day, currency, orderCount: 2, revenueCents: 3n }]);
});
