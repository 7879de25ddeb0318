/**
 * `npm start`'s supervision on the real stack: scripts/stack.ts runs as a
 * user starts it (against the test stack's PostgreSQL, Temporal and Kafka,
 * which it uses instead of starting its own, plus its own maildev), and under
 * a steady load of POST /orders each application process type (the API, the
 * relay, every worker, every consumer) is killed with SIGKILL in turn. Each
 * death is named with its signal, the process comes back (a background one at
 * its lowered priority), the others keep serving, a POST retried within a few
 * seconds is accepted, and every accepted order completes and is consumed by
 * both groups: nothing is lost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { freePorts, signalGroup } from '../../scripts/lib/process.ts';
import { APP_PROCESSES } from '../../scripts/lib/stack.ts';
import { projectRoot } from '../../scripts/lib/tools.ts';
import { consumerGroups } from '../../src/consumers/runtime/groups.ts';
import { orderPlacedEventId } from '../../src/shared/events.ts';
import { subscribe, type Subscriber } from './subscriber.ts';

const stackEnv = inject('stack');
/** How long a POST is retried while the API restarts. */
const RETRY_WINDOW_MS = 20_000;
const LOAD_INTERVAL_MS = 250;
const MAX_ORDERS = 2_000;

let child: ChildProcess | undefined;
let output = '';
let dataDir: string;
let apiUrl: string;
let subscriber: Subscriber | undefined;
const db = new pg.Pool({ connectionString: stackEnv.DATABASE_URL, max: 2 });

/** Waits until the stack's output (from `from` on) matches `pattern`; returns the match. */
async function outputMatch(pattern: RegExp, from: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(output.slice(from));
    if (m) return m;
    if (child?.exitCode !== null || Date.now() > deadline)
      throw new Error(
        `${child?.exitCode !== null ? 'the stack exited' : 'timed out'} waiting for ${pattern}; output:\n${output.slice(-6000)}`,
      );
    await sleep(100);
  }
}

function pidOf(name: string): number {
  const pids = JSON.parse(fs.readFileSync(path.join(dataDir, 'run', 'pids.json'), 'utf8')) as {
    pid: number;
    name: string;
  }[];
  const pid = pids.find((p) => p.name === name)?.pid;
  if (!pid) throw new Error(`no pid recorded for ${name}`);
  return pid;
}

beforeAll(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-supervision-'));
  const [port, smtpPort, mailUiPort] = await freePorts(3);
  apiUrl = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, ['--import', 'tsx', 'scripts/stack.ts'], {
    cwd: projectRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      // The test stack's peers are used, not started; maildev and the app processes are the stack's own.
      DATABASE_URL: stackEnv.DATABASE_URL,
      TEMPORAL_ADDRESS: stackEnv.TEMPORAL_ADDRESS,
      KAFKA_BROKERS: stackEnv.KAFKA_BROKERS,
      ORDERFLOW_DATA_DIR: dataDir,
      PORT: String(port),
      SMTP_PORT: String(smtpPort),
      MAIL_UI_PORT: String(mailUiPort),
      // A fixed, slight lowering: the test checks a restarted process takes it again, while
      // `idle` (nice 19 while the API works) starves the workers on a machine busy with other work.
      BACKGROUND_PRIORITY: '1',
      WEBHOOK_ALLOWED_TARGETS: 'loopback',
      // An attempt whose worker was killed is retried after this, not after the default 30 s.
      RETRY_EMAIL: 'attempt=8s',
      RETRY_WEBHOOKS: 'attempt=8s',
      // A webhook request must fit in such an attempt, with 2 s around it (retry-budgets.ts).
      WEBHOOK_TIMEOUT_MS: '5000',
      RETRY_EVENTS: 'attempt=8s',
      LOG_LEVEL: 'info',
    },
  });
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  await outputMatch(/orderflow is ready in/, 0, 240_000);
  subscriber = await subscribe(apiUrl);
}, 300_000);

afterAll(async () => {
  await subscriber?.close();
  await db.end();
  if (child?.pid !== undefined && child.exitCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    signalGroup(child.pid, 'SIGTERM');
    await Promise.race([exited, sleep(60_000)]);
    if (child.exitCode === null) {
      // The runner did not stop in time: its processes go with it.
      for (const name of [...APP_PROCESSES.map((a): string => a.name), 'maildev']) {
        try {
          signalGroup(pidOf(name), 'SIGKILL');
        } catch {
          /* not recorded */
        }
      }
      signalGroup(child.pid, 'SIGKILL');
    }
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

interface Placed {
  id: string;
  /** From the first attempt to the accepting answer. */
  tookMs: number;
}

/** POST /orders, retried with the same Idempotency-Key while the API is down (bounded). */
async function placeOrder(accepted: Placed[], failures: string[]): Promise<void> {
  const key = randomUUID();
  const body = JSON.stringify({
    customerEmail: 'buyer@example.com',
    items: [{ sku: 'SKU-SUPERVISED', quantity: 1, unitPriceCents: 1000 }],
    currency: 'USD',
  });
  const first = Date.now();
  let last = '';
  while (Date.now() - first < RETRY_WINDOW_MS) {
    try {
      const res = await fetch(`${apiUrl}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body,
        signal: AbortSignal.timeout(5_000),
      });
      if (res.ok) {
        const order = (await res.json()) as { id: string };
        accepted.push({ id: order.id, tookMs: Date.now() - first });
        return;
      }
      last = `${res.status} ${await res.text()}`;
      if (res.status < 500) break;
    } catch (e) {
      last = (e as Error).message; // refused while the API restarts
    }
    await sleep(250);
  }
  failures.push(`not accepted within ${RETRY_WINDOW_MS} ms: ${last}`);
}

it('restarts each application process killed with SIGKILL under load, and loses no order', async () => {
  const accepted: Placed[] = [];
  const failures: string[] = [];
  const inFlight = new Set<Promise<void>>();
  let loading = true;
  const load = (async () => {
    for (let i = 0; loading && i < MAX_ORDERS; i++) {
      const p = placeOrder(accepted, failures).finally(() => inFlight.delete(p));
      inFlight.add(p);
      await sleep(LOAD_INTERVAL_MS);
    }
  })();

  try {
    await sleep(3_000);
    for (const { name } of APP_PROCESSES) {
      const pid = pidOf(name);
      const from = output.length;
      process.kill(pid, 'SIGKILL');
      const escaped = name.replace(/[-]/g, '\\-');
      await outputMatch(
        new RegExp(`${escaped} \\(pid ${pid}\\) was killed by SIGKILL; restarting it`),
        from,
        15_000,
      );
      const restarted = await outputMatch(
        new RegExp(`${escaped} restarted \\(pid (\\d+)\\)`),
        from,
        120_000,
      );
      const newPid = Number(restarted[1]);
      expect(newPid).not.toBe(pid);
      expect(pidOf(name)).toBe(newPid);
      // A background process takes its lowered priority again once ready; the API stays at the runner's.
      const runnerNice = os.getPriority(child!.pid);
      expect(os.getPriority(newPid)).toBe(name === 'api' ? runnerNice : Math.max(1, runnerNice));
      await sleep(2_000);
    }
  } finally {
    loading = false;
    await load;
    await Promise.all([...inFlight]);
  }

  expect(failures).toEqual([]);
  expect(accepted.length).toBeGreaterThan(40);
  // The stack never stopped: no crash loop, and every process is up.
  expect(output).not.toMatch(/\[stack\] FAILED|is in a crash loop|\[stack\] stopping/);
  expect(child!.exitCode).toBeNull();

  const ids = accepted.map((o) => o.id);
  const eventIds = ids.map(orderPlacedEventId);
  const groupIds = Object.values(consumerGroups).map((g) => g.groupId);
  /** Accepted orders per status, and per consumer group how many of their events it applied. */
  const progress = async () => {
    const { rows } = await db.query<{ status: string; n: string }>(
      'SELECT status, count(*) AS n FROM orders WHERE id = ANY($1::uuid[]) GROUP BY status',
      [ids],
    );
    const groups = await db.query<{ group_id: string; n: string }>(
      `SELECT group_id, count(*) AS n FROM processed_events
       WHERE group_id = ANY($1) AND event_id = ANY($2) GROUP BY group_id`,
      [groupIds, eventIds],
    );
    return {
      statuses: Object.fromEntries(rows.map((r) => [r.status, Number(r.n)])),
      consumed: Object.fromEntries(groups.rows.map((r) => [r.group_id, Number(r.n)])),
    };
  };
  const deadline = Date.now() + 180_000;
  let { statuses, consumed } = await progress();
  while (
    Date.now() < deadline &&
    !(statuses.COMPLETED === ids.length && groupIds.every((g) => consumed[g] === ids.length))
  ) {
    await sleep(1_000);
    ({ statuses, consumed } = await progress());
  }
  expect(statuses, `stack output:\n${output.slice(-4000)}`).toEqual({ COMPLETED: ids.length });
  expect(consumed).toEqual(Object.fromEntries(groupIds.map((g) => [g, ids.length])));
  // Every completed order's webhook reached the subscriber.
  const delivered = new Set(subscriber!.receiver.requests.map((r) => r.headers['webhook-id']));
  expect(ids.filter((id) => !delivered.has(subscriber!.webhookIdOf(id)))).toEqual([]);
  console.info(
    `supervision: ${accepted.length} orders accepted, longest accept ${Math.max(...accepted.map((o) => o.tookMs))} ms`,
  );
}, 480_000);
