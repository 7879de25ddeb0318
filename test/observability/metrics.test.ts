/**
 * Prometheus metrics of every kind of process after a real order: the API
 * (in-process), the four workers and the analytics consumer as real child
 * processes (as `npm start` runs them) against the suite's stack. Also the
 * structured fields of the workers' activity logs, and /metrics staying fast
 * while the database blocks the orders-by-status read.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { METRICS_QUERY_TIMEOUT_MS } from '../../src/api/metrics.ts';
import { consumerGroups } from '../../src/consumers/runtime/groups.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';
import { postOrder, registerEndpoint, startApi, validOrder, type TestApi } from '../support/api.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';
import {
  sample,
  scrape,
  scrapeUntil,
  seriesNames,
  stackEnvOf,
  startAppProcess,
  waitUntil,
  type AppProcess,
} from './processes.ts';

const stack = inject('stack');
const WORKERS = ['orders', 'email', 'webhooks', 'events'] as const;
type WorkerName = (typeof WORKERS)[number];

let api: TestApi;
let receiver: WebhookReceiver;
let endpointId: string | undefined;
const workers = new Map<WorkerName, { proc: AppProcess; metricsUrl: string }>();
let consumer: { proc: AppProcess; metricsUrl: string };
let order: { id: string; workflowId: string };

beforeAll(async () => {
  api = await startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
  });
  receiver = await startWebhookReceiver({ secret: `whsec_${Buffer.alloc(24).toString('base64')}` });
  const env = {
    ...stackEnvOf(stack),
    LOG_LEVEL: 'info',
    WORKER_METRICS_PORT: '0',
    CONSUMER_METRICS_PORT: '0',
    CONSUMER_LAG_INTERVAL: '300ms',
  };
  const procs = [
    ...WORKERS.map((w) => startAppProcess(`worker-${w}`, `src/workers/${w}.ts`, env)),
    startAppProcess('consumer-analytics', 'src/consumers/analytics.ts', env),
  ];
  // Started together: each loads Node, tsx and its clients; the orders worker also bundles the workflows.
  const ready = await Promise.all(
    procs.map((p) =>
      p.waitForLine(
        'its "running" line',
        (l) => l.msg === 'worker running' || l.msg === 'consumer running',
        150_000,
      ),
    ),
  );
  WORKERS.forEach((w, i) =>
    workers.set(w, { proc: procs[i]!, metricsUrl: String(ready[i]!.metricsUrl) }),
  );
  consumer = { proc: procs[4]!, metricsUrl: String(ready[4]!.metricsUrl) };

  endpointId = (await registerEndpoint(api.url, `${receiver.url}/hook`)).id;

  const res = await postOrder(api.url, {
    ...validOrder(),
    customerEmail: `obs-${randomUUID()}@example.com`,
  });
  expect(res.status).toBe(201);
  order = { id: res.body.id as string, workflowId: res.body.workflowId as string };
  let last = '';
  await waitUntil(
    () => `order ${order.id} to complete (last seen ${last})`,
    async () => {
      const got = (await (await fetch(`${api.url}/orders/${order.id}`)).json()) as {
        status: string;
        failedStep?: string;
        lastError?: string;
      };
      last = JSON.stringify(got);
      return got.status === 'COMPLETED';
    },
    120_000,
  );
}, 300_000);

afterAll(async () => {
  await Promise.allSettled([
    ...[...workers.values()].map((w) => w.proc.stop()),
    consumer?.proc.stop(),
  ]);
  if (endpointId) await api?.db.webhookEndpoint.deleteMany({ where: { id: endpointId } });
  await receiver?.close();
  await api?.close();
}, 60_000);

describe('metrics of every process after an order completed', () => {
  it('API: request latency by route template and status, and orders by status', async () => {
    const text = await scrape(`${api.url}/metrics`);
    expect(
      sample(text, 'orderflow_http_request_duration_seconds_count', {
        method: 'POST',
        route: '/orders',
        status: '201',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(text, 'orderflow_http_request_duration_seconds_count', {
        method: 'GET',
        route: '/orders/:id',
        status: '200',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(text).not.toContain(order.id);
    expect(sample(text, 'orderflow_orders', { status: 'COMPLETED' })).toBeGreaterThanOrEqual(1);
    // Every status is reported, also at zero; the deprecated name carries the same values.
    for (const status of ['RECEIVED', 'PROCESSING', 'PARKED', 'COMPLETED', 'CANCELLED']) {
      expect(sample(text, 'orderflow_orders', { status }), status).toBeGreaterThanOrEqual(0);
      expect(sample(text, 'orderflow_orders_by_status', { status }), status).toBe(
        sample(text, 'orderflow_orders', { status }),
      );
    }
    expect(text).toMatch(/# HELP orderflow_orders_by_status DEPRECATED: use orderflow_orders/);
    expect(sample(text, 'orderflow_outbox_pending')).toBeGreaterThanOrEqual(0);
  });

  it('webhooks worker: deliveries by outcome, Temporal runtime metrics and process metrics', async () => {
    const text = await scrape(workers.get('webhooks')!.metricsUrl);
    expect(
      sample(text, 'orderflow_webhook_deliveries_total', { outcome: 'delivered' }),
    ).toBeGreaterThanOrEqual(1);
    expect(receiver.requests.length).toBeGreaterThanOrEqual(1);
    const names = seriesNames(text);
    expect(names, [...names].join(' ')).toContain('temporal_worker_task_slots_available');
    expect(
      sample(text, 'temporal_worker_task_slots_available', {
        task_queue: 'webhooks',
        worker_type: 'ActivityWorker',
      }),
    ).toBeGreaterThan(0);
    expect(names).toContain('process_resident_memory_bytes');
  });

  it('events worker: Kafka publish latency', async () => {
    const text = await scrape(workers.get('events')!.metricsUrl);
    const labels = { topic: ORDERS_PLACED_TOPIC, outcome: 'ok' };
    expect(
      sample(text, 'orderflow_kafka_publish_duration_seconds_count', labels),
    ).toBeGreaterThanOrEqual(1);
    const sum = sample(text, 'orderflow_kafka_publish_duration_seconds_sum', labels);
    expect(sum).toBeGreaterThan(0);
    expect(sum).toBeLessThan(60);
    expect(seriesNames(text)).toContain('temporal_worker_task_slots_available');
  });

  it('orders and email workers: /metrics with Temporal runtime series, /healthz', async () => {
    for (const name of ['orders', 'email'] as const) {
      const { metricsUrl } = workers.get(name)!;
      const text = await scrape(metricsUrl);
      const names = seriesNames(text);
      expect(names, name).toContain('temporal_worker_task_slots_available');
      expect(names, name).toContain('process_resident_memory_bytes');
      expect((await fetch(metricsUrl.replace(/\/metrics$/, '/healthz'))).status, name).toBe(200);
    }
    // The orders worker ran this order's workflow tasks.
    const orders = await scrape(workers.get('orders')!.metricsUrl);
    expect(
      sample(orders, 'temporal_workflow_completed_total', { task_queue: 'orders' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('analytics consumer: lag per partition and the order event processed', async () => {
    const { groupId } = consumerGroups.analytics;
    const text = await scrapeUntil(
      consumer.metricsUrl,
      "the consumer to process the order's event",
      (t) =>
        (sample(t, 'orderflow_consumer_events_total', { group: groupId, outcome: 'processed' }) ??
          0) >= 1 &&
        sample(t, 'orderflow_consumer_lag', { group: groupId, topic: ORDERS_PLACED_TOPIC }) !==
          undefined,
    );
    expect(
      sample(text, 'orderflow_consumer_lag', { group: groupId, partition: '0' }),
    ).toBeGreaterThanOrEqual(0);
  });
});

describe('activity logs of the worker processes', () => {
  it('carry orderId and workflowId as fields, in JSON', () => {
    const expectations: [WorkerName, string][] = [
      ['webhooks', 'webhook delivered'],
      ['events', 'order.placed published'],
    ];
    for (const [worker, msg] of expectations) {
      const line = workers
        .get(worker)!
        .proc.lines.find((l) => l.msg === msg && l.orderId === order.id);
      expect(line, `${worker}: "${msg}" for ${order.id}`).toMatchObject({
        orderId: order.id,
        workflowId: order.workflowId,
        name: `worker-${worker}`,
        activityType: expect.any(String),
      });
      // The activity's task token (enough to complete it) stays out of logs.
      expect(line).not.toHaveProperty('taskToken');
    }
    const lines = [...workers.values()].flatMap((w) => w.proc.lines);
    expect(lines.filter((l) => 'unparsed' in l)).toEqual([]);
  });
});

describe('a slow database', () => {
  it('leaves /metrics answering within the read timeout, counting the failed read', async () => {
    const locker = new pg.Client({ connectionString: stack.DATABASE_URL });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE orders IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const text = await scrape(`${api.url}/metrics`);
      const took = Date.now() - started;
      expect(took).toBeLessThan(METRICS_QUERY_TIMEOUT_MS + 3000);
      expect(took).toBeGreaterThanOrEqual(METRICS_QUERY_TIMEOUT_MS - 100);
      expect(
        sample(text, 'orderflow_metrics_collect_failures_total', { collector: 'orders_by_status' }),
      ).toBeGreaterThanOrEqual(1);
      // The last values read stay (stale rather than missing), and the other series answer.
      expect(sample(text, 'orderflow_orders', { status: 'COMPLETED' })).toBeGreaterThanOrEqual(1);
      expect(sample(text, 'orderflow_outbox_pending')).toBeGreaterThanOrEqual(0);
    } finally {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end();
    }
  });
});
