/**
 * The relay's wake-up on the real stack: the intake statement notifies
 * OUTBOX_CHANNEL when it commits a start that is due at once, so a relay
 * process that polls only every 5 s still starts each new order within a
 * second, and keeps doing so after its LISTEN connection is terminated (it
 * listens again). In-process: wake-ups never run two sweeps at once, and a
 * relay whose listener cannot connect still starts every order by polling.
 */
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { freePort } from '../../scripts/lib/process.ts';
import { OUTBOX_LISTENER_APPLICATION, OutboxListener } from '../../src/api/outbox-listener.ts';
import { OutboxRelay, defaultRelayOptions, type RelayOptions } from '../../src/api/outbox-relay.ts';
import { LazyTemporalClient } from '../../src/api/temporal-client.ts';
import { createDb, type Db } from '../../src/db/client.ts';
import { startAppProcess, stackEnvOf, waitUntil } from '../observability/processes.ts';
import { postOrder, startStackApi, validOrder, type TestApi } from '../support/api.ts';

const stack = inject('stack');
const LISTENING = 'outbox wake-ups: listening';
const LISTENING_AGAIN = 'outbox wake-ups: listening again';
const LOST = 'outbox wake-ups: LISTEN connection lost; polling until it is back';
/** A woken start takes milliseconds; the relay under test polls every 5 s. */
const WOKEN_WITHIN_MS = 1000;

let db: Db;
let cleanups: (() => Promise<unknown>)[] = [];

beforeAll(() => {
  db = createDb(stack.DATABASE_URL, 4);
});
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups = [];
});
afterAll(async () => {
  await db?.$disconnect();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = () => pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

/** The API as `npm start` runs it: relay mode (starts due at once), its own relay only probes. */
async function relayModeApi(): Promise<TestApi> {
  const api = await startStackApi({ workflowStartMode: 'relay', relay: { sweep: false } });
  cleanups.push(() => api.close());
  return api;
}

async function placeOrder(url: string): Promise<string> {
  const answer = await postOrder(url, validOrder());
  expect(answer.status).toBe(201);
  return answer.body.id as string;
}

/** Milliseconds from the order's commit to its confirmed start (database clock), once started. */
async function startDelayMs(orderId: string, timeoutMs = 15_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await db.$queryRaw<{ ms: number | null }[]>`
      SELECT (EXTRACT(EPOCH FROM s.started_at - o.created_at) * 1000)::float8 AS ms
      FROM workflow_starts s JOIN orders o ON o.id = s.order_id WHERE s.order_id = ${orderId}::uuid`;
    if (row?.ms != null) return row.ms;
    if (Date.now() > until) throw new Error(`order ${orderId} not started within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/** Places `n` orders one after another and returns each one's start delay. */
async function startDelays(url: string, n: number): Promise<number[]> {
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    delays.push(await startDelayMs(await placeOrder(url)));
    await sleep(200);
  }
  return delays;
}

/** Starts what earlier tests left due, so the tests here see only their own orders. */
async function drainDue(): Promise<void> {
  const relayDb = createDb(stack.DATABASE_URL, 2);
  const { relay, close } = inProcessRelay(relayDb, { maxInFlight: 0 });
  await db.$executeRaw`UPDATE workflow_starts SET next_attempt_at = now() WHERE started_at IS NULL`;
  for (let i = 0; i < 50 && (await relay.backlog()).pending > 0; i++) await relay.sweep();
  await close();
  await relayDb.$disconnect();
}

/** An in-process relay (not running) on the suite's Temporal; `close()` stops it and closes its client. */
function inProcessRelay(relayDb: Db, options: Partial<RelayOptions>) {
  const temporal = new LazyTemporalClient({
    connectionOptions: { address: stack.TEMPORAL_ADDRESS },
    namespace: 'default',
  });
  const relay = new OutboxRelay(relayDb, () => temporal.get(), log(), {
    ...defaultRelayOptions,
    ...options,
  });
  const close = async () => {
    await relay.stop();
    await temporal.close();
  };
  return { relay, close };
}

/**
 * The relay process polling only every 5 s (`env` on top), stopped after the
 * test; once it listens, one order started through it, which also connects
 * its Temporal client (seconds on a busy machine).
 */
async function startListeningRelay(api: TestApi, env: Record<string, string> = {}) {
  const relay = startAppProcess('relay', 'src/api/relay.ts', {
    ...stackEnvOf(stack),
    OUTBOX_POLL_MS: '5000',
    RELAY_METRICS_PORT: '0',
    LOG_LEVEL: 'info',
    ...env,
  });
  cleanups.push(() => relay.stop());
  await relay.waitForLine('listening', (l) => l.msg === LISTENING, 60_000);
  await startDelayMs(await placeOrder(api.url));
  return relay;
}

describe('the relay wakes up on a new order', () => {
  it('starts each new order within a second while polling every 5 s, and again after its LISTEN connection is terminated', async () => {
    await drainDue();
    const api = await relayModeApi();
    const relay = await startListeningRelay(api);

    const woken = await startDelays(api.url, 5);
    expect(Math.max(...woken), `start delays ${woken.join(', ')} ms`).toBeLessThan(WOKEN_WITHIN_MS);

    // The listening connection dies (a restart, a proxy, an operator): the relay listens again.
    const terminated = await db.$queryRaw<{ pid: number; terminated: boolean }[]>`
      SELECT pid, pg_terminate_backend(pid) AS terminated
      FROM pg_stat_activity WHERE application_name = ${OUTBOX_LISTENER_APPLICATION}`;
    expect(terminated).toMatchObject([{ terminated: true }]);
    await relay.waitForLine('the loss', (l) => l.msg === LOST, 10_000);
    await relay.waitForLine('listening again', (l) => l.msg === LISTENING_AGAIN, 10_000);
    const [listener] = await db.$queryRaw<{ pid: number }[]>`
      SELECT pid FROM pg_stat_activity WHERE application_name = ${OUTBOX_LISTENER_APPLICATION}`;
    expect(listener?.pid).not.toBe(terminated[0]!.pid);

    const again = await startDelays(api.url, 5);
    expect(Math.max(...again), `start delays ${again.join(', ')} ms`).toBeLessThan(WOKEN_WITHIN_MS);
  }, 120_000);

  it('keeps waking up and counting under its advisory lock with a statement timeout shorter than its idle time', async () => {
    await drainDue();
    const api = await relayModeApi();
    // Every statement of the relay's pool is cut off after 1 s; LISTEN waits on a connection of its own.
    await startListeningRelay(api, { DATABASE_STATEMENT_TIMEOUT_MS: '1000' });
    // Idle for longer than the statement timeout: the LISTEN connection is still there.
    await sleep(2_500);
    const woken = await startDelays(api.url, 3);
    expect(Math.max(...woken), `start delays ${woken.join(', ')} ms`).toBeLessThan(WOKEN_WITHIN_MS);
  }, 120_000);

  it('runs one sweep at a time however many wake-ups arrive, and one more for those that came during it', async () => {
    await drainDue();
    const { relay, close } = inProcessRelay(db, { intervalMs: 60_000 });
    cleanups.push(close);
    const sweepBatch = (relay as unknown as { sweepBatch(): Promise<unknown> }).sweepBatch.bind(
      relay,
    );
    let active = 0;
    let mostActive = 0;
    let sweeps = 0;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    vi.spyOn(
      relay as unknown as { sweepBatch(): Promise<unknown> },
      'sweepBatch',
    ).mockImplementation(async () => {
      active++;
      mostActive = Math.max(mostActive, active);
      try {
        if (++sweeps === 1) await held;
        return await sweepBatch();
      } finally {
        active--;
      }
    });
    relay.run();

    for (let i = 0; i < 20; i++) relay.wake();
    await waitUntil('the first sweep', () => sweeps === 1, 5000);
    for (let i = 0; i < 20; i++) relay.wake();
    await sleep(300);
    expect(sweeps).toBe(1);

    release();
    await waitUntil('the sweep after it', () => sweeps === 2, 5000);
    await sleep(500);
    // Nothing was due: no follow-up, and the next poll is a minute away.
    expect(sweeps).toBe(2);
    expect(mostActive).toBe(1);
  }, 60_000);

  it('starts every order by polling while its listener cannot connect, and keeps retrying with bounded backoff', async () => {
    await drainDue();
    const api = await relayModeApi();
    const { relay, close } = inProcessRelay(db, { intervalMs: 500 });
    const nowhere = new URL(stack.DATABASE_URL);
    nowhere.port = String(await freePort());
    const wakes = vi.fn(() => relay.wake());
    const lines: { msg?: string; retryInMs?: number }[] = [];
    const listener = new OutboxListener({
      connectionString: nowhere.toString(),
      onWake: wakes,
      log: pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) }),
      backoff: { minMs: 50, maxMs: 400 },
    });
    cleanups.push(async () => {
      await listener.close();
      await close();
    });
    relay.run();
    listener.start();

    const delays = await startDelays(api.url, 3);
    // By the 500 ms poll (plus the start), never woken.
    expect(Math.max(...delays)).toBeLessThan(3000);
    expect(listener.listening).toBe(false);
    expect(wakes).not.toHaveBeenCalled();
    // It kept trying, each delay double the last up to the cap.
    const retries = lines.filter((l) => l.msg === LOST).map((l) => l.retryInMs);
    expect(retries.length).toBeGreaterThanOrEqual(5);
    expect(retries.slice(0, 5)).toEqual([50, 100, 200, 400, 400]);
    expect(Math.max(...(retries as number[]))).toBe(400);
  }, 60_000);
});
