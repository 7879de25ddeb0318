/**
 * Prometheus metrics of a consumer process: what happened to each event, how
 * long transactions take, and the group's lag per partition (high watermark
 * minus committed offset, refreshed from the broker every few seconds).
 */
import client from 'prom-client';
import type { KafkaAdmin } from '../../events/kafka-types.ts';
import type { Logger } from '../../shared/logger.ts';

export type EventOutcome = 'processed' | 'duplicate' | 'dead_lettered' | 'ignored';

export function createConsumerMetrics(registry = new client.Registry()) {
  return {
    registry,
    events: new client.Counter({
      name: 'orderflow_consumer_events_total',
      help: 'Events handled by a consumer group, by outcome (processed, duplicate, dead_lettered, ignored)',
      labelNames: ['group', 'outcome'] as const,
      registers: [registry],
    }),
    transactionSeconds: new client.Histogram({
      name: 'orderflow_consumer_transaction_duration_seconds',
      help: 'Duration of the database transaction that records events and applies their effect',
      labelNames: ['group'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    retries: new client.Counter({
      name: 'orderflow_consumer_retries_total',
      help: 'Failed attempts at an event, a batch or a dead-letter send that were retried',
      labelNames: ['group'] as const,
      registers: [registry],
    }),
    lag: new client.Gauge({
      name: 'orderflow_consumer_lag',
      help: 'Records not yet committed by the group: high watermark minus committed offset, per partition',
      labelNames: ['group', 'topic', 'partition'] as const,
      registers: [registry],
    }),
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;

export interface PartitionLag {
  partition: number;
  /** Next offset the broker will write. */
  high: string;
  /** Next offset the group reads; -1 when it never committed one. */
  committed: string;
  lag: number;
}

/** The group's lag on `topic`, per partition; without a committed offset, counted from the log start. */
export async function groupLag(
  admin: KafkaAdmin,
  groupId: string,
  topic: string,
): Promise<PartitionLag[]> {
  const [watermarks, offsets] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const committed = new Map(
    (offsets.find((t) => t.topic === topic)?.partitions ?? []).map((p) => [p.partition, p.offset]),
  );
  return watermarks
    .map(({ partition, high, low }) => {
      const c = committed.get(partition) ?? '-1';
      const from = BigInt(c) >= 0n ? BigInt(c) : BigInt(low);
      const lag = BigInt(high) - from;
      return { partition, high, committed: c, lag: Number(lag > 0n ? lag : 0n) };
    })
    .sort((a, b) => a.partition - b.partition);
}

/** Refreshes the lag gauge every `intervalMs` until stopped; a failed refresh is logged and retried next time. */
export function startLagMonitor({
  admin,
  groupId,
  topic,
  intervalMs,
  metrics,
  log,
  onLag,
}: {
  admin: KafkaAdmin;
  groupId: string;
  topic: string;
  intervalMs: number;
  metrics: ConsumerMetrics;
  log: Logger;
  /** Called with each reading (the stall watch). */
  onLag?: (lags: PartitionLag[]) => void;
}): { refresh(): Promise<void>; stop(): void } {
  const refresh = async () => {
    try {
      const lags = await groupLag(admin, groupId, topic);
      for (const p of lags) {
        metrics.lag.set({ group: groupId, topic, partition: String(p.partition) }, p.lag);
      }
      onLag?.(lags);
    } catch (err) {
      log.warn({ err, groupId, topic }, 'consumer lag not refreshed');
    }
  };
  const timer = setInterval(() => void refresh(), intervalMs);
  timer.unref();
  void refresh();
  return { refresh, stop: () => clearInterval(timer) };
}

/** The consumer's /metrics server is the shared one. */
export { startMetricsServer } from '../../shared/metrics-server.ts';
