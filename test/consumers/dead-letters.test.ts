/**
 * Poison records against the real broker and database: they go to the
 * dead-letter topic with the error and their origin, the group moves on, and
 * after a fix a replay applies them to the group that failed them, once.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import {
  listDeadLetters,
  replayDeadLetters,
  replayGroupOf,
} from '../../src/consumers/runtime/dead-letter-replay.ts';
import { deadLetterTopicOf } from '../../src/consumers/runtime/dead-letters.ts';
import { headerStrings } from '../../src/consumers/runtime/order-placed-decoder.ts';
import type { Projection } from '../../src/consumers/projections/projection.ts';
import type { KafkaRecord } from '../../src/events/kafka-types.ts';
import { orderPlacedEventId } from '../../src/shared/events.ts';
import type { ConsumerScenario } from './support.ts';
import {
  admin,
  consumerScenario,
  db,
  kafka,
  producer,
  recordOf,
  uniqueGroupId,
  useConsumerClients,
  waitFor,
} from './support.ts';

useConsumerClients();

const log = pino({ level: 'silent' });

/** Replays the dead letters of the scenario's topic to `groupId` (the scenario's group by default). */
const replay = (s: ConsumerScenario, projection: Projection, groupId = s.groupId) =>
  replayDeadLetters({ kafka, admin, db, producer, groupId, projection, topic: s.topic, log });

/** Every record of `topic` from the start, read with a throwaway group. */
async function readAll(topic: string, count: number): Promise<KafkaRecord[]> {
  const consumer = kafka.consumer({ groupId: uniqueGroupId('reader'), maxWaitTimeInMs: 500 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const messages: KafkaRecord[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        messages.push(message);
      },
    });
    await waitFor(`${count} records on ${topic}`, () => messages.length >= count);
    return messages;
  } finally {
    await consumer.disconnect();
  }
}

describe.each(['per-event', 'per-batch'] as const)('with a transaction %s', (transaction) => {
  it('dead-letters malformed records with the error and origin in headers, and the group keeps going', async () => {
    const s = await consumerScenario('analytics', 1);
    const { topic, groupId, currency } = s;
    const day = '2004-06-01';
    const before = s.order({ day, totalCents: 100 });
    const after = s.order({ day, totalCents: 200 });
    const badData = recordOf(s.order({ day }));
    badData.value = JSON.stringify({ ...JSON.parse(String(badData.value)), currency: 'euro' });
    const notJson = { ...recordOf(s.order()), value: '{"orderId": ' };
    const noId = recordOf(s.order());
    delete noId.headers!.ce_id;
    await s.produce([recordOf(before), badData, notJson, noId, recordOf(after)]);

    const runner = await s.consumeAll({ projection: analyticsProjection, transaction });

    expect(await s.analyticsRows()).toEqual([{ day, currency, orderCount: 2, revenueCents: 300n }]);
    expect(await runner.outcomes('dead_lettered')).toBe(3);
    const letters = await readAll(deadLetterTopicOf(topic), 3);
    const headers = letters.map((m) => headerStrings(m.headers));
    expect(
      headers.map((h) => [h['x-origin-topic'], h['x-origin-partition'], h['x-origin-offset']]),
    ).toEqual([
      [topic, '0', '1'],
      [topic, '0', '2'],
      [topic, '0', '3'],
    ]);
    expect(headers.map((h) => h['x-group'])).toEqual([groupId, groupId, groupId]);
    expect(headers[0]!['x-error']).toMatch(/invalid order.placed data.*currency/s);
    expect(headers[1]!['x-error']).toMatch(/not a valid CloudEvent/);
    expect(headers[2]!['x-error']).toMatch(/not a valid CloudEvent: No CloudEvent detected/);
    // The original record travels unchanged: key, value and CloudEvents headers.
    expect(letters[0]!.key?.toString()).toBe(String(badData.key));
    expect(letters[0]!.value?.toString()).toBe(badData.value);
    expect(headers[0]!.ce_type).toBe('dev.orderflow.order.placed');
  });
});

it('dead-letters an event whose effect keeps failing after bounded retries, and moves on', async () => {
  const s = await consumerScenario('analytics', 1);
  const day = '2005-07-01';
  const failing = s.order({ day, totalCents: 700 });
  const fine = s.order({ day, totalCents: 300 });
  let attempts = 0;
  const flaky: Projection = {
    ...analyticsProjection,
    async apply(tx, events) {
      if (events.some((e) => e.data.orderId === failing.orderId)) {
        attempts += 1;
        throw new Error('stock service says no');
      }
      await analyticsProjection.apply(tx, events);
    },
  };
  await s.publish([failing, fine]);

  const runner = await s.consumeAll({ projection: flaky, maxAttempts: 3 });

  expect(attempts).toBe(3);
  expect(await runner.outcomes('dead_lettered')).toBe(1);
  expect(await s.analyticsRows()).toEqual([
    { day, currency: s.currency, orderCount: 1, revenueCents: 300n },
  ]);
  // The failed transaction left nothing behind: the event is not marked processed.
  expect(
    await db.processedEvent.count({
      where: { groupId: s.groupId, eventId: orderPlacedEventId(failing.orderId) },
    }),
  ).toBe(0);
  const [letter] = await readAll(deadLetterTopicOf(s.topic), 1);
  expect(headerStrings(letter!.headers)).toMatchObject({
    'x-error': 'Error: stock service says no',
    'x-attempts': '3',
    'x-origin-offset': '0',
    'x-group': s.groupId,
  });
});

it('waits through a database outage instead of dead-lettering, and processes the event once it is back', async () => {
  const s = await consumerScenario('analytics', 1);
  const day = '2007-09-01';
  // The runner's database, as seen through a switch: while down, every call fails as a refused connection does.
  let down = true;
  let failedCalls = 0;
  const flakyDb = new Proxy(db, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (down && (prop === '$transaction' || prop === '$queryRaw')) {
          failedCalls += 1;
          return Promise.reject(new Error("Can't reach database server at 127.0.0.1:5432"));
        }
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  await s.publish([s.order({ day, totalCents: 900 })]);

  const runner = await s.start({ projection: analyticsProjection, db: flakyDb, maxAttempts: 2 });
  await waitFor('several failed attempts', () => failedCalls >= 8);

  expect(await runner.outcomes('dead_lettered')).toBe(0);
  expect(await s.caughtUp()).toBe(false);
  down = false;
  await s.waitCaughtUp('the record committed');
  expect(await runner.outcomes('dead_lettered')).toBe(0);
  expect(await s.analyticsRows()).toEqual([
    { day, currency: s.currency, orderCount: 1, revenueCents: 900n },
  ]);
});

it('lists dead letters and replays them to the group that failed them, once, after a fix', async () => {
  const s = await consumerScenario('analytics', 2);
  const { topic, groupId, currency } = s;
  const otherGroup = uniqueGroupId('inventory');
  const day = '2006-08-01';
  const orders = [500, 600, 700].map((totalCents) => s.order({ day, totalCents }));
  let fixed = false;
  const buggy: Projection = {
    ...analyticsProjection,
    async apply(tx, events) {
      if (!fixed && events.some((e) => e.data.totalCents === 600)) throw new Error('bug #42');
      await analyticsProjection.apply(tx, events);
    },
  };
  await s.publish(orders);
  const runner = await s.consumeAll({ projection: buggy, maxAttempts: 1 });
  await runner.stop();
  expect(await s.analyticsRows()).toEqual([{ day, currency, orderCount: 2, revenueCents: 1200n }]);

  const listed = await listDeadLetters({ kafka, admin, topic });
  expect(listed).toEqual([
    expect.objectContaining({
      group: groupId,
      eventId: orderPlacedEventId(orders[1]!.orderId),
      key: orders[1]!.orderId,
      error: 'Error: bug #42',
      origin: expect.objectContaining({ topic, offset: expect.stringMatching(/^\d+$/) }),
      replayed: false,
    }),
  ]);

  // Another group's replay leaves this group's dead letter alone.
  const other = await replay(s, buggy, otherGroup);
  expect(other).toMatchObject({ replayed: 0, skipped: 1 });

  fixed = true;
  const nothingElse = { duplicates: 0, failed: 0, skipped: 0 };
  expect(await replay(s, buggy)).toEqual({ groupId, replayed: 1, ...nothingElse });
  expect(await replay(s, buggy)).toEqual({ groupId, replayed: 0, ...nothingElse });
  expect(await s.analyticsRows()).toEqual([{ day, currency, orderCount: 3, revenueCents: 1800n }]);
  expect(await listDeadLetters({ kafka, admin, topic, groupId })).toEqual([
    expect.objectContaining({ replayed: true }),
  ]);
  const [progress] = await admin.fetchOffsets({
    groupId: replayGroupOf(groupId),
    topics: [deadLetterTopicOf(topic)],
  });
  expect(progress?.partitions).toEqual([expect.objectContaining({ partition: 0, offset: '1' })]);
});

it('dead-letters anew a dead letter that fails again on replay, and a second replay is a no-op', async () => {
  const s = await consumerScenario('analytics', 1);
  const bad = { ...recordOf(s.order()), value: 'not json' };
  await s.produce([bad]);
  const runner = await s.consumeAll({ projection: analyticsProjection });
  await runner.stop();

  expect(await replay(s, analyticsProjection)).toMatchObject({ replayed: 0, failed: 1 });

  const letters = await listDeadLetters({ kafka, admin, topic: s.topic, groupId: s.groupId });
  expect(letters.map((l) => [l.offset, l.attempts, l.replayed])).toEqual([
    ['0', 1, true],
    ['1', 2, false],
  ]);
  expect(letters[1]!.origin).toEqual(letters[0]!.origin);
  // The re-dead-lettered record is pending; replaying it fails again, and so on, never looping within one run.
  expect(await replay(s, analyticsProjection)).toMatchObject({ replayed: 0, failed: 1 });
});
