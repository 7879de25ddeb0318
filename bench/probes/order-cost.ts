/**
 * Probe: what an order costs a running `npm start` stack at a steady,
 * moderate rate, by process and by thread of the orders worker (issue 12;
 * docs/performance.md). The stack's processes come from its pid file
 * (.data/run/pids.json). The probe measures the stack at rest for REST_S
 * seconds, then POSTs RATE orders a second for SECONDS (paced, loopback
 * only), waits until the stack has no unfinished order (the bench's drain, at
 * most DRAIN_S), and prints the CPU ms per completed order of each process,
 * with what it uses at rest over the same time taken out, and of each thread
 * of the orders worker (by thread name: the workflow thread is `WorkerThread`). From /proc;
 * printed, not saved: a diagnosis. Every order leaves its rows behind, as
 * any order does.
 *
 *   npm start     (in another terminal, and let it settle)
 *   npm run bench:order-cost -- [rate] [seconds]     (default 20 orders/s for 60 s)
 *
 * API_URL (default the API's HOST and PORT), DATABASE_URL (default the
 * stack's) and ORDERFLOW_DATA_DIR (default .data) point it at another stack.
 */
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { cpuSeconds, threadsOf } from '../../scripts/lib/process.ts';
import { pidFileOf, readPids } from '../../scripts/lib/stack-runner.ts';
import { projectRoot } from '../../scripts/lib/tools.ts';
import { loadConfig } from '../../src/config/env.ts';
import { delay, log, postOrder } from '../lib/e2e-kit.ts';
import { drain } from '../lib/order-load.ts';
import { CLK_TCK, procSnapshot, ticksBetween, type ProcessRef } from '../lib/proc-stats.ts';

const rate = Number(process.argv[2] ?? 20);
const seconds = Number(process.argv[3] ?? 60);
if (!(rate > 0 && rate <= 200))
  throw new Error(`rate must be 1-200 orders/s, got ${process.argv[2]}`);
if (!(seconds > 0 && seconds <= 600))
  throw new Error(`seconds must be 1-600, got ${process.argv[3]}`);
const REST_S = 20;
const DRAIN_S = 120;

const config = loadConfig();
const apiUrl = process.env.API_URL ?? `http://${config.HOST}:${config.PORT}`;
if (!['127.0.0.1', 'localhost', '[::1]'].includes(new URL(apiUrl).hostname))
  throw new Error(`load goes to loopback only; API_URL is ${apiUrl}`);
const dataDir = path.resolve(process.env.ORDERFLOW_DATA_DIR ?? path.join(projectRoot, '.data'));
const procs: ProcessRef[] = readPids(dataDir).map(({ pid, name }) => ({
  pid,
  name,
  running: true,
}));
if (!procs.some((p) => fs.existsSync(`/proc/${p.pid}`)))
  throw new Error(`no running stack in ${pidFileOf(dataDir)} (npm start)`);
const ordersWorker = procs.find((p) => p.name === 'worker-orders')?.pid;

/** CPU ms of each thread of `pid`, summed by thread name. */
function threadMs(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (pid === undefined) return out;
  for (const tid of threadsOf(pid)) {
    try {
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(name, (out.get(name) ?? 0) + (cpuSeconds(pid, tid) ?? 0) * 1000);
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

const ms = (ticks: number) => (ticks / CLK_TCK) * 1000;
const db = new pg.Pool({ connectionString: config.DATABASE_URL, max: 2 });
try {
  log(`at rest for ${REST_S} s`);
  const r0 = procSnapshot();
  await delay(REST_S * 1000);
  const r1 = procSnapshot();
  const restSeconds = (r1.at - r0.at) / 1000;
  const rest = ticksBetween(r0, r1, procs);

  log(`${rate} orders/s for ${seconds} s`);
  const a = procSnapshot();
  const threadsBefore = threadMs(ordersWorker);
  const count = Math.round(rate * seconds);
  const t0 = Date.now();
  const posts: Promise<string | null>[] = [];
  for (let i = 0; i < count; i++) {
    const wait = t0 + (i * 1000) / rate - Date.now();
    if (wait > 0) await delay(wait);
    posts.push(
      postOrder(apiUrl).then(
        (o) => o.id,
        () => null,
      ),
    );
  }
  const ids = (await Promise.all(posts)).filter((id): id is string => id !== null);
  await drain(db, 'orderflow', DRAIN_S);
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM orders WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'`,
    [ids],
  );
  const completed = rows[0]?.n ?? 0;
  const b = procSnapshot();
  const threadsAfter = threadMs(ordersWorker);
  const loadSeconds = (b.at - a.at) / 1000;
  const load = ticksBetween(a, b, procs);

  console.log(
    `\n${count} orders posted at ${rate}/s: ${ids.length} accepted, ${completed} COMPLETED; ` +
      `${loadSeconds.toFixed(1)} s from the first POST to the last completion\n`,
  );
  console.log('| process | CPU ms per order | at rest, ms a second | per order, rest taken out |');
  console.log('|---|--:|--:|--:|');
  const per = (t: number) => (completed ? (ms(t) / completed).toFixed(2) : '–');
  const names = Object.keys(load).sort((x, y) => (load[y] ?? 0) - (load[x] ?? 0));
  for (const name of names) {
    const restPerS = ms(rest[name] ?? 0) / restSeconds;
    const net = Math.max(0, ms(load[name] ?? 0) - restPerS * loadSeconds);
    console.log(
      `| ${name} | ${per(load[name] ?? 0)} | ${restPerS.toFixed(1)} | ${completed ? (net / completed).toFixed(2) : '–'} |`,
    );
  }
  console.log('\n| orders worker thread | CPU ms per order |\n|---|--:|');
  const threads = [...threadsAfter].map(([name, after]) => ({
    name,
    spent: after - (threadsBefore.get(name) ?? 0),
  }));
  for (const { name, spent } of threads.sort((x, y) => y.spent - x.spent))
    if (spent > 0) console.log(`| ${name} | ${completed ? (spent / completed).toFixed(2) : '–'} |`);
} finally {
  await db.end();
}
