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
import { CompletionWatcher, codeMeasured, log, postOrder } from './lib/e2e-kit.ts';
import { fmtNum as f } from './lib/report-format.ts';
import { freeResultBase, resultsDir } from './lib/results.ts';
import { labelEnv } from './lib/settings.ts';
import { intEnv } from '../scripts/lib/env-settings.ts';

const settings = {
  seconds: intEnv('BENCH_SUSTAINED_S', 60, 1, 3600),
  warmupS: intEnv('BENCH_SUSTAINED_WARMUP_S', 10, 0, 600),
  inFlight: intEnv('BENCH_SUSTAINED_IN_FLIGHT', 200, 1, 5000),
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
    const groups = [
      ...new Set(
        Object.keys(loop.cores)
          .filter((k) => stack.procs.some((p) => p.name === k))
          .map(groupOf),
      ),
    ].sort();
    const byGroup = Object.fromEntries(
      groups.map((g) => [g, per((k) => stack.procs.some((p) => p.name === k) && groupOf(k) === g)]),
    );
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
    rssPeakKiB: Record<string, number>;
    cpuMsPerOrder: {
      temporalServices: number;
      apps: number;
      kafka: number;
      postgresql: number;
    };
  },
  byGroup: Record<string, number>,
): string {
  const lines = [
    `# Cluster topology, sustained end to end (${r.date.slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `Command: \`npm run bench:cluster\`. Machine: ${r.machine}. Code: ${r.code}.`,
    `Topology: Temporal frontend, history, matching and worker as separate processes on PostgreSQL (fsync on), the Web UI server, three Kafka brokers (RF 3, min.insync 2), two processes of every app. All on this one machine.`,
    `Closed loop: ${r.settings.inFlight} orders in flight, ${r.settings.warmupS} s warm-up, ${r.settings.seconds} s counted; POSTs alternate between the two APIs.`,
    '',
    '| measure | value |',
    '|---|--:|',
    `| orders/s COMPLETED | **${f(r.ordersPerS)}** |`,
    `| orders completed in the window | ${r.completed} |`,
    `| POST → COMPLETED p50 / p99 ms | ${f(r.latencyMs.p50)} / ${f(r.latencyMs.p99)} |`,
    `| POST errors | ${r.postErrors} |`,
    `| start: infrastructure / whole topology ready (s) | ${f(r.startS.infrastructure)} / ${f(r.startS.ready)} |`,
    `| CPU ms per order: Temporal services (4) | ${f(r.cpuMsPerOrder.temporalServices)} |`,
    `| CPU ms per order: app processes (all replicas) | ${f(r.cpuMsPerOrder.apps)} |`,
    `| CPU ms per order: Kafka (3 brokers) | ${f(r.cpuMsPerOrder.kafka)} |`,
    `| CPU ms per order: PostgreSQL | ${f(r.cpuMsPerOrder.postgresql)} |`,
    '',
    '## CPU ms per completed order, by service and app (replicas summed)',
    '',
    '| service / app | CPU ms per order |',
    '|---|--:|',
    ...Object.entries(byGroup).map(([g, v]) => `| ${g} | ${f(v)} |`),
    '',
    '## Cores and peak RSS per process over the counted window',
    '',
    '| process | cores | peak RSS MiB |',
    '|---|--:|--:|',
    ...Object.entries(r.cores)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(
        ([k, v]) =>
          `| ${k} | ${f(v)} | ${r.rssPeakKiB[k] ? f(Math.round(r.rssPeakKiB[k] / 1024)) : '–'} |`,
      ),
    '',
  ];
  return lines.join('\n');
}

await main();
