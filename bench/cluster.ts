/**
 * `npm run bench:cluster`: `npm run bench`'s sustained measurement on the
 * cluster topology (scripts/lib/cluster.ts: Temporal as separate services on
 * PostgreSQL, three Kafka brokers, two processes of every app), PostgreSQL
 * with fsync on. A closed loop keeps BENCH_SUSTAINED_IN_FLIGHT orders in the
 * system (a new POST, alternating between the two APIs, whenever one reaches
 * COMPLETED); over the counted window it reports orders/s, POST → COMPLETED
 * latency and the CPU per completed order of every process and of each
 * service and app (replicas summed): the numbers README "Production" sizes
 * from. Writes bench/results/cluster-<date>[-BENCH_LABEL].{md,json}.
 */
import fs from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import {
  CLUSTER_REPLICAS,
  ClusterStack,
  ephemeralClusterPorts,
  startClusterApps,
} from '../scripts/lib/cluster.ts';
import { tmpStackDir } from '../scripts/lib/stack.ts';
import { provisionAll, provisionTemporalServer, versions } from '../scripts/lib/tools.ts';
import { closedLoop } from './lib/closed-loop.ts';
import { cpuMsPer } from './lib/cpu-per-order.ts';
import { CompletionWatcher, codeMeasured, delay, log, postOrder } from './lib/e2e-kit.ts';
import { coresBetween, procSnapshot } from './lib/proc-stats.ts';
import { fmtNum as f } from './lib/report-format.ts';
import { freeResultBase, resultsDir } from './lib/results.ts';
import { labelEnv } from './lib/settings.ts';
import { intEnv } from '../scripts/lib/env-settings.ts';

const settings = {
  seconds: intEnv('BENCH_SUSTAINED_S', 60, 1, 3600),
  warmupS: intEnv('BENCH_SUSTAINED_WARMUP_S', 10, 0, 600),
  inFlight: intEnv('BENCH_SUSTAINED_IN_FLIGHT', 200, 1, 5000),
  /** Seconds of the idle window measured before the load (what the topology costs at rest). */
  idleS: intEnv('BENCH_CLUSTER_IDLE_S', 20, 5, 600),
  label: labelEnv(),
};

/** What a process counts as in the per-order table: its service or app, replicas together. */
export function groupOf(name: string): string {
  if (name.startsWith('temporal-')) return name;
  if (/^kafka-\d+$/.test(name)) return 'kafka (3 brokers)';
  return name.replace(/-\d+$/, '');
}

async function main(): Promise<void> {
  const started = Date.now();
  const tools = provisionAll((m) => log(`provision: ${m}`));
  const temporalServer = provisionTemporalServer((m: string) => log(`provision: ${m}`));
  const { ports, cluster } = await ephemeralClusterPorts();
  const stack = new ClusterStack({
    dataDir: tmpStackDir(),
    ports,
    cluster,
    tools,
    temporalServer,
    // As users run it: PostgreSQL with fsync on.
    ephemeral: false,
    log: (m) => log(`stack: ${m}`),
  });
  let db: pg.Pool | undefined;
  const stop = async () => {
    await db?.end().catch(() => {});
    await stack.stop();
    fs.rmSync(stack.opts.dataDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void stop().finally(() => process.exit(130)));
  try {
    log('starting the cluster topology');
    const env = await stack.startInfrastructure();
    const infraS = (Date.now() - started) / 1000;
    await startClusterApps(stack, {
      ...env,
      WORKFLOW_START_MODE: 'relay',
      WEBHOOK_ALLOWED_TARGETS: 'loopback',
      LOG_LEVEL: 'info',
    });
    const readyS = (Date.now() - started) / 1000;
    log(`cluster ready in ${readyS.toFixed(0)} s (infrastructure ${infraS.toFixed(0)} s)`);
    db = new pg.Pool({ connectionString: env.DATABASE_URL, max: 4 });
    // At rest first: pollers, heartbeats, shard timers and fetch loops cost CPU without orders.
    await delay(10_000);
    log(`idle: ${settings.idleS} s`);
    const idleFrom = procSnapshot();
    await delay(settings.idleS * 1000);
    const idleCores = coresBetween(idleFrom, procSnapshot(), stack.procs);
    const apis = cluster.api.map((p) => `http://127.0.0.1:${p}`);
    log(
      `sustained: ${settings.inFlight} in flight, ${settings.warmupS} s warm-up + ${settings.seconds} s`,
    );
    const loop = await closedLoop({
      inFlight: settings.inFlight,
      warmupS: settings.warmupS,
      seconds: settings.seconds,
      procs: () => stack.procs,
      start: async (seq) =>
        (await postOrder(apis[seq % apis.length]!, `cluster-${seq}@bench.local`)).id,
      completions: (onCompleted) => new CompletionWatcher(db!, 100, 'orders', onCompleted),
    });
    log(`  ${loop.rate} orders/s COMPLETED, POST errors ${loop.startErrors}`);

    const per = (pick: (name: string) => boolean) =>
      cpuMsPer(loop.cores, loop.seconds, loop.completed, pick);
    const coresOf = (cores: Record<string, number>, pick: (name: string) => boolean) =>
      Object.entries(cores)
        .filter(([k]) => pick(k))
        .reduce((a, [, v]) => a + v, 0);
    /** Cores at rest, under load, and the CPU ms each order adds on top of rest. */
    const costOf = (pick: (name: string) => boolean) => {
      const msPerOrder = per(pick);
      const atRestMs = cpuMsPer(idleCores, loop.seconds, loop.completed, pick);
      return {
        idleCores: Math.round(coresOf(idleCores, pick) * 1000) / 1000,
        loadedCores: Math.round(coresOf(loop.cores, pick) * 1000) / 1000,
        msPerOrder,
        marginalMsPerOrder: Math.round((msPerOrder - atRestMs) * 10) / 10,
      };
    };
    // One group per service or app of the stack (not the runner, the machine, the others).
    const groups = [
      ...new Set(
        Object.keys(loop.cores)
          .filter((k) => stack.procs.some((p) => p.name === k))
          .map(groupOf),
      ),
    ].sort();
    const byGroup = Object.fromEntries(groups.map((g) => [g, costOf((k) => groupOf(k) === g)]));
    const temporal = per((k) => k.startsWith('temporal-') && k !== 'temporal-ui');
    const apps = per((k) => /^(api|relay|worker-|consumer-)/.test(k));
    const result = {
      date: new Date().toISOString(),
      machine: `${os.availableParallelism()} × ${os.cpus()[0]?.model ?? '?'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
      code: codeMeasured(),
      versions: { temporalServer: versions.temporalServer, kafka: versions.kafka },
      replicas: CLUSTER_REPLICAS,
      settings,
      startS: { infrastructure: infraS, ready: readyS },
      ordersPerS: loop.rate,
      completed: loop.completed,
      postErrors: loop.startErrors,
      latencyMs: loop.latencyMs,
      cores: loop.cores,
      idleCores,
      rssPeakKiB: loop.rssPeakKiB,
      cpuMsPerOrder: {
        byGroup,
        temporalServices: temporal,
        apps,
        kafka: per((k) => /^kafka-\d+$/.test(k)),
        postgresql: per((k) => k === 'postgresql'),
      },
    };
    const base = freeResultBase(resultsDir(), 'cluster', result.date.slice(0, 10), settings.label, [
      'md',
      'json',
    ]);
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
    fs.writeFileSync(`${base}.md`, report(result, byGroup));
    log(`written to ${base}.{md,json}`);
  } finally {
    await stop();
  }
}

interface Cost {
  idleCores: number;
  loadedCores: number;
  msPerOrder: number;
  marginalMsPerOrder: number;
}

function report(
  r: {
    date: string;
    machine: string;
    code: string;
    settings: typeof settings;
    startS: { infrastructure: number; ready: number };
    ordersPerS: number;
    completed: number;
    postErrors: number;
    latencyMs: { p50: number; p99: number };
    cores: Record<string, number>;
    idleCores: Record<string, number>;
    rssPeakKiB: Record<string, number>;
    cpuMsPerOrder: {
      temporalServices: number;
      apps: number;
      kafka: number;
      postgresql: number;
    };
  },
  byGroup: Record<string, Cost>,
): string {
  const lines = [
    `# Cluster topology, sustained end to end (${r.date.slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `Command: \`npm run bench:cluster\`. Machine: ${r.machine}. Code: ${r.code}.`,
    `Topology: Temporal frontend, history, matching and worker as separate processes on PostgreSQL (fsync on), the Web UI server, three Kafka brokers (RF 3, min.insync 2), two processes of every app. All on this one machine.`,
    `First ${r.settings.idleS} s at rest (no orders), then a closed loop: ${r.settings.inFlight} orders in flight, ${r.settings.warmupS} s warm-up, ${r.settings.seconds} s counted; POSTs alternate between the two APIs.`,
    '',
    '| measure | value |',
    '|---|--:|',
    `| orders/s COMPLETED | **${f(r.ordersPerS, 1)}** |`,
    `| orders completed in the window | ${r.completed} |`,
    `| POST → COMPLETED p50 / p99 ms | ${f(r.latencyMs.p50)} / ${f(r.latencyMs.p99)} |`,
    `| POST errors | ${r.postErrors} |`,
    `| start: infrastructure / whole topology ready (s) | ${f(r.startS.infrastructure)} / ${f(r.startS.ready)} |`,
    `| CPU ms per order: Temporal services (4) | ${f(r.cpuMsPerOrder.temporalServices)} |`,
    `| CPU ms per order: app processes (all replicas) | ${f(r.cpuMsPerOrder.apps)} |`,
    `| CPU ms per order: Kafka (3 brokers) | ${f(r.cpuMsPerOrder.kafka)} |`,
    `| CPU ms per order: PostgreSQL | ${f(r.cpuMsPerOrder.postgresql)} |`,
    '',
    '## CPU by service and app (replicas summed)',
    '',
    'Cores at rest and under load; CPU ms per completed order (all the CPU of the window ÷ orders), and',
    'the marginal CPU ms per order (what the load added over rest ÷ orders): cores needed ≈ at rest +',
    'marginal × orders/s ÷ 1000.',
    '',
    '| service / app | cores at rest | cores under load | CPU ms per order | marginal CPU ms per order |',
    '|---|--:|--:|--:|--:|',
    ...Object.entries(byGroup).map(
      ([g, c]) =>
        `| ${g} | ${f(c.idleCores, 3)} | ${f(c.loadedCores, 2)} | ${f(c.msPerOrder)} | ${f(c.marginalMsPerOrder)} |`,
    ),
    '',
    '## Cores and peak RSS per process',
    '',
    '| process | cores at rest | cores under load | peak RSS MiB under load |',
    '|---|--:|--:|--:|',
    ...Object.entries(r.cores)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([k, v]) =>
          `| ${k} | ${f(r.idleCores[k], 3)} | ${f(v, 2)} | ${r.rssPeakKiB[k] ? f(r.rssPeakKiB[k] / 1024) : '–'} |`,
      ),
    '',
  ];
  return lines.join('\n');
}

await main();
