/**
 * The Kafka client of orderflow's processes, built from configuration: the
 * client itself (its logs routed to pino), the idempotent producer of order
 * events, and the start-up check that the topic exists.
 */
import {
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type KafkaConfig,
  type LogEntry,
  type Producer,
  type ProducerConfig,
} from 'kafkajs';
import type { Config } from '../config/env.ts';
import type { Logger } from '../shared/logger.ts';

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

/** A kafkajs client for `KAFKA_BROKERS`; warnings and errors only, to `logger` when given. */
export function createKafka(
  config: Pick<Config, 'KAFKA_BROKERS' | 'KAFKA_CLIENT_ID'>,
  { logger, ...overrides }: { logger?: Logger } & Partial<KafkaConfig> = {},
): Kafka {
  return new Kafka({
    clientId: config.KAFKA_CLIENT_ID,
    brokers: config.KAFKA_BROKERS,
    logLevel: logLevel.WARN,
    ...(logger ? { logCreator: pinoLogCreator(logger) } : {}),
    ...overrides,
  });
}

/**
 * The producer of order events: idempotent (the broker drops its own retried
 * duplicates), one request in flight (order kept within a partition), and the
 * Java client's murmur2 partitioner, so a key lands on the same partition from
 * any language's producer.
 */
export function createOrderEventsProducer(
  kafka: Kafka,
  overrides: Partial<ProducerConfig> = {},
): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
    // Topics are created at start-up (ensureTopic); a send to a missing topic must fail, not create it.
    allowAutoTopicCreation: false,
    // Bounded (kafkajs' idempotent default is unbounded) so a send fails within one activity
    // attempt and Temporal's retry policy takes over; kafkajs logs a warning about it once.
    retry: { retries: 5, maxRetryTime: 5_000 },
    ...overrides,
  });
}

/**
 * Every KafkaJS protocol error type in an error, its causes and aggregated
 * errors (kafkajs wraps the broker's error in retry and aggregate errors).
 */
export function kafkaErrorTypes(error: unknown): string[] {
  const types: string[] = [];
  const seen = new Set<unknown>();
  const visit = (e: unknown): void => {
    if (typeof e !== 'object' || e === null || seen.has(e)) return;
    seen.add(e);
    const { type, cause, errors } = e as { type?: unknown; cause?: unknown; errors?: unknown };
    if (typeof type === 'string') types.push(type);
    visit(cause);
    if (Array.isArray(errors)) errors.forEach(visit);
  };
  visit(error);
  return types;
}

/** True for kafkajs' own errors (connection, protocol, timeouts, retries exhausted). */
export const isKafkaJsError = (error: unknown): error is Error =>
  error instanceof Error && error.name.startsWith('KafkaJS');

/**
 * Creates `topic` with `numPartitions` partitions unless it exists (also when
 * another process creates it at the same moment), and returns whether this
 * call created it and how many partitions the topic has.
 */
export async function ensureTopic(
  admin: Admin,
  topic: string,
  numPartitions: number,
  // The event log is what projections are rebuilt from, and records carry the order's
  // placedAt as their timestamp: time-based deletion would drop old orders within minutes.
  configEntries: { name: string; value: string }[] = [{ name: 'retention.ms', value: '-1' }],
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
