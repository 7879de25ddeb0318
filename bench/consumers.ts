/**
 * bench/consumers: how fast each consumer group works off a backlog.
 *
 * One run starts its own stack (PostgreSQL with fsync on, Kafka; no Temporal)
 * in a temporary folder, publishes BENCH_EVENTS order.placed events to
 * `orders.placed` (BENCH_PARTITIONS partitions, encoded exactly as the events
 * worker encodes them), then, for each group and transaction mode, starts the
 * real consumer process (`src/consumers/<group>.ts`), measures the time from
 * "consumer running" until the group's committed offsets reach the end of the
 * log, checks the projection and the process's /metrics, stops it with
 * SIGTERM and resets the group to the earliest offset (which empties its
 * projection) for the next run. Finally both groups run at once. Results go to
 * bench/results/consumers-<date>.md (+ .json).
 *
 * Environment (all optional):
 *   BENCH_EVENTS=100000            backlog size
 *   BENCH_PARTITIONS=6             partitions of orders.placed
 *   BENCH_GROUPS=analytics,inventory
 *   BENCH_MODES=per-event,per-batch
 *   BENCH_BOTH=1                   0 skips the run of both groups at once
 *   BENCH_BATCH_MAX_EVENTS=500     CONSUMER_BATCH_MAX_EVENTS in per-batch mode
 *   BENCH_POOL_SIZE=10             DATABASE_POOL_SIZE of the consumer processes
 *   BENCH_MAX_MIN=60               bound on the whole run
 *   BENCH_LABEL=                   suffix of the result files
 *   BENCH_KEEP_DATA=1              keep the temporary stack folder
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import pino from 'pino';
import { delay, tailFile, type ManagedProcess } from '../scripts/lib/process.ts';
import type { Stack } from '../scripts/lib/stack.ts';
import { orderPlacedCloudEvent, toKafkaMessage } from '../src/activities/events.ts';
import { loadConfig } from '../src/config/env.ts';
import { resetGroup } from '../src/consumers/runtime/group-admin.ts';
import { consumerGroups, type ConsumerGroupName } from '../src/consumers/runtime/groups.ts';
import { createDb, type Db } from '../src/db/client.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../src/events/kafka.ts';
import type { KafkaAdmin } from '../src/events/kafka-types.ts';
import { ORDERS_PLACED_TOPIC, type OrderPlacedData } from '../src/shared/events.ts';
import { codeMeasured, log } from './lib/e2e-kit.ts';
import { coresBetween, procSnapshot, type Snapshot } from './lib/proc-stats.ts';
import { freeResultBase, resultsDir } from './lib/results.ts';
import { guardedStack } from './lib/run-guard.ts';
import { intEnv, listEnv } from '../scripts/lib/env-settings.ts';
import { round } from './lib/stats.ts';

// ---------------------------------------------------------------- settings

const MODES = ['per-event', 'per-batch'] as const;
type Mode = (typeof MODES)[number];

const settings = {
  events: intEnv('BENCH_EVENTS', 100_000, 1, 10_000_000),
  partitions: intEnv('BENCH_PARTITIONS', 6, 1, 100),
  groups: listEnv('BENCH_GROUPS', Object.keys(consumerGroups) as ConsumerGroupName[]),
  modes: listEnv('BENCH_MODES', MODES),
  both: process.env.BENCH_BOTH !== '0',
  batchMaxEvents: intEnv('BENCH_BATCH_MAX_EVENTS', 500, 1, 10_000),
  poolSize: intEnv('BENCH_POOL_SIZE', 10, 1, 200),
  maxMin: intEnv('BENCH_MAX_MIN', 60, 1, 24 * 60),
  label: process.env.BENCH_LABEL ?? '',
  keepData: process.env.BENCH_KEEP_DATA === '1',
};

const topic = ORDERS_PLACED_TOPIC;

// ---------------------------------------------------------------- CPU

/**
 * Cores per stack process (with its group and descendants) between two
 * snapshots, those that used any; "bench" is this runner, "total" the whole
 * machine, "other" the rest of it.
 */
function cpuCores(a: Snapshot, b: Snapshot, procs: ManagedProcess[]): Record<string, number> {
  const all = coresBetween(a, b, procs, { runner: 'bench', machine: 'total' });
  return Object.fromEntries(
    Object.entries(all).filter(([k, v]) => v > 0 || k === 'total' || k === 'other'),
  );
}

// ---------------------------------------------------------------- backlog

const CURRENCIES = ['EUR', 'USD', 'GBP'];
const SKUS = Array.from({ length: 500 }, (_, i) => `SKU-${String(i).padStart(4, '0')}`);

/** A plausible order of the last 30 days: 1–3 lines of 500 SKUs. */
function randomOrder(now: number): OrderPlacedData {
  const lines = 1 + Math.floor(Math.random() * 3);
  const items = Array.from({ length: lines }, () => ({
    sku: SKUS[Math.floor(Math.random() * SKUS.length)]!,
    quantity: 1 + Math.floor(Math.random() * 5),
    unitPriceCents: 100 + Math.floor(Math.random() * 10_000),
  }));
  return {
    orderId: randomUUID(),
    customerEmail: 'bench@example.com',
    currency: CURRENCIES[Math.floor(Math.random() * CURRENCIES.length)]!,
    totalCents: items.reduce((s, i) => s + i.quantity * i.unitPriceCents, 0),
    items,
    placedAt: new Date(now - Math.floor(Math.random() * 30 * 86_400_000)).toISOString(),
  };
}

interface Expected {
  orders: number;
  revenueCents: bigint;
  reservedQuantity: bigint;
  skuOrders: number;
}

async function publishBacklog(
  kafka: ReturnType<typeof createKafka>,
): Promise<{ expected: Expected; seconds: number }> {
  const producer = createOrderEventsProducer(kafka);
  await producer.connect();
  const expected: Expected = { orders: 0, revenueCents: 0n, reservedQuantity: 0n, skuOrders: 0 };
  const t0 = Date.now();
  const now = Date.now();
  try {
    for (let sent = 0; sent < settings.events;) {
      const n = Math.min(2_000, settings.events - sent);
      const orders = Array.from({ length: n }, () => randomOrder(now));
      for (const o of orders) {
        expected.orders += 1;
        expected.revenueCents += BigInt(o.totalCents);
        expected.reservedQuantity += BigInt(o.items.reduce((s, i) => s + i.quantity, 0));
        expected.skuOrders += new Set(o.items.map((i) => i.sku)).size;
      }
      await producer.send({
        topic,
        acks: -1,
        messages: orders.map((o) => toKafkaMessage(orderPlacedCloudEvent(o), o.orderId)),
      });
      sent += n;
      if (sent % 20_000 === 0) log(`published ${sent}`);
    }
  } finally {
    await producer.disconnect();
  }
  return { expected, seconds: (Date.now() - t0) / 1000 };
}

// ---------------------------------------------------------------- runs

interface GroupRun {
  group: ConsumerGroupName;
  mode: Mode;
  together: boolean;
  events: number;
  /** From "consumer running" to all offsets committed. */
  seconds: number;
  eventsPerSecond: number;
  /** Rate between the first and the last observed progress (without joining the group). */
  steadyEventsPerSecond: number;
  processed: number | null;
  duplicates: number | null;
  lagAtEnd: number | null;
  projectionOk: boolean;
  projection: string;
}

interface Run {
  name: string;
  groups: GroupRun[];
  cores: Record<string, number>;
}

async function committedTotal(admin: KafkaAdmin, groupId: string): Promise<number> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return (offsets?.partitions ?? []).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

/** Sum of a metric's samples with the given labels, from a Prometheus exposition. */
function metricSum(text: string, name: string, labels: Record<string, string>): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const matches = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (matches) sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

async function checkProjection(
  db: Db,
  group: ConsumerGroupName,
  expected: Expected,
): Promise<{ ok: boolean; text: string }> {
  if (group === 'analytics') {
    const [row] = await db.$queryRaw<{ orders: bigint; revenue: bigint }[]>`
      SELECT coalesce(sum(order_count), 0)::bigint AS orders, coalesce(sum(revenue_cents), 0)::bigint AS revenue
      FROM analytics_daily`;
    const ok = Number(row?.orders) === expected.orders && row?.revenue === expected.revenueCents;
    return { ok, text: `analytics_daily: ${row?.orders} orders, ${row?.revenue} cents` };
  }
  const [row] = await db.$queryRaw<{ quantity: bigint; orders: bigint }[]>`
    SELECT coalesce(sum(reserved_quantity), 0)::bigint AS quantity, coalesce(sum(order_count), 0)::bigint AS orders
    FROM stock_reservations`;
  const ok =
    row?.quantity === expected.reservedQuantity && Number(row?.orders) === expected.skuOrders;
  return { ok, text: `stock_reservations: ${row?.quantity} reserved, ${row?.orders} SKU-orders` };
}

async function runGroups(
  stack: Stack,
  admin: KafkaAdmin,
  db: Db,
  groups: ConsumerGroupName[],
  mode: Mode,
  expected: Expected,
): Promise<Run> {
  const name = `${groups.join('+')} ${mode}`;
  log(`run: ${name}`);
  const procs: { group: ConsumerGroupName; proc: ManagedProcess }[] = [];
  const before = procSnapshot();
  const started = Date.now();
  for (const group of groups) {
    const proc = await stack.startApp(
      `consumer-${group}-${mode}-${procs.length}-${Date.now()}`,
      `src/consumers/${group}.ts`,
      {
        CONSUMER_TRANSACTION: mode,
        CONSUMER_BATCH_MAX_EVENTS: String(settings.batchMaxEvents),
        CONSUMER_METRICS_PORT: '0',
        CONSUMER_LAG_INTERVAL: '500ms',
        DATABASE_POOL_SIZE: String(settings.poolSize),
        KAFKA_TOPIC_PARTITIONS: String(settings.partitions),
        LOG_LEVEL: 'info',
        NODE_ENV: 'production',
      },
      async (p) => /"msg":"consumer running"/.test(tailFile(p.spec.logFile, 200)),
    );
    procs.push({ group, proc });
  }
  const running = Date.now();
  const results: GroupRun[] = [];
  await Promise.all(
    procs.map(async ({ group, proc }) => {
      const { groupId } = consumerGroups[group];
      let first: { at: number; n: number } | undefined;
      let last = { at: running, n: 0 };
      for (;;) {
        const n = await committedTotal(admin, groupId);
        const at = Date.now();
        if (n > 0 && !first) first = { at, n };
        if (n > last.n) last = { at, n };
        if (n >= settings.events) break;
        if (!proc.running) throw new Error(`${proc.name} exited:\n${proc.tail()}`);
        if (at - last.at > 120_000) throw new Error(`${proc.name} made no progress for 2 min`);
        await delay(100);
      }
      const seconds = (last.at - running) / 1000;
      const steady =
        first && last.at > first.at ? (last.n - first.n) / ((last.at - first.at) / 1000) : NaN;
      // Lag is refreshed every 500 ms: wait for a refresh after the last commit.
      await delay(1_200);
      const line = tailFile(proc.spec.logFile, 400)
        .split('\n')
        .find((l) => l.includes('"msg":"consumer running"'));
      const url = line ? (JSON.parse(line) as { metricsUrl: string }).metricsUrl : '';
      const text = url ? await (await fetch(url)).text() : '';
      const check = await checkProjection(db, group, expected);
      results.push({
        group,
        mode,
        together: groups.length > 1,
        events: settings.events,
        seconds: round(seconds, 2),
        eventsPerSecond: round(settings.events / seconds, 0),
        steadyEventsPerSecond: round(steady, 0),
        processed: metricSum(text, 'orderflow_consumer_events_total', { outcome: 'processed' }),
        duplicates: metricSum(text, 'orderflow_consumer_events_total', { outcome: 'duplicate' }),
        lagAtEnd: metricSum(text, 'orderflow_consumer_lag', { group: groupId }),
        projectionOk: check.ok,
        projection: check.text,
      });
      log(
        `${group} ${mode}: ${settings.events} events in ${seconds.toFixed(1)} s = ${Math.round(settings.events / seconds)}/s; ${check.text}${check.ok ? '' : ' (MISMATCH)'}`,
      );
    }),
  );
  const cores = cpuCores(before, procSnapshot(), stack.procs);
  log(
    `cores during ${name} (${((Date.now() - started) / 1000).toFixed(0)} s): ${JSON.stringify(cores)}`,
  );
  for (const { proc } of procs) await proc.stop(30_000);
  for (const { proc } of procs) {
    if (proc.exitCode !== 0)
      throw new Error(`${proc.name} exited with ${proc.exitCode} on SIGTERM`);
  }
  // The next run starts from the beginning of the log with an empty projection.
  for (const group of groups) {
    const { groupId, projection } = consumerGroups[group];
    await resetGroup({ admin, db, groupId, projection, topic, to: 'earliest' });
  }
  return { name, groups: results, cores };
}

// ---------------------------------------------------------------- report

interface Machine {
  cpus: string;
  memory: string;
  node: string;
  postgres: string;
  kafka: string;
  code: string;
  loadBefore: string;
  loadAfter: string;
}

function machineInfo(postgres: string): Machine {
  const cpus = os.cpus();
  return {
    cpus: `${cpus.length} × ${cpus[0]?.model ?? 'unknown'}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    postgres,
    kafka: '4.1.1',
    code: codeMeasured(),
    loadBefore: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    loadAfter: '',
  };
}

function renderReport(
  date: string,
  machine: Machine,
  publish: { seconds: number },
  runs: Run[],
): string {
  const rows = runs.flatMap((r) => r.groups.map((g) => ({ ...g, cores: r.cores, run: r.name })));
  const rate = (g: GroupRun) => g.eventsPerSecond.toLocaleString('en-US');
  const lines = [
    `# bench/consumers — ${date}`,
    '',
    `A backlog of ${settings.events.toLocaleString('en-US')} order.placed events on \`${topic}\` (${settings.partitions} partitions, published before the runs) worked off by the real consumer processes (\`node --import tsx bench/consumers.ts\`): a stack of its own with PostgreSQL fsync on and synchronous_commit on, and Kafka 4.1.1; no Temporal. One process per group, ${settings.partitions} partitions worked on at once, DATABASE_POOL_SIZE=${settings.poolSize}. Between runs the group is stopped (SIGTERM) and reset to the earliest offset (\`consumers reset --to earliest\`: processed_events and the projection emptied), so every run rebuilds its projection from the whole log.`,
    '',
    '- **per-event**: one database transaction per event (`CONSUMER_TRANSACTION=per-event`): the processed_events row and the projection upsert, then COMMIT (an fsync).',
    `- **per-batch**: one transaction per fetched batch of a partition, at most ${settings.batchMaxEvents} events (\`CONSUMER_TRANSACTION=per-batch\`, the default): one multi-row INSERT … ON CONFLICT DO NOTHING RETURNING into processed_events, the effects of the new events summed and upserted, COMMIT.`,
    '',
    'In both modes offsets are committed only after the transaction, every second within a batch and at its end.',
    '',
    '## Machine',
    '',
    `- CPUs: ${machine.cpus}; memory ${machine.memory}; ${os.type()} ${os.release()}`,
    `- Node ${machine.node}; ${machine.postgres}; Kafka ${machine.kafka}`,
    `- code measured: ${machine.code}`,
    `- load average at start ${machine.loadBefore}, at end ${machine.loadAfter}`,
    `- backlog published in ${publish.seconds.toFixed(1)} s (${Math.round(settings.events / publish.seconds).toLocaleString('en-US')} events/s, the app's producer, acks=all)`,
    '',
    '## Events per second per group',
    '',
    '| run | group | transaction | events/s | seconds | steady events/s | processed | duplicates | lag at end | projection |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (g) =>
        `| ${g.run} | ${g.group} | ${g.mode} | **${rate(g)}** | ${g.seconds} | ${Number.isFinite(g.steadyEventsPerSecond) ? g.steadyEventsPerSecond.toLocaleString('en-US') : '–'} | ${g.processed ?? '–'} | ${g.processed === null ? '–' : (g.duplicates ?? 0)} | ${g.lagAtEnd ?? '–'} | ${g.projectionOk ? 'matches' : '**MISMATCH**'}: ${g.projection} |`,
    ),
    '',
    "events/s: events ÷ time from the readiness line to the last committed offset (joining the group included); steady: between the first and the last observed commit. processed, duplicates and lag at end are read from the process's own /metrics.",
    '',
    '## CPU (cores) per run',
    '',
    '| run | ' +
      [
        'consumer processes',
        'postgresql',
        'kafka',
        'bench',
        'other (outside this bench)',
        'machine',
      ].join(' | ') +
      ' |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...runs.map((r) => {
      const consumers = Object.entries(r.cores)
        .filter(([k]) => k.startsWith('consumer-'))
        .reduce((s, [, v]) => s + v, 0);
      return `| ${r.name} | ${round(consumers, 2)} | ${r.cores.postgresql ?? 0} | ${r.cores.kafka ?? 0} | ${r.cores.bench ?? 0} | ${r.cores.other ?? 0} | ${r.cores.total ?? 0} |`;
    }),
    '',
    'The machine is shared: "other" is CPU used by processes outside this bench during the run; read the rates with it in mind.',
    '',
  ];
  return lines.join('\n');
}

function resultPath(date: string, ext: string): string {
  return `${freeResultBase(resultsDir(), 'consumers', date, settings.label, ['md', 'json'])}.${ext}`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  // Temporal is not needed: an address that is never dialled keeps it from starting.
  const guard = await guardedStack({
    name: 'orderflow-bench-consumers-',
    keepData: settings.keepData,
    maxMin: settings.maxMin,
    stack: { external: { temporalAddress: '127.0.0.1:1' } },
  });
  const { stack, dataDir } = guard;

  let db: Db | undefined;
  let admin: KafkaAdmin | undefined;
  try {
    log(`starting the stack in ${dataDir} (PostgreSQL with fsync on)`);
    const env = await stack.startInfrastructure();
    const config = loadConfig({ DATABASE_URL: env.DATABASE_URL, KAFKA_BROKERS: env.KAFKA_BROKERS });
    db = createDb(env.DATABASE_URL, 2);
    const [pgVersion] = await db.$queryRaw<{ v: string }[]>`
      SELECT split_part(version(), ' (', 1) || ' (fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') || ')' AS v`;
    const machine = machineInfo(pgVersion?.v ?? 'PostgreSQL');
    const kafka = createKafka(config, { logger: pino({ level: 'error' }), clientId: 'bench' });
    admin = kafka.admin();
    await admin.connect();
    await ensureTopic(admin, topic, settings.partitions);
    log(`publishing ${settings.events} events`);
    const publish = await publishBacklog(kafka);
    log(`published in ${publish.seconds.toFixed(1)} s`);

    const runs: Run[] = [];
    for (const group of settings.groups) {
      for (const mode of settings.modes) {
        runs.push(await runGroups(stack, admin, db, [group], mode, publish.expected));
      }
    }
    if (settings.both && settings.groups.length > 1) {
      for (const mode of settings.modes.includes('per-batch')
        ? (['per-batch'] as const)
        : settings.modes) {
        runs.push(await runGroups(stack, admin, db, settings.groups, mode, publish.expected));
      }
    }
    machine.loadAfter = os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    const date = new Date().toISOString().slice(0, 10);
    const mdPath = resultPath(date, 'md');
    fs.writeFileSync(mdPath, renderReport(date, machine, publish, runs));
    fs.writeFileSync(
      mdPath.replace(/\.md$/, '.json'),
      `${JSON.stringify({ machine, settings, publish: { seconds: publish.seconds }, runs }, null, 2)}\n`,
    );
    log(`wrote ${mdPath}`);
    if (runs.some((r) => r.groups.some((g) => !g.projectionOk))) {
      guard.fail();
      throw new Error('a projection did not match the backlog');
    }
  } catch (e) {
    guard.fail();
    throw e;
  } finally {
    guard.clear();
    await admin?.disconnect().catch(() => {});
    await db?.$disconnect().catch(() => {});
    await guard.cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
