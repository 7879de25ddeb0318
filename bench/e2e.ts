/**
 * bench/e2e: the whole order path on real processes.
 *
 * One run starts its own stack (PostgreSQL with fsync on, Temporal, Kafka,
 * maildev) in a temporary folder and the API and the four workers as their own
 * processes, as `npm start` runs them, with the default retry budgets and
 * WEBHOOK_RATE_PER_SECOND=20. A local receiver on 127.0.0.1 answers every
 * webhook 200 and records when each arrived. Then:
 *
 *  (a) latency at light load: orders one at a time at ~10/s, each fanned out to
 *      one webhook endpoint; from sending the POST to the order's COMPLETED.
 *      The runner watches the database (every 20 ms) rather than GET
 *      /orders/{id}, so the API is not loaded by the watching; the precise end
 *      is the row's updated_at as the worker wrote it (same host clock).
 *  (b) webhook rate: 5 endpoints, orders as fast as the API takes them, every
 *      delivery's arrival time; the most deliveries in any sliding one-second
 *      window, the mean rate and the drain time.
 *  (c) resident memory (VmRSS summed over each process's group and
 *      descendants) of the API and each worker: idle after start, the peak
 *      during (a) and (b) (sampled every 250 ms), and idle after the load.
 *
 * It writes bench/results/e2e-<date>[-<label>].md and prints it.
 *
 * Environment (all optional):
 *   BENCH_E2E_WARMUP_ORDERS=10     orders before (a), not measured
 *   BENCH_E2E_SERIAL_ORDERS=20     orders before (a), each POSTed once the previous one
 *                                  COMPLETED: the latency without any queueing
 *   BENCH_E2E_LATENCY_ORDERS=200   orders in (a)
 *   BENCH_E2E_LATENCY_RATE=10      orders per second in (a)
 *   BENCH_E2E_RATE_ORDERS=200      orders in (b)
 *   BENCH_E2E_RATE_ENDPOINTS=5     webhook endpoints in (b)
 *   BENCH_E2E_WEBHOOK_RATE=20      WEBHOOK_RATE_PER_SECOND of the webhooks worker
 *   BENCH_E2E_POST_CONCURRENCY=16  POSTs in flight in (b)
 *   BENCH_E2E_DRAIN_S=300          bound on waiting for a phase's orders to complete
 *   BENCH_E2E_MAX_MIN=30           bound on the whole run
 *   BENCH_E2E_OTHER_MAX_CORES=0.3  before each phase, wait (≤ BENCH_E2E_QUIET_WAIT_S=300) until
 *                                  processes outside this bench use less CPU than that; the
 *                                  report shows what they used during each phase either way
 *   BENCH_LABEL=                   suffix of the result file
 *   BENCH_KEEP_DATA=1              keep the temporary stack folder (logs, database)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { ManagedProcess } from '../scripts/lib/process.ts';
import { projectRoot, provisionAll, versions } from '../scripts/lib/tools.ts';
import { orderPlacedEventId, webhookMessageId } from '../src/shared/events.ts';
import { APP_PROCESSES, startAppStack, type AppStack } from '../scripts/lib/app-stack.ts';
import {
  CompletionWatcher,
  codeMeasured,
  createEndpoint,
  deleteEndpoint,
  delay,
  log,
  now,
  postOrder,
  startReceiver,
} from './lib/e2e-kit.ts';
import {
  RssSampler,
  coresBetween,
  idleRss,
  procSnapshot,
  waitForQuiet as waitForQuietWithin,
} from './lib/proc-stats.ts';
import { mib as mibOf } from './lib/report-format.ts';
import { intEnv } from '../scripts/lib/env-settings.ts';
import { maxInWindow, round, summary, type Summary } from './lib/stats.ts';

// ---------------------------------------------------------------- settings

const settings = {
  warmupOrders: intEnv('BENCH_E2E_WARMUP_ORDERS', 10, 0, 1000),
  serialOrders: intEnv('BENCH_E2E_SERIAL_ORDERS', 20, 0, 1000),
  latencyOrders: intEnv('BENCH_E2E_LATENCY_ORDERS', 200, 1, 10_000),
  latencyRate: intEnv('BENCH_E2E_LATENCY_RATE', 10, 1, 100),
  rateOrders: intEnv('BENCH_E2E_RATE_ORDERS', 200, 1, 10_000),
  rateEndpoints: intEnv('BENCH_E2E_RATE_ENDPOINTS', 5, 1, 50),
  webhookRate: intEnv('BENCH_E2E_WEBHOOK_RATE', 20, 1, 10_000),
  postConcurrency: intEnv('BENCH_E2E_POST_CONCURRENCY', 16, 1, 256),
  drainS: intEnv('BENCH_E2E_DRAIN_S', 300, 10, 3600),
  maxMin: intEnv('BENCH_E2E_MAX_MIN', 30, 1, 240),
  otherMaxCores: Number(process.env.BENCH_E2E_OTHER_MAX_CORES || '0.3'),
  quietWaitS: intEnv('BENCH_E2E_QUIET_WAIT_S', 300, 0, 3600),
  label: process.env.BENCH_LABEL ?? '',
  keepData: process.env.BENCH_KEEP_DATA === '1',
};

const waitForQuiet = (procs: () => ManagedProcess[], phase: string) =>
  waitForQuietWithin(procs, phase, settings, log);

// ---------------------------------------------------------------- phases

/** What both phases report besides their own measures. */
interface PhaseResult {
  orders: number;
  completed: number;
  /** POST sent → response. */
  postResponse: Summary;
  cores: Record<string, number>;
  /** Other processes' CPU just before the phase, and how long the runner waited for it. */
  quiet: { otherCores: number; waitedS: number };
}

interface LatencyResult extends PhaseResult {
  ratePerS: number;
  achievedRatePerS: number;
  /** One order in the system at a time: POST sent → row COMPLETED. */
  serial: Summary;
  /** POST sent → row updated to COMPLETED (updated_at). */
  toCompleted: Summary;
  /** p50 of toCompleted in each fifth of the run, in sending order: growth means a backlog. */
  p50ByFifth: number[];
  /** POST sent → the runner saw COMPLETED (20 ms polling). */
  toObserved: Summary;
  /** POST sent → the webhook arrived at the receiver. */
  toWebhook: Summary;
}

async function latencyPhase(
  app: AppStack,
  db: pg.Pool,
  receiver: Awaited<ReturnType<typeof startReceiver>>,
): Promise<LatencyResult> {
  const endpointId = await createEndpoint(app.apiUrl, `${receiver.url}/latency`);
  const watcher = new CompletionWatcher(db, 20);
  try {
    if (settings.warmupOrders) {
      log(`(a) warm-up: ${settings.warmupOrders} orders`);
      for (let i = 0; i < settings.warmupOrders; i++) {
        watcher.add((await postOrder(app.apiUrl)).id);
        await delay(1000 / settings.latencyRate);
      }
      if (!(await watcher.drained(settings.drainS * 1000)))
        throw new Error(`warm-up: ${watcher.pendingCount} orders not COMPLETED`);
    }
    const quiet = await waitForQuiet(() => [...app.stack.procs], '(a)');
    const serial: number[] = [];
    if (settings.serialOrders) {
      log(
        `(a) ${settings.serialOrders} orders one after the other (each once the previous one COMPLETED)`,
      );
      for (let i = 0; i < settings.serialOrders; i++) {
        const p = await postOrder(app.apiUrl);
        watcher.add(p.id);
        const deadline = Date.now() + 60_000;
        while (!watcher.completedAt.has(p.id) && Date.now() < deadline) await delay(5);
        const completedAt = watcher.completedAt.get(p.id);
        if (completedAt === undefined) throw new Error(`order ${p.id} not COMPLETED in 60 s`);
        serial.push(completedAt - p.sentAt);
      }
    }
    receiver.arrivals.length = 0;
    log(`(a) ${settings.latencyOrders} orders, one at a time at ${settings.latencyRate}/s`);
    const posts: { id: string; sentAt: number; answeredAt: number }[] = [];
    const before = procSnapshot();
    const t0 = now();
    const interval = 1000 / settings.latencyRate;
    for (let i = 0; i < settings.latencyOrders; i++) {
      const wait = t0 + i * interval - now();
      if (wait > 0) await delay(wait);
      const p = await postOrder(app.apiUrl);
      posts.push(p);
      watcher.add(p.id);
    }
    const lastSent = posts.at(-1)!.sentAt;
    const drained = await watcher.drained(settings.drainS * 1000);
    const cores = coresBetween(before, procSnapshot(), [...app.stack.procs]);
    if (!drained)
      log(`(a) ${watcher.pendingCount} orders not COMPLETED within ${settings.drainS} s`);

    const webhookIdToOrder = new Map(
      posts.map((p) => [webhookMessageId(orderPlacedEventId(p.id), endpointId), p.id]),
    );
    const arrivalOf = new Map<string, number>();
    for (const a of receiver.arrivals) {
      const id = webhookIdToOrder.get(a.webhookId);
      if (id && !arrivalOf.has(id)) arrivalOf.set(id, a.at);
    }
    const done = posts.filter((p) => watcher.completedAt.has(p.id));
    const fifth = Math.ceil(posts.length / 5);
    const p50ByFifth = [0, 1, 2, 3, 4].map(
      (k) =>
        summary(
          posts
            .slice(k * fifth, (k + 1) * fifth)
            .filter((p) => watcher.completedAt.has(p.id))
            .map((p) => watcher.completedAt.get(p.id)! - p.sentAt),
        ).p50,
    );
    return {
      orders: posts.length,
      ratePerS: settings.latencyRate,
      achievedRatePerS: round(((posts.length - 1) * 1000) / (lastSent - t0), 2),
      completed: done.length,
      serial: summary(serial),
      toCompleted: summary(done.map((p) => watcher.completedAt.get(p.id)! - p.sentAt)),
      p50ByFifth,
      toObserved: summary(done.map((p) => watcher.observedAt.get(p.id)! - p.sentAt)),
      toWebhook: summary(
        posts.filter((p) => arrivalOf.has(p.id)).map((p) => arrivalOf.get(p.id)! - p.sentAt),
      ),
      postResponse: summary(posts.map((p) => p.answeredAt - p.sentAt)),
      cores,
      quiet,
    };
  } finally {
    await watcher.stop();
    await deleteEndpoint(app.apiUrl, endpointId);
  }
}

interface RateResult extends PhaseResult {
  endpoints: number;
  configuredRatePerS: number;
  expectedDeliveries: number;
  deliveries: number;
  distinctWebhookIds: number;
  maxInSlidingSecond: number;
  /** Most deliveries in any sliding 5 s window, divided by 5. */
  maxRateOver5s: number;
  /** Where that second started, seconds after the first arrival. */
  maxWindowStartS: number;
  meanRatePerS: number;
  /** Mean rate after the first second (the limiter's start-up burst excluded). */
  steadyRatePerS: number;
  postsS: number;
  postThroughputPerS: number;
  /** First POST → first delivery. */
  firstDeliveryS: number;
  /** First POST → last delivery. */
  drainS: number;
  /** First POST → last order COMPLETED. */
  allCompletedS: number;
}

async function ratePhase(
  app: AppStack,
  db: pg.Pool,
  receiver: Awaited<ReturnType<typeof startReceiver>>,
): Promise<RateResult> {
  const endpointIds: string[] = [];
  for (let i = 0; i < settings.rateEndpoints; i++)
    endpointIds.push(await createEndpoint(app.apiUrl, `${receiver.url}/rate/${i + 1}`));
  const watcher = new CompletionWatcher(db, 100);
  try {
    const quiet = await waitForQuiet(() => [...app.stack.procs], '(b)');
    receiver.arrivals.length = 0;
    const expected = settings.rateOrders * settings.rateEndpoints;
    log(
      `(b) ${settings.rateOrders} orders × ${settings.rateEndpoints} endpoints = ${expected} deliveries at WEBHOOK_RATE_PER_SECOND=${settings.webhookRate}`,
    );
    const before = procSnapshot();
    const posts: { id: string; sentAt: number; answeredAt: number }[] = [];
    const t0 = now();
    let next = 0;
    await Promise.all(
      Array.from({ length: settings.postConcurrency }, async () => {
        while (next < settings.rateOrders) {
          next++;
          const p = await postOrder(app.apiUrl);
          posts.push(p);
          watcher.add(p.id);
        }
      }),
    );
    const postsDone = now();
    log(
      `(b) ${posts.length} orders accepted in ${round((postsDone - t0) / 1000, 2)} s; waiting for the deliveries`,
    );
    const deadline = Date.now() + settings.drainS * 1000;
    let lastLog = Date.now();
    while (receiver.arrivals.length < expected && Date.now() < deadline) {
      await delay(100);
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        log(`(b) ${receiver.arrivals.length}/${expected} deliveries`);
      }
    }
    const drained = await watcher.drained(Math.max(0, deadline - Date.now()));
    const cores = coresBetween(before, procSnapshot(), [...app.stack.procs]);
    if (!drained)
      log(`(b) ${watcher.pendingCount} orders not COMPLETED within ${settings.drainS} s`);

    const times = receiver.arrivals.map((a) => a.at).sort((a, b) => a - b);
    const first = times[0] ?? NaN;
    const last = times.at(-1) ?? NaN;
    const best = maxInWindow(times, 1000);
    const afterFirstSecond = times.filter((t) => t >= first + 1000);
    const completedTimes = [...watcher.completedAt.values()];
    return {
      orders: posts.length,
      endpoints: settings.rateEndpoints,
      configuredRatePerS: settings.webhookRate,
      expectedDeliveries: expected,
      deliveries: times.length,
      distinctWebhookIds: new Set(receiver.arrivals.map((a) => a.webhookId)).size,
      maxInSlidingSecond: best.count,
      maxRateOver5s: round(maxInWindow(times, 5000).count / 5, 1),
      maxWindowStartS: round((best.start - first) / 1000, 2),
      meanRatePerS: round(((times.length - 1) * 1000) / (last - first), 2),
      steadyRatePerS: round(
        ((afterFirstSecond.length - 1) * 1000) /
          ((afterFirstSecond.at(-1) ?? NaN) - (afterFirstSecond[0] ?? NaN)),
        2,
      ),
      postsS: round((postsDone - t0) / 1000, 2),
      postThroughputPerS: round((posts.length * 1000) / (postsDone - t0), 1),
      postResponse: summary(posts.map((p) => p.answeredAt - p.sentAt)),
      firstDeliveryS: round((first - t0) / 1000, 2),
      drainS: round((last - t0) / 1000, 2),
      allCompletedS: round((Math.max(...completedTimes) - t0) / 1000, 2),
      completed: watcher.completedAt.size,
      cores,
      quiet,
    };
  } finally {
    await watcher.stop();
    for (const id of endpointIds) await deleteEndpoint(app.apiUrl, id);
  }
}

// ---------------------------------------------------------------- report

interface Machine {
  date: string;
  nproc: number;
  cpuModel: string;
  memory: string;
  kernel: string;
  node: string;
  git: string;
  postgres: string;
  fsync: string;
  synchronousCommit: string;
  temporalCli: string;
  kafka: string;
  loadavgStart: number[];
  loadavgEnd: number[];
}

const ms = (x: number) => (Number.isFinite(x) ? `${Math.round(x)}` : 'n/a');
const mib = (kib: number | undefined) => mibOf(kib, 'n/a');

function render(
  m: Machine,
  a: LatencyResult,
  b: RateResult,
  rss: Record<'idle' | 'peakA' | 'peakB' | 'idleAfter', Record<string, number>>,
  startupS: number,
): string {
  const row = (name: string, s: Summary) =>
    `| ${name} | ${s.n} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.p99)} | ${ms(s.max)} |`;
  const coreRows = (c: Record<string, number>) =>
    Object.entries(c)
      .sort(([x], [y]) => x.localeCompare(y))
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  const appNames = APP_PROCESSES.map((p) => p.name as string);
  const infra = ['postgresql', 'temporal', 'kafka', 'maildev'];
  const memRow = (name: string) =>
    `| ${name} | ${mib(rss.idle[name])} | ${mib(rss.peakA[name])} | ${mib(rss.peakB[name])} | ${mib(rss.idleAfter[name])} |`;
  const sumOf = (r: Record<string, number>) => appNames.reduce((t, n) => t + (r[n] ?? 0), 0);
  return [
    `# bench/e2e — ${m.date}`,
    '',
    'The whole order path on real processes (`node --import tsx bench/e2e.ts`): a stack of its',
    'own with PostgreSQL fsync on, the API and the four workers as separate processes, default',
    `retry budgets, WEBHOOK_RATE_PER_SECOND=${b.configuredRatePerS}, LOG_LEVEL=info; webhooks go to a local receiver that answers 200.`,
    '',
    '## Machine',
    '',
    `- CPUs: ${m.nproc} × ${m.cpuModel}; memory ${m.memory}; Linux ${m.kernel}`,
    `- Node ${m.node}; ${m.postgres} (fsync=${m.fsync}, synchronous_commit=${m.synchronousCommit}); Temporal CLI ${m.temporalCli} (dev server, SQLite); Kafka ${m.kafka}`,
    `- code measured: ${m.git}`,
    `- load average at start ${m.loadavgStart.map((x) => x.toFixed(2)).join(' ')}, at end ${m.loadavgEnd.map((x) => x.toFixed(2)).join(' ')}; stack started in ${startupS.toFixed(1)} s`,
    `- cores busy outside this bench (of ${m.nproc}): ${a.quiet.otherCores} just before (a) (after waiting ${a.quiet.waitedS} s for ≤ ${settings.otherMaxCores}), ${a.cores.other} during (a); ${b.quiet.otherCores} before (b) (waited ${b.quiet.waitedS} s), ${b.cores.other} during (b)`,
    ...(Math.max(a.cores.other ?? 0, b.cores.other ?? 0) > settings.otherMaxCores
      ? [
          '',
          `> **Shared machine.** Other processes took up to ${Math.max(a.cores.other ?? 0, b.cores.other ?? 0)} of ${m.nproc} cores while this ran; the stack was starved of CPU and latency and rates below are worse than on a machine of its own.`,
        ]
      : []),
    '',
    `## (a) POST → COMPLETED at light load`,
    '',
    `${a.orders} orders, one request at a time, paced at ${a.ratePerS}/s (achieved ${a.achievedRatePerS}/s), each with one webhook endpoint; ${a.completed}/${a.orders} COMPLETED; ${settings.warmupOrders} warm-up orders before, not counted. Milliseconds:`,
    '',
    '| from POST sent to | n | p50 | p90 | p99 | max |',
    '|---|---:|---:|---:|---:|---:|',
    row('order row COMPLETED (its updated_at)', a.toCompleted),
    row('COMPLETED seen by the runner (DB polled every 20 ms)', a.toObserved),
    row('webhook arrived at the receiver', a.toWebhook),
    row('POST answered (201)', a.postResponse),
    row(`order row COMPLETED, ${a.serial.n} orders one after the other (no queueing)`, a.serial),
    '',
    `p50 of POST → COMPLETED in each fifth of the run, in sending order: ${a.p50ByFifth.map(ms).join(', ')} ms.`,
    '',
    `Cores used during (a): ${coreRows(a.cores)}.`,
    '',
    '## (b) Webhook rate adherence',
    '',
    `${b.orders} orders × ${b.endpoints} endpoints = ${b.expectedDeliveries} deliveries expected, ${b.deliveries} arrived (${b.distinctWebhookIds} distinct webhook-ids); orders POSTed as fast as the API took them (${settings.postConcurrency} in flight): ${b.orders} in ${b.postsS} s (${b.postThroughputPerS}/s, response p50 ${ms(b.postResponse.p50)} ms, p99 ${ms(b.postResponse.p99)} ms).`,
    '',
    '| measure | value |',
    '|---|---:|',
    `| configured WEBHOOK_RATE_PER_SECOND | ${b.configuredRatePerS} |`,
    `| most deliveries in any sliding 1 s window | **${b.maxInSlidingSecond}** (window starting ${b.maxWindowStartS} s after the first delivery) |`,
    `| most deliveries in any sliding 5 s window, per second | ${b.maxRateOver5s}/s |`,
    `| mean rate, first to last delivery | **${b.meanRatePerS}/s** |`,
    `| mean rate after the first second | ${b.steadyRatePerS}/s |`,
    `| first POST → first delivery | ${b.firstDeliveryS} s |`,
    `| drain: first POST → last delivery | **${b.drainS} s** (${(b.expectedDeliveries / b.configuredRatePerS).toFixed(0)} s at exactly the configured rate) |`,
    `| first POST → last order COMPLETED | ${b.allCompletedS} s (${b.completed}/${b.orders} COMPLETED) |`,
    '',
    "The limit is Temporal's `maxTaskQueueActivitiesPerSecond` on the `webhooks` queue: the server splits it evenly over the",
    "queue's read partitions (4 by default) and gives each a token bucket with a burst of ceil(rate / partitions), so up to one",
    "second's worth can go out at once on top of the rate (the 1 s peak), and partitions whose backlog runs dry leave their",
    'share unused (the mean below the rate).',
    '',
    `Cores used during (b): ${coreRows(b.cores)}.`,
    '',
    '## (c) Resident memory (MiB)',
    '',
    'VmRSS from /proc/<pid>/status summed over each process group (and its descendants); idle = mean of 4 samples 1 s apart, peak = highest 250 ms sample.',
    '',
    '| process | idle after start | peak during (a) | peak during (b) | idle after the load |',
    '|---|---:|---:|---:|---:|',
    ...appNames.map(memRow),
    `| **API + workers** | ${mib(sumOf(rss.idle))} | ${mib(sumOf(rss.peakA))} | ${mib(sumOf(rss.peakB))} | ${mib(sumOf(rss.idleAfter))} |`,
    ...infra.map(memRow),
    '',
    'PostgreSQL is the postmaster and its backends; their shared buffers are counted once per process that touched them, so its sum overstates.',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const started = Date.now();
  const loadavgStart = os.loadavg();
  const tools = provisionAll((m) => log(`provision: ${m}`));
  log('starting the stack (fsync on) and the app processes');
  const app = await startAppStack({
    tools,
    ephemeral: false,
    appEnv: {
      WEBHOOK_RATE_PER_SECOND: String(settings.webhookRate),
      LOG_LEVEL: 'info',
      // Room for the rate phase's endpoints (BENCH_E2E_RATE_ENDPOINTS, up to 50) and the latency one.
      WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE: String(Math.max(20, settings.rateEndpoints + 1)),
    },
    log: (m) => log(`stack: ${m}`),
  });
  const startupS = (Date.now() - started) / 1000;

  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    log('stopping the stack');
    await app.stop();
    if (settings.keepData) log(`stack data kept in ${app.stack.opts.dataDir}`);
    else fs.rmSync(app.stack.opts.dataDir, { recursive: true, force: true });
  };
  const onSignal = () => void stopAll().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const overall = setTimeout(() => {
    log(`FAILED: the run exceeded BENCH_E2E_MAX_MIN=${settings.maxMin}`);
    void stopAll().then(() => process.exit(1));
  }, settings.maxMin * 60_000);
  overall.unref();

  const db = new pg.Pool({ connectionString: app.env.DATABASE_URL, max: 3 });
  const receiver = await startReceiver();
  const procs = () => [...app.stack.procs];
  try {
    const pgInfo = await db.query<{ version: string; fsync: string; sc: string }>(
      `SELECT split_part(version(), ' on ', 1) AS version, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc`,
    );
    const machine: Omit<Machine, 'loadavgEnd'> = {
      date: new Date().toISOString().slice(0, 10),
      nproc: os.availableParallelism(),
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
      kernel: os.release(),
      node: process.version,
      git: codeMeasured(),
      postgres: pgInfo.rows[0]!.version,
      fsync: pgInfo.rows[0]!.fsync,
      synchronousCommit: pgInfo.rows[0]!.sc,
      temporalCli: versions.temporalCli,
      kafka: versions.kafka,
      loadavgStart,
    };
    log(
      `machine: ${machine.nproc} cores, ${machine.postgres}, fsync=${machine.fsync}, git ${machine.git}`,
    );

    await delay(5000);
    const idle = await idleRss(procs);
    log(
      `idle RSS (MiB): ${Object.entries(idle)
        .map(([k, v]) => `${k} ${mib(v)}`)
        .join(', ')}`,
    );

    const sampler = new RssSampler(procs);
    sampler.start();
    const a = await latencyPhase(app, db, receiver);
    const peakA = sampler.stop();
    log(
      `(a) POST→COMPLETED p50 ${ms(a.toCompleted.p50)} ms, p99 ${ms(a.toCompleted.p99)} ms, max ${ms(a.toCompleted.max)} ms`,
    );

    sampler.start();
    const b = await ratePhase(app, db, receiver);
    const peakB = sampler.stop();
    log(
      `(b) max ${b.maxInSlidingSecond} in a sliding second, mean ${b.meanRatePerS}/s, drain ${b.drainS} s`,
    );

    await delay(5000);
    const idleAfter = await idleRss(procs);

    const report = render(
      { ...machine, loadavgEnd: os.loadavg() },
      a,
      b,
      { idle, peakA, peakB, idleAfter },
      startupS,
    );
    const dir = path.join(projectRoot, 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(
      dir,
      `e2e-${machine.date}${settings.label ? `-${settings.label}` : ''}.md`,
    );
    fs.writeFileSync(file, report);
    console.log(report);
    log(`wrote ${path.relative(projectRoot, file)}`);
  } finally {
    clearTimeout(overall);
    await receiver.close();
    await db.end();
    await stopAll();
  }
}

try {
  await main();
} catch (e) {
  console.error(`[bench] FAILED ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
}
// Whatever is still open (keep-alive sockets, a straggler's handle) must not keep the run alive.
process.exit(process.exitCode ?? 0);
