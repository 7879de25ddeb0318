/**
 * The Kafka client of orderflow's processes, built from configuration: the
 * client itself (its logs routed to pino), the producer of order
 * events, the start-up check that the topic exists, and the classification of
 * the client's errors. The only module of src/ that imports kafkajs: the rest
 * uses the types of ./kafka-types.ts, which the kafkajs objects implement
 * (consumers behind a thin adapter for their events), so kafkajs' behaviour is
 * kept as it is and the client can be swapped here.
 */
import {
  Kafka,
  Partitioners,
  logLevel,
  type Consumer,
  type KafkaConfig,
  type LogEntry,
  type ProducerConfig,
  type SASLOptions,
} from 'kafkajs';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/env.ts';
import type { Logger } from '../shared/logger.ts';
import type {
  ConsumerSettings,
  EventConsumer,
  EventProducer,
  KafkaAdmin,
  KafkaClient,
  KafkaClientSettings,
  ProducerSettings,
} from './kafka-types.ts';
import { fixRequestQueueIdleLoop } from './kafkajs-request-queue.ts';

// kafkajs 2.2.4 polls every millisecond on each broker connection once it got an answer: fixed
// here, once per process, before any client is made (kafkajs-request-queue.ts).
fixRequestQueueIdleLoop();

const PINO_LEVEL = {
  [logLevel.NOTHING]: 'silent',
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
} as const;

/** Routes kafkajs' log entries to a pino logger (kafkajs' namespace and fields kept). */
function pinoLogCreator(logger: Logger): KafkaConfig['logCreator'] {
  return () =>
    ({
      namespace,
      level,
      log: { message, timestamp: _timestamp, logger: _logger, ...fields },
    }: LogEntry) => {
      const method = PINO_LEVEL[level];
      if (method !== 'silent') logger[method]({ kafka: namespace, ...fields }, message);
    };
}

/** The configuration keys of Kafka authentication and encryption (all optional). */
export type KafkaSecuritySettings = Partial<
  Pick<
    Config,
    | 'KAFKA_SASL_MECHANISM'
    | 'KAFKA_SASL_USERNAME'
    | 'KAFKA_SASL_PASSWORD'
    | 'KAFKA_TLS'
    | 'KAFKA_TLS_CA_FILE'
    | 'KAFKA_TLS_CERT_FILE'
    | 'KAFKA_TLS_KEY_FILE'
  >
>;

/**
 * kafkajs' `sasl` and `ssl` options from the configuration (validated by
 * loadConfig): SASL PLAIN or SCRAM-SHA-256/512 with a username and password,
 * TLS with the system's CAs or a CA file, and a client certificate for mutual TLS.
 */
export function kafkaSecurity(config: KafkaSecuritySettings): Pick<KafkaConfig, 'sasl' | 'ssl'> {
  const security: Pick<KafkaConfig, 'sasl' | 'ssl'> = {};
  if (config.KAFKA_SASL_MECHANISM) {
    security.sasl = {
      mechanism: config.KAFKA_SASL_MECHANISM,
      username: config.KAFKA_SASL_USERNAME ?? '',
      password: config.KAFKA_SASL_PASSWORD ?? '',
    } as SASLOptions;
  }
  if (config.KAFKA_TLS) {
    const read = (file: string | undefined) => (file ? fs.readFileSync(file, 'utf8') : undefined);
    const ca = read(config.KAFKA_TLS_CA_FILE);
    const cert = read(config.KAFKA_TLS_CERT_FILE);
    const key = read(config.KAFKA_TLS_KEY_FILE);
    security.ssl =
      ca || cert ? { ...(ca ? { ca: [ca] } : {}), ...(cert && key ? { cert, key } : {}) } : true;
  }
  return security;
}

/** A kafkajs consumer as an EventConsumer: its crash and group-join events as listeners, the rest passed through. */
function eventConsumer(consumer: Consumer): EventConsumer {
  return {
    connect: () => consumer.connect(),
    disconnect: () => consumer.disconnect(),
    subscribe: (subscription) => consumer.subscribe(subscription),
    run: (settings) => consumer.run(settings),
    describeGroup: () => consumer.describeGroup(),
    commitOffsets: (offsets) => consumer.commitOffsets(offsets),
    onCrash(listener) {
      consumer.on(consumer.events.CRASH, ({ payload: { error, restart } }) =>
        listener({ error, restart }),
      );
    },
    onGroupJoin(listener) {
      consumer.on(consumer.events.GROUP_JOIN, ({ payload: { memberId, memberAssignment } }) =>
        listener({ memberId, memberAssignment }),
      );
    },
  };
}

/** orderflow's client over a kafkajs client; kafkajs' admin is a KafkaAdmin as it is. */
class KafkaJsClient implements KafkaClient {
  constructor(readonly kafkajs: Kafka) {}
  consumer(settings: ConsumerSettings): EventConsumer {
    return eventConsumer(this.kafkajs.consumer(settings));
  }
  admin(): KafkaAdmin {
    return this.kafkajs.admin();
  }
}

/**
 * A Kafka client for `KAFKA_BROKERS`, authenticated and encrypted as
 * configured (kafkaSecurity); warnings and errors only, to `logger` when given.
 */
export function createKafka(
  config: Pick<Config, 'KAFKA_BROKERS' | 'KAFKA_CLIENT_ID'> & KafkaSecuritySettings,
  { logger, ...overrides }: { logger?: Logger } & KafkaClientSettings = {},
): KafkaClient {
  return new KafkaJsClient(
    new Kafka({
      clientId: config.KAFKA_CLIENT_ID,
      brokers: config.KAFKA_BROKERS,
      logLevel: logLevel.WARN,
      ...kafkaSecurity(config),
      ...(logger ? { logCreator: pinoLogCreator(logger) } : {}),
      ...overrides,
    }),
  );
}

/** The kafkajs client behind `kafka` (made by createKafka). */
function kafkajsOf(kafka: KafkaClient): Kafka {
  if (!(kafka instanceof KafkaJsClient)) throw new TypeError('not a client made by createKafka');
  return kafka.kafkajs;
}

/**
 * The producer of order events: acknowledged by all in-sync replicas (each
 * send asks acks -1), one request in flight (order kept within a partition),
 * and the Java client's murmur2 partitioner, so a key lands on the same
 * partition from any language's producer.
 *
 * Not kafkajs' idempotent mode (experimental in kafkajs 2.2.4): it moves its
 * sequence number on only when a send is answered, so after a send whose
 * records the broker stored but whose answer was lost (a broker killed, a
 * connection cut), the next send reuses the sequence, the broker takes it for
 * a retry of the stored batch and acknowledges it with that batch's offset,
 * and the new records are dropped without an error. The cluster fault run lost
 * an order's event that way, and test/activities/events.test.ts reproduces it.
 * Without it a retry may store a record twice; that is already the contract
 * (Temporal retries a publish whose answer was lost), and consumers drop
 * duplicates by the CloudEvent id.
 */
export function createOrderEventsProducer(
  kafka: KafkaClient,
  overrides: ProducerSettings = {},
): EventProducer {
  return kafkajsOf(kafka).producer({
    idempotent: false,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    // Topics are created at start-up (ensureTopic); a send to a missing topic must fail, not create it.
    allowAutoTopicCreation: false,
    // Bounded so a send fails within one activity attempt and Temporal's retry policy takes over.
    retry: { retries: 5, maxRetryTime: 5_000 },
    ...overrides,
  } satisfies ProducerConfig);
}

/** An error, its causes and aggregated errors (kafkajs wraps the broker's error in retry and aggregate errors). */
function errorChain(error: unknown): { name?: unknown; type?: unknown; retriable?: unknown }[] {
  const chain: { name?: unknown; type?: unknown; retriable?: unknown }[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown): void => {
    if (typeof e !== 'object' || e === null || seen.has(e)) return;
    seen.add(e);
    const { cause, errors } = e as { cause?: unknown; errors?: unknown };
    chain.push(e);
    visit(cause);
    if (Array.isArray(errors)) errors.forEach(visit);
  };
  visit(error);
  return chain;
}

/**
 * Every KafkaJS protocol error type in an error, its causes and aggregated
 * errors (kafkajs wraps the broker's error in retry and aggregate errors).
 */
export function kafkaErrorTypes(error: unknown): string[] {
  return errorChain(error).flatMap((e) => (typeof e.type === 'string' ? [e.type] : []));
}

/** True for the Kafka client's own errors (connection, protocol, timeouts, retries exhausted): kafkajs' KafkaJS*. */
export const isKafkaClientError = (error: unknown): error is Error =>
  error instanceof Error && error.name.startsWith('KafkaJS');

/** True when the broker answered that the topic (or partition) does not exist. */
export const isUnknownTopicError = (error: unknown): boolean =>
  kafkaErrorTypes(error).includes('UNKNOWN_TOPIC_OR_PARTITION');

/** kafkajs errors that say a broker could not be reached or answered in time, not that the request was wrong. */
const TRANSIENT_KAFKAJS_ERRORS: ReadonlySet<string> = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSLockTimeout',
]);

/**
 * Broker errors a later attempt outlives although Kafka does not flag them
 * retriable: a cluster that is starting (or has lost a broker) has fewer
 * brokers registered than the replication factor asks for.
 */
const TRANSIENT_PROTOCOL_TYPES: ReadonlySet<string> = new Set([
  'INVALID_REPLICATION_FACTOR',
  'BROKER_NOT_AVAILABLE',
  'KAFKA_STORAGE_ERROR',
]);

/**
 * True when the error is the cluster's state, not the request's fault: a
 * broker unreachable or not yet registered, leadership or a coordinator
 * moving (failover, NOT_LEADER_OR_FOLLOWER, NOT_COORDINATOR,
 * COORDINATOR_LOAD_IN_PROGRESS...), too few in-sync replicas, a timeout. Kafka
 * marks its retriable protocol errors itself (kafkajs keeps that flag).
 */
export function isTransientKafkaError(error: unknown): boolean {
  return errorChain(error).some(
    (e) =>
      (typeof e.name === 'string' && TRANSIENT_KAFKAJS_ERRORS.has(e.name)) ||
      (typeof e.type === 'string' &&
        (e.retriable === true || TRANSIENT_PROTOCOL_TYPES.has(e.type))),
  );
}

export interface EnsureTopicOptions {
  /** How long transient errors are retried (a broker that has just said it is ready may not be registered yet). */
  retryForMs?: number;
  /** Told about each transient failure before the retry. */
  onRetry?: (error: unknown, attempt: number) => void;
}

/**
 * Creates `topic` with `numPartitions` partitions unless it exists (also when
 * another process creates it at the same moment), and returns whether this
 * call created it and how many partitions the topic has. Transient errors
 * (isTransientKafkaError: KafkaJSBrokerNotFound, INVALID_REPLICATION_FACTOR
 * right after the broker came up...) are retried with backoff for
 * `retryForMs` (60 s); other errors are thrown at once.
 */
export async function ensureTopic(
  admin: KafkaAdmin,
  topic: string,
  numPartitions: number,
  // The event log is what projections are rebuilt from, and records carry the order's
  // placedAt as their timestamp: time-based deletion would drop old orders within minutes.
  configEntries: { name: string; value: string }[] = [{ name: 'retention.ms', value: '-1' }],
  { retryForMs = 60_000, onRetry }: EnsureTopicOptions = {},
): Promise<{ created: boolean; partitions: number }> {
  const until = Date.now() + retryForMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await createOrDescribeTopic(admin, topic, numPartitions, configEntries);
    } catch (err) {
      if (!isTransientKafkaError(err) || Date.now() >= until) throw err;
      onRetry?.(err, attempt);
      await sleep(
        Math.min(200 * 2 ** Math.min(attempt - 1, 10), 5_000, Math.max(until - Date.now(), 0)),
      );
    }
  }
}

async function createOrDescribeTopic(
  admin: KafkaAdmin,
  topic: string,
  numPartitions: number,
  configEntries: { name: string; value: string }[],
): Promise<{ created: boolean; partitions: number }> {
  let created: boolean;
  try {
    created = await admin.createTopics({
      topics: [{ topic, numPartitions, configEntries }],
      waitForLeaders: true,
    });
  } catch (err) {
    const types = kafkaErrorTypes(err);
    if (types.length === 0 || !types.every((t) => t === 'TOPIC_ALREADY_EXISTS')) throw err;
    created = false;
  }
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return { created, partitions: topics[0]?.partitions.length ?? 0 };
}
