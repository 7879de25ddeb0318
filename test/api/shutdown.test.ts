/**
 * Graceful shutdown of the real API process (`node --import tsx
 * src/api/server.ts`, against the test stack's PostgreSQL and Temporal).
 *
 * Deterministically in flight: 20 POST /orders whose headers the server has
 * read (it answered `100 Continue`) but whose bodies are only sent after
 * SIGTERM, once the port refuses new connections. Around them, a burst of 200
 * concurrent POST /orders, with SIGTERM sent as soon as the first is answered.
 * Then:
 * - the 20 held requests are answered 201/202, with `Connection: close`;
 * - every burst request that got a response got 201 or 202; the others failed
 *   at the connection (refused, or closed before the server read them), never
 *   by timing out;
 * - the database holds exactly the orders whose 201/202 arrived: no order was
 *   committed without its answer, none answered without being committed;
 * - the server logged no aborted or failed request, logged "draining" then
 *   "stopped", and exited 0 within 15 s of SIGTERM.
 */
import { Client, Connection } from '@temporalio/client';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, inject, it } from 'vitest';
import {
  ManagedProcess,
  delay,
  freePort,
  isListening,
  waitUntilReady,
} from '../../scripts/lib/process.ts';
import { createDb, type Db } from '../../src/db/client.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { validOrder } from '../support/api.ts';

const stack = inject('stack');
const repoRoot = path.resolve(import.meta.dirname, '../..');

const REQUESTS = 200;
const HELD = 20;
const EXIT_BUDGET_MS = 15_000;

let proc: ManagedProcess | undefined;
/** The API's log folder: kept when the test fails, for its log. */
let logDir: string | undefined;
let passed = false;
let db: Db | undefined;
const runTag = randomUUID().slice(0, 8);
const emailOf = (i: number) => `shutdown-${runTag}-${i}@example.com`;

type Outcome =
  { i: number; status: number; id?: string; at: number } | { i: number; error: string; at: number };

/** Connection-level failures: refused, or closed before the server read the request. */
const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

async function post(url: string, i: number): Promise<Outcome> {
  try {
    const res = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...validOrder(), customerEmail: emailOf(i) }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json()) as { id?: string };
    return { i, status: res.status, id: body.id, at: Date.now() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    return { i, error: e.cause?.code ?? e.name ?? e.message, at: Date.now() };
  }
}

type HeldOutcome = { status: number; connection?: string; id?: string } | { error: string };

/**
 * A POST /orders that the server has provably started reading: it resolves
 * once the server answered `100 Continue` to the headers; `finish()` then
 * sends the body and resolves with the response.
 */
function holdRequest(port: number, i: number) {
  const body = JSON.stringify({ ...validOrder(), customerEmail: emailOf(i) });
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/orders',
    agent: false,
    headers: {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      expect: '100-continue',
    },
  });
  req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
  const response = new Promise<HeldOutcome>((resolve) => {
    req.once('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.once('end', () => {
        let id: string | undefined;
        try {
          id = (JSON.parse(text) as { id?: string }).id;
        } catch {
          /* not JSON: the status says enough */
        }
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, id });
      });
      res.once('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    });
  });
  const continued = new Promise<void>((resolve) => req.once('continue', () => resolve()));
  req.flushHeaders();
  return {
    continued,
    finish(): Promise<HeldOutcome> {
      req.end(body);
      return response;
    },
  };
}

afterAll(async () => {
  await proc?.stop(5_000);
  if (passed && logDir) fs.rmSync(logDir, { recursive: true, force: true });
  if (!db) return;
  // Leave no orders behind for other files: stop their workflows, then delete them.
  const mine = await db.order.findMany({
    where: { customerEmail: { startsWith: `shutdown-${runTag}-` } },
    select: { id: true },
  });
  if (mine.length) {
    const connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
    try {
      const client = new Client({ connection, namespace: stack.TEMPORAL_NAMESPACE });
      for (let n = 0; n < mine.length; n += 25) {
        await Promise.allSettled(
          mine
            .slice(n, n + 25)
            .map(({ id }) =>
              client.workflow.getHandle(orderWorkflowId(id)).terminate('shutdown test cleanup'),
            ),
        );
      }
    } finally {
      await connection.close();
    }
    await db.order.deleteMany({ where: { id: { in: mine.map((o) => o.id) } } });
  }
  await db.$disconnect();
});

it('finishes in-flight requests on SIGTERM, commits exactly what it answered, and exits 0', async () => {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-shutdown-'));
  const logFile = path.join(logDir, 'api.log');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: stack.DATABASE_URL,
    TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: stack.TEMPORAL_NAMESPACE,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  };
  delete env.API_KEYS;
  proc = new ManagedProcess({
    name: 'api',
    command: process.execPath,
    args: ['--import', 'tsx', 'src/api/server.ts'],
    cwd: repoRoot,
    env,
    logFile,
  });
  await waitUntilReady(
    proc,
    'api',
    async () => (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) })).ok,
    60_000,
  );
  db = createDb(stack.DATABASE_URL, 2);

  // Held requests: the server has read their headers; their bodies come later.
  const held = Array.from({ length: HELD }, (_, i) => holdRequest(port, REQUESTS + i));
  const allContinued = await Promise.race([
    Promise.all(held.map((h) => h.continued)).then(() => true),
    delay(15_000).then(() => false),
  ]);
  expect(allContinued, 'the server did not answer 100 Continue to every held request').toBe(true);

  // The burst: open them all, and SIGTERM as soon as the first is answered.
  let firstAnswered: () => void = () => {};
  const first = new Promise<void>((resolve) => (firstAnswered = resolve));
  const requests = Array.from({ length: REQUESTS }, (_, i) =>
    post(url, i).finally(() => firstAnswered()),
  );
  await Promise.race([first, delay(20_000)]);
  const sigtermAt = Date.now();
  process.kill(proc.pid!, 'SIGTERM');

  // Once the port refuses connections, the held requests send their bodies.
  let closedToNew = false;
  for (let i = 0; i < 100 && !closedToNew; i++) {
    closedToNew = !(await isListening(port, '127.0.0.1', 200));
    if (!closedToNew) await delay(50);
  }
  expect(closedToNew, 'the API still accepts connections after SIGTERM').toBe(true);
  const heldOutcomes = await Promise.all(held.map((h) => h.finish()));

  const exited = await Promise.race([
    proc.exited.then(() => true),
    delay(Math.max(EXIT_BUDGET_MS - (Date.now() - sigtermAt), 0)).then(() => false),
  ]);
  const exitedAfterMs = Date.now() - sigtermAt;
  const outcomes = await Promise.all(requests);
  const log = fs.readFileSync(logFile, 'utf8');
  const context = `exit ${proc.exitCode}/${proc.exitSignal} after ${exitedAfterMs} ms; log:\n${proc.tail(40)}`;

  expect(exited, `the API did not exit within ${EXIT_BUDGET_MS} ms of SIGTERM; ${context}`).toBe(
    true,
  );
  expect(proc.exitCode, context).toBe(0);

  // Every held request was finished, and its connection closed after it.
  for (const o of heldOutcomes) {
    expect(o, JSON.stringify(heldOutcomes)).toMatchObject({ connection: 'close' });
    expect('status' in o && [201, 202].includes(o.status), JSON.stringify(o)).toBe(true);
  }

  const answered = outcomes.filter((o): o is Extract<Outcome, { status: number }> => 'status' in o);
  const failed = outcomes.filter((o): o is Extract<Outcome, { error: string }> => 'error' in o);
  const summary = JSON.stringify({
    answered: answered.length,
    afterSigterm: answered.filter((o) => o.at > sigtermAt).length,
    statuses: [...new Set(answered.map((o) => o.status))],
    errors: [...new Set(failed.map((o) => o.error))],
    exitedAfterMs,
  });

  // Every answer is an accepted order; the rest failed at the connection, not by hanging.
  expect(answered.length, summary).toBeGreaterThan(0);
  for (const o of answered) expect([201, 202], summary).toContain(o.status);
  for (const o of failed) expect([...CONNECTION_ERRORS], summary).toContain(o.error);

  // The database holds exactly the answered orders.
  const stored = await db.order.findMany({
    where: { customerEmail: { startsWith: `shutdown-${runTag}-` } },
    select: { id: true, customerEmail: true },
  });
  const heldIds = heldOutcomes.map((o) => ('id' in o ? o.id : undefined));
  const answeredIds = [...answered.map((o) => o.id), ...heldIds].sort();
  expect(answeredIds.every((id) => typeof id === 'string')).toBe(true);
  expect(stored.map((o) => o.id).sort(), summary).toEqual(answeredIds);
  for (const o of answered) {
    expect(stored.find((s) => s.id === o.id)?.customerEmail).toBe(emailOf(o.i));
  }
  heldIds.forEach((id, i) =>
    expect(stored.find((s) => s.id === id)?.customerEmail).toBe(emailOf(REQUESTS + i)),
  );

  // The server saw no request aborted or failing, and said what it did.
  const lines = log
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { level: number; msg: string });
  expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  expect(log).not.toMatch(/request aborted|request errored|drain timed out/);
  const messages = lines.map((l) => l.msg);
  const draining = messages.findIndex((m) => /draining/.test(m));
  expect(draining, context).toBeGreaterThanOrEqual(0);
  expect(messages.slice(draining + 1), context).toContain('stopped');
  passed = true;
});
