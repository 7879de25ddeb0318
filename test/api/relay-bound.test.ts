/**
 * The relay's bound on orders in flight (OUTBOX_MAX_IN_FLIGHT), on the real
 * stack. No worker polls the `orders` queue, so a started workflow stays in
 * flight until the test finishes it the way the workflow would end (the run
 * closes, the order is COMPLETED), or until its start is older than the
 * window (OUTBOX_IN_FLIGHT_WINDOW_MS). The relays must start exactly as many
 * workflows as the bound leaves room for, the rest as orders finish or age
 * out of the window, and in the end every order once.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { OutboxRelay, countInFlight, defaultRelayOptions } from '../../src/api/outbox-relay.ts';
import { LazyTemporalClient } from '../../src/api/temporal-client.ts';
import { createDb, type Db } from '../../src/db/client.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import {
  sample,
  scrape,
  stackEnvOf,
  startAppProcess,
  waitUntil,
} from '../observability/processes.ts';
import { postOrder, startStackApi, validOrder } from '../support/api.ts';

const stack = inject('stack');
/** Room each test gives the relays above what is already in flight. */
const ROOM = 5;
const ORDERS = 12;
const HOLDING = 'in-flight bound reached: workflow starts wait in the outbox';
const RELEASED = 'below the in-flight bound again: starts no longer held back';

let db: Db;
let connection: Connection;
let client: Client;
let cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = createDb(stack.DATABASE_URL, 4);
  connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
  client = new Client({ connection });
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups = [];
});
afterAll(async () => {
  await db?.$disconnect();
  await connection?.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A relay as the relay process builds one: its own database pool and Temporal client. */
function relayWithBound(
  maxInFlight: number,
  intervalMs = 100,
  inFlightWindowMs = defaultRelayOptions.inFlightWindowMs,
): OutboxRelay {
  const relayDb = createDb(stack.DATABASE_URL, 4);
  const temporal = new LazyTemporalClient({
    connectionOptions: { address: stack.TEMPORAL_ADDRESS },
    namespace: 'default',
  });
  const relay = new OutboxRelay(
    relayDb,
    () => temporal.get(),
    pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    { ...defaultRelayOptions, intervalMs, maxInFlight, inFlightWindowMs },
    () => temporal.ping(),
  );
  cleanups.push(async () => {
    await relay.stop();
    await Promise.allSettled([relayDb.$disconnect(), temporal.close()]);
  });
  return relay;
}

/** Orders in flight now, by the default window. */
const inFlightNow = async () =>
  (await countInFlight(db, defaultRelayOptions.inFlightWindowMs)).inFlight;

/**
 * What is in flight now plus ROOM. Earlier tests share the database: their
 * terminated workflows' orders stay RECEIVED or PROCESSING, and would leave
 * the window while a test runs; starts they left pending are started here
 * first, then all their starts are dated out of the window, so they take no room.
 */
async function boundWithRoom(): Promise<number> {
  await db.$executeRaw`UPDATE workflow_starts SET next_attempt_at = now() WHERE started_at IS NULL`;
  const unbounded = relayWithBound(0);
  for (let i = 0; i < 50 && (await unbounded.backlog()).pending > 0; i++) await unbounded.sweep();
  await db.$executeRaw`
    UPDATE workflow_starts SET started_at = now() - interval '1 day'
    WHERE started_at > now() - interval '1 day'`;
  return (await inFlightNow()) + ROOM;
}

async function placeOrders(url: string, n: number): Promise<string[]> {
  const answers = await Promise.all(Array.from({ length: n }, () => postOrder(url, validOrder())));
  expect(answers.map((a) => a.status)).toEqual(Array(n).fill(201));
  return answers.map((a) => a.body.id as string);
}

/** The orders among `ids` whose workflow start the outbox has confirmed. */
async function confirmed(ids: string[]): Promise<string[]> {
  const rows = await db.workflowStart.findMany({
    where: { orderId: { in: ids }, startedAt: { not: null } },
    select: { orderId: true },
  });
  return rows.map((r) => r.orderId).sort();
}

/** The orders among `ids` that have a workflow in Temporal. */
async function inTemporal(ids: string[]): Promise<string[]> {
  const found = await Promise.all(
    ids.map(async (id) => {
      try {
        await client.workflow.getHandle(orderWorkflowId(id)).describe();
        return id;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return undefined;
        throw err;
      }
    }),
  );
  return found.filter((id): id is string => id !== undefined).sort();
}

/** Waits for `n` confirmed starts among `ids`, then checks no more come for `holdMs` (many sweeps). */
async function startsSettleAt(ids: string[], n: number, holdMs = 1500): Promise<string[]> {
  await waitUntil(`${n} confirmed starts`, async () => (await confirmed(ids)).length >= n, 30_000);
  await sleep(holdMs);
  const started = await confirmed(ids);
  expect(started).toHaveLength(n);
  expect(await inTemporal(ids)).toEqual(started);
  return started;
}

/** Ends orders as their workflow would: the run closes and the order is COMPLETED (idempotent). */
async function finish(ids: string[]): Promise<void> {
  await Promise.all(
    ids.map((id) =>
      client.workflow
        .getHandle(orderWorkflowId(id))
        .terminate('finished by the test')
        .catch((err: unknown) => {
          // Already closed: finished before.
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }),
    ),
  );
  await db.order.updateMany({ where: { id: { in: ids } }, data: { status: 'COMPLETED' } });
}

/** Finishes each order of `ids` once it is started, until all were started and finished. */
async function finishAll(ids: string[]): Promise<void> {
  const done = new Set<string>();
  await waitUntil(
    () => `every order started (${done.size} of ${ids.length})`,
    async () => {
      const fresh = (await confirmed(ids)).filter((id) => !done.has(id));
      await finish(fresh);
      for (const id of fresh) done.add(id);
      return done.size === ids.length;
    },
    60_000,
  );
}

/** An API that only commits (relay mode) and runs no relay of its own; closed after the test. */
async function relayModeApi() {
  const api = await startStackApi({ workflowStartMode: 'relay', relay: { run: false } });
  cleanups.push(() => api.close());
  return api;
}

describe('the outbox relay under an in-flight bound', () => {
  it('starts only as many workflows as the bound leaves room for, across two relays, and the rest as orders finish', async () => {
    const bound = await boundWithRoom();
    const api = await relayModeApi();
    const ids = await placeOrders(api.url, ORDERS);
    const relays = [relayWithBound(bound), relayWithBound(bound)];
    for (const r of relays) r.run();

    const started = await startsSettleAt(ids, ROOM);
    expect(await inFlightNow()).toBe(bound);
    expect(relays.some((r) => r.holdingBack)).toBe(true);
    const waiting = await db.workflowStart.count({
      where: { orderId: { in: ids }, startedAt: null },
    });
    expect(waiting).toBe(ORDERS - ROOM);

    // Two orders finish: their room goes to two of the waiting ones, no more.
    await finish(started.slice(0, 2));
    await startsSettleAt(ids, ROOM + 2);

    // In the end every order is started, each once.
    await finishAll(ids);
    expect(await inTemporal(ids)).toEqual([...ids].sort());
    expect(relays[0]!.started + relays[1]!.started).toBe(ORDERS);
    expect(relays[0]!.failed + relays[1]!.failed).toBe(0);
    await waitUntil('the relays no longer hold back', () => relays.every((r) => !r.holdingBack));
  }, 120_000);

  it('stops counting an order still PROCESSING once its start is older than the window, so a stuck subscriber stalls nothing', async () => {
    const bound = await boundWithRoom();
    const api = await relayModeApi();
    const ids = await placeOrders(api.url, ROOM + 3);
    const windowMs = 5000;
    const relay = relayWithBound(bound, 100, windowMs);
    relay.run();

    // The first ROOM orders start, then keep retrying a step: PROCESSING, never finishing.
    const stuck = await startsSettleAt(ids, ROOM, 1000);
    await db.order.updateMany({ where: { id: { in: stuck } }, data: { status: 'PROCESSING' } });
    expect(relay.holdingBack).toBe(true);

    // Once their starts are older than the window they hold no place: the others start.
    await waitUntil(
      'the waiting orders started',
      async () => (await confirmed(ids)).length === ids.length,
      windowMs + 10_000,
    );
    const rows = await db.workflowStart.findMany({ where: { orderId: { in: ids } } });
    const startedAt = (id: string) => rows.find((r) => r.orderId === id)!.startedAt!.getTime();
    const firstStuck = Math.min(...stuck.map(startedAt));
    for (const id of ids.filter((i) => !stuck.includes(i)))
      expect(startedAt(id)).toBeGreaterThanOrEqual(firstStuck + windowMs - 1); // ms rounding
    const stillProcessing = await db.order.count({
      where: { id: { in: stuck }, status: 'PROCESSING' },
    });
    expect(stillProcessing).toBe(ROOM);
    expect(await inTemporal(ids)).toEqual([...ids].sort());
    await finish(ids);
  }, 120_000);

  it('waits at the bound one count per interval, not in a loop', async () => {
    const bound = await boundWithRoom();
    const api = await relayModeApi();
    const ids = await placeOrders(api.url, ROOM + 3);
    const relay = relayWithBound(bound, 200);
    relay.run();
    await startsSettleAt(ids, ROOM, 500);

    const sweeps = vi.spyOn(
      relay as unknown as { leaseWithinBound(): Promise<unknown> },
      'leaseWithinBound',
    );
    await sleep(2000);
    // Ten intervals of 200 ms (give or take one), not thousands of sweeps.
    expect(sweeps.mock.calls.length).toBeGreaterThanOrEqual(5);
    expect(sweeps.mock.calls.length).toBeLessThanOrEqual(12);
    sweeps.mockRestore();
    await finishAll(ids);
  }, 120_000);

  it('kicks starts at once below the bound in async mode, and leaves the rest to the sweep', async () => {
    const bound = await boundWithRoom();
    const api = await startStackApi({
      workflowStartMode: 'async',
      relay: { intervalMs: 100, maxInFlight: bound },
    });
    cleanups.push(() => api.close());
    await sleep(500); // the relay's first count

    // Light load: the kick starts the workflow right after the commit (the sweep never leased it).
    const [first] = await placeOrders(api.url, 1);
    await waitUntil('the first order started', async () => (await confirmed([first!])).length > 0);
    const firstRow = await db.workflowStart.findUniqueOrThrow({ where: { orderId: first } });
    expect(firstRow.attempts).toBe(0);

    // A burst: kicks fill the room; the others wait out their grace period and stay in the outbox.
    const ids = [first!, ...(await placeOrders(api.url, ORDERS - 1))];
    const started = await startsSettleAt(ids, ROOM, defaultRelayOptions.graceMs + 1500);
    expect(api.relay.started).toBe(ROOM);
    expect(api.relay.holdingBack).toBe(true);

    // Room again: the sweep (not a kick) starts the next ones.
    await finish(started.slice(0, 2));
    const next = (await startsSettleAt(ids, ROOM + 2)).filter((id) => !started.includes(id));
    const swept = await db.workflowStart.findMany({ where: { orderId: { in: next } } });
    for (const row of swept) expect(row.attempts).toBeGreaterThanOrEqual(1);

    await finishAll(ids);
    expect(await inTemporal(ids)).toEqual([...ids].sort());
    expect(api.relay.started).toBe(ORDERS);
  }, 120_000);

  it('the relay process holds back at OUTBOX_MAX_IN_FLIGHT, logs it once and shows it in /metrics', async () => {
    const bound = await boundWithRoom();
    const api = await relayModeApi();
    const relay = startAppProcess('relay', 'src/api/relay.ts', {
      ...stackEnvOf(stack),
      OUTBOX_POLL_MS: '50',
      OUTBOX_MAX_IN_FLIGHT: String(bound),
      RELAY_METRICS_PORT: '0',
      LOG_LEVEL: 'info',
    });
    cleanups.push(() => relay.stop());
    const running = await relay.waitForLine('"relay running"', (l) => l.msg === 'relay running');
    expect(running.maxInFlight).toBe(bound);

    const ids = await placeOrders(api.url, ORDERS);
    await startsSettleAt(ids, ROOM);
    const text = await scrape(String(running.metricsUrl));
    expect(sample(text, 'orderflow_outbox_in_flight')).toBe(bound);
    expect(sample(text, 'orderflow_outbox_max_in_flight')).toBe(bound);
    expect(sample(text, 'orderflow_outbox_holding_back')).toBe(1);
    expect(sample(text, 'orderflow_outbox_pending')).toBeGreaterThanOrEqual(ORDERS - ROOM);
    expect(relay.lines.filter((l) => l.msg === HOLDING)).toMatchObject([
      { inFlight: expect.any(Number), maxInFlight: bound },
    ]);

    await finishAll(ids);
    await relay.waitForLine('the release', (l) => l.msg === RELEASED, 10_000);
    const after = await scrape(String(running.metricsUrl));
    expect(sample(after, 'orderflow_outbox_holding_back')).toBe(0);
    expect(sample(after, 'orderflow_outbox_in_flight')).toBe(bound - ROOM);
    // One line when it began holding back and one when it stopped, not one per sweep.
    expect(relay.lines.filter((l) => l.msg === HOLDING || l.msg === RELEASED)).toHaveLength(2);
  }, 180_000);
});
