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
 *       orderflow's sustained rate against it (with BENCH_FLOOR_PAIRED, the default:
 *       orderflow's window, two floor windows, orderflow's second window, then the
 *       backlog, then the peer's sustained window, so the ratios compare windows
 *       minutes apart, not a quarter of an hour);
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
 *  Each part lives in a file of its own under bench/parts/ (its measurement and
 *  its section of the report); this file only orchestrates: the settings
 *  (bench/run-settings.ts), the stacks, the chosen parts in turn, and the
 *  report (bench/run-report.ts).
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
 *   BENCH_FLOOR_PAIRED=1               with sustained and temporal-floor: orderflow's window, two floor
 *                                      windows, a second orderflow window (ABBA, so a machine whose speed
 *                                      drifts during the run weighs on both sides alike), the backlog part
 *                                      (if chosen) right after them, then the peer's; 0: orderflow, the
 *                                      peer, then one floor window, the backlog after priority
 *   BENCH_SPEED_PROBE=1                with those windows: bench/probes/machine-speed.ts runs beside them
 *                                      (~2.5% of a core, counted as the runner's) and each window reports
 *                                      how fast the machine was then; 0: no probe
 *   BENCH_BULK_JOBS=10000  BENCH_LIVE_RATE=5  BENCH_LIVE_S=20  BENCH_BULK_DRAIN_S=60 (then the rest is terminated)
 *   BENCH_PEER_RATE=300  BENCH_PEER_S=5  BENCH_PEER_WARMUP_S=3  BENCH_PEER_SAT_CONNECTIONS=64
 *   BENCH_FAULT_ORDERS=300  BENCH_FAULT_RATE=20  BENCH_FAULT_DRAIN_S=240
 *   BENCH_REDIS_AOF=1                  1: appendonly yes, appendfsync everysec; 0: no persistence
 *   BENCH_DRAIN_S=900                  bound on waiting for a backlog between parts (orderflow's
 *                                      5 s at saturation leaves ~9,000 orders: ~7 min at 20/s)
 *   BENCH_RUN_MAX_MIN=60               bound on the whole run (exceeding it is a harness error)
 *   BENCH_BACKGROUND_PRIORITY=idle     CPU priority of all but the APIs, PostgreSQL and Redis
 *                                      (idle | normal | a niceness 1-19; npm start's default)
 *   NODE_OPTIONS=--import=./bench/cpu-profiler.mjs BENCH_PROFILE_DIR=<dir> BENCH_PROFILE_ONLY=src/workers/orders.ts
 *                                      investigation: a CPU profile of the stack's processes whose command
 *                                      line holds one of the (comma-separated) texts; profile one or a few at a
 *                                      time: a profiler in every process slows the whole stack down
 *   BENCH_LABEL=                       suffix of the result files
 *   BENCH_RESULTS_DIR=bench/results    where they are written
 *   bench/intake.ts's own variables (BENCH_DURATION_S, BENCH_RATES, BENCH_TARGETS, BENCH_REF,
 *   ...) pass through to it; unset ones get short defaults (INTAKE_DEFAULTS in bench/parts/intake.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { currentRunLog, startAppStack, type AppStack } from '../scripts/lib/app-stack.ts';
import {
  APP_PROCESSES,
  FOREGROUND_PROCESSES,
  RUNNING_LOG_LINE,
  backgroundPriorityOf,
} from '../scripts/lib/stack.ts';
import { projectRoot, provisionAll, versions } from '../scripts/lib/tools.ts';
import type { System } from './lib/cpu-per-order.ts';
import { delay, log, sh, startReceiver, type Receiver } from './lib/e2e-kit.ts';
import { pairWithOrderflow } from './lib/floor-pairing.ts';
import type { Window } from './lib/closed-loop.ts';
import { speedIn, startSpeedProbe } from './lib/machine-speed.ts';
import { drain } from './lib/order-load.ts';
import { coresBetween, procSnapshot } from './lib/proc-stats.ts';
import { freeResultBase, resultsDir } from './lib/results.ts';
import { round } from './lib/stats.ts';
import { readTemporalCounters } from './lib/temporal-counters.ts';
import { backlog } from './parts/backlog.ts';
import { faultRun } from './parts/faults.ts';
import { runIntake, stopIntake } from './parts/intake.ts';
import { peerIntake } from './parts/peer-intake.ts';
import { priority } from './parts/priority.ts';
import { spike } from './parts/spike.ts';
import { sustained } from './parts/sustained.ts';
import { temporalFloor } from './parts/temporal-floor.ts';
import { startPeer } from './peers/bullmq/start.ts';
import {
  orderflowSustainedRate,
  renderReport,
  renderRunChart,
  versionOf,
  type Results,
} from './run-report.ts';
import { runSettings, type Part } from './run-settings.ts';

const settings = runSettings();

/** The stack's Kafka consumer groups, as npm start runs them (scripts/lib/app-stack.ts leaves them out). */
async function startConsumers(app: AppStack): Promise<void> {
  for (const c of APP_PROCESSES.filter((a) => a.name.startsWith('consumer-')))
    await app.stack.startApp(c.name, c.entry, { ...app.env }, async (p) =>
      RUNNING_LOG_LINE.test(currentRunLog(p.spec.logFile)),
    );
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const started = Date.now();
  const results: Results = { settings, complete: false };
  const base = freeResultBase(
    resultsDir(),
    'bench',
    new Date().toISOString().slice(0, 10),
    settings.label,
    ['md', 'json', 'svg'],
  );
  const write = () => {
    results.durationS = round((Date.now() - started) / 1000, 0);
    const svg = renderRunChart(results);
    fs.writeFileSync(`${base}.svg`, svg);
    fs.writeFileSync(`${base}.md`, renderReport(results, path.basename(`${base}.svg`)));
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  };
  const a0 = procSnapshot();
  await delay(2000);
  const otherCoresAtStart = coresBetween(a0, procSnapshot(), []).other ?? 0;
  const want = (p: Part) => settings.parts.includes(p);

  let app: AppStack | undefined;
  let db: pg.Pool | undefined;
  let receiver: Receiver | undefined;
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
    const peer = await startPeer(app, db, settings);
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
      results.peerIntake = await peerIntake(app, peer, db, settings);
      write();
    }
    /** Runs a part on orderflow, then on the peer, writing the results after each. */
    const onBothSystems = async <T>(into: T[], part: (sys: System) => Promise<T>) => {
      for (const sys of ['orderflow', 'peer'] as const) {
        into.push(await part(sys));
        write();
      }
    };
    const sustainedOf = (sys: System) =>
      sustained(app!, sys, sys === 'orderflow' ? app!.apiUrl : peer.apiUrl, db!, settings);
    const floorOf = (windows: number) =>
      temporalFloor({
        app: app!,
        db: db!,
        inFlight: settings.sustainedInFlight,
        warmupS: settings.sustainedWarmupS,
        seconds: settings.sustainedS,
        windows,
        drainS: settings.drainS,
        orderflowRate: orderflowSustainedRate(results),
        orderflowCounts:
          results.sustained?.find((x) => x.system === 'orderflow')?.temporalPerOrder ?? null,
      });
    /** The backlog part; what its bound left unfinished then drains (bounded) if `drainAfter`. */
    const runBacklog = async (drainAfter: boolean) => {
      results.backlog = await backlog({
        apiUrl: app!.apiUrl,
        db: db!,
        procs: () => app!.stack.procs,
        orders: settings.backlogOrders,
        connections: settings.backlogConnections,
        windowS: settings.backlogWindowS,
        drainS: settings.drainS,
        steadyRate: orderflowSustainedRate(results),
        counters: () => readTemporalCounters(app!.ports.temporalMetrics),
      });
      write();
      if (drainAfter) await drain(db!, 'orderflow', settings.drainS);
    };
    if (want('sustained') && want('temporal-floor') && settings.floorPaired) {
      // orderflow, floor, floor, orderflow (ABBA), the backlog right after (its steady rate is
      // the two orderflow windows' mean), then the peer: see BENCH_FLOOR_PAIRED.
      const probe = settings.speedProbe ? startSpeedProbe(settings.maxMin * 60) : undefined;
      results.sustained = [await sustainedOf('orderflow')];
      write();
      results.temporalFloor = await floorOf(2);
      write();
      results.sustainedAgain = await sustainedOf('orderflow');
      probe?.stop();
      results.temporalFloor = pairWithOrderflow(results.temporalFloor, [
        results.sustained[0]!.ordersPerS,
        results.sustainedAgain.ordersPerS,
      ]);
      if (probe) {
        const at = (w: Window | undefined) => (w ? speedIn(probe.samples, w) : null);
        results.temporalFloor.windowSpeeds = [
          results.sustained[0]!.window,
          ...(results.temporalFloor.windows ?? []),
          results.sustainedAgain.window,
        ].map(at);
      }
      write();
      // The peer's sustained window follows.
      if (want('backlog')) await runBacklog(true);
      results.sustained.push(await sustainedOf('peer'));
      write();
    } else {
      if (want('sustained')) await onBothSystems((results.sustained = []), sustainedOf);
      if (want('temporal-floor')) {
        results.temporalFloor = await floorOf(1);
        write();
      }
    }
    if (want('priority')) {
      results.priority = await priority(app, db, settings);
      write();
    }
    if (want('backlog') && !results.backlog) await runBacklog(want('spike') || want('faults'));
    if (want('spike')) {
      results.spike = await spike(app, db, receiver, settings);
      write();
    }
    if (want('faults')) {
      await onBothSystems((results.faults = []), (sys) =>
        faultRun(app!, peer, db!, sys, receiver!, settings),
      );
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
