/**
 * bench/intake: load on `POST /orders` over loopback, side by side with a floor.
 *
 * One run starts its own stack (PostgreSQL with fsync on, Temporal, Kafka,
 * maildev) in a temporary folder, the orders worker (with BENCH_NPM_START=1
 * every worker and consumer, as `npm start` runs them), one API per
 * WORKFLOW_START_MODE (relay, with the relay process beside it, as `npm start`
 * runs it; async; inline) and the floor server (bench/floor-server.ts: the same
 * request doing only the validated insert). Then, for each rate and finally at
 * saturation, it drives each target in turn with autocannon, interleaved so
 * drift affects all of them alike, and writes bench/results/intake-<date>.md
 * (+ .json) with latency, throughput, errors, CPU per component, the workflow
 * start backlog and a verdict per goal.
 *
 * Only the target being measured runs: the other API is paused (SIGSTOP) so its
 * relay neither competes for CPU nor drains the measured API's backlog. Before
 * each measurement the previous load has settled (no pending workflow start,
 * the stack quiet) and the rest of the machine is quiet; a measurement during
 * which other processes took CPU is repeated.
 *
 * Environment (all optional):
 *   BENCH_DURATION_S=10        seconds per measurement
 *   BENCH_WARMUP_S=3           warm-up per target, at BENCH_WARMUP_RATE (300) req/s
 *   BENCH_RATES=100,300,1000   fixed rates, req/s ("none": saturation only)
 *   BENCH_TARGETS=floor,api-relay,api-async,api-inline
 *   BENCH_NPM_START=0          1: the APIs, the relay and the workers get only what `npm start`
 *                              gives them (no LOG_LEVEL, NODE_ENV, DATABASE_POOL_SIZE or
 *                              API_KEYS: their defaults info, development, 10, none), and the
 *                              whole stack runs as under `npm start` (the four workers and the
 *                              two consumers process every order); 0: the APIs at LOG_LEVEL=warn
 *                              and NODE_ENV=production, only the orders worker running
 *   BENCH_BACKGROUND_PRIORITY=idle  CPU priority of Temporal, Kafka, maildev, the relay, the
 *                              workers and the consumers, as `npm start` runs them
 *                              (BACKGROUND_PRIORITY: idle | a niceness 1-19 | normal)
 *   BENCH_SATURATION=1         0 skips the saturation round
 *   BENCH_RATE_CONNECTIONS=50  connections at fixed rates (autocannon caps them at the rate)
 *   BENCH_SAT_CONNECTIONS=64   connections at saturation
 *   BENCH_POOL_SIZE=10         DATABASE_POOL_SIZE of the APIs and the floor
 *   BENCH_DRAIN_S=120          bound on waiting for the backlog after a phase
 *   BENCH_BURST_RATES=300      rates also measured with burst pacing (see Pacing); "" for none
 *   BENCH_MAX_MIN=90           bound on the whole run
 *   BENCH_OTHER_MAX_CENTICORES=15  CPU other processes may use (0.15 cores): each
 *                              measurement waits for that (≤ BENCH_IDLE_WAIT_S=300)
 *                              and is repeated (≤ BENCH_RETRIES=2) when others took
 *                              more than twice that meanwhile
 *   BENCH_FREEZE=              investigation: stack processes to SIGSTOP during each load,
 *                              e.g. "temporal,worker-orders" (workflow starts then wait)
 *   BENCH_NICE=                investigation: stack processes to renice to 19 (lowest CPU
 *                              priority), e.g. "temporal,worker-orders"
 *   BENCH_PROFILE_DIR=         write CPU profiles of the APIs and the floor there (bench/cpu-profiler.mjs)
 *   BENCH_REF=<commit>         measure a commit instead of the working tree (see fromCommit())
 *   BENCH_LABEL=               suffix of the result files
 *   BENCH_KEEP_DATA=1          keep the temporary stack folder (logs, database)
 */
import autocannon from 'autocannon';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  delay,
  describeCpuPriority,
  freePort,
  parseCpuPriority,
  signalGroup,
  tailFile,
  type ManagedProcess,
} from '../scripts/lib/process.ts';
import { APP_PROCESSES, RUNNING_LOG_LINE } from '../scripts/lib/stack.ts';
import { projectRoot } from '../scripts/lib/tools.ts';
import { log } from './lib/e2e-kit.ts';
import { coresBetween, mainThread, procSnapshot, type Snapshot } from './lib/proc-stats.ts';
import { fmtNum } from './lib/report-format.ts';
import { freeResultBase, resultsDir } from './lib/results.ts';
import { guardedStack } from './lib/run-guard.ts';
import { intEnv } from '../scripts/lib/env-settings.ts';
import { labelEnv } from './lib/settings.ts';
import { percentile, round } from './lib/stats.ts';

// ---------------------------------------------------------------- settings

const TARGET_NAMES = ['floor', 'api-relay', 'api-async', 'api-inline'] as const;
/** The APIs measured against the floor. */
const API_TARGETS = ['api-relay', 'api-async', 'api-inline'] as const;
/** Off the request path: run at BENCH_BACKGROUND_PRIORITY, as scripts/stack.ts does. */
const BACKGROUND = new Set([
  'temporal',
  'kafka',
  'maildev',
  'relay',
  ...APP_PROCESSES.filter((a) => a.name !== 'api' && a.name !== 'relay').map((a) => a.name),
]);
type TargetName = (typeof TARGET_NAMES)[number];

const settings = {
  durationS: intEnv('BENCH_DURATION_S', 10, 1, 300),
  warmupS: intEnv('BENCH_WARMUP_S', 3, 0, 60),
  warmupRate: intEnv('BENCH_WARMUP_RATE', 300, 1, 100_000),
  rates: (process.env.BENCH_RATES === 'none' ? '' : process.env.BENCH_RATES || '100,300,1000')
    .split(',')
    .filter((r) => r.trim() !== '')
    .map((r) => {
      const n = Number(r.trim());
      if (!Number.isInteger(n) || n < 1 || n > 100_000)
        throw new Error(`BENCH_RATES: bad rate ${r}`);
      return n;
    }),
  targets: (process.env.BENCH_TARGETS || TARGET_NAMES.join(',')).split(',').map((t) => {
    const name = t.trim() as TargetName;
    if (!TARGET_NAMES.includes(name)) throw new Error(`BENCH_TARGETS: unknown target ${t}`);
    return name;
  }),
  /** Rates also measured with burst pacing (autocannon's plain overallRate); all use spread. */
  burstRates: (process.env.BENCH_BURST_RATES ?? '300')
    .split(',')
    .filter((r) => r.trim() !== '')
    .map((r) => {
      const n = Number(r.trim());
      if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_BURST_RATES: bad rate ${r}`);
      return n;
    }),
  saturation: process.env.BENCH_SATURATION !== '0',
  rateConnections: intEnv('BENCH_RATE_CONNECTIONS', 50, 1, 1000),
  satConnections: intEnv('BENCH_SAT_CONNECTIONS', 64, 1, 1000),
  poolSize: intEnv('BENCH_POOL_SIZE', 10, 1, 200),
  drainS: intEnv('BENCH_DRAIN_S', 120, 1, 600),
  maxMin: intEnv('BENCH_MAX_MIN', 90, 1, 480),
  /** CPU (cores) other processes may use while measuring; more repeats the measurement. */
  otherMax: intEnv('BENCH_OTHER_MAX_CENTICORES', 15, 1, 200) / 100,
  idleWaitS: intEnv('BENCH_IDLE_WAIT_S', 300, 0, 3600),
  retries: intEnv('BENCH_RETRIES', 2, 0, 10),
  /** Investigation: stack processes frozen (SIGSTOP) while a load runs, e.g. "temporal,worker-orders". */
  freeze: (process.env.BENCH_FREEZE ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
  /** Investigation: stack processes run at the lowest CPU priority (renice 19), e.g. "temporal,worker-orders". */
  nice: (process.env.BENCH_NICE ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
  backgroundPriority: parseCpuPriority(
    process.env.BENCH_BACKGROUND_PRIORITY ?? 'idle',
    'BENCH_BACKGROUND_PRIORITY',
  ),
  label: labelEnv(),
  keepData: process.env.BENCH_KEEP_DATA === '1',
  /** The APIs and the stack as `npm start` runs them (see BENCH_NPM_START above). */
  npmStart: process.env.BENCH_NPM_START === '1',
};

/** Goals from the issue. */
const GOALS = {
  goalRate: 300,
  p50MaxMs: 10,
  p99MaxRatio: 1.5,
  satMinThroughputRatio: 0.55,
  /** A fixed rate counts as sustained at this share of it. */
  minRateRatio: 0.97,
};

// ---------------------------------------------------------------- CPU accounting

/** Processes whose main thread is watched (the targets). */
const schedPids = new Set<number>();

const cpuSnapshot = () => procSnapshot({ schedPids });

/**
 * Cores used per component between two snapshots: a process counts for the
 * stack process whose group or tree it is in (PostgreSQL's backends run in
 * sessions of their own) or for this runner ("loadgen"); "total" is the whole
 * machine, "other" everything on it outside this bench.
 */
const cpuCores = (a: Snapshot, b: Snapshot, procs: ManagedProcess[]) =>
  coresBetween(a, b, procs, { runner: 'loadgen', machine: 'total' });

// ---------------------------------------------------------------- load

interface LoadResult {
  target: TargetName;
  phase: string;
  /** Requested req/s; null at saturation. */
  rate: number | null;
  pacing: Pacing | null;
  connections: number;
  durationS: number;
  completed: number;
  ok: number;
  /** 202: accepted while Temporal was unreachable (a 2xx, reported apart). */
  accepted202: number;
  non2xx: number;
  socketErrors: number;
  timeouts: number;
  errors: number;
  statusCodes: Record<string, number>;
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** autocannon's own percentiles (whole milliseconds), when one instance ran. */
  autocannonLatencyMs: { p50: number; p99: number } | null;
  cpuCores: Record<string, number>;
  /** The target's main thread (event loop): share of the time on CPU and runnable but waiting. */
  eventLoop: { onCpu: number; waitingForCpu: number } | null;
  backlog?: Backlog;
  /** Measurements taken; a run disturbed by other processes is repeated. */
  attempts?: number;
}

interface Backlog {
  pendingStartsAtEnd: number;
  unfinishedWorkflowsAtEnd: number;
  /** ms after the load stopped until no start was pending; null when not within the bound. */
  startsDrainedMs: number | null;
  /** ms until every workflow had completed; null when not within the bound. */
  workflowsDoneMs: number | null;
  /** ms until nothing was pending and the stack was quiet; null when not within the bound. */
  quietMs: number | null;
}

const orderBody = JSON.stringify({
  customerEmail: 'bench+[<id>]@example.com',
  currency: 'EUR',
  items: [
    { sku: 'BENCH-1', quantity: 2, unitPriceCents: 1299 },
    { sku: 'BENCH-2', quantity: 1, unitPriceCents: 4500 },
  ],
});

/** Running autocannon instances, stopped on SIGINT. */
const running = new Set<autocannon.Instance>();

/**
 * How a fixed rate is paced. autocannon's limiter lets each connection send
 * its share of the rate back to back, then wait for the next one-second
 * window; all connections' windows start together, so "burst" (one instance,
 * `overallRate`) sends the whole second's requests at once over every
 * connection. "spread" runs one single-connection instance per connection
 * (same connections, same rate each) with their windows staggered evenly
 * across the second: the arrivals of a steady rate.
 */
type Pacing = 'burst' | 'spread';

function runOne(
  opts: autocannon.Options,
  latencies: number[],
  statuses: number[],
): Promise<autocannon.Result> {
  return new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(opts, (err, res) => {
      running.delete(instance);
      if (err) reject(err);
      else resolve(res);
    });
    if (typeof instance.stop === 'function') running.add(instance);
    instance.on('response', (_client, status, _bytes, ms) => {
      latencies.push(ms);
      statuses.push(status);
    });
  });
}

async function drive(
  target: Target,
  phase: string,
  rate: number | null,
  pacing: Pacing,
  durationS: number,
  procs: ManagedProcess[],
): Promise<LoadResult> {
  const base: autocannon.Options = {
    url: `${target.url}/orders`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: orderBody,
    idReplacement: true,
    duration: durationS,
    timeout: 10,
  };
  // At a fixed rate latency is recorded as measured: autocannon's correction
  // for coordinated omission assumes 1 ms between requests (Math.ceil(1 / rate)).
  const fixed = { ignoreCoordinatedOmission: true };
  const connections =
    rate === null ? settings.satConnections : Math.min(settings.rateConnections, rate);
  const plan: { startMs: number; opts: autocannon.Options }[] =
    rate === null
      ? [{ startMs: 0, opts: { ...base, connections } }]
      : pacing === 'burst'
        ? [{ startMs: 0, opts: { ...base, ...fixed, connections, overallRate: rate } }]
        : Array.from({ length: connections }, (_, i) => ({
            startMs: Math.round((i * 1000) / connections),
            opts: {
              ...base,
              ...fixed,
              connections: 1,
              overallRate: Math.floor(rate / connections) + (i < rate % connections ? 1 : 0),
            },
          }));
  const latencies: number[] = [];
  const statuses: number[] = [];
  const before = cpuSnapshot();
  const results = await Promise.all(
    plan.map(({ startMs, opts }) => delay(startMs).then(() => runOne(opts, latencies, statuses))),
  );
  const after = cpuSnapshot();
  const sum = (f: (r: autocannon.Result) => number) => results.reduce((a, r) => a + f(r), 0);
  const duration = sum((r) => r.duration) / results.length;
  const statusCodes: Record<string, number> = {};
  for (const code of statuses) statusCodes[code] = (statusCodes[code] ?? 0) + 1;
  const ok = sum((r) => r['2xx']);
  const non2xx = sum((r) => r.non2xx);
  const socketErrors = sum((r) => r.errors);
  const timeouts = sum((r) => r.timeouts);
  latencies.sort((a, b) => a - b);
  return {
    target: target.name,
    phase,
    rate,
    pacing: rate === null ? null : pacing,
    connections,
    durationS: round(duration, 2),
    completed: latencies.length,
    ok,
    accepted202: statusCodes['202'] ?? 0,
    non2xx,
    socketErrors,
    timeouts,
    errors: non2xx + socketErrors + timeouts,
    statusCodes,
    throughput: round(ok / duration, 1),
    latencyMs: {
      p50: round(percentile(latencies, 50), 2),
      p90: round(percentile(latencies, 90), 2),
      p99: round(percentile(latencies, 99), 2),
      max: round(latencies.at(-1) ?? NaN, 2),
      mean: round(latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length), 2),
    },
    autocannonLatencyMs:
      results.length === 1 ? { p50: results[0]!.latency.p50, p99: results[0]!.latency.p99 } : null,
    cpuCores: cpuCores(before, after, procs),
    eventLoop: mainThread(before, after, target.proc.pid),
  };
}

// ---------------------------------------------------------------- stack

interface Target {
  name: TargetName;
  url: string;
  proc: ManagedProcess;
  /** Processes that run (and are paused) with it: api-relay's relay. */
  companions: ManagedProcess[];
}

async function httpOk(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return res.ok;
}

/** Stack processes together below this many cores: the previous load has been worked off. */
const QUIET_CORES = 0.3;

class Backlogs {
  constructor(
    private readonly pool: pg.Pool,
    private readonly procs: ManagedProcess[],
  ) {}

  async counts(): Promise<{ pending: number; unfinished: number }> {
    const { rows } = await this.pool.query<{ pending: string; unfinished: string }>(`
      SELECT
        (SELECT count(*) FROM workflow_starts WHERE started_at IS NULL) AS pending,
        (SELECT count(*) FROM orders o
          WHERE o.status <> 'COMPLETED'
            AND EXISTS (SELECT 1 FROM workflow_starts w WHERE w.order_id = o.id)) AS unfinished`);
    return { pending: Number(rows[0]!.pending), unfinished: Number(rows[0]!.unfinished) };
  }

  /**
   * Polls every 500 ms, bounded by boundMs, until no workflow start is pending
   * and the stack is quiet (below QUIET_CORES for two polls in a row), which
   * also covers workflows that wait on workers this bench does not run.
   */
  async drain(boundMs: number): Promise<Backlog> {
    const t0 = Date.now();
    const first = await this.counts();
    const out: Backlog = {
      pendingStartsAtEnd: first.pending,
      unfinishedWorkflowsAtEnd: first.unfinished,
      startsDrainedMs: first.pending === 0 ? 0 : null,
      workflowsDoneMs: first.unfinished === 0 ? 0 : null,
      quietMs: null,
    };
    let last = first;
    let quietPolls = 0;
    let snap = cpuSnapshot();
    for (let i = 0; i < 10_000 && Date.now() - t0 <= boundMs; i++) {
      await delay(500);
      const next = cpuSnapshot();
      const c = cpuCores(snap, next, this.procs);
      snap = next;
      const stackCores = (c.total ?? 0) - (c.other ?? 0) - (c.loadgen ?? 0);
      last = await this.counts();
      const t = Date.now() - t0;
      if (out.startsDrainedMs === null && last.pending === 0) out.startsDrainedMs = t;
      if (out.workflowsDoneMs === null && last.pending === 0 && last.unfinished === 0)
        out.workflowsDoneMs = t;
      quietPolls = last.pending === 0 && stackCores < QUIET_CORES ? quietPolls + 1 : 0;
      if (quietPolls >= 2) {
        out.quietMs = t;
        break;
      }
    }
    if (out.quietMs === null) {
      log(
        `  not settled within ${boundMs / 1000} s: ${last.pending} starts pending, ${last.unfinished} workflows unfinished`,
      );
    }
    return out;
  }
}

// ---------------------------------------------------------------- report

interface MachineInfo {
  date: string;
  nproc: number;
  cpuModel: string;
  memory: string;
  node: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  gitCommit: string;
  gitDirty: string[];
  autocannon: string;
  loadavgAtStart: number[];
  idleCpuCoresBeforeLoad: Record<string, number>;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { cwd: projectRoot, encoding: 'utf8' }).trimEnd();
  } catch (e) {
    return `(${cmd} failed: ${(e as Error).message.split('\n')[0]})`;
  }
}

const fmt = (x: number | null | undefined, d = 1) => fmtNum(x, d);

function phaseTable(rows: LoadResult[], floor: LoadResult | undefined): string {
  const head = [
    '| target | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | errors (non-2xx / socket / timeout) | 202 | p99 ÷ floor | req/s ÷ floor | outside load (cores) |',
    '|---|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|',
  ];
  const body = rows.map((r) => {
    const p99r = floor ? r.latencyMs.p99 / floor.latencyMs.p99 : NaN;
    const thr = floor ? r.throughput / floor.throughput : NaN;
    return `| ${r.target} | ${r.connections} | ${fmt(r.throughput)} | ${fmt(r.latencyMs.p50, 2)} | ${fmt(r.latencyMs.p90, 2)} | ${fmt(r.latencyMs.p99, 2)} | ${fmt(r.latencyMs.max, 1)} | ${r.errors} (${r.non2xx} / ${r.socketErrors} / ${r.timeouts}) | ${r.accepted202} | ${fmt(p99r, 2)} | ${fmt(thr, 2)} | ${fmt(r.cpuCores.other, 2)} |`;
  });
  return [...head, ...body].join('\n');
}

function cpuTable(rows: LoadResult[]): string {
  const cols = [
    'target',
    'floor',
    'api-relay',
    'relay',
    'api-async',
    'api-inline',
    'postgresql',
    'temporal',
    'worker-orders',
    'kafka',
    'maildev',
    'loadgen',
    'other',
    'total',
  ];
  const head = [
    `| phase | ${cols.join(' | ')} | target's event loop: on CPU / waiting for a CPU |`,
    `|---|${cols.map((c) => (c === 'target' ? '---' : '--:')).join('|')}|--:|`,
  ];
  const body = rows.map(
    (r) =>
      `| ${r.phase} | ${r.target} | ${cols
        .slice(1)
        .map((c) => fmt(r.cpuCores[c], 2))
        .join(
          ' | ',
        )} | ${r.eventLoop ? `${fmt(r.eventLoop.onCpu, 2)} / ${fmt(r.eventLoop.waitingForCpu, 2)}` : '–'} |`,
  );
  return [...head, ...body].join('\n');
}

interface Verdict {
  goal: string;
  target: string;
  value: string;
  met: boolean | null;
}

function phaseTitle(r: LoadResult): string {
  if (r.rate === null) return `Saturation (no rate limit, ${r.connections} connections)`;
  return `${r.rate} req/s, ${r.pacing} pacing`;
}

function verdicts(results: LoadResult[]): Verdict[] {
  const out: Verdict[] = [];
  const find = (t: TargetName, phase: string) =>
    results.find((r) => r.target === t && r.phase === phase);
  const floorSat = find('floor', 'saturation');
  for (const t of API_TARGETS) {
    for (const pacing of ['spread', 'burst'] as const) {
      const phase = `${GOALS.goalRate}/${pacing}`;
      const at = `at ${GOALS.goalRate} req/s (${pacing})`;
      const floorRate = find('floor', phase);
      const r = find(t, phase);
      if (!r) continue;
      out.push({
        goal: `p50 ≤ ${GOALS.p50MaxMs} ms ${at}`,
        target: t,
        value: `${fmt(r.latencyMs.p50, 2)} ms`,
        met: r.latencyMs.p50 <= GOALS.p50MaxMs,
      });
      const ratio = floorRate ? r.latencyMs.p99 / floorRate.latencyMs.p99 : NaN;
      out.push({
        goal: `p99 ≤ ${GOALS.p99MaxRatio}× floor ${at}`,
        target: t,
        value: `${fmt(r.latencyMs.p99, 2)} ms vs ${fmt(floorRate?.latencyMs.p99, 2)} ms = ${fmt(ratio, 2)}×`,
        met: floorRate ? ratio <= GOALS.p99MaxRatio : null,
      });
      out.push({
        goal: `zero errors ${at}`,
        target: t,
        value: `${r.errors} errors, ${r.accepted202} × 202`,
        met: r.errors === 0,
      });
      // autocannon sends no more than the server answers: a shortfall is load not offered.
      out.push({
        goal: `sustains ${GOALS.goalRate} req/s (≥ ${Math.round(GOALS.minRateRatio * 100)}%) ${at}`,
        target: t,
        value: `${fmt(r.throughput)} req/s`,
        met: r.throughput >= GOALS.minRateRatio * GOALS.goalRate,
      });
    }
    const s = find(t, 'saturation');
    if (s) {
      const thr = floorSat ? s.throughput / floorSat.throughput : NaN;
      out.push({
        goal: `saturation throughput ≥ ${Math.round(GOALS.satMinThroughputRatio * 100)}% of floor`,
        target: t,
        value: `${fmt(s.throughput)} vs ${fmt(floorSat?.throughput)} req/s = ${fmt(thr * 100, 0)}%`,
        met: floorSat ? thr >= GOALS.satMinThroughputRatio : null,
      });
      const ratio = floorSat ? s.latencyMs.p99 / floorSat.latencyMs.p99 : NaN;
      out.push({
        goal: `saturation p99 ≤ ${GOALS.p99MaxRatio}× floor`,
        target: t,
        value: `${fmt(s.latencyMs.p99, 2)} ms vs ${fmt(floorSat?.latencyMs.p99, 2)} ms = ${fmt(ratio, 2)}×`,
        met: floorSat ? ratio <= GOALS.p99MaxRatio : null,
      });
    }
  }
  return out;
}

function renderReport(machine: MachineInfo, results: LoadResult[], verdictRows: Verdict[]): string {
  const measured = results.filter((r) => r.phase !== 'warmup');
  const phases = [...new Set(measured.map((r) => r.phase))];
  const lines: string[] = [
    `# bench/intake — ${machine.date}`,
    '',
    '`POST /orders` over loopback with autocannon; the floor is the same request doing only the validated insert (bench/floor-server.ts).',
    '',
    '## Machine',
    '',
    `- CPUs: ${machine.nproc} × ${machine.cpuModel}`,
    `- Memory (\`free -g\`):`,
    '',
    '```',
    machine.memory,
    '```',
    '',
    `- Node ${machine.node}, autocannon ${machine.autocannon}`,
    `- ${machine.postgres}; ${Object.entries(machine.postgresSettings)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`,
    `- code measured: ${machine.gitCommit}${machine.gitDirty.length ? ` + uncommitted changes in ${machine.gitDirty.join(', ')}` : ''}`,
    `- load average at start: ${machine.loadavgAtStart.map((x) => x.toFixed(2)).join(' ')}; cores busy before the load (stack idle): ${machine.idleCpuCoresBeforeLoad.total} (outside this bench: ${machine.idleCpuCoresBeforeLoad.other})`,
    `- settings: ${settings.durationS} s per measurement, warm-up ${settings.warmupS} s at ${settings.warmupRate} req/s per target, ${settings.rateConnections} connections at fixed rates (capped at the rate), ${settings.satConnections} at saturation, ${settings.npmStart ? `**as \`npm start\`** (BENCH_NPM_START=1): the APIs, the relay and the workers with npm start's environment (LOG_LEVEL, NODE_ENV, DATABASE_POOL_SIZE, API_KEYS unset: info, development, 10, none; the floor: DATABASE_POOL_SIZE=${settings.poolSize}), the whole stack running (relay, the four workers, the two consumers)` : `DATABASE_POOL_SIZE=${settings.poolSize}, NODE_ENV=production, API LOG_LEVEL=warn, only the orders worker and the relay running`}; Temporal, Kafka, maildev, the relay, workers and consumers at CPU priority ${describeCpuPriority(settings.backgroundPriority)} (as \`npm start\`)${settings.freeze.length ? `; **frozen (SIGSTOP) during each load: ${settings.freeze.join(', ')}**` : ''}${settings.nice.length ? `; **at the lowest CPU priority (nice 19): ${settings.nice.join(', ')}**` : ''}`,
    '',
    'Latency percentiles are computed from every response (unrounded); "errors" = non-2xx + socket errors + timeouts; 202 = accepted while Temporal was unreachable.',
    '',
    "Pacing of the fixed rates: autocannon lets each connection send its share of `overallRate` back to back and then wait for its next one-second window, and all windows start together. **burst** = one autocannon instance with `overallRate` (so every second begins with a burst of the whole second's requests over all connections); **spread** = one single-connection instance per connection, same rate each, windows staggered evenly across the second (the arrivals of a steady rate). Saturation = one instance, no rate limit.",
    '',
  ];
  for (const phase of phases) {
    const rows = measured.filter((r) => r.phase === phase);
    lines.push(
      `## ${phaseTitle(rows[0]!)}`,
      '',
      phaseTable(
        rows,
        rows.find((r) => r.target === 'floor'),
      ),
      '',
    );
  }
  lines.push('## Verdict', '', '| goal | target | measured | |', '|---|---|---|---|');
  for (const v of verdictRows) {
    lines.push(
      `| ${v.goal} | ${v.target} | ${v.value} | ${v.met === null ? 'n/a' : v.met ? 'met' : '**missed**'} |`,
    );
  }
  lines.push(
    '',
    '## Workflow-start backlog after each API phase',
    '',
    `Counted when the load stopped, then polled every 500 ms (bounded by ${settings.drainS} s): when no start was pending any more (the relay had drained), when every order's workflow had completed, and when the stack was quiet again (its processes below ${QUIET_CORES} cores for 1 s; the next measurement waits for this).`,
    '',
    '| phase | target | pending starts at end | relay drained in | unfinished workflows at end | all completed in | quiet in |',
    '|---|---|--:|--:|--:|--:|--:|',
  );
  const ms = (x: number | null) =>
    x === null ? `> ${settings.drainS} s` : `${(x / 1000).toFixed(1)} s`;
  for (const r of results.filter((x) => x.backlog)) {
    const b = r.backlog!;
    lines.push(
      `| ${r.phase} | ${r.target} | ${b.pendingStartsAtEnd} | ${ms(b.startsDrainedMs)} | ${b.unfinishedWorkflowsAtEnd} | ${ms(b.workflowsDoneMs)} | ${ms(b.quietMs)} |`,
    );
  }
  lines.push(
    '',
    '## CPU (cores busy during each measurement)',
    '',
    'Per process tree, from /proc; loadgen = this runner (autocannon); other = everything on the machine outside this bench. The last column is the main thread of the measured server (its event loop), from /proc/<pid>/schedstat: the share of the time it ran, and the share it was runnable but waited for a CPU.',
    '',
    cpuTable(measured),
    '',
  );
  return lines.join('\n');
}

function resultPath(date: string, ext: string): string {
  return `${freeResultBase(resultsDir(), 'intake', date, settings.label, ['md', 'json'])}.${ext}`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  const paused = new Set<ManagedProcess>();
  let pool: pg.Pool | undefined;
  const guard = await guardedStack({
    name: 'orderflow-bench-',
    keepData: settings.keepData,
    maxMin: settings.maxMin,
    stack: {
      priorityOf: (name) => (BACKGROUND.has(name) ? settings.backgroundPriority : 'normal'),
    },
    before: async () => {
      for (const instance of running) instance.stop();
      for (const p of paused) if (p.pid !== undefined) signalGroup(p.pid, 'SIGCONT');
      paused.clear();
      await pool?.end().catch(() => {});
    },
  });
  const { stack, dataDir } = guard;

  try {
    log(`starting the stack in ${dataDir} (PostgreSQL with fsync on)`);
    const env = await stack.startInfrastructure();
    pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 2 });
    const backlogs = new Backlogs(pool, stack.procs);

    const common = {
      NODE_ENV: 'production',
      DATABASE_POOL_SIZE: String(settings.poolSize),
      API_KEYS: '',
      // Loopback, measured without auth: the API refuses production without keys unless told.
      API_ALLOW_ANONYMOUS: 'true',
    };
    // What the orders worker, the relay and the APIs get besides the stack's addresses.
    const appEnv = settings.npmStart ? {} : common;
    const running = async (p: ManagedProcess) =>
      RUNNING_LOG_LINE.test(tailFile(p.spec.logFile, 200));
    await stack.startApp('worker-orders', 'src/workers/orders.ts', { ...appEnv }, running);
    if (settings.npmStart) {
      // The rest of npm start's background, each process as npm start starts it.
      for (const a of APP_PROCESSES.filter(
        (x) =>
          x.name.startsWith('consumer-') ||
          (x.name.startsWith('worker-') && x.name !== 'worker-orders'),
      ))
        await stack.startApp(a.name, a.entry, {}, running);
    }

    const targets: Target[] = [];
    for (const name of settings.targets) {
      const port = name === 'api-async' ? stack.opts.ports.api : await freePort();
      const url = `http://127.0.0.1:${port}`;
      const entry = name === 'floor' ? 'bench/floor-server.ts' : 'src/api/server.ts';
      const extra =
        name === 'floor'
          ? common
          : settings.npmStart
            ? { WORKFLOW_START_MODE: name.slice(4) }
            : { ...common, LOG_LEVEL: 'warn', WORKFLOW_START_MODE: name.slice(4) };
      // CPU profiles of the APIs and the floor, written when they stop.
      const profiling = process.env.BENCH_PROFILE_DIR
        ? {
            NODE_OPTIONS: `--import=${path.join(projectRoot, 'bench', 'cpu-profiler.mjs')}`,
            BENCH_PROFILE_DIR: path.resolve(process.env.BENCH_PROFILE_DIR),
            BENCH_PROFILE_NAME: name,
          }
        : {};
      const proc = await stack.startApp(
        name,
        entry,
        { ...extra, ...profiling, PORT: String(port) },
        () => httpOk(name === 'floor' ? `${url}/healthz` : `${url}/readyz`),
      );
      const companions =
        name === 'api-relay'
          ? [
              await stack.startApp(
                'relay',
                'src/api/relay.ts',
                settings.npmStart ? {} : { ...common, LOG_LEVEL: 'info' },
                running,
              ),
            ]
          : [];
      targets.push({ name, url, proc, companions });
      if (proc.pid !== undefined) schedPids.add(proc.pid);
    }

    for (const p of stack.procs.filter((x) => settings.nice.includes(x.name))) {
      // PRIO_PGRP reaches every thread of every process in the group.
      if (p.pid !== undefined) execFileSync('renice', ['-n', '19', '-g', String(p.pid)]);
    }

    // Only the measured target runs; the other APIs are paused with their whole group.
    const activate = (t: Target) => {
      for (const o of targets) {
        if (o === t || o.name === 'floor') continue;
        for (const p of [o.proc, ...o.companions]) {
          if (p.pid !== undefined && !paused.has(p)) {
            signalGroup(p.pid, 'SIGSTOP');
            paused.add(p);
          }
        }
      }
      for (const p of [t.proc, ...t.companions]) {
        if (paused.has(p) && p.pid !== undefined) {
          signalGroup(p.pid, 'SIGCONT');
          paused.delete(p);
        }
      }
    };
    const assertRunning = () => {
      for (const p of stack.procs) {
        if (!p.running) throw new Error(`${p.name} exited (code ${p.exitCode}):\n${p.tail()}`);
      }
    };

    const pgVersion = (await pool.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v;
    const pgSettings: Record<string, string> = {};
    for (const name of ['fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers']) {
      const { rows } = await pool.query<{ setting: string }>(
        'SELECT setting FROM pg_settings WHERE name = $1',
        [name],
      );
      pgSettings[name] = rows[0]?.setting ?? '?';
    }
    // Pause the APIs, then wait (≤ 60 s) for the stack to calm down after its
    // start: its processes together below a quarter of a core over 2 s.
    const floorTarget = targets.find((t) => t.name === 'floor');
    if (floorTarget) activate(floorTarget);
    let idle: Record<string, number> = {};
    for (let i = 0; i < 30; i++) {
      const a = cpuSnapshot();
      await delay(2000);
      idle = cpuCores(a, cpuSnapshot(), stack.procs);
      if ((idle.total ?? 0) - (idle.other ?? 0) < 0.25) break;
    }
    const machine: MachineInfo = {
      date: new Date().toISOString().slice(0, 10),
      nproc: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? '?',
      memory: sh('free', ['-g']),
      node: process.version,
      postgres: pgVersion.split(' on ')[0] ?? pgVersion,
      postgresSettings: pgSettings,
      gitCommit:
        process.env.BENCH_SOURCE ||
        `working tree at ${sh('git', ['rev-parse', '--short', 'HEAD'])}`,
      gitDirty: process.env.BENCH_SOURCE
        ? []
        : sh('git', ['status', '--porcelain', '--', 'src', 'prisma', 'package.json'])
            .split('\n')
            .filter(Boolean)
            .map((l) => l.slice(3)),
      autocannon: (
        JSON.parse(
          fs.readFileSync(path.join(projectRoot, 'node_modules/autocannon/package.json'), 'utf8'),
        ) as { version: string }
      ).version,
      loadavgAtStart: os.loadavg(),
      idleCpuCoresBeforeLoad: idle,
    };
    log(
      `machine: ${machine.nproc} cores, ${machine.postgres}, fsync=${pgSettings.fsync}, git ${machine.gitCommit}, idle ${machine.idleCpuCoresBeforeLoad.total} cores busy`,
    );

    const results: LoadResult[] = [];
    const mdPath = resultPath(machine.date, 'md');
    const jsonPath = mdPath.replace(/\.md$/, '.json');
    let complete = false;
    /** Written after every measurement, so an interrupted run leaves what it measured. */
    const writeResults = () => {
      const verdictRows = verdicts(results);
      const partial = complete
        ? ''
        : '\n**Incomplete run**: interrupted before every phase was measured.\n';
      fs.writeFileSync(mdPath, renderReport(machine, results, verdictRows) + partial);
      fs.writeFileSync(
        jsonPath,
        `${JSON.stringify({ machine, settings, goals: GOALS, complete, results, verdicts: verdictRows }, null, 2)}\n`,
      );
      return verdictRows;
    };
    const settle = async (why: string) => {
      const b = await backlogs.drain(settings.drainS * 1000);
      if ((b.quietMs ?? 0) > 1500)
        log(`  settled (${why}) in ${((b.quietMs ?? 0) / 1000).toFixed(1)} s`);
    };
    /**
     * Waits (bounded) until the machine outside this bench is quiet: other
     * processes below BENCH_OTHER_MAX cores over 3 s.
     */
    const waitForQuietMachine = async () => {
      const t0 = Date.now();
      for (
        let i = 0;
        i < 1000 && Date.now() - t0 < settings.idleWaitS * 1000 && !guard.stopping;
        i++
      ) {
        const a = cpuSnapshot();
        await delay(3000);
        const other = cpuCores(a, cpuSnapshot(), stack.procs).other ?? 0;
        if (other <= settings.otherMax) {
          if (i > 0) log(`  machine quiet again after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
          return;
        }
        if (i === 0) log(`  waiting for other processes to calm down (${other} cores busy)`);
      }
      log(`  the machine stayed busy for ${settings.idleWaitS} s: measuring anyway`);
    };
    const measure = async (
      t: Target,
      phase: string,
      rate: number | null,
      pacing: Pacing,
      durationS: number,
    ) => {
      let r: LoadResult | undefined;
      for (let attempt = 1; attempt <= settings.retries + 1; attempt++) {
        activate(t);
        await settle(`before ${t.name} ${phase}`);
        await waitForQuietMachine();
        assertRunning();
        log(
          `${phase} ${t.name}: ${rate === null ? 'saturation' : `${rate} req/s (${pacing})`} for ${durationS} s` +
            (attempt > 1 ? ` (attempt ${attempt})` : ''),
        );
        const frozen = stack.procs.filter((p) => settings.freeze.includes(p.name));
        for (const p of frozen) {
          if (p.pid === undefined) continue;
          signalGroup(p.pid, 'SIGSTOP');
          paused.add(p);
        }
        try {
          r = await drive(t, phase, rate, pacing, durationS, stack.procs);
        } finally {
          for (const p of frozen) {
            if (p.pid !== undefined) signalGroup(p.pid, 'SIGCONT');
            paused.delete(p);
          }
        }
        r.attempts = attempt;
        assertRunning();
        if (t.name !== 'floor') r.backlog = await backlogs.drain(settings.drainS * 1000);
        log(
          `  ${fmt(r.throughput)} req/s, p50 ${fmt(r.latencyMs.p50, 2)} ms, p99 ${fmt(r.latencyMs.p99, 2)} ms, errors ${r.errors}, 202s ${r.accepted202}, outside load ${r.cpuCores.other} cores` +
            (r.backlog
              ? `; backlog ${r.backlog.pendingStartsAtEnd} starts / ${r.backlog.unfinishedWorkflowsAtEnd} workflows`
              : ''),
        );
        if (phase === 'warmup' || (r.cpuCores.other ?? 0) <= settings.otherMax * 2) break;
        if (attempt <= settings.retries)
          log('  other processes took CPU meanwhile: measuring again');
      }
      results.push(r!);
      writeResults();
    };
    const printPhase = (phase: string) => {
      const rows = results.filter((r) => r.phase === phase);
      const floor = rows.find((r) => r.target === 'floor');
      console.log(`\n### ${phaseTitle(rows[0]!)}\n\n${phaseTable(rows, floor)}\n`);
    };

    if (settings.warmupS > 0) {
      for (const t of targets) {
        await measure(t, 'warmup', settings.warmupRate, 'spread', settings.warmupS);
      }
    }
    for (const rate of settings.rates) {
      const pacings: Pacing[] = settings.burstRates.includes(rate)
        ? ['spread', 'burst']
        : ['spread'];
      for (const pacing of pacings) {
        const phase = `${rate}/${pacing}`;
        for (const t of targets) await measure(t, phase, rate, pacing, settings.durationS);
        printPhase(phase);
      }
    }
    if (settings.saturation) {
      for (const t of targets) await measure(t, 'saturation', null, 'burst', settings.durationS);
      printPhase('saturation');
    }
    complete = true;
    const verdictRows = writeResults();
    console.log(`\n## Verdict\n`);
    for (const v of verdictRows) {
      console.log(
        `- ${v.target}: ${v.goal}: ${v.value} — ${v.met === null ? 'n/a' : v.met ? 'met' : 'MISSED'}`,
      );
    }
    log(`wrote ${path.relative(projectRoot, mdPath)} and ${path.relative(projectRoot, jsonPath)}`);
    log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } catch (e) {
    guard.fail();
    throw e;
  } finally {
    guard.clear();
    await guard.cleanup();
  }
}

/**
 * BENCH_REF=<commit>: measure that commit instead of the working tree (which
 * another engineer may be editing). Its files are exported with `git archive`
 * to a temporary folder, with this bench and node_modules beside them; the
 * Prisma client is generated there, and this runner runs again from there, so
 * the stack, the migrations, the API, the worker and the floor all come from
 * the commit. The results land in this checkout's bench/results.
 */
async function fromCommit(ref: string): Promise<number> {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], {
    cwd: projectRoot,
    encoding: 'utf8',
  }).trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-bench-src-'));
  try {
    log(`exporting ${ref} (${sha.slice(0, 7)}) to ${dir}`);
    execFileSync('sh', ['-c', 'git archive --format=tar "$1" | tar -x -C "$2"', 'sh', sha, dir], {
      cwd: projectRoot,
      stdio: 'inherit',
    });
    fs.symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
    fs.cpSync(path.join(projectRoot, 'bench'), path.join(dir, 'bench'), {
      recursive: true,
      filter: (src) => !src.includes(`${path.sep}results`),
    });
    const node = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
      new Promise<number>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
          cwd: dir,
          env,
          stdio: 'inherit',
        });
        const forward = (sig: NodeJS.Signals) => child.kill(sig);
        process.on('SIGINT', forward);
        process.on('SIGTERM', forward);
        child.once('exit', (code) => {
          process.off('SIGINT', forward);
          process.off('SIGTERM', forward);
          resolve(code ?? 1);
        });
      });
    const setup = await node(['scripts/provision.ts']);
    if (setup !== 0) return setup;
    return await node(['bench/intake.ts'], {
      ...process.env,
      BENCH_REF: '',
      BENCH_SOURCE: `commit ${sha.slice(0, 7)} (${ref}, exported; working tree not used)`,
      BENCH_RESULTS_DIR:
        process.env.BENCH_RESULTS_DIR || path.join(projectRoot, 'bench', 'results'),
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

(process.env.BENCH_REF ? fromCommit(process.env.BENCH_REF) : main().then(() => 0)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(
      `[bench] FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    process.exit(1);
  },
);
