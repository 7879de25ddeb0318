/**
 * bench/run.ts part `backlog`: `orders` orders posted at once (as fast as
 * the API takes them, `connections` requests at a time, no pacing), then how
 * fast they complete: orders reaching COMPLETED per second over the first
 * `windowS` seconds after the posting started, against the steady rate of the
 * sustained part of the same run, the time until all completed (bounded), and
 * the CPU per completed order, Temporal and the app processes apart.
 */
import type pg from 'pg';
import type { ManagedProcess } from '../../scripts/lib/process.ts';
import { cpuMsPerOrder, cpuPerOrderTable, type CpuPerOrder } from '../lib/cpu-per-order.ts';
import { delay, log, now, postOrder } from '../lib/e2e-kit.ts';
import { coresBetween, procSnapshot } from '../lib/proc-stats.ts';
import { countersPer, type TemporalCounters } from '../lib/temporal-counters.ts';
import { coreLine, fmtNum as f, ratioCell } from '../lib/report-format.ts';
import { perSecond, round, summary, type Summary } from '../lib/stats.ts';

export interface BacklogResult {
  orders: number;
  connections: number;
  windowS: number;
  posting: {
    accepted: number;
    errors: number;
    statusCodes: Record<string, number>;
    seconds: number;
    perS: number;
    latencyMs: Summary;
  };
  completedInWindow: number;
  /** The window measured: windowS, or until the last order completed when that came sooner. */
  windowUsedS: number;
  /** Orders COMPLETED per second over the window. */
  windowRate: number;
  /** The sustained part's orders/s in the same run; null when it did not run. */
  steadyRate: number | null;
  ratio: number | null;
  /**
   * The drain once the backlog exists: orders COMPLETED per second over the
   * windowS seconds after the last POST was answered (while posting, the
   * background yields the CPU to the API by design), and its ratio to the steady rate.
   */
  afterPosting?: { completed: number; windowUsedS: number; rate: number; ratio: number | null };
  /** Posting started → last order COMPLETED; null when not within the bound. */
  allCompletedS: number | null;
  drainBoundS: number;
  completed: number;
  /** Orders COMPLETED per second since the posting started. */
  completedPerSecond: number[];
  /** From the posting's start until all completed (or the bound). */
  seconds: number;
  cores: Record<string, number>;
  cpuMsPerOrder: CpuPerOrder;
  /** The Temporal server's requests and persistence calls per completed order over the same time (bench/lib/temporal-counters.ts). */
  temporalPerOrder?: [string, number][];
}

/** POSTs `count` orders, `connections` at a time; what each answered. */
async function postAll(apiUrl: string, count: number, connections: number) {
  const ids: string[] = [];
  const latencies: number[] = [];
  const statusCodes: Record<string, number> = {};
  let next = 0;
  const tag = Date.now().toString(36);
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        const r = await postOrder(apiUrl, `backlog-${tag}-${i}@bench.local`);
        ids.push(r.id);
        latencies.push(r.answeredAt - r.sentAt);
        statusCodes['2xx'] = (statusCodes['2xx'] ?? 0) + 1;
      } catch (e) {
        const m = /answered (\d+)/.exec((e as Error).message);
        const k = m ? m[1]! : `socket: ${(e as Error).message}`;
        statusCodes[k] = (statusCodes[k] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(connections, count) }, lane));
  return { ids, latencies, statusCodes };
}

async function completedCount(db: pg.Pool, ids: string[]): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM orders WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'`,
    [ids],
  );
  return Number(rows[0]!.n);
}

export async function backlog(opts: {
  apiUrl: string;
  db: pg.Pool;
  procs: () => ManagedProcess[];
  orders: number;
  connections: number;
  windowS: number;
  /** Bound on waiting for all to complete, from the posting's start (at least the window). */
  drainS: number;
  steadyRate: number | null;
  /** The Temporal server's counters now (read when the posting starts and when all completed). */
  counters?: () => Promise<TemporalCounters>;
}): Promise<BacklogResult> {
  const { db } = opts;
  const readCounters = () => opts.counters?.() ?? Promise.resolve({});
  log(
    `backlog: ${opts.orders} orders posted at once (${opts.connections} at a time), completion rate over the first ${opts.windowS} s`,
  );
  const a = procSnapshot();
  const countersBefore = await readCounters();
  const t0 = now();
  const posted = await postAll(opts.apiUrl, opts.orders, opts.connections);
  const postedS = (now() - t0) / 1000;
  const accepted = posted.ids.length;
  log(
    `  ${accepted} accepted in ${round(postedS, 1)} s (${round(accepted / postedS, 0)}/s), ${opts.orders - accepted} errors`,
  );
  const postEnd = t0 + postedS * 1000;
  const deadline = Math.max(t0 + opts.drainS * 1000, postEnd + opts.windowS * 1000);
  let done = await completedCount(db, posted.ids);
  for (let i = 0; done < accepted && now() < deadline && i < 100_000; i++) {
    await delay(1000);
    done = await completedCount(db, posted.ids);
    if (i % 15 === 14)
      log(`  ${done}/${accepted} COMPLETED after ${round((now() - t0) / 1000, 0)} s`);
  }
  const b = procSnapshot();
  const countersAfter = await readCounters();
  const cores = coresBetween(a, b, opts.procs());
  const seconds = (b.at - a.at) / 1000;
  // Completion times from the rows (written by the workflow's last bookkeeping step).
  const times = (
    await db.query<{ t: number }>(
      `SELECT extract(epoch FROM updated_at)::float8 * 1000 AS t FROM orders
        WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'`,
      [posted.ids],
    )
  ).rows
    .map((r) => Number(r.t))
    .sort((x, y) => x - y);
  const last = times.at(-1) ?? t0;
  const allDone = times.length === accepted && accepted > 0;
  const windowEnd = t0 + opts.windowS * 1000;
  const completedInWindow = times.filter((t) => t < windowEnd).length;
  const windowUsedS = allDone && last < windowEnd ? (last - t0) / 1000 : opts.windowS;
  const windowRate = round(completedInWindow / Math.max(0.001, windowUsedS), 1);
  const afterEnd = postEnd + opts.windowS * 1000;
  const afterCompleted = times.filter((t) => t >= postEnd && t < afterEnd).length;
  const afterUsedS =
    allDone && last < afterEnd ? Math.max(0.001, (last - postEnd) / 1000) : opts.windowS;
  const afterRate = round(afterCompleted / afterUsedS, 1);
  const completedPerSecond = perSecond(times, t0);
  const r: BacklogResult = {
    orders: opts.orders,
    connections: opts.connections,
    windowS: opts.windowS,
    posting: {
      accepted,
      errors: opts.orders - accepted,
      statusCodes: posted.statusCodes,
      seconds: round(postedS, 1),
      perS: round(accepted / postedS, 0),
      latencyMs: summary(posted.latencies),
    },
    completedInWindow,
    windowUsedS: round(windowUsedS, 1),
    windowRate,
    steadyRate: opts.steadyRate,
    ratio: opts.steadyRate ? round(windowRate / opts.steadyRate, 3) : null,
    afterPosting: {
      completed: afterCompleted,
      windowUsedS: round(afterUsedS, 1),
      rate: afterRate,
      ratio: opts.steadyRate ? round(afterRate / opts.steadyRate, 3) : null,
    },
    allCompletedS: allDone ? round((last - t0) / 1000, 1) : null,
    drainBoundS: round((deadline - t0) / 1000, 0),
    completed: times.length,
    completedPerSecond,
    seconds: round(seconds, 1),
    cores,
    cpuMsPerOrder: cpuMsPerOrder('orderflow', cores, seconds, times.length),
    temporalPerOrder: countersPer(countersBefore, countersAfter, times.length),
  };
  log(
    `  ${afterRate} orders/s COMPLETED over the ${r.afterPosting!.windowUsedS} s after the posting${r.afterPosting!.ratio === null ? '' : ` (${Math.round(r.afterPosting!.ratio * 100)}% of the steady ${r.steadyRate}/s)`}`,
  );
  log(
    `  ${windowRate} orders/s COMPLETED over the first ${r.windowUsedS} s${r.ratio === null ? '' : ` (${Math.round(r.ratio * 100)}% of the steady ${r.steadyRate}/s)`}; all COMPLETED ${r.allCompletedS === null ? `not within ${r.drainBoundS} s (${r.completed}/${accepted})` : `after ${r.allCompletedS} s`}`,
  );
  return r;
}

/** Completions per `width` seconds: "12 30 28 …". */
const perBucket = (perSecond: number[], width: number) =>
  Array.from({ length: Math.ceil(perSecond.length / width) }, (_, i) =>
    perSecond.slice(i * width, (i + 1) * width).reduce((x, y) => x + y, 0),
  ).join(' ');

export function renderBacklog(r: BacklogResult, goal: number): string[] {
  const p = r.posting;
  return [
    `## Backlog: ${r.orders} orders at once`,
    '',
    `${r.orders} orders POSTed as fast as the API takes them (${r.connections} requests at a time, no pacing, no webhook endpoint), then orders reaching COMPLETED (the row's \`updated_at\`) per second over the first ${r.windowS} s after the posting started, against the steady rate: the sustained part's orders/s in this run.`,
    '',
    '| measure | value | goal |',
    '|---|--:|---|',
    `| posting: accepted / errors | ${p.accepted} / ${p.errors}${p.errors ? ` (${JSON.stringify(p.statusCodes)})` : ''} | |`,
    `| posting took | ${f(p.seconds, 1)} s (${f(p.perS)} req/s), POST p50 / p99 ${f(p.latencyMs.p50, 1)} / ${f(p.latencyMs.p99, 1)} ms | |`,
    `| orders/s COMPLETED over the first ${r.windowS} s | **${f(r.windowRate, 1)}** (${r.completedInWindow} orders${r.windowUsedS < r.windowS ? `; all were COMPLETED after ${f(r.windowUsedS, 1)} s, so over that time` : ''}) | |`,
    `| steady rate (sustained, same run) | ${r.steadyRate === null ? 'sustained did not run in this run: no ratio' : `${f(r.steadyRate, 1)} orders/s`} | |`,
    `| backlog rate ÷ steady rate | ${r.steadyRate === null ? '–' : ratioCell(r.windowRate, r.steadyRate)} | ≥ ${Math.round(goal * 100)}% |`,
    ...(r.afterPosting
      ? [
          `| orders/s COMPLETED over the ${r.windowS} s after the last POST was answered (the drain of the backlog) | **${f(r.afterPosting.rate, 1)}** (${r.afterPosting.completed} orders) | |`,
          `| drain rate ÷ steady rate | ${r.steadyRate === null ? '–' : ratioCell(r.afterPosting.rate, r.steadyRate)} | ≥ ${Math.round(goal * 100)}% |`,
        ]
      : []),
    `| all ${p.accepted} accepted COMPLETED after (from the posting's start) | ${r.allCompletedS === null ? `not within ${r.drainBoundS} s (${r.completed} COMPLETED)` : `${f(r.allCompletedS, 1)} s`} | |`,
    '',
    `Orders COMPLETED per 10 s since the posting started: ${perBucket(r.completedPerSecond, 10)}`,
    '',
    `CPU ms per completed order, from the posting's start until all completed (or the bound), ${f(r.seconds, 0)} s:`,
    '',
    ...cpuPerOrderTable([
      {
        name: 'orderflow backlog',
        system: 'orderflow',
        orders: r.completed,
        perOrder: r.cpuMsPerOrder,
      },
    ]),
    '',
    `CPU cores over that time: ${coreLine(r.cores)}.`,
    '',
    ...(r.temporalPerOrder?.length
      ? [
          `The Temporal server's requests and persistence calls per completed order over that time (its own counters; the operations of at least 0.05 per order): ${r.temporalPerOrder
            .filter(([, v]) => v >= 0.05)
            .map(([k, v]) => `${k.replace(':', ' ')} ${f(v, 2)}`)
            .join(', ')}.`,
          '',
        ]
      : []),
  ];
}
