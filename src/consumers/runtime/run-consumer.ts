/**
 * The bootstrap of a consumer-group process: make sure the topics exist,
 * serve /metrics, join the group, log that it runs; on SIGTERM/SIGINT finish
 * the record in hand, commit, leave the group and exit 0; exit non-zero on a
 * fatal error.
 */
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import client from 'prom-client';
import { loadConfig } from '../../config/env.ts';
import { createDbFromConfig } from '../../db/client.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../../events/kafka.ts';
import { startTracing } from '../../observability/tracing.ts';
import { ORDERS_PLACED_TOPIC } from '../../shared/events.ts';
import { configForLog, createLogger, scrubUrlCredentials } from '../../shared/logger.ts';
import { deadLetterTopicOf } from './dead-letters.ts';
import type { ConsumerGroupDefinition } from './groups.ts';
import { createConsumerMetrics, startLagMonitor, startMetricsServer } from './metrics.ts';
import { createConsumerRunner } from './runner.ts';
import { createStallDetector, type Stall } from './stall-watch.ts';

/** How long a stalled consumer may take to leave its group before the process exits anyway. */
const STALLED_STOP_MS = 10_000;

/** The process ends with this when its consumer stalled (exit 1: the supervisor starts a new one). */
export class ConsumerStalledError extends Error {
  override name = 'ConsumerStalledError';
  constructor(
    readonly groupId: string,
    readonly stalls: readonly Stall[],
  ) {
    super(
      `consumer of ${groupId} stalled on partition(s) ${stalls.map((s) => s.partition).join(', ')}`,
    );
  }
}

/** Dead letters are few; one partition keeps them in the order they failed. */
export const DEAD_LETTER_PARTITIONS = 1;

export function runConsumer(group: ConsumerGroupDefinition): void {
  const main = async () => {
    const config = loadConfig();
    // Tracing on (OTLP configured): each record's processing continues the trace in its headers.
    const tracing = startTracing(config, `orderflow-consumer-${group.name}`);
    const log = createLogger(`consumer-${group.name}`, config.LOG_LEVEL, {
      format: config.LOG_FORMAT,
    });
    log.info({ config: configForLog(config) }, 'configuration');
    const topic = ORDERS_PLACED_TOPIC;
    const kafka = createKafka(config, { logger: log });
    const admin = kafka.admin();
    const producer = createOrderEventsProducer(kafka);
    const db = createDbFromConfig(config, config.DATABASE_POOL_SIZE);
    const metrics = createConsumerMetrics();
    client.collectDefaultMetrics({ register: metrics.registry });
    const closers: (() => Promise<unknown>)[] = [];
    try {
      await admin.connect();
      closers.push(() => admin.disconnect());
      // The events worker creates the topic too; whoever starts first creates it with the same settings.
      const retrying = {
        onRetry: (err: unknown, attempt: number) =>
          log.warn({ err, attempt }, 'topic not ready yet; retrying'),
      };
      await ensureTopic(admin, topic, config.KAFKA_TOPIC_PARTITIONS, undefined, retrying);
      await ensureTopic(
        admin,
        deadLetterTopicOf(topic),
        DEAD_LETTER_PARTITIONS,
        undefined,
        retrying,
      );
      await producer.connect();
      closers.push(
        () => producer.disconnect(),
        () => db.$disconnect(),
      );

      const server = await startMetricsServer(
        metrics.registry,
        config.HOST,
        config.CONSUMER_METRICS_PORT,
      );
      closers.push(() => server.close());
      const runner = createConsumerRunner({
        kafka,
        db,
        producer,
        groupId: group.groupId,
        projection: group.projection,
        topic,
        transaction: config.CONSUMER_TRANSACTION,
        batchMaxEvents: config.CONSUMER_BATCH_MAX_EVENTS,
        concurrency: config.CONSUMER_CONCURRENCY ?? config.KAFKA_TOPIC_PARTITIONS,
        maxAttempts: config.CONSUMER_MAX_ATTEMPTS,
        retryInitialMs: config.CONSUMER_RETRY_INITIAL,
        fetchWaitMs: config.CONSUMER_FETCH_WAIT,
        log,
        metrics,
      });
      // The stall watch reads the lag monitor: a stalled consumer ends the process (non-zero).
      let stalled: (stalls: Stall[]) => void = () => {};
      const stall = new Promise<Stall[]>((resolve) => (stalled = resolve));
      const detector = createStallDetector({
        stallMs: config.CONSUMER_STALL_TIMEOUT,
        activity: runner.activity,
      });
      const lag = startLagMonitor({
        admin,
        groupId: group.groupId,
        topic,
        intervalMs: config.CONSUMER_LAG_INTERVAL,
        metrics,
        log,
        onLag: (lags) => {
          const stalls = detector.observe(lags);
          if (stalls.length > 0) stalled(stalls);
        },
      });
      closers.push(async () => lag.stop());
      await runner.start();
      log.info(
        {
          group: group.name,
          groupId: group.groupId,
          topic,
          deadLetterTopic: deadLetterTopicOf(topic),
          transaction: config.CONSUMER_TRANSACTION,
          metricsUrl: server.url,
        },
        'consumer running',
      );

      const signal = await Promise.race([
        once(process, 'SIGTERM').then(() => 'SIGTERM'),
        once(process, 'SIGINT').then(() => 'SIGINT'),
        runner.crashed,
        stall,
      ]);
      if (typeof signal !== 'string') {
        const stalls = signal;
        log.error(
          { groupId: group.groupId, topic, stalls, stallTimeoutMs: config.CONSUMER_STALL_TIMEOUT },
          'consumer stalled: records wait on partitions it owns and it has not worked on them; exiting for a fresh start',
        );
        // Leaving the group may wait on the hung fetch: bounded, then the process goes anyway.
        await Promise.race([runner.stop().catch(() => {}), sleep(STALLED_STOP_MS)]);
        throw new ConsumerStalledError(group.groupId, stalls);
      }
      log.info({ signal }, 'stopping: finishing the record in hand, committing, leaving the group');
      await runner.stop();
    } finally {
      for (const close of closers.reverse()) await close().catch(() => {});
      await tracing.shutdown();
    }
    log.info('consumer stopped');
  };
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      // A fatal error may quote a connection string: printed without its credentials.
      console.error(scrubUrlCredentials(inspect(err)));
      process.exit(1);
    },
  );
}
