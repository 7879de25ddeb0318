/**
 * Peers failing under the request path: Temporal down (orders are accepted
 * with 202 and started when it is back), two relays sharing one backlog, and
 * PostgreSQL unreachable (503, bounded).
 */
import { Client, Connection } from '@temporalio/client';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { OrderService } from '../../src/orders/order-service.ts';
import { ManagedProcess, freePort, freePorts, waitUntilReady } from '../../scripts/lib/process.ts';
import { temporalDevServerArgs, tmpStackDir } from '../../scripts/lib/stack.ts';
import { postOrder, startApi, validOrder, type TestApi } from '../support/api.ts';
import { startOrdersWorker } from '../support/orders-worker.ts';

const stack = inject('stack');
const tools = inject('tools');
// Each test's APIs, workers and servers are closed when it ends: a relay left
// running would lease rows of the next test against its own Temporal.
let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups = [];
});

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A Temporal dev server of this test's own, so it can be stopped and restarted. */
function temporalServer(dir: string, port: number, httpPort: number, metricsPort: number) {
  return new ManagedProcess({
    name: 'temporal-outage',
    command: tools.temporalCli,
    args: temporalDevServerArgs({
      port,
      httpPort,
      metricsPort,
      dbFile: path.join(dir, 'temporal.db'),
      logLevel: 'error',
      extra: ['--search-attribute', 'OrderStatus=Keyword'],
    }),
    logFile: path.join(dir, 'temporal.log'),
  });
}

async function temporalUp(address: string): Promise<boolean> {
  const c = await Connection.connect({ address, connectTimeout: 500 }).catch(() => undefined);
  if (!c) return false;
  try {
    await c.workflowService.getSystemInfo({});
    return true;
  } catch {
    return false;
  } finally {
    await c.close();
  }
}

describe('Temporal outage', () => {
  it('accepts orders with 202 while Temporal is down and starts their workflows when it is back', async () => {
    const dir = tmpStackDir();
    const [port, httpPort, metricsPort] = (await freePorts(3)) as [number, number, number];
    const address = `127.0.0.1:${port}`;
    let server = temporalServer(dir, port, httpPort, metricsPort);
    cleanups.push(async () => {
      await server.stop(2000);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await waitUntilReady(server, 'temporal', () => temporalUp(address), 60_000);

    const api = await startApi({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: address,
      relay: { intervalMs: 200, graceMs: 500 },
    });
    cleanups.push(() => api.close());

    await server.stop(2000);
    // Readiness and the relay's probe notice the outage.
    await until(
      'readyz to report Temporal down',
      async () => (await fetch(`${api.url}/readyz`)).status === 503,
    );
    await until('the relay to notice', async () => !api.relay.temporalReachable);

    const accepted = await Promise.all([
      postOrder(api.url, validOrder()),
      postOrder(api.url, validOrder()),
    ]);
    expect(accepted.map((r) => r.status)).toEqual([202, 202]);
    for (const r of accepted) expect(r.body.status).toBe('RECEIVED');
    const ids = accepted.map((r) => r.body.id as string);
    const pending = await api.db.workflowStart.findMany({ where: { orderId: { in: ids } } });
    expect(pending.map((p) => p.startedAt)).toEqual([null, null]);

    // Temporal comes back (same data file, same port); a worker serves it.
    server = temporalServer(dir, port, httpPort, metricsPort);
    await waitUntilReady(server, 'temporal', () => temporalUp(address), 60_000);
    const worker = await startOrdersWorker({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: address,
    });
    cleanups.push(() => worker.stop());

    for (const id of ids) {
      await until(
        `order ${id} to complete`,
        async () => {
          const o = await api.db.order.findUnique({ where: { id } });
          return o?.status === 'COMPLETED';
        },
        60_000,
      );
    }
    const starts = await api.db.workflowStart.findMany({ where: { orderId: { in: ids } } });
    expect(starts.every((s) => s.startedAt !== null)).toBe(true);
    const connection = await Connection.connect({ address });
    try {
      const client = new Client({ connection });
      for (const id of ids) {
        const handle = client.workflow.getHandle(`order-${id}`);
        expect(await handle.result()).toBe('COMPLETED');
        expect((await handle.describe()).status.name).toBe('COMPLETED');
      }
    } finally {
      await connection.close();
    }
    expect((await postOrder(api.url, validOrder())).status).toBe(201);
  }, 180_000);
});

describe('two relays, one backlog', () => {
  it('starts each pending workflow exactly once between two API instances', async () => {
    const apiA: TestApi = await startApi({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: stack.TEMPORAL_ADDRESS,
      relay: { run: false, batchSize: 5 },
    });
    const apiB: TestApi = await startApi({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: stack.TEMPORAL_ADDRESS,
      relay: { run: false, batchSize: 5 },
    });
    cleanups.push(
      () => apiA.close(),
      () => apiB.close(),
    );
    const worker = await startOrdersWorker({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: stack.TEMPORAL_ADDRESS,
    });
    cleanups.push(() => worker.stop());

    // A backlog as a crashed API leaves it: committed orders, no start.
    const service = new OrderService(apiA.db);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++)
      ids.push((await service.createOrder({ ...validOrder(), currency: 'EUR' })).order.id);
    await apiA.db.workflowStart.updateMany({
      where: { orderId: { in: ids } },
      data: { nextAttemptAt: new Date(0) },
    });

    // Both relays sweep concurrently until the backlog is gone.
    for (let round = 0; round < 20; round++) {
      await Promise.all([apiA.relay.sweep(), apiB.relay.sweep()]);
      const left = await apiA.db.workflowStart.count({
        where: { orderId: { in: ids }, startedAt: null },
      });
      if (left === 0) break;
    }
    expect(
      await apiA.db.workflowStart.count({ where: { orderId: { in: ids }, startedAt: null } }),
    ).toBe(0);
    expect(apiA.relay.started + apiB.relay.started).toBe(ids.length);
    expect(apiA.relay.started).toBeGreaterThan(0);
    expect(apiB.relay.started).toBeGreaterThan(0);
  }, 120_000);
});

describe('PostgreSQL unreachable', () => {
  it('answers 503 with a problem document within a bounded time, and readiness says why', async () => {
    const deadPort = await freePort();
    const api = await startApi({
      databaseUrl: `postgresql://postgres@127.0.0.1:${deadPort}/orderflow`,
      temporalAddress: stack.TEMPORAL_ADDRESS,
      relay: { run: false },
    });
    cleanups.push(() => api.close());
    const t0 = performance.now();
    const res = await postOrder(api.url, validOrder());
    const elapsed = performance.now() - t0;
    expect(res.status).toBe(503);
    expect(res.body.type).toBe('urn:orderflow:problem:service-unavailable');
    expect(res.headers.get('retry-after')).toBe('1');
    // Bounded by the pool's connection timeout (3 s), not by a hanging socket.
    expect(elapsed).toBeLessThan(10_000);
    const ready = await fetch(`${api.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { checks: { database: string } }).checks.database).toBe(
      'unreachable',
    );
  });
});
