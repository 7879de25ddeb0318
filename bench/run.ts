/**
 * bench/run.ts (`npm run bench`): the whole benchmark in one unattended run,
 * over loopback only, with every loop bounded in count and time.
 *
 *  1. intake: bench/intake.ts (its own stack) with npm start's settings
 *     (BENCH_NPM_START=1: the APIs at the default LOG_LEVEL, the whole stack
 *     busy) and short defaults, the API as npm start runs it (relay) against the
 *     insert-only floor; its tables are copied into this report.
 *  2. One fresh stack (PostgreSQL with fsync on, Temporal, Kafka, maildev, the
 *     API, the relay, the four workers and the two consumers, as npm start runs
 *     them; scripts/lib/app-stack.ts) and, beside it, the BullMQ peer
 *     (bench/peers/bullmq: Redis, its API and four workers) on the same
 *     PostgreSQL, Kafka and maildev. On it, in turn:
 *     - peer intake: POST /orders at a paced rate and at saturation, orderflow vs peer;
 *     - sustained: orders kept in flight for a while, orders/s reaching COMPLETED,
 *       CPU (/proc) and VmRSS per process, CPU ms per completed order, orderflow vs peer;
 *     - temporal-floor: no-op workflows of orderflow's shape (read from an order's
 *       history) on the same Temporal server, in the same closed loop, through
 *       four worker processes of their own (bench/parts/temporal-floor.ts);
 *       orderflow's sustained rate against it;
 *     - priority: live-order POST→COMPLETED without and while a bulk backlog
 *       (`resendOrderEventsWorkflow` over seeded orders, task queue events-bulk) drains;
 *     - backlog: many orders posted at once, the completion rate over the first
 *       minute and over the minute after the last POST against the sustained
 *       rate, the time until all completed, CPU ms per order
 *       (bench/parts/backlog.ts); later parts wait (bounded) for it to drain;
 *     - spike: many orders in a few seconds (open loop, paced), each with one
 *       webhook endpoint: API errors, latency, time until all are COMPLETED, and
 *       webhook deliveries in every one-second window vs WEBHOOK_RATE_PER_SECOND;
 *     - faults, orderflow vs peer: kill -9 of the email worker mid-job, then a
 *       kill -9 and restart of Temporal / Redis, under load; what each lost or duplicated.
 *  It writes bench/results/bench-<date>[-<label>].md, .json and .svg (the
 *  markdown after every part, so an interrupted run leaves what it measured),
 *  prints where, and exits 1 on a harness error (a component that does not
 *  start, a phase that throws, the time bound), never on a missed goal.
 *
 * Environment (all optional; defaults are the full run, about 35 minutes on 2 quiet cores):
 *   BENCH_PARTS=intake,peer-intake,sustained,temporal-floor,priority,backlog,spike,faults
 *                                      parts to run (temporal-floor uses the sustained settings)
 *   BENCH_SPIKE_ORDERS=5000  BENCH_SPIKE_S=10  BENCH_SPIKE_DRAIN_S=600
 *   BENCH_WEBHOOK_RATE=20              WEBHOOK_RATE_PER_SECOND of both systems
 *   BENCH_SUSTAINED_S=60  BENCH_SUSTAINED_WARMUP_S=5  BENCH_SUSTAINED_IN_FLIGHT=200
 *   BENCH_BACKLOG_ORDERS=5000  BENCH_BACKLOG_WINDOW_S=60  BENCH_BACKLOG_CONNECTIONS=64
 *                                      (the backlog's wait for all to complete is bounded by BENCH_DRAIN_S)
 *   BENCH_CONSUMERS=1                  0: the stack without the two Kafka consumer groups
 *   BENCH_BULK_JOBS=10000  BENCH_LIVE_RATE=5  BENCH_LIVE_S=20  BENCH_BULK_DRAIN_S=60 (then the rest is terminated)
 *   BENCH_PEER_RATE=300  BENCH_PEER_S=5  BENCH_PEER_WARMUP_S=3  BENCH_PEER_SAT_CONNECTIONS=64
 *   BENCH_FAULT_ORDERS=300  BENCH_FAULT_RATE=20  BENCH_FAULT_DRAIN_S=240
 *   BENCH_REDIS_AOF=1                  1: appendonly yes, appendfsync everysec; 0: no persistence
 *   BENCH_DRAIN_S=300                  bound on waiting for a backlog between parts
 *   BENCH_RUN_MAX_MIN=60               bound on the whole run (exceeding it is a harness error)
 *   BENCH_BACKGROUND_PRIORITY=idle     CPU priority of all but the APIs, PostgreSQL and Redis
 *                                      (idle | normal | a niceness 1-19; npm start's default)
 *   BENCH_LABEL=                       suffix of the result files
 *   BENCH_RESULTS_DIR=bench/results    where they are written
 *   bench/intake.ts's own variables (BENCH_DURATION_S, BENCH_RATES, BENCH_TARGETS, BENCH_REF,
 *   ...) pass through to it; unset ones get short defaults (INTAKE_DEFAULTS in bench/parts/intake.ts).
 */
import { Client, Connection } from '@temporalio/client';
import autocannon from 'autocannon';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  ManagedProcess,
  freePort,
  describeCpuPriority,
  parseCpuPriority,
  signalGroup,
  waitUntilReady,
} from '../scripts/lib/process.ts';
import {
  APP_PROCESSES,
  FOREGROUND_PROCESSES,
  RUNNING_LOG_LINE,
  backgroundPriorityOf,
} from '../scripts/lib/stack.ts';
import { projectRoot, provisionAll, versions } from '../scripts/lib/tools.ts';
import { ORDERS_PLACED_TOPIC, orderPlacedEventId, webhookMessageId } from '../src/shared/events.ts';
import { TaskQueue } from '../src/shared/task-queues.ts';
import { gateSpacingMs } from '../src/webhooks/rate-gate.ts';
import { currentRunLog, startAppStack, type AppStack } from '../scripts/lib/app-stack.ts';
import { closedLoop } from './lib/closed-loop.ts';
import {
  cpuMsPerOrder,
  cpuPerOrderTable,
  isOrderflowApp,
  isPeerApp,
  type CpuPerOrder,
} from './lib/cpu-per-order.ts';
import {
  CompletionWatcher,
  coresBetween,
  createEndpoint,
  deleteEndpoint,
  delay,
  intEnv,
  log,
  maxInWindow,
  now,
  postOrder,
  procSnapshot,
  round,
  sh,
  startReceiver,
  summary,
  type Summary,
} from './lib/e2e-kit.ts';
import { coreLine, fmtNum as f, ratioCell } from './lib/report-format.ts';
import { renderChart } from './lib/svg-chart.ts';
import { backlog, renderBacklog, type BacklogResult } from './parts/backlog.ts';
import { renderIntake, runIntake, stopIntake, type IntakePart } from './parts/intake.ts';
import {
  renderTemporalFloor,
  temporalFloor,
  type TemporalFloorResult,
} from './parts/temporal-floor.ts';
import { PEER_QUEUES, PEER_SCHEMA, PEER_TOPIC, peerWebhookId } from './peers/bullmq/common.ts';

// ---------------------------------------------------------------- settings

const PARTS = [
  'intake',
  'peer-intake',
  'sustained',
  'temporal-floor',
  'priority',
  'backlog',
  'spike',
  'faults',
] as const;
type Part = (typeof PARTS)[number];

const settings = {
  parts: (process.env.BENCH_PARTS || PARTS.join(',')).split(',').map((p) => {
    const part = p.trim() as Part;
    if (!PARTS.includes(part))
      throw new Error(`BENCH_PARTS: unknown part ${p} (${PARTS.join(', ')})`);
    return part;
  }),
  spikeOrders: intEnv('BENCH_SPIKE_ORDERS', 5000, 1, 100_000),
  spikeS: intEnv('BENCH_SPIKE_S', 10, 1, 600),
  spikeDrainS: intEnv('BENCH_SPIKE_DRAIN_S', 600, 10, 3600),
  webhookRate: intEnv('BENCH_WEBHOOK_RATE', 20, 1, 10_000),
  sustainedS: intEnv('BENCH_SUSTAINED_S', 60, 1, 3600),
  sustainedWarmupS: intEnv('BENCH_SUSTAINED_WARMUP_S', 5, 0, 600),
  sustainedInFlight: intEnv('BENCH_SUSTAINED_IN_FLIGHT', 200, 1, 5000),
  backlogOrders: intEnv('BENCH_BACKLOG_ORDERS', 5000, 1, 100_000),
  backlogWindowS: intEnv('BENCH_BACKLOG_WINDOW_S', 60, 1, 3600),
  backlogConnections: intEnv('BENCH_BACKLOG_CONNECTIONS', 64, 1, 1000),
  consumers: process.env.BENCH_CONSUMERS !== '0',
  bulkJobs: intEnv('BENCH_BULK_JOBS', 10_000, 1, 1_000_000),
  liveRate: intEnv('BENCH_LIVE_RATE', 5, 1, 1000),
  liveS: intEnv('BENCH_LIVE_S', 20, 1, 600),
  bulkDrainS: intEnv('BENCH_BULK_DRAIN_S', 60, 10, 3600),
  peerRate: intEnv('BENCH_PEER_RATE', 300, 1, 100_000),
  peerS: intEnv('BENCH_PEER_S', 5, 1, 600),
  peerWarmupS: intEnv('BENCH_PEER_WARMUP_S', 3, 0, 600),
  peerSatConnections: intEnv('BENCH_PEER_SAT_CONNECTIONS', 64, 1, 1000),
  faultOrders: intEnv('BENCH_FAULT_ORDERS', 300, 10, 100_000),
  faultRate: intEnv('BENCH_FAULT_RATE', 20, 1, 1000),
  faultDrainS: intEnv('BENCH_FAULT_DRAIN_S', 240, 10, 3600),
  redisAof: process.env.BENCH_REDIS_AOF !== '0',
  drainS: intEnv('BENCH_DRAIN_S', 300, 10, 3600),
  maxMin: intEnv('BENCH_RUN_MAX_MIN', 60, 1, 480),
  label: (process.env.BENCH_LABEL ?? '').replace(/[^\w.-]/g, ''),
  backgroundPriority: parseCpuPriority(
    process.env.BENCH_BACKGROUND_PRIORITY ?? 'idle',
    'BENCH_BACKGROUND_PRIORITY',
  ),
};

/** Goals of issue 12: sustained ÷ the Temporal floor, backlog completion rate ÷ the steady rate. */
const GOALS = { floorRatio: 0.85, backlogRatio: 0.9 };

const orderBody = (email: string) =>
  JSON.stringify({
    customerEmail: email,
    items: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }],
    currency: 'USD',
  });

type System = 'orderflow' | 'peer';
const TABLE = { orderflow: 'orders', peer: 'peer_orders' } as const;

// ---------------------------------------------------------------- load

interface Sent {
  scheduledAt: number;
  answeredAt: number;
  status: number;
  id?: string;
  error?: string;
}

/**
 * Open loop: `count` POSTs paced evenly over `durationS`, each sent at its
 * time whatever the previous ones are doing (keep-alive agent, at most 256
 * sockets; a request waiting for a socket counts in its latency, measured
 * from its scheduled time). Bounded: responses are awaited at most 30 s.
 */
async function openLoop(
  apiUrl: string,
  count: number,
  durationS: number,
  email: (i: number) => string,
): Promise<{ sent: Sent[]; t0: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const url = new URL('/orders', apiUrl);
  const interval = (durationS * 1000) / count;
  const sent: Promise<Sent>[] = [];
  const t0 = now();
  const one = (i: number, scheduledAt: number) =>
    new Promise<Sent>((resolve) => {
      const body = orderBody(email(i));
      const req = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let id: string | undefined;
            try {
              id = (JSON.parse(Buffer.concat(chunks).toString()) as { id?: string }).id;
            } catch {
              /* not JSON */
            }
            resolve({ scheduledAt, answeredAt: now(), status, id });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) =>
        resolve({ scheduledAt, answeredAt: now(), status: 0, error: e.message }),
      );
      req.end(body);
    });
  for (let i = 0; i < count; i++) {
    const at = t0 + i * interval;
    const wait = at - now();
    if (wait > 1) await delay(wait);
    sent.push(one(i, at));
  }
  const all = await Promise.all(sent);
  agent.destroy();
  return { sent: all, t0 };
}

interface IntakeStats {
  sent: number;
  ok: number;
  errors: number;
  statusCodes: Record<string, number>;
  throughput: number;
  latencyMs: Summary;
}

function intakeStats(sent: Sent[], seconds: number): IntakeStats {
  const statusCodes: Record<string, number> = {};
  for (const s of sent) {
    const k = s.status === 0 ? `socket: ${s.error}` : String(s.status);
    statusCodes[k] = (statusCodes[k] ?? 0) + 1;
  }
  const ok = sent.filter((s) => s.status >= 200 && s.status < 300);
  return {
    sent: sent.length,
    ok: ok.length,
    errors: sent.length - ok.length,
    statusCodes,
    throughput: round(ok.length / seconds, 1),
    latencyMs: summary(ok.map((s) => s.answeredAt - s.scheduledAt)),
  };
}

/** Closed loop at saturation: autocannon, `connections` POSTs in flight for `durationS`. */
function saturate(apiUrl: string, durationS: number, connections: number): Promise<IntakeStats> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${apiUrl}/orders`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: orderBody('sat-[<id>]@bench.local'),
        idReplacement: true,
        connections,
        duration: durationS,
        timeout: 10,
      },
      (err, r) => {
        if (err) return reject(err);
        const ok = r['2xx'];
        resolve({
          sent: ok + r.non2xx + r.errors + r.timeouts,
          ok,
          errors: r.non2xx + r.errors + r.timeouts,
          statusCodes: { '2xx': ok, non2xx: r.non2xx, socket: r.errors, timeout: r.timeouts },
          throughput: round(ok / durationS, 1),
          latencyMs: {
            n: ok,
            p50: r.latency.p50,
            p90: r.latency.p90,
            p99: r.latency.p99,
            max: r.latency.max,
            min: r.latency.min,
          },
        });
      },
    );
  });
}

/** Waits (bounded) until no order of the system is unfinished; returns how long it took or null. */
async function drain(db: pg.Pool, sys: System, boundS: number): Promise<number | null> {
  const t0 = Date.now();
  const where =
    sys === 'orderflow'
      ? `status NOT IN ('COMPLETED', 'CANCELLED', 'PARKED')`
      : `status <> 'COMPLETED'`;
  for (let i = 0; Date.now() - t0 < boundS * 1000 && i < 100_000; i++) {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${TABLE[sys]} WHERE ${where}`,
    );
    if (Number(rows[0]!.n) === 0) return Date.now() - t0;
    if (i % 40 === 39) log(`  ${sys}: ${rows[0]!.n} orders unfinished`);
    await delay(500);
  }
  log(`  ${sys}: backlog not drained within ${boundS} s`);
  return null;
}

// ---------------------------------------------------------------- the peer

interface Peer {
  apiUrl: string;
  redis: ManagedProcess;
  redisUrl: string;
  redisVersion: string;
  procs: Map<string, ManagedProcess>;
  startWorker(queue: string): Promise<ManagedProcess>;
}

function ensureRedisServer(): string {
  const found = sh('sh', ['-c', 'command -v redis-server']);
  if (found) return found;
  log('redis-server is missing: apt-get install -y redis-server');
  if (process.getuid?.() !== 0)
    throw new Error('redis-server is missing and this is not root: apt-get install redis-server');
  execFileSync('apt-get', ['install', '-y', 'redis-server'], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const installed = sh('sh', ['-c', 'command -v redis-server']);
  if (!installed) throw new Error('apt-get install redis-server did not provide redis-server');
  return installed;
}

async function redisReady(url: string): Promise<boolean> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => {}); // the connect below rejects with it
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } finally {
    r.disconnect();
  }
}

async function startPeer(app: AppStack, db: pg.Pool): Promise<Peer> {
  const bin = ensureRedisServer();
  const port = await freePort();
  const dir = path.join(app.stack.opts.dataDir, 'redis');
  fs.mkdirSync(dir, { recursive: true });
  const persistence = settings.redisAof
    ? ['--appendonly', 'yes', '--appendfsync', 'everysec']
    : ['--appendonly', 'no'];
  const redis = new ManagedProcess({
    name: 'redis',
    command: bin,
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      ...persistence,
      '--dir',
      dir,
    ],
    logFile: app.stack.logFile('redis'),
  });
  // In the stack's list: stopped with it, and its CPU and memory are accounted for.
  app.stack.procs.push(redis);
  const redisUrl = `redis://127.0.0.1:${port}`;
  await waitUntilReady(redis, 'redis', () => redisReady(redisUrl), 30_000);
  await db.query(PEER_SCHEMA);
  const apiPort = await freePort();
  const env = {
    REDIS_URL: redisUrl,
    WEBHOOK_RATE_PER_SECOND: String(settings.webhookRate),
    DATABASE_POOL_SIZE: '10',
  };
  const procs = new Map<string, ManagedProcess>();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  procs.set(
    'peer-api',
    await app.stack.startApp(
      'peer-api',
      'bench/peers/bullmq/api.ts',
      { ...env, PORT: String(apiPort) },
      async () => (await fetch(`${apiUrl}/healthz`, { signal: AbortSignal.timeout(2000) })).ok,
    ),
  );
  const startWorker = async (queue: string) => {
    const name = `peer-worker-${queue}`;
    const proc = await app.stack.startApp(
      name,
      'bench/peers/bullmq/worker.ts',
      { ...env, PEER_QUEUE: queue },
      async (p) => /peer worker running/.test(currentRunLog(p.spec.logFile)),
    );
    procs.set(name, proc);
    return proc;
  };
  for (const q of ['orders', 'email', 'webhooks', 'events']) await startWorker(q);
  const redisVersion = sh(bin, ['--version']);
  log(
    `peer ready: ${apiUrl}, ${redisUrl} (${settings.redisAof ? 'AOF everysec' : 'no persistence'})`,
  );
  return { apiUrl, redis, redisUrl, redisVersion, procs, startWorker };
}

/** kill -9 of a stack process's group, then the same command again, ready by `ready`. */
async function crashAndRestart(
  app: AppStack,
  old: ManagedProcess,
  ready: () => Promise<boolean>,
): Promise<{ proc: ManagedProcess; downMs: number }> {
  const t0 = Date.now();
  if (old.pid !== undefined) signalGroup(old.pid, 'SIGKILL');
  await Promise.race([old.exited, delay(10_000)]);
  if (old.running) throw new Error(`${old.name} survived SIGKILL`);
  const fresh = new ManagedProcess(old.spec);
  app.stack.procs[app.stack.procs.indexOf(old)] = fresh;
  await waitUntilReady(fresh, old.name, ready, 180_000);
  return { proc: fresh, downMs: Date.now() - t0 };
}

async function temporalReady(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    await connection.workflowService.describeNamespace({ namespace: 'default' });
    return true;
  } finally {
    await connection.close();
  }
}

/** The stack's Kafka consumer groups, as npm start runs them (scripts/lib/app-stack.ts leaves them out). */
async function startConsumers(app: AppStack): Promise<void> {
  for (const c of APP_PROCESSES.filter((a) => a.name.startsWith('consumer-')))
    await app.stack.startApp(c.name, c.entry, { ...app.env }, async (p) =>
      RUNNING_LOG_LINE.test(currentRunLog(p.spec.logFile)),
    );
}

// ---------------------------------------------------------------- parts

interface PeerIntakeResult {
  /** orderflow's WORKFLOW_START_MODE (scripts/lib/app-stack.ts runs the relay process). */
  startMode: string;
  rate: number;
  durationS: number;
  paced: Record<System, IntakeStats>;
  saturation: Record<System, IntakeStats>;
  cores: Record<string, Record<string, number>>;
  drainMs: Record<string, number | null>;
}

async function peerIntake(app: AppStack, peer: Peer, db: pg.Pool): Promise<PeerIntakeResult> {
  const urls: Record<System, string> = { orderflow: app.apiUrl, peer: peer.apiUrl };
  const out: PeerIntakeResult = {
    startMode: app.env.WORKFLOW_START_MODE ?? 'async',
    rate: settings.peerRate,
    durationS: settings.peerS,
    paced: {} as Record<System, IntakeStats>,
    saturation: {} as Record<System, IntakeStats>,
    cores: {},
    drainMs: {},
  };
  for (const sys of ['orderflow', 'peer'] as const) {
    // Cold code paths (JIT, pools, first connections) are not what is compared.
    log(
      `peer-intake: ${sys} warm-up, ${settings.peerWarmupS} s at ${Math.min(50, settings.peerRate)} req/s`,
    );
    const n = Math.min(50, settings.peerRate) * settings.peerWarmupS;
    if (n > 0)
      await openLoop(urls[sys], n, settings.peerWarmupS, (i) => `warmup-${sys}-${i}@bench.local`);
    await drain(db, sys, settings.drainS);
  }
  for (const mode of ['paced', 'saturation'] as const) {
    for (const sys of ['orderflow', 'peer'] as const) {
      log(
        `peer-intake: ${sys} ${mode === 'paced' ? `${settings.peerRate} req/s` : 'saturation'} for ${settings.peerS} s`,
      );
      const a = procSnapshot(false);
      if (mode === 'paced') {
        const { sent } = await openLoop(
          urls[sys],
          settings.peerRate * settings.peerS,
          settings.peerS,
          (i) => `intake-${sys}-${i}@bench.local`,
        );
        out.paced[sys] = intakeStats(sent, settings.peerS);
      } else {
        out.saturation[sys] = await saturate(
          urls[sys],
          settings.peerS,
          settings.peerSatConnections,
        );
      }
      out.cores[`${sys} ${mode}`] = coresBetween(a, procSnapshot(false), app.stack.procs);
      const r = out[mode][sys];
      log(
        `  ${r.throughput} req/s, p50 ${round(r.latencyMs.p50, 2)} ms, p99 ${round(r.latencyMs.p99, 2)} ms, errors ${r.errors}`,
      );
      out.drainMs[`${sys} ${mode}`] = await drain(db, sys, settings.drainS);
    }
  }
  return out;
}

interface SustainedResult {
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
}

/**
 * Closed loop over the whole pipeline: `inFlight` orders in the system at a
 * time (a new POST whenever one reaches COMPLETED), so the backlog stays
 * bounded; counts completions after a warm-up.
 */
async function sustained(
  app: AppStack,
  sys: System,
  apiUrl: string,
  db: pg.Pool,
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
    cpuMsPerOrder: cpuMsPerOrder(sys, loop.cores, loop.seconds, loop.completed),
  };
  log(
    `  ${r.ordersPerS} orders/s COMPLETED (${loop.leftInFlight} still in flight), POST errors ${r.postErrors}`,
  );
  await drain(db, sys, settings.drainS);
  return r;
}

interface LiveResult {
  orders: number;
  completed: number;
  latencyMs: Summary;
  errors: number;
  otherCores: number;
}

interface PriorityResult {
  bulkJobs: number;
  liveRate: number;
  liveS: number;
  without: LiveResult;
  during: LiveResult;
  /** Events the bulk workflow had published when the live window started and ended. */
  publishedAtLiveStart: number;
  publishedAtLiveEnd: number;
  bulkDoneS: number | null;
  bulkPublished: number;
}

/** Live orders paced at BENCH_LIVE_RATE: POST (scheduled time) → row COMPLETED. */
async function liveOrders(app: AppStack, db: pg.Pool, tag: string): Promise<LiveResult> {
  const watcher = new CompletionWatcher(db, 50);
  try {
    const a = procSnapshot(false);
    const { sent } = await openLoop(
      app.apiUrl,
      settings.liveRate * settings.liveS,
      settings.liveS,
      (i) => `live-${tag}-${i}@bench.local`,
    );
    const ok = sent.filter((s) => s.id && s.status >= 200 && s.status < 300);
    for (const s of ok) watcher.add(s.id!);
    await watcher.drained(settings.drainS * 1000);
    const other = coresBetween(a, procSnapshot(false), app.stack.procs).other ?? 0;
    return {
      orders: sent.length,
      completed: watcher.completedAt.size,
      errors: sent.length - ok.length,
      latencyMs: summary(
        ok
          .filter((s) => watcher.completedAt.has(s.id!))
          .map((s) => watcher.completedAt.get(s.id!)! - s.scheduledAt),
      ),
      otherCores: other,
    };
  } finally {
    await watcher.stop();
  }
}

async function priority(app: AppStack, db: pg.Pool): Promise<PriorityResult> {
  log(`priority: live orders at ${settings.liveRate}/s for ${settings.liveS} s without a backlog`);
  const without = await liveOrders(app, db, 'alone');
  log(`  p50 ${Math.round(without.latencyMs.p50)} ms, p99 ${Math.round(without.latencyMs.p99)} ms`);
  // Seeded orders in a day of their own, so the resend covers exactly them.
  const since = '2001-01-01T00:00:00.000Z';
  const until = '2001-01-02T00:00:00.000Z';
  await db.query(`DELETE FROM orders WHERE created_at >= $1 AND created_at < $2`, [since, until]);
  await db.query(
    `WITH seeded AS (
       INSERT INTO orders (id, status, customer_email, currency, total_cents, workflow_id, created_at, updated_at)
       SELECT id, 'COMPLETED', 'bulk-' || g || '@bench.local', 'EUR', 2500, 'order-' || id,
              $2::timestamptz + g * interval '1 ms', now()
       FROM (SELECT gen_random_uuid() AS id, g FROM generate_series(1, $1) AS g) s
       RETURNING id)
     INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents)
     SELECT id, 1, 'BULK-1', 1, 2500 FROM seeded`,
    [settings.bulkJobs, since],
  );
  const connection = await Connection.connect({ address: app.env.TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection, namespace: app.env.TEMPORAL_NAMESPACE });
    const handle = await client.workflow.start('resendOrderEventsWorkflow', {
      workflowId: `bench-resend-${Date.now()}`,
      taskQueue: TaskQueue.orders,
      args: [{ since, until }],
    });
    const published = async () =>
      (await handle.query<{ published: number }>('progress').catch(() => ({ published: NaN })))
        .published;
    const t0 = Date.now();
    // The backlog is draining once the first events are out (bounded wait).
    for (let i = 0; i < 600 && !((await published()) > 0); i++) await delay(100);
    const publishedAtLiveStart = await published();
    log(
      `priority: ${settings.bulkJobs} bulk jobs started (${publishedAtLiveStart} published); live orders meanwhile`,
    );
    const during = await liveOrders(app, db, 'bulk');
    const publishedAtLiveEnd = await published();
    log(
      `  p50 ${Math.round(during.latencyMs.p50)} ms, p99 ${Math.round(during.latencyMs.p99)} ms; bulk published ${publishedAtLiveEnd}/${settings.bulkJobs}`,
    );
    const result = await Promise.race([
      handle.result() as Promise<{ published: number }>,
      delay(settings.bulkDrainS * 1000).then(() => null),
    ]);
    // What is left of the backlog must not run into the next part.
    const bulkPublished = result?.published ?? (await published());
    if (!result) {
      log(
        `  bulk not done within ${settings.bulkDrainS} s (${bulkPublished} published): terminating it`,
      );
      await handle.terminate('bench: bound reached');
    }
    return {
      bulkJobs: settings.bulkJobs,
      liveRate: settings.liveRate,
      liveS: settings.liveS,
      without,
      during,
      publishedAtLiveStart,
      publishedAtLiveEnd,
      bulkDoneS: result ? round((Date.now() - t0) / 1000, 1) : null,
      bulkPublished,
    };
  } finally {
    await connection.close();
  }
}

interface SpikeResult {
  orders: number;
  seconds: number;
  intake: IntakeStats;
  /** Scheduled send of the first order → last order COMPLETED; null when not within the bound. */
  drainS: number | null;
  completed: number;
  webhookRate: number;
  webhooks: number;
  webhooksPerSecond: number[];
  completedPerSecond: number[];
  acceptedPerSecond: number[];
  maxWebhooksInWindow: number;
  maxWebhooksSliding: number;
  cores: Record<string, number>;
}

async function spike(
  app: AppStack,
  db: pg.Pool,
  receiver: Awaited<ReturnType<typeof startReceiver>>,
): Promise<SpikeResult> {
  const endpointId = await createEndpoint(app.apiUrl, `${receiver.url}/spike`);
  const watcher = new CompletionWatcher(db, 250);
  try {
    receiver.arrivals.length = 0;
    log(`spike: ${settings.spikeOrders} orders in ${settings.spikeS} s, one webhook endpoint each`);
    const a = procSnapshot(false);
    const { sent, t0 } = await openLoop(
      app.apiUrl,
      settings.spikeOrders,
      settings.spikeS,
      (i) => `spike-${i}@bench.local`,
    );
    const intake = intakeStats(sent, settings.spikeS);
    log(
      `  API: ${intake.ok} accepted, ${intake.errors} errors, p50 ${Math.round(intake.latencyMs.p50)} ms, p99 ${Math.round(intake.latencyMs.p99)} ms`,
    );
    const ok = sent.filter((s) => s.id && s.status >= 200 && s.status < 300);
    for (const s of ok) watcher.add(s.id!);
    const deadline = Date.now() + settings.spikeDrainS * 1000;
    for (let i = 0; watcher.pendingCount > 0 && Date.now() < deadline && i < 100_000; i++) {
      await delay(1000);
      if (i % 15 === 14)
        log(
          `  ${watcher.pendingCount} orders not COMPLETED yet, ${receiver.arrivals.length} webhooks`,
        );
    }
    // The last deliveries may land just after the last COMPLETED row is seen.
    for (let i = 0; receiver.arrivals.length < ok.length && i < 50; i++) await delay(100);
    const cores = coresBetween(a, procSnapshot(false), app.stack.procs);
    const expectedIds = new Set(
      ok.map((s) => webhookMessageId(orderPlacedEventId(s.id!), endpointId)),
    );
    const times = receiver.arrivals
      .filter((x) => expectedIds.has(x.webhookId))
      .map((x) => x.at)
      .sort((x, y) => x - y);
    const buckets = (ts: number[]) => {
      const out: number[] = [];
      for (const t of ts) {
        const k = Math.max(0, Math.floor((t - t0) / 1000));
        while (out.length <= k) out.push(0);
        out[k]!++;
      }
      return out;
    };
    const completedTimes = [...watcher.completedAt.values()].sort((x, y) => x - y);
    const webhooksPerSecond = buckets(times);
    const r: SpikeResult = {
      orders: settings.spikeOrders,
      seconds: settings.spikeS,
      intake,
      drainS:
        watcher.pendingCount === 0 ? round(((completedTimes.at(-1) ?? t0) - t0) / 1000, 1) : null,
      completed: watcher.completedAt.size,
      webhookRate: settings.webhookRate,
      webhooks: times.length,
      webhooksPerSecond,
      completedPerSecond: buckets(completedTimes),
      acceptedPerSecond: buckets(ok.map((s) => s.answeredAt)),
      maxWebhooksInWindow: Math.max(0, ...webhooksPerSecond),
      maxWebhooksSliding: maxInWindow(times, 1000).count,
      cores,
    };
    log(
      `  drained in ${r.drainS ?? `> ${settings.spikeDrainS}`} s; webhooks ${r.webhooks}, max ${r.maxWebhooksInWindow} in a one-second window (rate ${settings.webhookRate}/s)`,
    );
    return r;
  } finally {
    await watcher.stop();
    await deleteEndpoint(app.apiUrl, endpointId);
  }
}

// ---------------------------------------------------------------- faults

interface FaultResult {
  system: System;
  brokerRestarted: string;
  sent: number;
  accepted: number;
  apiErrors: number;
  statusCodes: Record<string, number>;
  /** Rows written although the API answered an error (a dual write that half happened); not in notCompleted. */
  persistedDespiteError: number;
  /** Accepted orders with no row. */
  acceptedWithoutRow: number;
  completed: number;
  notCompleted: number;
  missing: { email: number; webhook: number; event: number };
  duplicated: { email: number; webhook: number; event: number };
  /** Duplicated emails that carry a Message-ID of their own (a receiver cannot tell them apart). */
  emailDuplicatesWithNewMessageId: number;
  workerKill: string;
  brokerRestart: string;
  drainS: number | null;
}

/** Mails in the SMTP sink per recipient: how many, and their distinct Message-IDs. */
async function mailsByRecipient(
  mailApi: string,
): Promise<Map<string, { count: number; messageIds: Set<string> }>> {
  const res = await fetch(`${mailApi}/email`, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`maildev GET /email: ${res.status}`);
  const out = new Map<string, { count: number; messageIds: Set<string> }>();
  for (const m of (await res.json()) as { to?: { address: string }[]; messageId?: string }[])
    for (const t of m.to ?? []) {
      const e = out.get(t.address) ?? { count: 0, messageIds: new Set<string>() };
      e.count++;
      e.messageIds.add(m.messageId ?? '');
      out.set(t.address, e);
    }
  return out;
}

/** Records per key on a topic, read from the beginning up to the end offsets at the call (bounded). */
async function kafkaKeyCounts(
  brokers: string,
  topic: string,
  boundMs: number,
): Promise<Map<string, number>> {
  const kafka = new Kafka({
    brokers: brokers.split(','),
    clientId: 'bench-count',
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map(
    (await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]),
  );
  await admin.disconnect();
  const counts = new Map<string, number>();
  const reached = new Map<number, number>();
  const done = () =>
    [...ends].every(([p, high]) => high === 0 || (reached.get(p) ?? -1) >= high - 1);
  const consumer = kafka.consumer({ groupId: `bench-count-${Date.now()}-${Math.random()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const k = m.key?.toString() ?? '';
        counts.set(k, (counts.get(k) ?? 0) + 1);
        reached.set(batch.partition, Number(m.offset));
      }
    },
  });
  const t0 = Date.now();
  while (!done() && Date.now() - t0 < boundMs) await delay(200);
  await consumer.disconnect();
  if (!done()) throw new Error(`${topic}: not read to its end within ${boundMs / 1000} s`);
  return counts;
}

async function faultRun(
  app: AppStack,
  peer: Peer,
  db: pg.Pool,
  sys: System,
  receiver: Awaited<ReturnType<typeof startReceiver>>,
): Promise<FaultResult> {
  const apiUrl = sys === 'orderflow' ? app.apiUrl : peer.apiUrl;
  const prefix = `fault-${sys}-`;
  const hookUrl = `${receiver.url}/fault-${sys}`;
  let endpointId: string | number;
  if (sys === 'orderflow') endpointId = await createEndpoint(app.apiUrl, hookUrl);
  else {
    endpointId = (
      await db.query<{ id: number }>(
        'INSERT INTO peer_webhook_endpoints (url) VALUES ($1) RETURNING id',
        [hookUrl],
      )
    ).rows[0]!.id;
    await delay(1500); // the peer API re-reads its endpoints every second
  }
  await fetch(`${app.env.MAIL_API_URL}/email/all`, { method: 'DELETE' });
  const durationS = settings.faultOrders / settings.faultRate;
  log(
    `faults: ${sys}: ${settings.faultOrders} orders at ${settings.faultRate}/s; kill -9 of the email worker at 20%, of ${sys === 'orderflow' ? 'Temporal' : 'Redis'} at 55%`,
  );
  let workerKill = '';
  let brokerRestart = '';
  // Emails being sent right now: orderflow's delivery rows not yet marked sent, the peer's active jobs.
  const emailsInFlight = async (): Promise<number> => {
    if (sys === 'orderflow')
      return Number(
        (
          await db.query<{ n: string }>(
            `SELECT count(*) AS n FROM email_deliveries WHERE sent_at IS NULL AND last_error IS NULL`,
          )
        ).rows[0]!.n,
      );
    const r = new Redis(peer.redisUrl, { maxRetriesPerRequest: 1 });
    try {
      return await r.llen(`bull:${PEER_QUEUES.email}:active`);
    } finally {
      r.disconnect();
    }
  };
  const loadStart = Date.now();
  const faults = (async () => {
    await delay(durationS * 200);
    // Mid-job: wait (≤ 15 s) until an email is being sent, then kill.
    let inFlight = 0;
    for (let i = 0; i < 750 && (inFlight = await emailsInFlight()) === 0; i++) await delay(20);
    const t = Date.now();
    if (sys === 'orderflow') {
      await app.kill('worker-email');
      await delay(2000);
      await app.restart('worker-email');
    } else {
      const old = peer.procs.get('peer-worker-email')!;
      if (old.pid !== undefined) signalGroup(old.pid, 'SIGKILL');
      await Promise.race([old.exited, delay(10_000)]);
      await delay(2000);
      await peer.startWorker('email');
    }
    workerKill = `${sys === 'orderflow' ? 'worker-email' : 'peer-worker-email'} killed (SIGKILL) with ${inFlight} email(s) in flight, started again 2 s later, ready after ${round((Date.now() - t) / 1000, 1)} s`;
    // The broker at 55% of the load (or right after the worker, if that took longer).
    await delay(Math.max(0, loadStart + durationS * 550 - Date.now()));
    if (sys === 'orderflow') {
      const old = app.stack.procs.find((p) => p.name === 'temporal' && p.running)!;
      const { downMs } = await crashAndRestart(app, old, () =>
        temporalReady(app.env.TEMPORAL_ADDRESS),
      );
      brokerRestart = `Temporal dev server killed (SIGKILL) and started again on its SQLite file, serving after ${round(downMs / 1000, 1)} s`;
    } else {
      const { proc, downMs } = await crashAndRestart(app, peer.redis, () =>
        redisReady(peer.redisUrl),
      );
      peer.redis = proc;
      brokerRestart = `Redis killed (SIGKILL) and started again (${settings.redisAof ? 'AOF, appendfsync everysec' : 'no persistence'}), serving after ${round(downMs / 1000, 1)} s`;
    }
  })();
  const { sent } = await openLoop(
    apiUrl,
    settings.faultOrders,
    durationS,
    (i) => `${prefix}${i}@bench.local`,
  );
  await faults;
  const stats = intakeStats(sent, durationS);
  const acceptedEmails = new Set(
    sent.flatMap((s, i) =>
      s.status >= 200 && s.status < 300 ? [`${prefix}${i}@bench.local`] : [],
    ),
  );
  // Every accepted order must complete (bounded); a row written under an error answer may never.
  const t0 = Date.now();
  const unfinished = async () =>
    Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${TABLE[sys]} WHERE customer_email = ANY($1) AND status <> 'COMPLETED'`,
          [[...acceptedEmails]],
        )
      ).rows[0]!.n,
    );
  let left = await unfinished();
  for (let i = 0; left > 0 && Date.now() - t0 < settings.faultDrainS * 1000 && i < 100_000; i++) {
    await delay(1000);
    left = await unfinished();
    if (i % 20 === 19) log(`  ${sys}: ${left} fault orders not COMPLETED yet`);
  }
  const drainS = left === 0 ? round((Date.now() - t0) / 1000, 1) : null;
  await delay(3000); // late duplicates (a redelivered job) still count
  const rows = (
    await db.query<{ id: string; email: string; status: string }>(
      `SELECT id::text, customer_email AS email, status FROM ${TABLE[sys]} WHERE customer_email LIKE $1`,
      [`${prefix}%`],
    )
  ).rows;
  const mails = await mailsByRecipient(app.env.MAIL_API_URL);
  const keys = await kafkaKeyCounts(
    app.env.KAFKA_BROKERS,
    sys === 'orderflow' ? ORDERS_PLACED_TOPIC : PEER_TOPIC,
    120_000,
  );
  const hooks = new Map<string, number>();
  for (const x of receiver.arrivals)
    if (x.path === `/fault-${sys}`) hooks.set(x.webhookId, (hooks.get(x.webhookId) ?? 0) + 1);
  const hookId = (orderId: string) =>
    sys === 'orderflow'
      ? webhookMessageId(orderPlacedEventId(orderId), endpointId as string)
      : peerWebhookId(orderId, endpointId as number);
  const rowEmails = new Set(rows.map((r) => r.email));
  const missing = { email: 0, webhook: 0, event: 0 };
  const duplicated = { email: 0, webhook: 0, event: 0 };
  let emailDuplicatesWithNewMessageId = 0;
  const tally = (kind: keyof typeof missing, n: number) => {
    if (n === 0) missing[kind]++;
    else duplicated[kind] += n - 1;
  };
  // Every accepted order and every row written counts; an accepted order without a row misses everything.
  for (const email of new Set([...acceptedEmails, ...rowEmails])) {
    const row = rows.find((r) => r.email === email);
    const mail = mails.get(email);
    tally('email', mail?.count ?? 0);
    if (mail) emailDuplicatesWithNewMessageId += mail.messageIds.size - 1;
    tally('webhook', row ? (hooks.get(hookId(row.id)) ?? 0) : 0);
    tally('event', row ? (keys.get(row.id) ?? 0) : 0);
  }
  if (sys === 'orderflow') await deleteEndpoint(app.apiUrl, endpointId as string);
  else await db.query('DELETE FROM peer_webhook_endpoints');
  const r: FaultResult = {
    system: sys,
    brokerRestarted: sys === 'orderflow' ? 'Temporal' : 'Redis',
    sent: stats.sent,
    accepted: stats.ok,
    apiErrors: stats.errors,
    statusCodes: stats.statusCodes,
    persistedDespiteError: [...rowEmails].filter((e) => !acceptedEmails.has(e)).length,
    acceptedWithoutRow: [...acceptedEmails].filter((e) => !rowEmails.has(e)).length,
    completed: rows.filter((x) => x.status === 'COMPLETED').length,
    notCompleted: rows.filter((x) => acceptedEmails.has(x.email) && x.status !== 'COMPLETED')
      .length,
    missing,
    duplicated,
    emailDuplicatesWithNewMessageId,
    workerKill,
    brokerRestart,
    drainS,
  };
  log(
    `  ${sys}: ${r.accepted}/${r.sent} accepted, ${r.apiErrors} API errors, ${r.notCompleted} not COMPLETED; missing ${JSON.stringify(missing)}; duplicated ${JSON.stringify(duplicated)}`,
  );
  return r;
}

// ---------------------------------------------------------------- report

interface Machine {
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

interface Results {
  machine?: Machine;
  settings: typeof settings;
  complete: boolean;
  error?: string;
  durationS?: number;
  intake?: IntakePart;
  peerIntake?: PeerIntakeResult;
  sustained?: SustainedResult[];
  temporalFloor?: TemporalFloorResult;
  backlog?: BacklogResult;
  priority?: PriorityResult;
  spike?: SpikeResult;
  faults?: FaultResult[];
}

const mib = (kib: number | undefined) => (kib === undefined ? '–' : (kib / 1024).toFixed(0));

function comparisonTable(r: Results): string[] {
  const rows: string[] = [];
  const pi = r.peerIntake;
  if (pi) {
    rows.push(
      `| POST /orders at ${pi.rate} req/s (paced): p50 / p99 ms | ${f(pi.paced.orderflow?.latencyMs.p50, 1)} / ${f(pi.paced.orderflow?.latencyMs.p99, 1)} | ${f(pi.paced.peer?.latencyMs.p50, 1)} / ${f(pi.paced.peer?.latencyMs.p99, 1)} |`,
      `| POST /orders at ${pi.rate} req/s: errors | ${pi.paced.orderflow?.errors ?? '–'} | ${pi.paced.peer?.errors ?? '–'} |`,
      `| POST /orders at saturation (${settings.peerSatConnections} connections): req/s, p99 ms | ${f(pi.saturation.orderflow?.throughput)}, ${f(pi.saturation.orderflow?.latencyMs.p99)} | ${f(pi.saturation.peer?.throughput)}, ${f(pi.saturation.peer?.latencyMs.p99)} |`,
    );
  }
  const s = (sys: System) => r.sustained?.find((x) => x.system === sys);
  if (r.sustained?.length) {
    const sum = (
      x: SustainedResult | undefined,
      pick: (name: string) => boolean,
      rec: 'cores' | 'rssPeakKiB',
    ) =>
      x
        ? Object.entries(x[rec])
            .filter(([k]) => pick(k))
            .reduce((a, [, v]) => a + v, 0)
        : NaN;
    const perOrder = (x: SustainedResult | undefined) =>
      x
        ? `${f(x.cpuMsPerOrder.app, 2)} + ${f(x.cpuMsPerOrder.broker, 2)} (with PostgreSQL and Kafka ${f(x.cpuMsPerOrder.total, 2)})`
        : '–';
    rows.push(
      `| end-to-end: orders/s reaching COMPLETED (${settings.sustainedInFlight} in flight, ${settings.sustainedS} s) | ${f(s('orderflow')?.ordersPerS, 1)} | ${f(s('peer')?.ordersPerS, 1)} |`,
      `| end-to-end: POST → COMPLETED p50 / p99 ms at that load | ${f(s('orderflow')?.latencyMs.p50)} / ${f(s('orderflow')?.latencyMs.p99)} | ${f(s('peer')?.latencyMs.p50)} / ${f(s('peer')?.latencyMs.p99)} |`,
      `| CPU cores: app processes + broker (Temporal / Redis) | ${f(sum(s('orderflow'), isOrderflowApp, 'cores'), 2)} + ${f(s('orderflow')?.cores.temporal, 2)} | ${f(sum(s('peer'), isPeerApp, 'cores'), 2)} + ${f(s('peer')?.cores.redis, 2)} |`,
      `| CPU ms per completed order: app processes + broker | ${perOrder(s('orderflow'))} | ${perOrder(s('peer'))} |`,
      `| cores used outside this bench during the throughput run (of ${os.availableParallelism()}) | ${f(s('orderflow')?.cores.other, 2)} | ${f(s('peer')?.cores.other, 2)} |`,
      `| peak RSS MiB: app processes + broker | ${mib(sum(s('orderflow'), isOrderflowApp, 'rssPeakKiB'))} + ${mib(s('orderflow')?.rssPeakKiB.temporal)} | ${mib(sum(s('peer'), isPeerApp, 'rssPeakKiB'))} + ${mib(s('peer')?.rssPeakKiB.redis)} |`,
    );
  }
  const fr = (sys: System) => r.faults?.find((x) => x.system === sys);
  if (r.faults?.length) {
    const lost = (x?: FaultResult) =>
      x ? `${x.missing.email} / ${x.missing.webhook} / ${x.missing.event}` : '–';
    const dup = (x?: FaultResult) =>
      x
        ? `${x.duplicated.email} (${x.emailDuplicatesWithNewMessageId} with a new Message-ID) / ${x.duplicated.webhook} / ${x.duplicated.event}`
        : '–';
    rows.push(
      `| faults (kill -9 email worker, kill -9 + restart of Temporal / Redis): API errors of ${settings.faultOrders} | ${fr('orderflow')?.apiErrors ?? '–'} | ${fr('peer')?.apiErrors ?? '–'} |`,
      `| faults: orders not COMPLETED after ${settings.faultDrainS} s | ${fr('orderflow')?.notCompleted ?? '–'} (+${fr('orderflow')?.acceptedWithoutRow ?? '–'} accepted without a row) | ${fr('peer')?.notCompleted ?? '–'} (+${fr('peer')?.acceptedWithoutRow ?? '–'} accepted without a row) |`,
      `| faults: lost email / webhook / Kafka event | ${lost(fr('orderflow'))} | ${lost(fr('peer'))} |`,
      `| faults: duplicated email / webhook / Kafka event | ${dup(fr('orderflow'))} | ${dup(fr('peer'))} |`,
      `| faults: rows written although the API answered an error | ${fr('orderflow')?.persistedDespiteError ?? '–'} | ${fr('peer')?.persistedDespiteError ?? '–'} |`,
    );
  }
  if (!rows.length) return [];
  return [
    '## orderflow vs. the usual way (BullMQ on Redis)',
    '',
    `Same machine, same run, same PostgreSQL, Kafka and SMTP sink; each measured while the other idles. Peer: Express + pg INSERT + BullMQ ${versionOf('bullmq')} flow (bench/peers/bullmq), Redis ${settings.redisAof ? 'with appendonly yes, appendfsync everysec' : "with --save '' --appendonly no (no persistence)"}.`,
    '',
    '| measure | orderflow | BullMQ peer |',
    '|---|--:|--:|',
    ...rows,
    '',
  ];
}

function versionOf(pkg: string): string {
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

/** orderflow's sustained orders/s in this run, or null when that part did not run. */
const orderflowSustainedRate = (r: Results): number | null =>
  r.sustained?.find((x) => x.system === 'orderflow')?.ordersPerS ?? null;

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

function render(r: Results, svgName: string): string {
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
  if (r.spike) {
    const s = r.spike;
    const over = s.webhooksPerSecond.filter((n) => n > s.webhookRate).length;
    lines.push(
      `## Spike: ${s.orders} orders in ${s.seconds} s`,
      '',
      `Open loop, arrivals paced evenly (${round(s.orders / s.seconds)} /s), each order with one webhook endpoint subscribed (a local receiver), WEBHOOK_RATE_PER_SECOND=${s.webhookRate}. Latency from each request's scheduled send time.`,
      '',
      '| measure | value | goal |',
      '|---|--:|---|',
      `| API errors | ${s.intake.errors} of ${s.intake.sent} (${JSON.stringify(s.intake.statusCodes)}) | 0 |`,
      `| POST latency p50 / p99 / max during the spike | ${f(s.intake.latencyMs.p50, 1)} / ${f(s.intake.latencyMs.p99, 1)} / ${f(s.intake.latencyMs.max, 1)} ms | |`,
      `| backlog drained (first scheduled POST → last order COMPLETED, DB polled every 250 ms) | ${s.drainS === null ? `not within ${settings.spikeDrainS} s (${s.completed}/${s.intake.ok} COMPLETED)` : `${s.drainS} s`} | ≈ ${Math.ceil((s.orders * gateSpacingMs(s.webhookRate)) / 1000)} s at the rate gate's spacing |`,
      `| webhooks delivered | ${s.webhooks} of ${s.intake.ok} | |`,
      `| most webhooks in one one-second window (from the first POST) | **${s.maxWebhooksInWindow}** (windows above ${s.webhookRate}: ${over} of ${s.webhooksPerSecond.length}) | ≤ ${s.webhookRate} |`,
      `| most webhooks in any sliding second | ${s.maxWebhooksSliding} | |`,
      '',
      `![spike and sustained throughput](${svgName})`,
      '',
      `Webhook deliveries per one-second window: ${s.webhooksPerSecond.join(' ')}`,
      '',
      `CPU cores during the spike and its drain: ${coreLine(s.cores)}.`,
      '',
    );
  }
  if (r.sustained?.length) {
    const names = [...new Set(r.sustained.flatMap((x) => Object.keys(x.cores)))].filter(
      (k) => k !== 'machine',
    );
    lines.push(
      `## Sustained end-to-end throughput`,
      '',
      `${settings.sustainedInFlight} orders kept in flight (a new POST when one is COMPLETED), ${settings.sustainedWarmupS} s warm-up, then ${settings.sustainedS} s counted; no webhook endpoint subscribed (the webhook rate limit would cap it), so each order is email + Kafka event (+ bookkeeping).`,
      '',
      '| system | orders/s COMPLETED | POST → COMPLETED p50 / p99 ms | POST errors |',
      '|---|--:|--:|--:|',
      ...r.sustained.map(
        (x) =>
          `| ${x.system} | **${x.ordersPerS}** | ${f(x.latencyMs.p50)} / ${f(x.latencyMs.p99)} | ${x.postErrors} |`,
      ),
      '',
      'CPU (cores, from /proc/<pid>/stat over the counted window) and peak VmRSS (MiB, sampled every 250 ms) per process group:',
      '',
      `| process | ${r.sustained.map((x) => `${x.system} cores | ${x.system} RSS`).join(' | ')} |`,
      `|---|${r.sustained.map(() => '--:|--:').join('|')}|`,
      ...names.map(
        (n) =>
          `| ${n} | ${r.sustained!.map((x) => `${f(x.cores[n], 2)} | ${mib(x.rssPeakKiB[n])}`).join(' | ')} |`,
      ),
      '',
      'CPU ms per completed order (cores × seconds × 1000 ÷ orders COMPLETED in the counted window); broker = the Temporal server / Redis, app processes = orderflow’s API, relay, workers and consumers / the peer’s API and workers; the load generator, maildev and the other system’s idle processes are left out:',
      '',
      ...cpuPerOrderTable(
        r.sustained
          .filter((x) => x.cpuMsPerOrder)
          .map((x) => ({
            name: `${x.system} sustained`,
            system: x.system,
            orders: x.completed,
            perOrder: x.cpuMsPerOrder,
          })),
      ),
      '',
    );
  }
  if (r.temporalFloor) lines.push(...renderTemporalFloor(r.temporalFloor, GOALS.floorRatio));
  if (r.backlog) lines.push(...renderBacklog(r.backlog, GOALS.backlogRatio));
  if (r.priority) {
    const p = r.priority;
    const row = (name: string, x: LiveResult) =>
      `| ${name} | ${x.completed}/${x.orders} | ${f(x.latencyMs.p50)} | ${f(x.latencyMs.p90)} | ${f(x.latencyMs.p99)} | ${f(x.latencyMs.max)} | ${x.errors} | ${x.otherCores} |`;
    lines.push(
      `## Priority: live orders while ${p.bulkJobs} bulk jobs drain`,
      '',
      `Live orders paced at ${p.liveRate}/s for ${p.liveS} s (no webhook endpoint), POST scheduled time → row COMPLETED; first alone, then right after \`resendOrderEventsWorkflow\` was started over ${p.bulkJobs} seeded orders (task queue \`${TaskQueue.eventsBulk}\`). The bulk workflow had published ${p.publishedAtLiveStart} events when the live window started and ${p.publishedAtLiveEnd} when it ended${p.publishedAtLiveEnd >= p.bulkJobs ? ' (**the backlog ran out before the live window ended**: raise BENCH_BULK_JOBS)' : ' (the backlog lasted the whole window)'}; ${p.bulkDoneS === null ? `${p.bulkPublished} published within the bound of ${settings.bulkDrainS} s, then the rest was terminated` : `all ${p.bulkPublished} published ${p.bulkDoneS} s after the start`}.`,
      '',
      '| live orders | COMPLETED | p50 ms | p90 ms | p99 ms | max ms | API errors | other cores |',
      '|---|--:|--:|--:|--:|--:|--:|--:|',
      row('without a backlog', p.without),
      row('while the bulk backlog drains', p.during),
      '',
    );
  }
  if (r.peerIntake) {
    const pi = r.peerIntake;
    lines.push(
      '## Intake, orderflow vs peer',
      '',
      `Paced: ${pi.rate} req/s, arrivals evenly spread (open loop, latency from the scheduled time), ${pi.durationS} s. Saturation: autocannon, ${settings.peerSatConnections} connections, ${pi.durationS} s. orderflow = the API as npm start runs it: WORKFLOW_START_MODE=${pi.startMode}, LOG_LEVEL=info (the default), with the relay, the four workers${r.settings.consumers ? ' and the two consumers' : ''} running. CPU priority of everything but the two APIs, PostgreSQL and Redis: ${describeCpuPriority(r.settings.backgroundPriority)}. Each backlog drained before the next measurement.`,
      '',
      '| system | load | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | backlog drained in |',
      '|---|---|--:|--:|--:|--:|--:|--:|--:|',
    );
    for (const mode of ['paced', 'saturation'] as const)
      for (const sys of ['orderflow', 'peer'] as const) {
        const x = pi[mode][sys];
        if (!x) continue;
        const d = pi.drainMs[`${sys} ${mode}`];
        lines.push(
          `| ${sys} | ${mode} | ${x.throughput} | ${f(x.latencyMs.p50, 2)} | ${f(x.latencyMs.p90, 2)} | ${f(x.latencyMs.p99, 2)} | ${f(x.latencyMs.max, 1)} | ${x.errors} | ${d === null || d === undefined ? '–' : `${f(d / 1000, 1)} s`} |`,
        );
      }
    lines.push(
      '',
      ...Object.entries(pi.cores).map(([k, c]) => `- CPU cores, ${k}: ${coreLine(c)}`),
      '',
    );
  }
  if (r.faults?.length) {
    lines.push(
      '## Faults',
      '',
      `${settings.faultOrders} orders at ${settings.faultRate}/s per system, each with one webhook endpoint. At 20% of the load the email worker is killed (kill -9 of its process group, mid-job) and started again 2 s later; at 55% the broker (Temporal dev server / Redis) is killed (kill -9) and started again on its data. Then every accepted order must reach COMPLETED (bounded); the SMTP sink, the webhook receiver and the Kafka topic are counted per order. Missing = accepted order (or written row) without that effect; duplicated = deliveries beyond the first.`,
      '',
      '| system | accepted / sent | API errors | rows despite an error | accepted without a row | not COMPLETED | missing email / webhook / event | duplicated email / webhook / event | drained in |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
      ...r.faults.map(
        (x) =>
          `| ${x.system} | ${x.accepted} / ${x.sent} | ${x.apiErrors} | ${x.persistedDespiteError} | ${x.acceptedWithoutRow} | ${x.notCompleted} | ${x.missing.email} / ${x.missing.webhook} / ${x.missing.event} | ${x.duplicated.email} (${x.emailDuplicatesWithNewMessageId} new Message-ID) / ${x.duplicated.webhook} / ${x.duplicated.event} | ${x.drainS === null ? `> ${settings.faultDrainS} s` : `${x.drainS} s`} |`,
      ),
      '',
      ...r.faults.map(
        (x) =>
          `- ${x.system}: ${x.workerKill}; ${x.brokerRestart}; API answers ${JSON.stringify(x.statusCodes)}`,
      ),
      '',
    );
  }
  if (r.intake) lines.push(...renderIntake(r.intake));
  return lines.join('\n');
}

function resultBase(date: string): string {
  const dir = process.env.BENCH_RESULTS_DIR || path.join(projectRoot, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const base = `bench-${date}${settings.label ? `-${settings.label}` : ''}`;
  for (let i = 1; i < 1000; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    if (!['md', 'json', 'svg'].some((e) => fs.existsSync(path.join(dir, `${name}.${e}`))))
      return path.join(dir, name);
  }
  throw new Error('too many result files for one day');
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const started = Date.now();
  const results: Results = { settings, complete: false };
  const base = resultBase(new Date().toISOString().slice(0, 10));
  const write = () => {
    results.durationS = round((Date.now() - started) / 1000, 0);
    const svg = renderChart({
      spike: results.spike
        ? {
            rate: results.spike.webhookRate,
            webhooks: results.spike.webhooksPerSecond,
            completed: results.spike.completedPerSecond,
            accepted: results.spike.acceptedPerSecond,
          }
        : undefined,
      sustained: [
        ...(results.sustained ?? []).map((x) => ({ name: x.system, perSecond: x.perSecond })),
        ...(results.temporalFloor
          ? [
              {
                name: 'Temporal floor (workflows)',
                perSecond: results.temporalFloor.loop.perSecond,
              },
            ]
          : []),
      ],
    });
    fs.writeFileSync(`${base}.svg`, svg);
    fs.writeFileSync(`${base}.md`, render(results, path.basename(`${base}.svg`)));
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  };
  const a0 = procSnapshot(false);
  await delay(2000);
  const otherCoresAtStart = coresBetween(a0, procSnapshot(false), []).other ?? 0;
  const want = (p: Part) => settings.parts.includes(p);

  let app: AppStack | undefined;
  let db: pg.Pool | undefined;
  let receiver: Awaited<ReturnType<typeof startReceiver>> | undefined;
  let stopping: Promise<void> | undefined;
  const cleanup = () =>
    (stopping ??= (async () => {
      stopIntake();
      // The stack first: what still runs of a part then fails against it, not against a closed pool.
      if (app) {
        log('stopping the stack');
        await app.stop();
        fs.rmSync(app.stack.opts.dataDir, { recursive: true, force: true });
      }
      await receiver?.close().catch(() => {});
      await db?.end().catch(() => {});
    })());
  const fail = (why: string, code: number) => {
    log(why);
    results.error = why;
    try {
      write();
    } catch {
      /* best effort */
    }
    void cleanup().finally(() => process.exit(code));
  };
  // An error nothing awaited stops the run like any harness error (the stack is stopped, not
  // left behind); once stopping, a part still running fails against the stopped stack: ignored.
  const stray = (e: unknown) => {
    const why = (e as Error).stack ?? String(e);
    if (stopping) log(`(while stopping) ${why.split('\n')[0]}`);
    else fail(`harness error: ${why}`, 1);
  };
  process.on('unhandledRejection', stray);
  process.on('uncaughtException', stray);
  process.once('SIGINT', () => fail('interrupted (SIGINT)', 130));
  process.once('SIGTERM', () => fail('interrupted (SIGTERM)', 130));
  const watchdog = setTimeout(
    () => fail(`the run exceeded BENCH_RUN_MAX_MIN=${settings.maxMin}`, 1),
    settings.maxMin * 60_000,
  );
  watchdog.unref();

  try {
    if (want('intake')) {
      results.intake = await runIntake();
      // A failed intake bench is a harness error, but the other parts still run.
      if (results.intake.exitCode !== 0)
        results.error = `bench/intake.ts exited with ${results.intake.exitCode}`;
      write();
    }
    const tools = provisionAll((m) => log(`provision: ${m}`));
    log('starting the stack (PostgreSQL fsync on) and the app processes');
    app = await startAppStack({
      tools,
      ephemeral: false,
      appEnv: { WEBHOOK_RATE_PER_SECOND: String(settings.webhookRate), LOG_LEVEL: 'info' },
      log: (m) => log(`stack: ${m}`),
      // As npm start runs it; the peer alike: its API at normal priority (Redis, which its
      // request path writes to, is started at normal priority too), its workers in the background.
      priorityOf: backgroundPriorityOf(
        settings.backgroundPriority,
        new Set([...FOREGROUND_PROCESSES, 'peer-api']),
      ),
    });
    if (settings.consumers) await startConsumers(app);
    db = new pg.Pool({ connectionString: app.env.DATABASE_URL, max: 4 });
    receiver = await startReceiver();
    const peer = await startPeer(app, db);
    const pgInfo = (
      await db.query<{ v: string; fsync: string }>(
        `SELECT split_part(version(), ' on ', 1) AS v, current_setting('fsync') AS fsync`,
      )
    ).rows[0]!;
    const dirty = sh('git', [
      'status',
      '--porcelain',
      '--',
      'src',
      'prisma',
      'bench',
      ':!bench/results',
      'package.json',
    ])
      .split('\n')
      .filter(Boolean).length;
    results.machine = {
      date: new Date().toISOString().slice(0, 10),
      cpus: `${os.availableParallelism()} × ${os.cpus()[0]?.model ?? '?'}`,
      memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
      kernel: os.release(),
      node: process.version,
      postgres: `${pgInfo.v} (fsync=${pgInfo.fsync})`,
      temporalCli: versions.temporalCli,
      kafka: versions.kafka,
      redis: peer.redisVersion.split(' ').slice(0, 3).join(' '),
      bullmq: versionOf('bullmq'),
      git: `${sh('git', ['rev-parse', '--short', 'HEAD'])}${dirty ? ` + ${dirty} uncommitted paths in src, prisma, bench (not its results), package.json` : ''}`,
      loadavgStart: os.loadavg(),
      otherCoresAtStart,
    };
    write();

    if (want('peer-intake')) {
      results.peerIntake = await peerIntake(app, peer, db);
      write();
    }
    if (want('sustained')) {
      results.sustained = [];
      for (const sys of ['orderflow', 'peer'] as const) {
        results.sustained.push(
          await sustained(app, sys, sys === 'orderflow' ? app.apiUrl : peer.apiUrl, db),
        );
        write();
      }
    }
    if (want('temporal-floor')) {
      results.temporalFloor = await temporalFloor({
        app,
        db,
        inFlight: settings.sustainedInFlight,
        warmupS: settings.sustainedWarmupS,
        seconds: settings.sustainedS,
        drainS: settings.drainS,
        orderflowRate: orderflowSustainedRate(results),
      });
      write();
    }
    if (want('priority')) {
      results.priority = await priority(app, db);
      write();
    }
    if (want('backlog')) {
      results.backlog = await backlog({
        apiUrl: app.apiUrl,
        db,
        procs: () => app!.stack.procs,
        orders: settings.backlogOrders,
        connections: settings.backlogConnections,
        windowS: settings.backlogWindowS,
        drainS: settings.drainS,
        steadyRate: orderflowSustainedRate(results),
      });
      write();
      // What the bound left unfinished drains before a later part measures (bounded).
      if (want('spike') || want('faults')) await drain(db, 'orderflow', settings.drainS);
    }
    if (want('spike')) {
      results.spike = await spike(app, db, receiver);
      write();
    }
    if (want('faults')) {
      results.faults = [];
      for (const sys of ['orderflow', 'peer'] as const) {
        results.faults.push(await faultRun(app, peer, db, sys, receiver));
        write();
      }
    }
    results.complete = results.error === undefined;
    write();
    log(`wrote ${path.relative(projectRoot, base)}.md, .json and .svg in ${results.durationS} s`);
    console.log(`${base}.md`);
    if (results.error) log(`FAILED: ${results.error}`);
    return results.error ? 1 : 0;
  } catch (e) {
    results.error = (e as Error).stack ?? String(e);
    write();
    log(`FAILED: ${results.error}`);
    log(`partial results in ${path.relative(projectRoot, base)}.md`);
    return 1;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[bench] FAILED: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
