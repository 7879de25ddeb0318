/**
 * ensureTopic right after the broker reports ready: the first requests can
 * fail with errors that only say the cluster is not settled yet
 * (INVALID_REPLICATION_FACTOR while the broker is not registered,
 * KafkaJSBrokerNotFound), which stopped the events worker, and with it
 * `npm start`, in benchmark trials. They are retried for a bounded time;
 * other errors still fail at once. Real broker; the start-up errors are
 * injected in front of its admin client, built as kafkajs builds them.
 */
import { KafkaJSBrokerNotFound, KafkaJSProtocolError, type Admin } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/env.ts';
import { createKafka, ensureTopic } from '../../src/events/kafka.ts';

const stack = inject('stack');
const kafka = createKafka(loadConfig({ KAFKA_BROKERS: stack.KAFKA_BROKERS }), {
  logger: pino({ level: 'silent' }),
  clientId: 'ensure-topic-test',
});
const admin = kafka.admin();
beforeAll(() => admin.connect());
afterAll(() => admin.disconnect());

const protocolError = (type: string, code: number, retriable: boolean) =>
  new KafkaJSProtocolError(Object.assign(new Error(type), { type, code, retriable }));
const brokerNotFound = () =>
  new (KafkaJSBrokerNotFound as unknown as new (message: string) => Error)(
    'Broker 1 not found in the cached metadata',
  );

/** The real admin client, whose createTopics first fails with `failures` in turn. */
function failingFirst(failures: Error[]): Admin & { calls: number } {
  const state = { calls: 0 };
  return new Proxy(admin, {
    get(target, prop, receiver) {
      if (prop === 'calls') return state.calls;
      if (prop === 'createTopics') {
        return async (...args: Parameters<Admin['createTopics']>) => {
          const failure = failures[state.calls++];
          if (failure) throw failure;
          return target.createTopics(...args);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  }) as Admin & { calls: number };
}

it('retries while the cluster is not settled, then creates the topic', async () => {
  const topic = `ensure-topic-${randomUUID()}`;
  const flaky = failingFirst([
    protocolError('INVALID_REPLICATION_FACTOR', 38, false),
    brokerNotFound(),
    protocolError('LEADER_NOT_AVAILABLE', 5, true),
  ]);
  const retried: number[] = [];
  const result = await ensureTopic(flaky, topic, 3, undefined, {
    onRetry: (_err, attempt) => retried.push(attempt),
  });
  expect(result).toEqual({ created: true, partitions: 3 });
  expect(retried).toEqual([1, 2, 3]);
  expect(flaky.calls).toBe(4);
}, 30_000);

it('fails at once on an error that is the request’s fault, and gives up on transient ones after its bound', async () => {
  const refused = failingFirst([protocolError('POLICY_VIOLATION', 44, false)]);
  await expect(ensureTopic(refused, `ensure-topic-${randomUUID()}`, 3)).rejects.toMatchObject({
    type: 'POLICY_VIOLATION',
  });
  expect(refused.calls).toBe(1);

  const neverSettles = failingFirst(
    Array.from({ length: 100 }, () => protocolError('INVALID_REPLICATION_FACTOR', 38, false)),
  );
  const started = Date.now();
  await expect(
    ensureTopic(neverSettles, `ensure-topic-${randomUUID()}`, 3, undefined, { retryForMs: 1_500 }),
  ).rejects.toMatchObject({ type: 'INVALID_REPLICATION_FACTOR' });
  expect(Date.now() - started).toBeLessThan(4_000);
  expect(neverSettles.calls).toBeGreaterThan(2);
}, 30_000);
