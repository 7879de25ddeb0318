/**
 * The `events` activities against the stack's real Kafka broker and
 * PostgreSQL: records are read back with a real consumer group.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import {
  CloudEvent,
  Kafka as CloudEventsKafka,
  type KafkaMessage as CloudEventsKafkaMessage,
} from 'cloudevents';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  createEventActivities,
  type EventActivities,
  type PublishOrderPlacedResult,
} from '../../src/activities/events.ts';
import { loadConfig } from '../../src/config/env.ts';
import { createDb } from '../../src/db/client.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../../src/events/kafka.ts';
import type {
  EventConsumer,
  KafkaClient,
  KafkaHeaders,
  KafkaRecord,
} from '../../src/events/kafka-types.ts';
import {
  CLOUDEVENT_SOURCE,
  CLOUDEVENT_TYPE_ORDER_PLACED,
  ORDERS_PLACED_TOPIC,
  orderPlacedEventId,
  type OrderPlacedData,
} from '../../src/shared/events.ts';
import { FailureType } from '../../src/shared/steps.ts';
import { partitionOf } from '../support/kafka-partition.ts';

const stack = inject('stack');
const config = loadConfig({ DATABASE_URL: stack.DATABASE_URL, KAFKA_BROKERS: stack.KAFKA_BROKERS });
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const db = createDb(stack.DATABASE_URL, 4);
const kafka = createKafka(config, { logger, clientId: 'events-test' });
const admin = kafka.admin();
const producer = createOrderEventsProducer(kafka);
const activityEnv = () =>
  new MockActivityEnvironment(
    { activityType: 'publishOrderPlaced' },
    { logger: new DefaultLogger('ERROR') },
  );

/** Everything connected here; disconnected in afterAll even when a test failed half-way. */
const toDisconnect: { disconnect(): Promise<void> }[] = [admin, producer];

async function connected<T extends { connect(): Promise<void>; disconnect(): Promise<void> }>(
  client: T,
): Promise<T> {
  toDisconnect.push(client);
  await client.connect();
  return client;
}

const items = [
  { sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 },
  { sku: 'BOOK.42', quantity: 1, unitPriceCents: 999 },
];

/** An order row with its items, written straight through Prisma. */
async function createOrder() {
  const id = randomUUID();
  return db.order.create({
    data: {
      id,
      customerEmail: `buyer-${id.slice(0, 8)}@example.com`,
      currency: 'EUR',
      totalCents: 3499n,
      workflowId: `order-${id}`,
      status: 'PROCESSING',
      items: {
        create: items.map((i, n) => ({
          ...i,
          unitPriceCents: BigInt(i.unitPriceCents),
          line: n + 1,
        })),
      },
    },
  });
}

interface Received {
  partition: number;
  message: KafkaRecord;
}

/** Reads `count` records keyed `key` from the start of `topic` with a fresh consumer group; bounded by `timeoutMs`. */
async function readRecords(
  topic: string,
  key: string,
  count: number,
  timeoutMs = 30_000,
): Promise<Received[]> {
  const consumer: EventConsumer = await connected(
    kafka.consumer({ groupId: `events-test-${randomUUID()}` }),
  );
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    return await new Promise<Received[]>((resolve, reject) => {
      const received: Received[] = [];
      const timer = setTimeout(
        () =>
          reject(
            new Error(`${received.length} of ${count} records keyed ${key} within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            if (message.key?.toString() !== key) return;
            received.push({ partition, message });
            if (received.length === count) {
              clearTimeout(timer);
              resolve(received);
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}

/**
 * A TCP proxy in front of the broker for one client: `connect` opens a client
 * socket through it to the real address; `cut` resets every connection and
 * stops listening, as when the broker goes away (later connects are refused).
 */
async function startCuttableProxy() {
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    return socket;
  };
  const targets: { host: string; port: number }[] = [];
  const server = net.createServer((inbound) => {
    track(inbound);
    const target = targets.shift();
    if (!target) return inbound.destroy();
    const outbound = track(net.connect(target));
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: proxyPort } = server.address() as net.AddressInfo;
  return {
    connect(host: string, port: number, onConnect: () => void): net.Socket {
      targets.push({ host, port });
      return net.connect({ host: '127.0.0.1', port: proxyPort }, onConnect);
    },
    async cut(): Promise<void> {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.resetAndDestroy();
      await closed;
    },
  };
}

/** Calls `onFrame` with each whole Kafka frame (its 4-byte size included) read from `socket`. */
function onFrames(socket: net.Socket, onFrame: (frame: Buffer) => void): void {
  let buffered = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readInt32BE(0)) {
      const size = 4 + buffered.readInt32BE(0);
      onFrame(buffered.subarray(0, size));
      buffered = buffered.subarray(size);
    }
  });
}

/**
 * A TCP proxy in front of the broker for one client that, once armed, lets the
 * next Produce requests through to the broker and then closes the connection
 * instead of passing the broker's answer on: the record is stored, and the
 * client is told the connection closed (what a client sees when the network
 * or a broker fails between the write and the answer).
 */
async function startAnswerDroppingProxy() {
  const PRODUCE = 0;
  let armed = 0;
  let dropped = 0;
  const awaited = new Set<number>(); // correlation ids of Produce requests whose answer is dropped
  const targets: { host: string; port: number }[] = [];
  const server = net.createServer((inbound) => {
    const target = targets.shift();
    if (!target) return inbound.destroy();
    const outbound = net.connect(target);
    const close = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', close).on('close', close);
    outbound.on('error', close).on('close', close);
    // Request header: size, api key (int16), api version (int16), correlation id (int32).
    onFrames(inbound, (frame) => {
      if (armed > 0 && frame.readInt16BE(4) === PRODUCE) {
        awaited.add(frame.readInt32BE(8));
        armed--;
      }
      outbound.write(frame);
    });
    // Response header: size, correlation id (int32).
    onFrames(outbound, (frame) => {
      if (awaited.delete(frame.readInt32BE(4))) {
        dropped++;
        return close();
      }
      inbound.write(frame);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: proxyPort } = server.address() as net.AddressInfo;
  toDisconnect.push({ disconnect: () => new Promise<void>((r) => server.close(() => r())) });
  return {
    connect(host: string, port: number, onConnect: () => void): net.Socket {
      targets.push({ host, port });
      return net.connect({ host: '127.0.0.1', port: proxyPort }, onConnect);
    },
    /** Drops the answers to the next `requests` Produce requests. */
    arm: (requests: number) => void (armed = requests),
    dropped: () => dropped,
  };
}

const headerText = (headers: KafkaHeaders | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([k, v]) => [k, String(v)]));

/** The ApplicationFailure an activity raised, as Temporal would see it. */
const failure = (type: FailureType, nonRetryable: boolean): unknown =>
  expect.objectContaining({ name: 'ApplicationFailure', type, nonRetryable });

/** Runs publishOrderPlaced in a mock activity context, as a worker of task queue `events` would. */
function publish(activities: EventActivities, orderId: string): Promise<PublishOrderPlacedResult> {
  return activityEnv().run<[], PublishOrderPlacedResult, () => Promise<PublishOrderPlacedResult>>(
    () => activities.publishOrderPlaced({ orderId }),
  );
}

let partitions = 0;

beforeAll(async () => {
  await admin.connect();
  await producer.connect();
  ({ partitions } = await ensureTopic(admin, ORDERS_PLACED_TOPIC, config.KAFKA_TOPIC_PARTITIONS));
});

afterAll(async () => {
  await Promise.allSettled(toDisconnect.map((c) => c.disconnect()));
  await db.$disconnect();
});

describe('ensureTopic', () => {
  it('creates orders.placed with the configured number of partitions, and a second call is a no-op', async () => {
    const again = await ensureTopic(admin, ORDERS_PLACED_TOPIC, config.KAFKA_TOPIC_PARTITIONS);

    expect(again).toEqual({ created: false, partitions: config.KAFKA_TOPIC_PARTITIONS });
    const { topics } = await admin.fetchTopicMetadata({ topics: [ORDERS_PLACED_TOPIC] });
    expect(topics[0]?.partitions).toHaveLength(config.KAFKA_TOPIC_PARTITIONS);
  });

  it('creates a missing topic once, also when two callers race to create it', async () => {
    const topic = `ensure-${randomUUID()}`;
    const other = await connected(kafka.admin());

    const raced = await Promise.all([ensureTopic(admin, topic, 3), ensureTopic(other, topic, 3)]);
    const again = await ensureTopic(admin, topic, 5);

    expect(raced.map((r) => r.created).sort()).toEqual([false, true]);
    expect(raced.map((r) => r.partitions)).toEqual([3, 3]);
    expect(again).toEqual({ created: false, partitions: 3 });
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(topics[0]?.partitions).toHaveLength(3);
    await admin.deleteTopics({ topics: [topic] });
  });
});

describe('publishOrderPlaced', () => {
  const activities = () => createEventActivities({ db, producer });

  it('publishes order.placed keyed by the order id on the key’s partition, as a binary-mode CloudEvent of the order', async () => {
    const order = await createOrder();
    const placedAt = order.createdAt.toISOString();
    const expectedData: OrderPlacedData = {
      orderId: order.id,
      customerEmail: order.customerEmail,
      currency: 'EUR',
      totalCents: 3499,
      items,
      placedAt,
    };

    const result = await publish(activities(), order.id);

    const eventId = orderPlacedEventId(order.id);
    expect(result).toEqual({
      eventId,
      partition: partitionOf(ORDERS_PLACED_TOPIC, order.id, partitions),
      offset: expect.stringMatching(/^\d+$/),
    });
    const [record] = await readRecords(ORDERS_PLACED_TOPIC, order.id, 1);
    expect(record?.partition).toBe(result.partition);
    expect(record?.message.offset).toBe(result.offset);
    expect(record?.message.timestamp).toBe(String(order.createdAt.getTime()));
    const headers = headerText(record?.message.headers);
    expect(headers).toEqual({
      ce_id: eventId,
      ce_type: CLOUDEVENT_TYPE_ORDER_PLACED,
      ce_source: CLOUDEVENT_SOURCE,
      ce_specversion: '1.0',
      ce_time: placedAt,
      ce_subject: order.id,
      'content-type': 'application/json',
    });
    const value = record?.message.value?.toString() ?? '';
    expect(JSON.parse(value)).toEqual(expectedData);

    // Any CloudEvents SDK decodes the record back to the event that was sent.
    const received: CloudEventsKafkaMessage<string> = {
      headers,
      key: order.id,
      value,
      body: value,
    };
    const decoded = CloudEventsKafka.toEvent(received);
    const sent = new CloudEvent({
      id: eventId,
      type: CLOUDEVENT_TYPE_ORDER_PLACED,
      source: CLOUDEVENT_SOURCE,
      subject: order.id,
      time: placedAt,
      datacontenttype: 'application/json',
      data: expectedData,
      partitionkey: order.id,
    });
    expect(decoded).toEqual(sent);
  });

  it('publishes a retried event with the same ce_id to the same partition, after the first', async () => {
    const order = await createOrder();
    const first = await publish(activities(), order.id);
    const retry = await publish(activities(), order.id);

    expect(retry.eventId).toBe(first.eventId);
    expect(retry.partition).toBe(first.partition);
    expect(BigInt(retry.offset)).toBeGreaterThan(BigInt(first.offset));
    const records = await readRecords(ORDERS_PLACED_TOPIC, order.id, 2);
    expect(
      records.map((r) => [r.partition, r.message.offset, r.message.headers?.ce_id?.toString()]),
    ).toEqual([
      [first.partition, first.offset, first.eventId],
      [first.partition, retry.offset, first.eventId],
    ]);
  });

  it('fails without retry (OrderNotFound) when the order does not exist', async () => {
    const orderId = randomUUID();

    await expect(publish(activities(), orderId)).rejects.toEqual(
      failure(FailureType.OrderNotFound, true),
    );
  });

  it('fails without retry (UnknownTopic) when the topic does not exist, and does not create it', async () => {
    const order = await createOrder();
    const topic = `missing-${randomUUID()}`;
    // kafkajs retries unknown-topic metadata itself; one retry keeps the test short.
    const bounded = await connected(createOrderEventsProducer(kafka, { retry: { retries: 1 } }));
    const toMissingTopic = createEventActivities({ db, producer: bounded, topic });

    const error = await publish(toMissingTopic, order.id).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toEqual(failure(FailureType.UnknownTopic, true));
    expect(await admin.listTopics()).not.toContain(topic);
  });

  it("never acknowledges a record with another one's offset: after a publish whose answer was lost, the next publish's record is in the topic", async () => {
    // Two orders whose records go to the same partition (the producer's sequence numbers are per partition).
    const first = await createOrder();
    let second = await createOrder();
    const partitionOfOrder = (id: string) => partitionOf(ORDERS_PLACED_TOPIC, id, partitions);
    for (let i = 0; i < 100 && partitionOfOrder(second.id) !== partitionOfOrder(first.id); i++)
      second = await createOrder();
    expect(partitionOfOrder(second.id)).toBe(partitionOfOrder(first.id));

    const proxy = await startAnswerDroppingProxy();
    const viaProxy: KafkaClient = createKafka(config, {
      logger,
      clientId: 'events-test-lost-answer',
      socketFactory: ({ host, port, onConnect }) => proxy.connect(host, port, onConnect),
    });
    // One retry inside the client: both answers are lost, so the send fails, as an activity
    // attempt that ran out of retries does.
    const producerViaProxy = await connected(
      createOrderEventsProducer(viaProxy, { retry: { retries: 1, maxRetryTime: 500 } }),
    );
    const throughProxy = createEventActivities({ db, producer: producerViaProxy });

    proxy.arm(2);
    const lost = await publish(throughProxy, first.id).catch((e: unknown) => e);
    expect(proxy.dropped()).toBe(2);
    expect(lost).toEqual(failure(FailureType.KafkaUnavailable, false));
    // The broker stored it although the client was not told: Temporal's retry publishes it again.
    await readRecords(ORDERS_PLACED_TOPIC, first.id, 1);

    // The next publish through the same producer is acknowledged with its own record's offset.
    const next = await publish(throughProxy, second.id);
    const [record] = await readRecords(ORDERS_PLACED_TOPIC, second.id, 1);
    expect([
      record!.partition,
      record!.message.offset,
      record!.message.headers?.ce_id?.toString(),
    ]).toEqual([next.partition, next.offset, next.eventId]);
  });

  it('fails with a retryable KafkaUnavailable when the broker becomes unreachable', async () => {
    const order = await createOrder();
    // Every connection of this client goes through a proxy; closing it is the broker going away.
    const proxy = await startCuttableProxy();
    const viaProxy: KafkaClient = createKafka(config, {
      logger,
      clientId: 'events-test-cut',
      requestTimeout: 3_000,
      retry: { retries: 2, initialRetryTime: 50, maxRetryTime: 200 },
      socketFactory: ({ host, port, onConnect }) => proxy.connect(host, port, onConnect),
    });
    const cut = await connected(
      createOrderEventsProducer(viaProxy, { retry: { retries: 2, maxRetryTime: 200 } }),
    );
    const throughProxy = createEventActivities({ db, producer: cut });
    await publish(throughProxy, order.id);

    await proxy.cut();
    const started = Date.now();
    const error = await publish(throughProxy, order.id).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ApplicationFailure);
    expect(error).toEqual(failure(FailureType.KafkaUnavailable, false));
    // Fails within one attempt's budget, so Temporal's retry policy decides what happens next.
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
