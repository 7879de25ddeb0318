/**
 * bench/summary.ts (`npm run bench:summary -- <bench-*.json> ...`): the medians
 * of repeated `npm run bench` runs. Reads the JSON each run wrote, and writes
 * one markdown table (every headline number per run, its median and its
 * range) to bench/results/bench-<date>-median.md (BENCH_LABEL: -<label>
 * instead of -median), and prints where.
 *
 *   for i in 1 2 3; do BENCH_LABEL=run$i npm run bench; done
 *   npm run bench:summary -- bench/results/bench-2026-11-28-run{1,2,3}.json
 *
 * Only measured values enter a median: a part a run did not reach is left out
 * of that row (and the row says how many runs it has).
 */
import fs from 'node:fs';
import path from 'node:path';
import { isOrderflowApp, isPeerApp, type CpuPerOrder } from './lib/cpu-per-order.ts';
import { median, sumWhere } from './lib/stats.ts';
import { counterTotal } from './lib/temporal-counters.ts';

/** What this reads of a run's JSON: the fields bench/run.ts writes. */
interface Latency {
  p50: number;
  p99: number;
}
interface IntakeRow {
  target: string;
  phase: string;
  throughput: number;
  errors: number;
  latencyMs: Latency;
}
interface Run {
  complete?: boolean;
  durationS?: number;
  machine?: { git?: string; cpus?: string; date?: string };
  settings?: { parts?: string[]; webhookRate?: number };
  intake?: { exitCode: number; json: { results: IntakeRow[] } | null };
  peerIntake?: {
    paced: Record<'orderflow' | 'peer', { errors: number; latencyMs: Latency }>;
    saturation: Record<'orderflow' | 'peer', { throughput: number; latencyMs: Latency }>;
  };
  sustained?: {
    system: 'orderflow' | 'peer';
    ordersPerS: number;
    latencyMs: Latency;
    cores: Record<string, number>;
    /** Since the Temporal-floor part. */
    cpuMsPerOrder?: CpuPerOrder;
  }[];
  temporalFloor?: {
    workflowsPerS: number;
    shape: string;
    ratio: number | null;
    cpuMsPerWorkflow?: { temporal: number; workers: number };
    /** Since the server's counters were read (bench/lib/temporal-counters.ts). */
    temporalCounts?: { floor: [string, number][]; orderflow: [string, number][] | null };
  };
  backlog?: {
    orders: number;
    windowS: number;
    windowRate: number;
    ratio: number | null;
    allCompletedS: number | null;
    cpuMsPerOrder: CpuPerOrder;
    steadyRate?: number | null;
    posting?: { seconds: number };
    completedPerSecond?: number[];
    afterPosting?: { rate: number; ratio: number | null };
  };
  priority?: { without: { latencyMs: Latency }; during: { latencyMs: Latency } };
  spike?: {
    orders: number;
    intake: { errors: number; latencyMs: Latency };
    drainS: number;
    maxWebhooksInWindow: number;
    maxWebhooksSliding: number;
    webhooks: number;
  };
  faults?: {
    system: 'orderflow' | 'peer';
    apiErrors: number;
    notCompleted: number;
    missing: { email: number; webhook: number; event: number };
    duplicated: { email: number; webhook: number; event: number };
    emailDuplicatesWithNewMessageId: number;
  }[];
}

type Pick = (r: Run) => number | undefined;
interface Measure {
  section: string;
  name: string;
  pick: Pick;
  digits?: number;
  goal?: string;
}

const intake =
  (target: string, phase: string, what: (row: IntakeRow) => number): Pick =>
  (r) => {
    const row = r.intake?.json?.results.find((x) => x.target === target && x.phase === phase);
    return row ? what(row) : undefined;
  };
const system = <T extends { system: string }>(list: T[] | undefined, s: string) =>
  list?.find((x) => x.system === s);
/** The cores of the processes `pick` selects. */
const sum = (o: Record<string, number> | undefined, pick: (name: string) => boolean) =>
  o ? sumWhere(o, pick) : undefined;
/** A fault run's API errors plus the effects (email, webhook, Kafka event) it never produced. */
const faultLosses =
  (s: 'orderflow' | 'peer'): Pick =>
  (r) => {
    const x = system(r.faults, s);
    return x && x.apiErrors + x.missing.email + x.missing.webhook + x.missing.event;
  };
/** The same measure for orderflow and for the peer, in that order. */
const bothSystems = (
  name: string,
  digits: number,
  pick: (r: Run, s: 'orderflow' | 'peer') => number | undefined,
): Measure[] =>
  (['orderflow', 'peer'] as const).map((s) => ({
    section: 'vs peer',
    name: `${s} ${name}`,
    pick: (r: Run) => pick(r, s),
    digits,
  }));

/**
 * The backlog's drain: orders/s COMPLETED over the window after the last POST
 * was answered. Runs from before bench/parts/backlog.ts wrote `afterPosting`
 * have it from their per-second completions (whole seconds since the posting started).
 */
function drainRate(r: Run): number | undefined {
  const b = r.backlog;
  if (!b) return undefined;
  if (b.afterPosting) return b.afterPosting.rate;
  if (!b.completedPerSecond || !b.posting) return undefined;
  const from = Math.ceil(b.posting.seconds);
  const window = b.completedPerSecond.slice(from, from + b.windowS);
  return window.length === b.windowS ? window.reduce((x, y) => x + y, 0) / b.windowS : undefined;
}

const MEASURES: Measure[] = [
  // bench/intake.ts, as bench/run.ts runs it (short: 5 s per measurement).
  {
    section: 'intake',
    name: 'floor (insert only) p50 ms at 300 req/s',
    pick: intake('floor', '300/spread', (x) => x.latencyMs.p50),
    digits: 2,
  },
  {
    section: 'intake',
    name: 'floor p99 ms at 300 req/s',
    pick: intake('floor', '300/spread', (x) => x.latencyMs.p99),
    digits: 2,
  },
  {
    section: 'intake',
    name: 'API (relay, npm start) p50 ms at 300 req/s',
    pick: intake('api-relay', '300/spread', (x) => x.latencyMs.p50),
    digits: 2,
    goal: '≤ 10',
  },
  {
    section: 'intake',
    name: 'API (relay) p99 ms at 300 req/s',
    pick: intake('api-relay', '300/spread', (x) => x.latencyMs.p99),
    digits: 2,
  },
  {
    section: 'intake',
    name: 'API (relay) p99 / floor p99 at 300 req/s',
    pick: (r) => {
      const api = intake('api-relay', '300/spread', (x) => x.latencyMs.p99)(r);
      const floor = intake('floor', '300/spread', (x) => x.latencyMs.p99)(r);
      return api !== undefined && floor ? api / floor : undefined;
    },
    digits: 2,
    goal: '≤ 1.5',
  },
  {
    section: 'intake',
    name: 'API (relay) errors at 300 req/s',
    pick: intake('api-relay', '300/spread', (x) => x.errors),
    goal: '0',
  },
  {
    section: 'intake',
    name: 'API (inline start) p50 ms at 300 req/s',
    pick: intake('api-inline', '300/spread', (x) => x.latencyMs.p50),
    digits: 1,
  },
  {
    section: 'intake',
    name: 'API (inline start) req/s at a 300 req/s target',
    pick: intake('api-inline', '300/spread', (x) => x.throughput),
    digits: 1,
  },
  {
    section: 'intake',
    name: 'floor req/s at saturation',
    pick: intake('floor', 'saturation', (x) => x.throughput),
    digits: 0,
  },
  {
    section: 'intake',
    name: 'API (relay) req/s at saturation',
    pick: intake('api-relay', 'saturation', (x) => x.throughput),
    digits: 0,
  },
  {
    section: 'intake',
    name: 'API (relay) / floor req/s at saturation',
    pick: (r) => {
      const api = intake('api-relay', 'saturation', (x) => x.throughput)(r);
      const floor = intake('floor', 'saturation', (x) => x.throughput)(r);
      return api !== undefined && floor ? api / floor : undefined;
    },
    digits: 2,
    goal: '≥ 0.55',
  },
  // The shared stack of bench/run.ts: each measure for orderflow, then for the peer.
  ...bothSystems('POST p50 ms at 300 req/s', 1, (r, s) => r.peerIntake?.paced[s].latencyMs.p50),
  ...bothSystems('POST p99 ms at 300 req/s', 1, (r, s) => r.peerIntake?.paced[s].latencyMs.p99),
  ...bothSystems('POST req/s at saturation', 0, (r, s) => r.peerIntake?.saturation[s].throughput),
  ...bothSystems('orders/s COMPLETED (sustained)', 1, (r, s) => system(r.sustained, s)?.ordersPerS),
  ...bothSystems(
    'POST → COMPLETED p50 ms (sustained)',
    0,
    (r, s) => system(r.sustained, s)?.latencyMs.p50,
  ),
  {
    section: 'vs peer',
    name: 'orderflow cores: Temporal (sustained)',
    pick: (r) => system(r.sustained, 'orderflow')?.cores.temporal,
    digits: 2,
  },
  {
    section: 'vs peer',
    name: 'orderflow cores: app processes (sustained)',
    pick: (r) => sum(system(r.sustained, 'orderflow')?.cores, isOrderflowApp),
    digits: 2,
  },
  {
    section: 'vs peer',
    name: 'peer cores: Redis + app processes (sustained)',
    pick: (r) => sum(system(r.sustained, 'peer')?.cores, (k) => k === 'redis' || isPeerApp(k)),
    digits: 2,
  },
  ...bothSystems(
    'CPU ms per order: broker (Temporal / Redis) (sustained)',
    2,
    (r, s) => system(r.sustained, s)?.cpuMsPerOrder?.broker,
  ),
  ...bothSystems(
    'CPU ms per order: app processes (sustained)',
    2,
    (r, s) => system(r.sustained, s)?.cpuMsPerOrder?.app,
  ),
  ...bothSystems(
    'CPU ms per order: broker, app, PostgreSQL, Kafka (sustained)',
    2,
    (r, s) => system(r.sustained, s)?.cpuMsPerOrder?.total,
  ),
  {
    section: 'vs peer',
    name: 'orderflow faults: API errors + lost effects (email, webhook, event)',
    pick: faultLosses('orderflow'),
    goal: '0',
  },
  {
    section: 'vs peer',
    name: 'peer faults: API errors + lost effects (email, webhook, event)',
    pick: faultLosses('peer'),
  },
  {
    section: 'vs peer',
    name: 'orderflow faults: duplicated emails (same Message-ID: the documented window)',
    pick: (r) => system(r.faults, 'orderflow')?.duplicated.email,
    goal: '0 (or explained)',
  },
  {
    section: 'vs peer',
    name: 'orderflow faults: duplicated emails with a new Message-ID',
    pick: (r) => system(r.faults, 'orderflow')?.emailDuplicatesWithNewMessageId,
    goal: '0',
  },
  {
    section: 'vs peer',
    name: 'orderflow faults: duplicated webhooks + events',
    pick: (r) => {
      const x = system(r.faults, 'orderflow');
      return x && x.duplicated.webhook + x.duplicated.event;
    },
    goal: '0',
  },
  {
    section: 'vs peer',
    name: 'peer faults: duplicated emails + webhooks + events',
    pick: (r) => {
      const x = system(r.faults, 'peer');
      return x && x.duplicated.email + x.duplicated.webhook + x.duplicated.event;
    },
  },
  {
    section: 'ceilings',
    name: 'Temporal floor: no-op workflows/s of orderflow’s shape',
    pick: (r) => r.temporalFloor?.workflowsPerS,
    digits: 1,
  },
  {
    section: 'ceilings',
    name: 'orderflow sustained ÷ Temporal floor',
    pick: (r) => r.temporalFloor?.ratio ?? undefined,
    digits: 2,
    goal: '≥ 0.85',
  },
  {
    section: 'ceilings',
    name: 'Temporal floor: CPU ms per workflow, Temporal server',
    pick: (r) => r.temporalFloor?.cpuMsPerWorkflow?.temporal,
    digits: 2,
  },
  {
    section: 'ceilings',
    name: 'Temporal floor: CPU ms per workflow, its four workers',
    pick: (r) => r.temporalFloor?.cpuMsPerWorkflow?.workers,
    digits: 2,
  },
  ...(['service_requests', 'persistence_requests'] as const).flatMap((kind) =>
    (['orderflow', 'floor'] as const).map((who): Measure => ({
      section: 'ceilings',
      name: `Temporal server ${kind.replace('_', ' ')} per ${who === 'floor' ? 'floor workflow' : 'orderflow order'} (all operations)`,
      pick: (r) => {
        const perUnit = r.temporalFloor?.temporalCounts?.[who];
        return perUnit?.length ? counterTotal(perUnit, kind) : undefined;
      },
      digits: 2,
    })),
  ),
  {
    section: 'ceilings',
    name: 'backlog: orders/s COMPLETED over its first window (default 60 s)',
    pick: (r) => r.backlog?.windowRate,
    digits: 1,
  },
  {
    section: 'ceilings',
    name: 'backlog rate ÷ sustained rate',
    pick: (r) => r.backlog?.ratio ?? undefined,
    digits: 2,
    goal: '≥ 0.90',
  },
  {
    section: 'ceilings',
    name: 'backlog: orders/s COMPLETED over the window after the last POST (the drain)',
    pick: (r) => drainRate(r),
    digits: 1,
  },
  {
    section: 'ceilings',
    name: 'backlog drain rate ÷ sustained rate',
    pick: (r) => {
      const rate = drainRate(r);
      const steady = r.backlog?.steadyRate;
      return rate !== undefined && steady ? rate / steady : undefined;
    },
    digits: 2,
    goal: '≥ 0.90',
  },
  {
    section: 'ceilings',
    name: 'backlog: all COMPLETED after s',
    pick: (r) => r.backlog?.allCompletedS ?? undefined,
    digits: 0,
  },
  {
    section: 'ceilings',
    name: 'backlog: CPU ms per order, Temporal',
    pick: (r) => r.backlog?.cpuMsPerOrder.broker,
    digits: 2,
  },
  {
    section: 'ceilings',
    name: 'backlog: CPU ms per order, app processes',
    pick: (r) => r.backlog?.cpuMsPerOrder.app,
    digits: 2,
  },
  {
    section: 'priority',
    name: 'live order p50 ms, no backlog',
    pick: (r) => r.priority?.without.latencyMs.p50,
    digits: 0,
  },
  {
    section: 'priority',
    name: 'live order p50 ms, 10,000 bulk jobs draining',
    pick: (r) => r.priority?.during.latencyMs.p50,
    digits: 0,
  },
  {
    section: 'priority',
    name: 'live order p99 ms, 10,000 bulk jobs draining',
    pick: (r) => r.priority?.during.latencyMs.p99,
    digits: 0,
  },
  {
    section: 'spike',
    name: 'API errors (of 5,000 in 10 s)',
    pick: (r) => r.spike?.intake.errors,
    goal: '0',
  },
  {
    section: 'spike',
    name: 'POST p50 ms during the spike',
    pick: (r) => r.spike?.intake.latencyMs.p50,
    digits: 1,
  },
  {
    section: 'spike',
    name: 'POST p99 ms during the spike',
    pick: (r) => r.spike?.intake.latencyMs.p99,
    digits: 1,
  },
  { section: 'spike', name: 'backlog drained in s', pick: (r) => r.spike?.drainS, digits: 1 },
  {
    section: 'spike',
    name: 'most webhooks in a one-second window',
    pick: (r) => r.spike?.maxWebhooksInWindow,
    goal: '≤ limit (20)',
  },
  {
    section: 'spike',
    name: 'most webhooks in any sliding second',
    pick: (r) => r.spike?.maxWebhooksSliding,
    goal: '≤ limit (20)',
  },
];

function summarize(runs: { file: string; run: Run }[]): string {
  const fmt = (x: number | undefined, d = 0) => (x === undefined ? '–' : x.toFixed(d));
  const lines = [
    `# bench — medians of ${runs.length} runs`,
    '',
    `\`npm run bench:summary\` over ${runs.map((r) => `\`${path.basename(r.file)}\``).join(', ')} ` +
      `(each a full \`npm run bench\` on a fresh stack, one after the other on the same machine). ` +
      `Per-run tables, CPU per process and charts are in each run's markdown.`,
    '',
    `- machine: ${runs[0]?.run.machine?.cpus ?? '?'}; code: ${runs.map((r) => r.run.machine?.git ?? '?').join('; ')}`,
    `- runs complete: ${runs.map((r) => (r.run.complete ? 'yes' : 'no')).join(', ')}; durations: ${runs.map((r) => `${r.run.durationS ?? '?'} s`).join(', ')}`,
    '',
  ];
  let section = '';
  for (const m of MEASURES) {
    const values = runs.map((r) => m.pick(r.run));
    const have = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
    if (!have.length) continue;
    if (m.section !== section) {
      section = m.section;
      lines.push(
        '',
        `## ${section}`,
        '',
        `| measure | ${runs.map((_, i) => `run ${i + 1}`).join(' | ')} | **median** | range | goal |`,
        `|---|${runs.map(() => '--:|').join('')}--:|---|---|`,
      );
    }
    const d = m.digits ?? 0;
    const med = median(have);
    const range =
      have.length > 1 ? `${fmt(Math.min(...have), d)}–${fmt(Math.max(...have), d)}` : '';
    lines.push(
      `| ${m.name}${have.length < runs.length ? ` (${have.length} runs)` : ''} | ${values.map((v) => fmt(v, d)).join(' | ')} | **${fmt(med, d)}** | ${range} | ${m.goal ?? ''} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function main(): number {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error('usage: npm run bench:summary -- bench/results/bench-<date>-run1.json ...');
    return 2;
  }
  const runs = files.map((file) => ({
    file,
    run: JSON.parse(fs.readFileSync(file, 'utf8')) as Run,
  }));
  const date = runs[0]?.run.machine?.date ?? new Date().toISOString().slice(0, 10);
  const label = (process.env.BENCH_LABEL ?? '').replace(/[^\w.-]/g, '') || 'median';
  const out = path.join(path.dirname(files[0]!), `bench-${date}-${label}.md`);
  fs.writeFileSync(out, summarize(runs));
  console.log(out);
  return 0;
}

process.exitCode = main();
