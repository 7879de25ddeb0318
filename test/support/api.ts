/** Starts the API in-process (real PostgreSQL and Temporal), on an ephemeral port. */
import type { Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import { expect, inject } from 'vitest';
import { sampleOrder } from '../../scripts/lib/sample-order.ts';
import { createApp } from '../../src/api/app.ts';
import { OutboxRelay, defaultRelayOptions, type RelayOptions } from '../../src/api/outbox-relay.ts';
import { LazyTemporalClient } from '../../src/api/temporal-client.ts';
import { createDb, type Db } from '../../src/db/client.ts';
import type { WorkflowStartMode } from '../../src/orders/workflow-start.ts';
import type { Resolver, TargetPolicy } from '../../src/webhooks/ssrf-guard.ts';

export interface TestApi {
  url: string;
  db: Db;
  relay: OutboxRelay;
  temporal: LazyTemporalClient;
  close(): Promise<void>;
}

export interface StartApiOptions {
  databaseUrl: string;
  temporalAddress: string;
  apiKeys?: string[];
  metricsAccess?: 'open' | 'key' | 'elsewhere';
  orderActionTimeoutMs?: number;
  workflowStartMode?: WorkflowStartMode;
  relay?: Partial<RelayOptions> & { run?: boolean };
  /** The API's logger (e.g. one writing to a captured stream); silent by default. */
  log?: Logger;
  /** WEBHOOK_ALLOWED_TARGETS: the tests' receivers listen on loopback, so loopback by default. */
  webhookAllowedTargets?: TargetPolicy;
  /** DNS for registered webhook hosts (default: the system's). */
  webhookResolver?: Resolver;
  /** WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE (default: the service's). */
  webhookMaxEndpointsPerEventType?: number;
}

export async function startApi(opts: StartApiOptions): Promise<TestApi> {
  const log = opts.log ?? pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const db = createDb(opts.databaseUrl, 10);
  const temporal = new LazyTemporalClient(
    { connectionOptions: { address: opts.temporalAddress }, namespace: 'default' },
    // A stopped server refuses at once; the limit only matters on a machine so
    // loaded that a live server answers slowly, which must not read as an outage.
    3000,
  );
  const relay = new OutboxRelay(
    db,
    () => temporal.get(),
    log,
    { ...defaultRelayOptions, ...opts.relay },
    () => temporal.ping(),
  );
  if (opts.relay?.run !== false) relay.run();
  const app = createApp({
    db,
    temporal,
    relay,
    log,
    apiKeys: opts.apiKeys,
    metricsAccess: opts.metricsAccess,
    orderActionTimeoutMs: opts.orderActionTimeoutMs,
    workflowStartMode: opts.workflowStartMode,
    webhookAllowedTargets: opts.webhookAllowedTargets ?? 'loopback',
    webhookResolver: opts.webhookResolver,
    webhookMaxEndpointsPerEventType: opts.webhookMaxEndpointsPerEventType,
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    db,
    relay,
    temporal,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await relay.stop();
      await Promise.allSettled([db.$disconnect(), temporal.close()]);
    },
  };
}

/** startApi on the stack this test run started (PostgreSQL and Temporal of inject('stack')). */
export function startStackApi(
  opts: Omit<StartApiOptions, 'databaseUrl' | 'temporalAddress'> = {},
): Promise<TestApi> {
  const stack = inject('stack');
  return startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
    ...opts,
  });
}

export const validOrder = () => sampleOrder('a@example.com');

/** A parsed JSON response body (orders and problem documents). */
export type Body = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** POST /orders: `body` as is when a string, else as JSON; `headers` may replace the content type. */
export async function postOrder(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text ? (JSON.parse(text) as Body) : {},
    text,
  };
}

/**
 * POSTs an order and makes sure its workflow started: on a 202 (the API's
 * start missed Temporal, a busy machine) it starts it as the relay would, just
 * this one (bounded). Returns the order's id.
 */
export async function placeStartedOrder(api: TestApi, body: unknown): Promise<string> {
  const res = await postOrder(api.url, body);
  expect([201, 202]).toContain(res.status);
  const id = res.body.id as string;
  for (let i = 0; res.status === 202 && !(await api.relay.startOne(id)); i++) {
    if (i === 20) throw new Error(`the workflow of order ${id} never started`);
    await sleep(250);
  }
  return id;
}

/** GET /orders/{id}, which must answer 200: the order. */
export async function getOrder(apiUrl: string, id: string): Promise<Body> {
  const res = await fetch(`${apiUrl}/orders/${id}`);
  expect(res.status, `GET /orders/${id}`).toBe(200);
  return (await res.json()) as Body;
}

/** Polls GET /orders/{id} (bounded) until the order has `status`; returns it. */
export async function waitForOrderStatus(
  apiUrl: string,
  id: string,
  status: string,
  timeoutMs = 30_000,
): Promise<Body> {
  const deadline = Date.now() + timeoutMs;
  let last: Body | undefined;
  while (Date.now() < deadline) {
    last = await getOrder(apiUrl, id);
    if (last.status === status) return last;
    await sleep(100);
  }
  throw new Error(
    `order ${id} stayed ${last?.status} (${last?.failedStep}: ${last?.lastError}), expected ${status}`,
  );
}

/**
 * Registers a subscriber of order.placed at `url` through the API (`headers`
 * on top, e.g. a key); anything but 201 throws. Its id and signing secret.
 */
export async function registerEndpoint(
  apiUrl: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<{ id: string; secret: string }> {
  const res = await fetch(`${apiUrl}/webhook-endpoints`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ url, eventTypes: ['order.placed'] }),
  });
  if (res.status !== 201)
    throw new Error(`POST /webhook-endpoints answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { id: string; secret: string };
}
