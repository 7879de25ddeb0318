/**
 * Idempotent effects against the real broker and database: a redelivered
 * event (produced twice, or seen again after a crash between the database
 * commit and the offset commit) changes the projection once.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { inventoryProjection } from '../../src/consumers/projections/inventory.ts';
import { orderPlacedEventId } from '../../src/shared/events.ts';
import { admin, consumerScenario, reservations, stack, useConsumerClients } from './support.ts';

useConsumerClients();

describe.each(['per-event', 'per-batch'] as const)('with a transaction %s', (transaction) => {
  it('applies an event produced twice once and acknowledges the second as a duplicate', async () => {
    const s = await consumerScenario('analytics');
    const day = '2011-01-15';
    const twice = s.order({ day, totalCents: 1000 });
    const other = s.order({ day, totalCents: 500 });
    await s.publish([twice, other, twice]);

    const runner = await s.consumeAll({ projection: analyticsProjection, transaction });

    expect(await s.analyticsRows()).toEqual([
      { day, currency: s.currency, orderCount: 2, revenueCents: 1500n },
    ]);
    expect(await s.processedCount()).toBe(2);
    expect(await runner.outcomes('processed')).toBe(2);
    expect(await runner.outcomes('duplicate')).toBe(1);
  });
});

it('reserves stock once per order however often its event is delivered', async () => {
  const s = await consumerScenario('inventory', 3);
  const sku = s.sku('x');
  const order = s.order({
    items: [
      { sku, quantity: 2, unitPriceCents: 100 },
      { sku, quantity: 3, unitPriceCents: 100 },
    ],
  });
  await s.publish([order, order, order]);

  await s.consumeAll({ projection: inventoryProjection, transaction: 'per-batch' });

  expect(await reservations([sku])).toEqual([{ sku, reservedQuantity: 5n, orderCount: 1 }]);
});

it('applies an event once when its consumer is killed after the database commit and before the offset commit', async () => {
  const s = await consumerScenario('analytics', 1);
  const { topic, groupId, currency } = s;
  const day = '2012-02-29';
  const order = s.order({ day, totalCents: 4200 });
  await s.publish([order]);

  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(import.meta.dirname, 'fixtures', 'crash-after-commit.ts')],
    {
      env: {
        ...process.env,
        DATABASE_URL: stack.DATABASE_URL,
        KAFKA_BROKERS: stack.KAFKA_BROKERS,
        TEST_TOPIC: topic,
        TEST_GROUP_ID: groupId,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];

  // The effect is in the database, the offset is not in Kafka.
  expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
  expect(output).toContain(orderPlacedEventId(order.orderId));
  expect(await s.analyticsRows()).toEqual([{ day, currency, orderCount: 1, revenueCents: 4200n }]);
  const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
  expect(committed?.partitions).toEqual([expect.objectContaining({ partition: 0, offset: '-1' })]);

  // The next member of the group gets the record again and skips it.
  const runner = await s.start({ projection: analyticsProjection });
  await s.waitCaughtUp('the redelivered record committed');

  expect(await runner.outcomes('duplicate')).toBe(1);
  expect(await runner.outcomes('processed')).toBe(0);
  expect(await s.analyticsRows()).toEqual([{ day, currency, orderCount: 1, revenueCents: 4200n }]);
  expect(await s.processedCount()).toBe(1);
});
