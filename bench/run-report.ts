/**
 * The report of `npm run bench` (bench/run.ts): the markdown, from the results
 * of the parts that ran (each part renders its own section), and the SVG
 * chart of the spike and the throughput runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeCpuPriority } from '../scripts/lib/process.ts';
import { projectRoot } from '../scripts/lib/tools.ts';
import { fmtNum as f, ratioCell } from './lib/report-format.ts';
import { renderChart } from './lib/svg-chart.ts';
import { renderBacklog, type BacklogResult } from './parts/backlog.ts';
import { faultComparison, renderFaults, type FaultResult } from './parts/faults.ts';
import { renderIntake, type IntakePart } from './parts/intake.ts';
import {
  peerIntakeComparison,
  renderPeerIntake,
  type PeerIntakeResult,
} from './parts/peer-intake.ts';
import { renderPriority, type PriorityResult } from './parts/priority.ts';
import { renderSpike, type SpikeResult } from './parts/spike.ts';
import {
  renderSustained,
  renderSustainedAgain,
  sustainedComparison,
  type SustainedResult,
} from './parts/sustained.ts';
import { renderTemporalFloor, type TemporalFloorResult } from './parts/temporal-floor.ts';
import { GOALS, type RunSettings } from './run-settings.ts';

export interface Machine {
  date: string;
  cpus: string;
  memory: string;
  kernel: string;
  node: string;
  postgres: string;
  temporalCli: string;
  kafka: string;
  redis: string;
  bullmq: string;
  git: string;
  loadavgStart: number[];
  otherCoresAtStart: number;
}

/** What a run measured so far: written as the JSON report after every part. */
export interface Results {
  machine?: Machine;
  settings: RunSettings;
  complete: boolean;
  error?: string;
  durationS?: number;
  intake?: IntakePart;
  peerIntake?: PeerIntakeResult;
  sustained?: SustainedResult[];
  /** orderflow's second sustained window, after the floor's (BENCH_FLOOR_PAIRED). */
  sustainedAgain?: SustainedResult;
  temporalFloor?: TemporalFloorResult;
  backlog?: BacklogResult;
  priority?: PriorityResult;
  spike?: SpikeResult;
  faults?: FaultResult[];
}

/** The version of an installed package, "?" when it cannot be read. */
export function versionOf(pkg: string): string {
  try {
    return (
      JSON.parse(
        fs.readFileSync(path.join(projectRoot, 'node_modules', pkg, 'package.json'), 'utf8'),
      ) as { version: string }
    ).version;
  } catch {
    return '?';
  }
}

/**
 * orderflow's sustained orders/s in this run (the mean of its windows around the
 * floor's when there were two), or null when that part did not run.
 */
export const orderflowSustainedRate = (r: Results): number | null =>
  (r.temporalFloor?.orderflowWindowRates?.length ?? 0) > 1
    ? r.temporalFloor!.orderflowRate
    : (r.sustained?.find((x) => x.system === 'orderflow')?.ordersPerS ?? null);

/** The headline table, orderflow against the peer, from the parts that ran. */
function comparisonTable(r: Results): string[] {
  const rows = [
    ...(r.peerIntake ? peerIntakeComparison(r.peerIntake, r.settings) : []),
    ...(r.sustained?.length ? sustainedComparison(r.sustained, r.settings) : []),
    ...(r.faults?.length ? faultComparison(r.faults, r.settings) : []),
  ];
  if (!rows.length) return [];
  return [
    '## orderflow vs. the usual way (BullMQ on Redis)',
    '',
    `Same machine, same run, same PostgreSQL, Kafka and SMTP sink; each measured while the other idles. Peer: Express + pg INSERT + BullMQ ${versionOf('bullmq')} flow (bench/peers/bullmq), Redis ${r.settings.redisAof ? 'with appendonly yes, appendfsync everysec' : "with --save '' --appendonly no (no persistence)"}.`,
    '',
    '| measure | orderflow | BullMQ peer |',
    '|---|--:|--:|',
    ...rows,
    '',
  ];
}

/** The ceilings of issue 12, with their goals: orderflow ÷ the Temporal floor, backlog ÷ steady. */
function ceilingTable(r: Results): string[] {
  const rows: string[] = [];
  if (r.temporalFloor)
    rows.push(
      `| sustained orders/s ÷ Temporal-floor workflows/s (same shape, same server) | ${r.temporalFloor.orderflowRate === null ? 'sustained did not run' : ratioCell(r.temporalFloor.orderflowRate, r.temporalFloor.workflowsPerS)} | ≥ ${GOALS.floorRatio * 100}% |`,
    );
  if (r.backlog) {
    const b = r.backlog;
    rows.push(
      `| ${b.orders}-order backlog: orders/s COMPLETED over the first ${b.windowS} s ÷ sustained | ${b.steadyRate === null ? `${f(b.windowRate, 1)} ÷ – (sustained did not run)` : ratioCell(b.windowRate, b.steadyRate)} | ≥ ${GOALS.backlogRatio * 100}% |`,
      `| ${b.orders}-order backlog: all COMPLETED after | ${b.allCompletedS === null ? `not within ${b.drainBoundS} s` : `${f(b.allCompletedS, 1)} s`} | |`,
    );
  }
  if (!rows.length) return [];
  return ['## Ceilings', '', '| measure | orderflow | goal |', '|---|--:|---|', ...rows, ''];
}

/** The markdown report; `svgName` is the chart beside it. */
export function renderReport(r: Results, svgName: string): string {
  const m = r.machine;
  const lines: string[] = [
    `# bench — ${m?.date ?? '?'}`,
    '',
    '`npm run bench` (bench/run.ts): intake, spike, sustained throughput against the Temporal floor, a backlog, priority under a bulk backlog, and a BullMQ peer, over loopback.',
    ...(r.complete ? [] : ['', `**Incomplete run**${r.error ? `: ${r.error}` : ': interrupted'}.`]),
    '',
    ...comparisonTable(r),
    ...ceilingTable(r),
  ];
  if (m) {
    lines.push(
      '## Machine',
      '',
      `- CPUs: ${m.cpus}; memory ${m.memory}; Linux ${m.kernel}`,
      `- Node ${m.node}; ${m.postgres}; Temporal CLI ${m.temporalCli} (dev server, SQLite); Kafka ${m.kafka}; ${m.redis}; BullMQ ${m.bullmq}`,
      `- code measured: ${m.git}`,
      `- load average at start ${m.loadavgStart.map((x) => x.toFixed(2)).join(' ')}; cores busy outside this bench before the stack started: ${m.otherCoresAtStart}`,
      `- stack as \`npm start\` runs it: the API (WORKFLOW_START_MODE=relay, LOG_LEVEL=info, the default), the relay, the four workers${r.settings.consumers ? ' and the two Kafka consumers' : ' (**without the Kafka consumers**: BENCH_CONSUMERS=0)'}; the API and PostgreSQL at normal CPU priority, the rest at ${describeCpuPriority(r.settings.backgroundPriority)}`,
      `- settings: ${JSON.stringify(r.settings)}`,
      `- run took ${f(r.durationS)} s`,
      '',
      '"other" in every CPU line below = cores used by processes outside this bench during that part (the machine may be shared).',
      '',
    );
  }
  if (r.spike) lines.push(...renderSpike(r.spike, r.settings, svgName));
  if (r.sustained?.length) lines.push(...renderSustained(r.sustained, r.settings));
  if (r.sustainedAgain) lines.push(...renderSustainedAgain(r.sustainedAgain));
  if (r.temporalFloor) lines.push(...renderTemporalFloor(r.temporalFloor, GOALS.floorRatio));
  if (r.backlog) lines.push(...renderBacklog(r.backlog, GOALS.backlogRatio));
  if (r.priority) lines.push(...renderPriority(r.priority, r.settings));
  if (r.peerIntake) lines.push(...renderPeerIntake(r.peerIntake, r.settings));
  if (r.faults?.length) lines.push(...renderFaults(r.faults, r.settings));
  if (r.intake) lines.push(...renderIntake(r.intake));
  return lines.join('\n');
}

/** The chart: webhooks, completions and acceptances per second of the spike; completions per second of each throughput run. */
export function renderRunChart(r: Results): string {
  return renderChart({
    spike: r.spike
      ? {
          rate: r.spike.webhookRate,
          webhooks: r.spike.webhooksPerSecond,
          completed: r.spike.completedPerSecond,
          accepted: r.spike.acceptedPerSecond,
        }
      : undefined,
    sustained: [
      ...(r.sustained ?? []).map((x) => ({ name: x.system, perSecond: x.perSecond })),
      ...(r.sustainedAgain
        ? [{ name: 'orderflow, after the floor', perSecond: r.sustainedAgain.perSecond }]
        : []),
      ...(r.temporalFloor
        ? [{ name: 'Temporal floor (workflows)', perSecond: r.temporalFloor.loop.perSecond }]
        : []),
    ],
  });
}
