/**
 * Consumers wait through failures that are not a record's fault and
 * dead-letter only records that are themselves bad. On the real PostgreSQL:
 * the database turns read-only (what a failover to a standby looks like to a
 * client: reads answer, writes fail with 25006) while a group has records to
 * apply; the group retries, dead-letters nothing, and applies every record
 * once when writes are back. On the real broker: the dead-letter topic
 * cannot take writes (no leader for it yet); the group waits without
 * crashing, then dead-letters the bad record once and moves on. The classifiers are checked on real errors of the real database
 * and kafkajs' own error types.
 */
import {
  KafkaJSBrokerNotFound,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
} from 'kafkajs';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { deadLetterTopicOf } from '../../src/consumers/runtime/dead-letters.ts';
import { isTransientFailure } from '../../src/consumers/runtime/runner.ts';
import { createDb } from '../../src/db/client.ts';
import { isTransientDatabaseError } from '../../src/db/errors.ts';
import { isTransientKafkaError } from '../../src/events/kafka.ts';
import {
  admin,
  consumerScenario,
  db,
  recordOf,
  stack,
  useConsumerClients,
  waitFor,
} from './support.ts';
import type { TestRunner } from './support.ts';
import { rejectionOf } from '../support/rejection.ts';

useConsumerClients();

/** Turns every session of the stack's PostgreSQL read-only (or back) and waits until the pool sees it. */
async function setReadOnly(on: boolean): Promise<void> {
  const admin = new pg.Client({ connectionString: stack.DATABASE_URL });
  await admin.connect();
  try {
    // This session stays writable whatever the server's setting.
    await admin.query('SET default_transaction_read_only = off');
    await admin.query(
      on
        ? 'ALTER SYSTEM SET default_transaction_read_only = on'
        : 'ALTER SYSTEM RESET default_transaction_read_only',
    );
    await admin.query('SELECT pg_reload_conf()');
  } finally {
    await admin.end();
  }
  await waitFor(
    `read-only ${on ? 'on' : 'off'}`,
    async () => {
      const [row] = await db.$queryRaw<
        { ro: string }[]
      >`SELECT current_setting('default_transaction_read_only') AS ro`;
      return row?.ro === (on ? 'on' : 'off');
    },
    10_000,
  );
}

async function retries(metrics: TestRunner['metrics']) {
  const { values } = await metrics.retries.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

describe.each(['per-event', 'per-batch'] as const)('with a transaction %s', (transaction) => {
  it('waits while the database is read-only (a failover), dead-letters nothing, and applies every record once after', async () => {
    const s = await consumerScenario('analytics', 1);
    const day = '2006-08-01';
    await s.publish([100, 200, 300].map((totalCents) => s.order({ day, totalCents })));

    await setReadOnly(true);
    let runner!: TestRunner;
    try {
      // maxAttempts 3 at 50 ms: without the wait, the records would be dead-lettered within a second.
      runner = await s.start({ projection: analyticsProjection, transaction });
      await waitFor(
        'retries while read-only',
        async () => (await retries(runner.metrics)) >= 6,
        30_000,
      );
      expect(await runner.outcomes('dead_lettered')).toBe(0);
      expect(await s.processedCount()).toBe(0);
    } finally {
      await setReadOnly(false);
    }

    await s.waitCaughtUp('all records committed', 30_000);
    expect(await s.analyticsRows()).toEqual([
      { day, currency: s.currency, orderCount: 3, revenueCents: 600n },
    ]);
    expect(await s.processedCount()).toBe(3);
    expect(await runner.outcomes('dead_lettered')).toBe(0);
    expect(await runner.outcomes('processed')).toBe(3);
  }, 90_000);
});

it('waits while the broker cannot take the dead letter (its topic has no leader yet), then dead-letters it once and moves on', async () => {
  // The dead-letter topic is not there yet: every send is refused with UNKNOWN_TOPIC_OR_PARTITION
  // (retriable), as while a partition's leader is being elected or its metadata spreads.
  const s = await consumerScenario('analytics', 1, { deadLetterTopic: false });
  const deadLetters = deadLetterTopicOf(s.topic);
  const day = '2008-10-01';
  const notJson = { ...recordOf(s.order()), value: '{"orderId": ' };
  const after = s.order({ day, totalCents: 400 });
  await s.produce([notJson, recordOf(after)]);

  const runner = await s.start({
    projection: analyticsProjection,
    consumerConfig: {
      // A refused send blocks for the producer's own retries (seconds) between heartbeats.
      sessionTimeout: 30_000,
      heartbeatInterval: 1_000,
      rebalanceTimeout: 60_000,
      maxWaitTimeInMs: 500,
    },
  });
  const crashes: unknown[] = [];
  runner.consumer.onCrash(({ error }) => crashes.push(error));

  // Each refused send takes the producer's own bounded retries first.
  const refusedUntil = Date.now() + 60_000;
  while ((await retries(runner.metrics)) < 2) {
    if (Date.now() > refusedUntil) {
      const state = {
        deadLettered: await runner.outcomes('dead_lettered'),
        crashes: crashes.map(String),
      };
      throw new Error(`the dead letter was not refused twice: ${JSON.stringify(state)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // Waited out inside the runner: kafkajs never saw the failure, the consumer never crashed.
  expect(crashes).toEqual([]);
  expect(await runner.outcomes('dead_lettered')).toBe(0);
  // The partition does not move past the bad record while its dead letter is not written.
  expect(await s.analyticsRows()).toEqual([]);

  const keep = { name: 'retention.ms', value: '-1' };
  await admin.createTopics({
    topics: [{ topic: deadLetters, numPartitions: 1, configEntries: [keep] }],
    waitForLeaders: true,
  });
  await s.waitCaughtUp('all records committed', 60_000);
  expect(crashes).toEqual([]);
  expect(await runner.outcomes('dead_lettered')).toBe(1);
  const [written] = await admin.fetchTopicOffsets(deadLetters);
  expect(written).toMatchObject({ low: '0', high: '1' });
  expect(await s.analyticsRows()).toEqual([
    { day, currency: s.currency, orderCount: 1, revenueCents: 400n },
  ]);
}, 120_000);

describe('telling transient failures from bad records', () => {
  it('classifies real database errors by their codes', async () => {
    const readOnly = await rejectionOf(
      db.$transaction(async (tx) => {
        await tx.$executeRaw`SET TRANSACTION READ ONLY`;
        await tx.$executeRaw`CREATE TEMP TABLE t_read_only (id int)`;
      }),
    );
    expect(isTransientDatabaseError(readOnly)).toBe(true);

    const unreachable = new URL(stack.DATABASE_URL);
    unreachable.port = '1';
    const nowhere = createDb(unreachable.toString(), 1);
    try {
      expect(isTransientDatabaseError(await rejectionOf(nowhere.$queryRaw`SELECT 1`))).toBe(true);
    } finally {
      await nowhere.$disconnect();
    }

    // A record's own fault: bad data, a broken invariant.
    expect(isTransientDatabaseError(await rejectionOf(db.$queryRaw`SELECT 1 / 0`))).toBe(false);
    expect(isTransientDatabaseError(await rejectionOf(db.$queryRaw`SELECT 'x'::int`))).toBe(false);
    expect(isTransientDatabaseError(new Error('projection bug'))).toBe(false);
  });

  it("classifies kafkajs' errors: failover and unreachable brokers wait, others do not", () => {
    // As kafkajs builds them from the broker's error code (src/protocol/error.js).
    const protocol = (type: string, code: number, retriable: boolean) =>
      new KafkaJSProtocolError(Object.assign(new Error(type), { type, code, retriable }));
    expect(isTransientKafkaError(protocol('NOT_LEADER_OR_FOLLOWER', 6, true))).toBe(true);
    expect(isTransientKafkaError(protocol('NOT_COORDINATOR', 16, true))).toBe(true);
    expect(isTransientKafkaError(protocol('INVALID_REPLICATION_FACTOR', 38, false))).toBe(true);
    expect(
      isTransientKafkaError(
        new KafkaJSNumberOfRetriesExceeded(protocol('LEADER_NOT_AVAILABLE', 5, true), {
          retryCount: 5,
          retryTime: 1000,
        }),
      ),
    ).toBe(true);
    const brokerNotFound = KafkaJSBrokerNotFound as unknown as new (message: string) => Error;
    expect(isTransientKafkaError(new brokerNotFound('Broker 1 not found'))).toBe(true);
    expect(isTransientKafkaError(protocol('MESSAGE_TOO_LARGE', 10, false))).toBe(false);
    expect(isTransientKafkaError(protocol('TOPIC_AUTHORIZATION_FAILED', 29, false))).toBe(false);
    expect(isTransientFailure(new Error('invalid order.placed data'))).toBe(false);
  });
});
