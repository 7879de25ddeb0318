/**
 * bench/run.ts part `sustained`: orderflow and then the peer, end to end in a
 * closed loop (a new POST whenever an order reaches COMPLETED): orders/s,
 * POST → COMPLETED latency, CPU and peak RSS per process and CPU ms per
 * completed order.
 */
import os from 'node:os';
import type pg from 'pg';
import type { AppStack } from '../../scripts/lib/app-stack.ts';
import { closedLoop, type Window } from '../lib/closed-loop.ts';
import {
  cpuMsPerOrder,
  cpuPerOrderTable,
  isOrderflowApp,
  isPeerApp,
  type CpuPerOrder,
  type System,
} from '../lib/cpu-per-order.ts';
import { CompletionWatcher, log, postOrder } from '../lib/e2e-kit.ts';
import { TABLE, drain } from '../lib/order-load.ts';
import { fmtNum as f, mib } from '../lib/report-format.ts';
import { sumWhere, type Summary } from '../lib/stats.ts';
import type { RunSettings } from '../run-settings.ts';
import { countersPer, readTemporalCounters } from '../lib/temporal-counters.ts';

export interface SustainedResult {
  system: System;
  seconds: number;
  inFlight: number;
  completed: number;
  ordersPerS: number;
  perSecond: number[];
  postErrors: number;
  latencyMs: Summary;
  cores: Record<string, number>;
  rssPeakKiB: Record<string, number>;
  /** CPU ms per COMPLETED order over the counted window, per group of processes. */
  cpuMsPerOrder: CpuPerOrder;
  /** orderflow: the Temporal server's requests and persistence calls per COMPLETED order (bench/lib/temporal-counters.ts). */
  temporalPerOrder?: [string, number][];
  /** The counted window, epoch ms. */
  window?: Window;
}

/**
 * Closed loop over the whole pipeline: `inFlight` orders in the system at a
 * time (a new POST whenever one reaches COMPLETED), so the backlog stays
 * bounded; counts completions after a warm-up.
 */
export async function sustained(
  app: AppStack,
  sys: System,
  apiUrl: string,
  db: pg.Pool,
  settings: RunSettings,
): Promise<SustainedResult> {
  log(
    `sustained: ${sys}, ${settings.sustainedInFlight} orders in flight, ${settings.sustainedWarmupS} s warm-up + ${settings.sustainedS} s`,
  );
  const loop = await closedLoop({
    inFlight: settings.sustainedInFlight,
    warmupS: settings.sustainedWarmupS,
    seconds: settings.sustainedS,
    procs: () => app.stack.procs,
    start: async (seq) => (await postOrder(apiUrl, `sustained-${sys}-${seq}@bench.local`)).id,
    completions: (onCompleted) => new CompletionWatcher(db, 100, TABLE[sys], onCompleted),
    ...(sys === 'orderflow'
      ? { counters: () => readTemporalCounters(app.ports.temporalMetrics) }
      : {}),
  });
  const r: SustainedResult = {
    system: sys,
    seconds: loop.seconds,
    inFlight: loop.inFlight,
    completed: loop.completed,
    ordersPerS: loop.rate,
    perSecond: loop.perSecond,
    postErrors: loop.startErrors,
    latencyMs: loop.latencyMs,
    cores: loop.cores,
    rssPeakKiB: loop.rssPeakKiB,
    window: loop.window,
    cpuMsPerOrder: cpuMsPerOrder(sys, loop.cores, loop.seconds, loop.completed),
    ...(sys === 'orderflow'
      ? { temporalPerOrder: countersPer(loop.counters.before, loop.counters.after, loop.completed) }
      : {}),
  };
  log(
    `  ${r.ordersPerS} orders/s COMPLETED (${loop.leftInFlight} still in flight), POST errors ${r.postErrors}`,
  );
  await drain(db, sys, settings.drainS);
  return r;
}
/** Its rows of the orderflow-vs-peer table. */
export function sustainedComparison(list: SustainedResult[], settings: RunSettings): string[] {
  const s = (sys: System) => list.find((x) => x.system === sys);
  const sum = (
    x: SustainedResult | undefined,
    pick: (name: string) => boolean,
    rec: 'cores' | 'rssPeakKiB',
  ) => (x ? sumWhere(x[rec], pick) : NaN);
  const perOrder = (x: SustainedResult | undefined) =>
    x
      ? `${f(x.cpuMsPerOrder.app, 2)} + ${f(x.cpuMsPerOrder.broker, 2)} (with PostgreSQL and Kafka ${f(x.cpuMsPerOrder.total, 2)})`
      : '–';
  return [
    `| end-to-end: orders/s reaching COMPLETED (${settings.sustainedInFlight} in flight, ${settings.sustainedS} s) | ${f(s('orderflow')?.ordersPerS, 1)} | ${f(s('peer')?.ordersPerS, 1)} |`,
    `| end-to-end: POST → COMPLETED p50 / p99 ms at that load | ${f(s('orderflow')?.latencyMs.p50)} / ${f(s('orderflow')?.latencyMs.p99)} | ${f(s('peer')?.latencyMs.p50)} / ${f(s('peer')?.latencyMs.p99)} |`,
    `| CPU cores: app processes + broker (Temporal / Redis) | ${f(sum(s('orderflow'), isOrderflowApp, 'cores'), 2)} + ${f(s('orderflow')?.cores.temporal, 2)} | ${f(sum(s('peer'), isPeerApp, 'cores'), 2)} + ${f(s('peer')?.cores.redis, 2)} |`,
    `| CPU ms per completed order: app processes + broker | ${perOrder(s('orderflow'))} | ${perOrder(s('peer'))} |`,
    `| cores used outside this bench during the throughput run (of ${os.availableParallelism()}) | ${f(s('orderflow')?.cores.other, 2)} | ${f(s('peer')?.cores.other, 2)} |`,
    `| peak RSS MiB: app processes + broker | ${mib(sum(s('orderflow'), isOrderflowApp, 'rssPeakKiB'))} + ${mib(s('orderflow')?.rssPeakKiB.temporal)} | ${mib(sum(s('peer'), isPeerApp, 'rssPeakKiB'))} + ${mib(s('peer')?.rssPeakKiB.redis)} |`,
  ];
}

export function renderSustained(list: SustainedResult[], settings: RunSettings): string[] {
  const names = [...new Set(list.flatMap((x) => Object.keys(x.cores)))].filter(
    (k) => k !== 'machine',
  );
  return [
    `## Sustained end-to-end throughput`,
    '',
    `${settings.sustainedInFlight} orders kept in flight (a new POST when one is COMPLETED), ${settings.sustainedWarmupS} s warm-up, then ${settings.sustainedS} s counted; no webhook endpoint subscribed (the webhook rate limit would cap it), so each order is email + Kafka event (+ bookkeeping).`,
    '',
    '| system | orders/s COMPLETED | POST → COMPLETED p50 / p99 ms | POST errors |',
    '|---|--:|--:|--:|',
    ...list.map(
      (x) =>
        `| ${x.system} | **${x.ordersPerS}** | ${f(x.latencyMs.p50)} / ${f(x.latencyMs.p99)} | ${x.postErrors} |`,
    ),
    '',
    'CPU (cores, from /proc/<pid>/stat over the counted window) and peak VmRSS (MiB, sampled every 250 ms) per process group:',
    '',
    `| process | ${list.map((x) => `${x.system} cores | ${x.system} RSS`).join(' | ')} |`,
    `|---|${list.map(() => '--:|--:').join('|')}|`,
    ...names.map(
      (n) =>
        `| ${n} | ${list.map((x) => `${f(x.cores[n], 2)} | ${mib(x.rssPeakKiB[n])}`).join(' | ')} |`,
    ),
    '',
    'CPU ms per completed order (cores × seconds × 1000 ÷ orders COMPLETED in the counted window); broker = the Temporal server / Redis, app processes = orderflow’s API, relay, workers and consumers / the peer’s API and workers; the load generator, maildev and the other system’s idle processes are left out:',
    '',
    ...cpuPerOrderTable(
      list
        .filter((x) => x.cpuMsPerOrder)
        .map((x) => ({
          name: `${x.system} sustained`,
          system: x.system,
          orders: x.completed,
          perOrder: x.cpuMsPerOrder,
        })),
    ),
    '',
  ];
}

/** orderflow's second window, run after the Temporal floor's (bench/run.ts, BENCH_FLOOR_PAIRED). */
export function renderSustainedAgain(x: SustainedResult): string[] {
  return [
    `orderflow again, after the Temporal floor's windows (the same closed loop; the floor's ratio uses the mean of both orderflow windows): **${x.ordersPerS}** orders/s COMPLETED, POST → COMPLETED p50 / p99 ${f(x.latencyMs.p50)} / ${f(x.latencyMs.p99)} ms, ${x.postErrors} POST errors, CPU ms per completed order ${f(x.cpuMsPerOrder.app, 2)} app + ${f(x.cpuMsPerOrder.broker, 2)} Temporal (with PostgreSQL and Kafka ${f(x.cpuMsPerOrder.total, 2)}).`,
    '',
  ];
}
