/**
 * Prometheus metrics of the API and relay processes (prom-client): request
 * latency by route and status, orders by status, the outbox backlog, orders
 * in flight against the relay's bound, workflow starts, and Node.js process
 * metrics. Database-backed gauges are read at scrape time with a time limit,
 * so a slow database makes them stale, never /metrics slow.
 */
import type { RequestHandler } from 'express';
import client from 'prom-client';
import type { Db } from '../db/client.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { ORDER_STATUSES, type OrderStatus } from '../shared/orders.ts';
import type { OutboxRelay } from './outbox-relay.ts';

/** The longest a scrape waits for one database read. */
export const METRICS_QUERY_TIMEOUT_MS = 2000;

/** `work` within `ms`, or a rejection naming what timed out (the work itself runs on). */
function within<T>(what: string, ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * One read shared by the gauges of a scrape (called once per collect, the
 * gauges of one scrape run together), with the time limit and a failure counter.
 */
function scrapeRead<T>(
  name: string,
  read: () => Promise<T>,
  failures: client.Counter<'collector'>,
  timeoutMs: number,
): () => Promise<T | undefined> {
  let inFlight: Promise<T | undefined> | undefined;
  return () =>
    (inFlight ??= within(name, timeoutMs, read())
      .catch(() => {
        failures.inc({ collector: name });
        return undefined;
      })
      .finally(() => {
        inFlight = undefined;
      }));
}

/**
 * The series the API and the relay process share, on `registry`: the outbox
 * backlog, orders in flight and the bound, Temporal reachability, workflow
 * starts by outcome and, with `db`, orders by status; database reads bounded
 * by `timeoutMs`.
 */
export function registerOutboxMetrics(
  registry: client.Registry,
  relay: OutboxRelay,
  opts: { db?: Db; queryTimeoutMs?: number } = {},
): void {
  const { db } = opts;
  const timeoutMs = opts.queryTimeoutMs ?? METRICS_QUERY_TIMEOUT_MS;
  const failures = new client.Counter({
    name: 'orderflow_metrics_collect_failures_total',
    help: 'Scrape-time reads that failed or timed out (their gauges keep the last value read)',
    labelNames: ['collector'] as const,
    registers: [registry],
    // Waits for this scrape's reads (shared with the gauges), so a failure shows in the same scrape.
    async collect() {
      await Promise.all([backlog(), inFlight(), ordersByStatus?.(), endpointsByStatus?.()]);
    },
  });

  const backlog = scrapeRead('outbox_backlog', () => relay.backlog(), failures, timeoutMs);
  const inFlight = scrapeRead(
    'outbox_in_flight',
    () => relay.ordersInFlight(timeoutMs),
    failures,
    timeoutMs,
  );
  // The server gives up too (statement_timeout), so a blocked query does not hold a pooled connection.
  const bounded = async <T>(db: Db, query: Prisma.PrismaPromise<T>): Promise<T> => {
    const [, rows] = await db.$transaction([
      db.$executeRawUnsafe(`SET LOCAL statement_timeout = ${Math.max(1, timeoutMs)}`),
      query,
    ]);
    return rows;
  };
  const ordersByStatus =
    db &&
    scrapeRead(
      'orders_by_status',
      () =>
        bounded(
          db,
          db.$queryRaw<{ status: OrderStatus; count: bigint }[]>`
            SELECT status, count(*) AS count FROM orders GROUP BY status`,
        ),
      failures,
      timeoutMs,
    );
  const endpointsByStatus =
    db &&
    scrapeRead(
      'webhook_endpoints_by_status',
      () =>
        bounded(
          db,
          db.$queryRaw<{ status: 'ENABLED' | 'DISABLED'; count: bigint }[]>`
            SELECT status, count(*) AS count FROM webhook_endpoints GROUP BY status`,
        ),
      failures,
      timeoutMs,
    );

  /** A gauge of rows by status, every known status reported (0 when none), from a scrape-time read. */
  const countsByStatus = (
    name: string,
    help: string,
    statuses: readonly string[],
    read: () => Promise<{ status: string; count: bigint }[] | undefined>,
  ) =>
    new client.Gauge({
      name,
      help,
      labelNames: ['status'] as const,
      registers: [registry],
      async collect() {
        const rows = await read();
        if (!rows) return;
        for (const status of statuses) this.set({ status }, 0);
        for (const { status, count } of rows) this.set({ status }, Number(count));
      },
    });
  if (ordersByStatus) {
    countsByStatus(
      'orderflow_orders',
      'Orders in the database by status (read at scrape time; every API replica reports the same totals)',
      ORDER_STATUSES,
      ordersByStatus,
    );
    // The old name (a label name inside the metric name), kept one release for dashboards;
    // both gauges share one read per scrape.
    countsByStatus(
      'orderflow_orders_by_status',
      'DEPRECATED: use orderflow_orders{status}; this name is removed in the next release',
      ORDER_STATUSES,
      ordersByStatus,
    );
  }
  if (endpointsByStatus)
    countsByStatus(
      'orderflow_webhook_endpoints',
      'Webhook endpoints by status (ENABLED, DISABLED: by a 410, WEBHOOK_DISABLE_AFTER_FAILURES permanent failures in a row, or an operator); read at scrape time',
      ['ENABLED', 'DISABLED'],
      endpointsByStatus,
    );
  /** A gauge set from a scrape-time read; left as it was when the read fails. */
  const readAtScrape = (name: string, help: string, read: () => Promise<number | undefined>) =>
    new client.Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        const value = await read();
        if (value !== undefined) this.set(value);
      },
    });
  readAtScrape(
    'orderflow_outbox_pending',
    'Accepted orders whose workflow start is not confirmed yet',
    async () => (await backlog())?.pending,
  );
  readAtScrape(
    'orderflow_outbox_oldest_age_seconds',
    'Age of the oldest unconfirmed workflow start',
    async () => (await backlog())?.oldestAgeSeconds,
  );
  readAtScrape(
    'orderflow_outbox_in_flight',
    'Orders counted against the relay bound: RECEIVED or PROCESSING with the workflow started within OUTBOX_IN_FLIGHT_WINDOW_MS, or being started',
    inFlight,
  );
  new client.Gauge({
    name: 'orderflow_outbox_max_in_flight',
    help: 'The bound on orders in flight above which the relay starts no workflow (OUTBOX_MAX_IN_FLIGHT; 0: no bound)',
    registers: [registry],
    collect() {
      this.set(relay.opts.maxInFlight ?? 0);
    },
  });
  new client.Gauge({
    name: 'orderflow_outbox_holding_back',
    help: "1 while this process's relay leaves due workflow starts in the outbox because the in-flight bound is reached",
    registers: [registry],
    collect() {
      this.set(relay.holdingBack ? 1 : 0);
    },
  });
  new client.Gauge({
    name: 'orderflow_temporal_reachable',
    help: '1 when the last probe reached the Temporal frontend',
    registers: [registry],
    collect() {
      this.set(relay.temporalReachable ? 1 : 0);
    },
  });
  new client.Counter({
    name: 'orderflow_workflow_starts_total',
    help: "Workflow starts this process's relay made, by outcome (started, failed: left for a later sweep)",
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ outcome: 'started' }, relay.started);
      this.inc({ outcome: 'failed' }, relay.failed);
    },
  });
}

/** The relay process's registry: the outbox series and Node.js process metrics. */
export function createRelayMetrics(relay: OutboxRelay, opts: { queryTimeoutMs?: number } = {}) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  registerOutboxMetrics(registry, relay, opts);
  return { registry };
}

export function createApiMetrics(
  relay: OutboxRelay,
  db: Db,
  opts: { queryTimeoutMs?: number } = {},
) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const httpDuration = new client.Histogram({
    name: 'orderflow_http_request_duration_seconds',
    help: 'HTTP request latency by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  registerOutboxMetrics(registry, relay, { ...opts, db });

  /**
   * Times each request; the route label is the matched pattern (with its
   * router's mount path), never the raw path, so ids do not become labels.
   */
  const middleware: RequestHandler = (req, res, next) => {
    const end = httpDuration.startTimer();
    res.once('finish', () => {
      const pattern = (req.route as { path?: unknown } | undefined)?.path;
      const route = typeof pattern === 'string' ? `${req.baseUrl}${pattern}` : 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };

  const handler: RequestHandler = async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  };

  return { registry, middleware, handler };
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>;
