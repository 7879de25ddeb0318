/**
 * Shared set-up of the consumer tests: clients of the stack's real Kafka and
 * PostgreSQL, events encoded exactly as the events worker encodes them, one
 * fresh topic per test, and runners that are stopped after each file.
 */
import type { Message } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import { orderPlacedCloudEvent, toKafkaMessage } from '../../src/activities/events.ts';
import { loadConfig } from '../../src/config/env.ts';
import { deadLetterTopicOf } from '../../src/consumers/runtime/dead-letters.ts';
import {
  createConsumerMetrics,
  type ConsumerMetrics,
} from '../../src/consumers/runtime/metrics.ts';
import type { Projection } from '../../src/consumers/projections/projection.ts';
import {
  createConsumerRunner,
  type ConsumerRunner,
  type ConsumerRunnerOptions,
} from '../../src/consumers/runtime/runner.ts';
import { createDb } from '../../src/db/client.ts';
import { createKafka, createOrderEventsProducer } from '../../src/events/kafka.ts';
import type { OrderPlacedData } from '../../src/shared/events.ts';

export const stack = inject('stack');
export const config = loadConfig({
  DATABASE_URL: stack.DATABASE_URL,
  KAFKA_BROKERS: stack.KAFKA_BROKERS,
});
export const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
export const db = createDb(stack.DATABASE_URL, 12);
export const kafka = createKafka(config, { logger, clientId: 'consumers-test' });
export const admin = kafka.admin();
export const producer = createOrderEventsProducer(kafka);

const running = new Set<ConsumerRunner>();

export async function connectClients(): Promise<void> {
  await Promise.all([admin.connect(), producer.connect()]);
}

/** Stops every runner still running, then the shared clients. */
export async function closeClients(): Promise<void> {
  await Promise.allSettled([...running].map((r) => r.stop()));
  await Promise.allSettled([admin.disconnect(), producer.disconnect(), db.$disconnect()]);
}

/** The shared clients for a test file: connected before its tests, closed (runners stopped) after. */
export function useConsumerClients(): void {
  beforeAll(connectClients);
  afterAll(closeClients);
}

/**
 * A new topic (and its dead-letter topic, unless `deadLetterTopic` is false) for
 * one test. Records carry placedAt as their timestamp and tests place orders
 * decades ago, so time-based retention is off: otherwise the broker deletes them
 * at its next check.
 */
export async function freshTopic(partitions = 6, { deadLetterTopic = true } = {}): Promise<string> {
  const topic = `consumers-test-${randomUUID()}`;
  const configEntries = [{ name: 'retention.ms', value: '-1' }];
  const deadLetters = { topic: deadLetterTopicOf(topic), numPartitions: 1, configEntries };
  await admin.createTopics({
    topics: [
      { topic, numPartitions: partitions, configEntries },
      ...(deadLetterTopic ? [deadLetters] : []),
    ],
    waitForLeaders: true,
  });
  return topic;
}

export const uniqueGroupId = (name: string): string => `test.${name}.${randomUUID()}`;

let currencySequence: Promise<unknown> | undefined;

/**
 * A currency code no other test of the run uses, so each test's analytics rows
 * stay apart: the next number of a sequence in the run's database (shared by
 * every test process) spelled AAA, AAB, ... DZZ, clear of the codes tests name
 * (EUR, JPY, USD, XYZ). Random codes collided: two scenarios of one file drew
 * the same code, and each saw the other's rows.
 */
export async function uniqueCurrency(): Promise<string> {
  // Once per process, serialised: two sessions creating the same sequence at once can clash in the catalogue.
  currencySequence ??= db.$transaction([
    db.$executeRaw`SELECT pg_advisory_xact_lock(72430011)`,
    db.$executeRawUnsafe('CREATE SEQUENCE IF NOT EXISTS test_currency_codes MINVALUE 0 START 0'),
  ]);
  await currencySequence;
  const [row] = await db.$queryRaw<{ n: bigint }[]>`SELECT nextval('test_currency_codes') AS n`;
  const n = Number(row!.n);
  if (n >= 4 * 26 * 26) throw new Error(`out of test currency codes (${n})`);
  const letter = (i: number) => String.fromCharCode(65 + i);
  return letter(Math.floor(n / 676)) + letter(Math.floor(n / 26) % 26) + letter(n % 26);
}

/** One of the five UTC days before today: for records on a topic with the default (time-based) retention. */
export function recentDay(): string {
  const days = 1 + Math.floor(Math.random() * 5);
  return new Date(Date.now() - days * 86_400_000).toISOString().slice(0, 10);
}

/**
 * A UTC day between 1990 and 2019. Records carry placedAt as their timestamp,
 * and the broker refuses timestamps more than an hour ahead.
 */
export function randomDay(): string {
  const start = Date.UTC(1990, 0, 1);
  const days = Math.floor(Math.random() * 30 * 365);
  return new Date(start + days * 86_400_000).toISOString().slice(0, 10);
}

/** An order.placed payload; `placedAt` defaults to noon UTC of `day`. */
export function orderPlaced(
  overrides: Partial<OrderPlacedData> & { day?: string } = {},
): OrderPlacedData {
  const { day = randomDay(), ...rest } = overrides;
  const items = rest.items ?? [
    { sku: `SKU-${randomUUID().slice(0, 8)}`, quantity: 2, unitPriceCents: 1250 },
  ];
  return {
    orderId: randomUUID(),
    customerEmail: 'buyer@example.com',
    currency: 'EUR',
    totalCents: items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0),
    placedAt: `${day}T12:00:00.000Z`,
    ...rest,
    items,
  };
}

/** The Kafka record the events worker publishes for `data`. */
export const recordOf = (data: OrderPlacedData, eventId?: string): Message => {
  const event = orderPlacedCloudEvent(data);
  return toKafkaMessage(eventId ? event.cloneWith({ id: eventId }) : event, data.orderId);
};

export async function produce(topic: string, messages: Message[]): Promise<void> {
  for (let i = 0; i < messages.length; i += 1000) {
    await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 1000) });
  }
}

export type TestRunnerOptions = Pick<ConsumerRunnerOptions, 'groupId' | 'projection' | 'topic'> &
  Partial<ConsumerRunnerOptions>;

export type TestRunner = ConsumerRunner & {
  metrics: ConsumerMetrics;
  /** How many events this runner counted with `outcome` (see outcomes). */
  outcomes(outcome: string): Promise<number>;
};

/** A started runner with fast retries and a short session (a killed member leaves quickly). */
export async function startRunner(opts: TestRunnerOptions): Promise<TestRunner> {
  const metrics = opts.metrics ?? createConsumerMetrics();
  const runner = createConsumerRunner({
    kafka,
    db,
    producer,
    transaction: 'per-event',
    batchMaxEvents: 500,
    concurrency: 6,
    maxAttempts: 3,
    retryInitialMs: 50,
    log: logger,
    metrics,
    consumerConfig: {
      sessionTimeout: 6_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 10_000,
      maxWaitTimeInMs: 500,
    },
    ...opts,
  });
  running.add(runner);
  const stop = async () => {
    running.delete(runner);
    await runner.stop();
  };
  await runner.start();
  return {
    ...runner,
    consumer: runner.consumer,
    crashed: runner.crashed,
    stop,
    metrics,
    outcomes: (outcome) => outcomes(metrics, outcome),
  };
}

/** A started runner (startRunner) once its group has committed every record on its topic. */
export async function consumeAll(opts: TestRunnerOptions, timeoutMs?: number): Promise<TestRunner> {
  const runner = await startRunner(opts);
  await waitFor('all records committed', () => caughtUp(opts.groupId, opts.topic), timeoutMs);
  return runner;
}

/** How many events a runner's metrics counted with `outcome`. */
export async function outcomes(metrics: ConsumerMetrics, outcome: string): Promise<number> {
  const { values } = await metrics.events.get();
  return values.filter((v) => v.labels.outcome === outcome).reduce((sum, v) => sum + v.value, 0);
}

/** Polls `check` until it returns true; fails after `timeoutMs` with `what`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 45_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export const processedCount = (groupId: string): Promise<number> =>
  db.processedEvent.count({ where: { groupId } });

/** Committed offsets of `groupId` on `topic` equal the high watermarks (nothing left to commit). */
export async function caughtUp(groupId: string, topic: string): Promise<boolean> {
  const [high, [committed]] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  return high.every((h) => {
    const offset = committed?.partitions.find((p) => p.partition === h.partition)?.offset ?? '-1';
    return (offset === '-1' ? h.low : offset) === h.high;
  });
}

/** Runner options within a scenario: the topic is the scenario's, and so is the group unless given. */
export type ScenarioRunnerOptions = Omit<TestRunnerOptions, 'groupId' | 'topic'> & {
  groupId?: string;
};

/**
 * What one test works on, apart from every other test: a fresh topic (freshTopic),
 * a group id and a currency no other test uses, and the helpers above bound to them.
 */
export async function consumerScenario(
  name: string,
  partitions = 6,
  topicOptions: { deadLetterTopic?: boolean } = {},
) {
  const topic = await freshTopic(partitions, topicOptions);
  const groupId = uniqueGroupId(name);
  const currency = await uniqueCurrency();
  return {
    topic,
    groupId,
    currency,
    /** An order.placed (orderPlaced) in the scenario's currency. */
    order: (overrides: Parameters<typeof orderPlaced>[0] = {}) =>
      orderPlaced({ currency, ...overrides }),
    /** A SKU no other test reserves. */
    sku: (label: string) => `SKU-${label}-${randomUUID()}`,
    /** Sends `messages` to the topic as they are. */
    produce: (messages: Message[]) => produce(topic, messages),
    /** Sends the records the events worker publishes for `orders`. */
    publish: (orders: OrderPlacedData[]) =>
      produce(
        topic,
        orders.map((o) => recordOf(o)),
      ),
    start: (opts: ScenarioRunnerOptions) => startRunner({ groupId, topic, ...opts }),
    consumeAll: (opts: ScenarioRunnerOptions, timeoutMs?: number) =>
      consumeAll({ groupId, topic, ...opts }, timeoutMs),
    caughtUp: (group = groupId) => caughtUp(group, topic),
    /** Waits (waitFor) until the group has committed every record on the topic. */
    waitCaughtUp: (what: string, timeoutMs?: number) =>
      waitFor(what, () => caughtUp(groupId, topic), timeoutMs),
    processedCount: (group = groupId) => processedCount(group),
    /** The analytics rows of the scenario's currency (and of `others`). */
    analyticsRows: (...others: string[]) => analyticsRows([currency, ...others]),
  };
}

export type ConsumerScenario = Awaited<ReturnType<typeof consumerScenario>>;

/** Analytics rows of the given currencies, comparable with toEqual. */
export async function analyticsRows(currencies: string[]) {
  const rows = await db.analyticsDaily.findMany({
    where: { currency: { in: currencies } },
    orderBy: [{ day: 'asc' }, { currency: 'asc' }],
  });
  return rows.map((r) => ({
    day: r.day.toISOString().slice(0, 10),
    currency: r.currency,
    orderCount: r.orderCount,
    revenueCents: r.revenueCents,
  }));
}

/** Stock reservations of the given SKUs. */
export async function reservations(skus: string[]) {
  const rows = await db.stockReservation.findMany({
    where: { sku: { in: skus } },
    orderBy: { sku: 'asc' },
  });
  return rows.map((r) => ({
    sku: r.sku,
    reservedQuantity: r.reservedQuantity,
    orderCount: r.orderCount,
  }));
}

/** A projection that remembers what it was asked to apply, in order (and how many ran at once). */
export function recordingProjection(delayMs = 0) {
  const applied: { orderId: string; id: string; at: number }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const projection: Projection = {
    tables: [],
    async apply(_tx, events) {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      try {
        if (delayMs) await sleep(delayMs);
        for (const e of events) applied.push({ orderId: e.data.orderId, id: e.id, at: Date.now() });
      } finally {
        inFlight -= 1;
      }
    },
    async clear() {
      applied.length = 0;
    },
  };
  return { projection, applied, maxInFlight: () => maxInFlight };
}
