/**
 * Consumer lag on /metrics: high watermark minus committed offset per group
 * and partition, from the real broker.
 */
import { expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import {
  createConsumerMetrics,
  groupLag,
  startLagMonitor,
  startMetricsServer,
} from '../../src/consumers/runtime/metrics.ts';
import {
  admin,
  caughtUp,
  freshTopic,
  logger,
  orderPlaced,
  produce,
  recordOf,
  startRunner,
  uniqueGroupId,
  useConsumerClients,
  waitFor,
} from './support.ts';

useConsumerClients();

/** The lag samples of a Prometheus text exposition, by partition. */
function lagSamples(text: string, groupId: string, topic: string): Map<string, number> {
  const samples = new Map<string, number>();
  const re = /^orderflow_consumer_lag\{([^}]*)\} (\d+)$/gm;
  for (const [, labels = '', value] of text.matchAll(re)) {
    const l = Object.fromEntries([...labels.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (l.group === groupId && l.topic === topic) samples.set(l.partition, Number(value));
  }
  return samples;
}

it('exposes the lag of each partition on /metrics and brings it to zero as the group catches up', async () => {
  const topic = await freshTopic(3);
  const groupId = uniqueGroupId('analytics');
  const orders = Array.from({ length: 30 }, () => orderPlaced());
  await produce(
    topic,
    orders.map((o) => recordOf(o)),
  );
  const metrics = createConsumerMetrics();
  const server = await startMetricsServer(metrics.registry, '127.0.0.1', 0);
  const monitor = startLagMonitor({ admin, groupId, topic, intervalMs: 200, metrics, log: logger });
  const scrape = async () => lagSamples(await (await fetch(server.url)).text(), groupId, topic);
  try {
    // Before the group ever ran: everything in the log is lag.
    const backlog = await groupLag(admin, groupId, topic);
    expect(backlog.reduce((n, p) => n + p.lag, 0)).toBe(30);
    await waitFor('the backlog on /metrics', async () => (await scrape()).size === 3);
    const before = await scrape();
    expect(before).toEqual(new Map(backlog.map((p) => [String(p.partition), p.lag])));

    await startRunner({ groupId, topic, projection: analyticsProjection, metrics });
    await waitFor('the group caught up', () => caughtUp(groupId, topic));
    await waitFor('zero lag on /metrics', async () =>
      [...(await scrape()).values()].every((v) => v === 0),
    );
    const text = await (await fetch(server.url)).text();
    expect(text).toMatch(
      new RegExp(
        `orderflow_consumer_events_total\\{group="${groupId.replaceAll('.', '\\.')}",outcome="processed"\\} 30`,
      ),
    );
    expect(text).toContain('orderflow_consumer_transaction_duration_seconds_bucket');
  } finally {
    monitor.stop();
    await server.close();
  }
});
