/**
 * The chaos run: a whole orderflow on real processes (scripts/lib/app-stack.ts:
 * PostgreSQL, Temporal dev server, Kafka, maildev, the API, one process per
 * worker, plus both consumer groups and a signature-checking webhook
 * subscriber) under a steady, paced stream of orders over loopback, while
 * faults are injected one after another. Every answer to POST /orders goes to
 * a ledger; after a bounded drain (parked orders are retried through the API)
 * the ledger is checked against the database, an independent read of the
 * Kafka topic, maildev and the subscriber's records. `runChaos` returns the
 * findings and a markdown report; the test files decide what must hold.
 */
import { Client, Connection } from '@temporalio/client';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ManagedProcess, delay, isListening, waitUntilReady } from '../../scripts/lib/process.ts';
import type { TemporalServerTools } from '../../scripts/lib/temporal-cluster.ts';
import type { Tools } from '../../scripts/lib/tools.ts';
import { parseDuration } from '../../src/config/parsing.ts';
import { WEBHOOK_ATTEMPT_MARGIN_MS } from '../../src/config/retry-budgets.ts';
import { intEnv } from '../../scripts/lib/env-settings.ts';
import { topicEnds } from '../../scripts/lib/kafka-audit.ts';
import { kafkaReady, postgresAnswers } from '../../scripts/lib/stack.ts';
import {
  ORDERS_PLACED_TOPIC,
  orderPlacedEventId,
  webhookMessageId,
} from '../../src/shared/events.ts';
import { mostInWindow } from '../support/windows.ts';
import { startChaosSubscriber, type ChaosSubscriber } from './chaos-subscriber.ts';
import { metricsUrlOf } from '../../scripts/lib/stack-runner.ts';
import { startChaosTarget, type ChaosTarget, type Topology } from './chaos-target.ts';

// ---------------------------------------------------------------- settings

export const FAULTS = [
  'kill:worker-orders',
  'kill:worker-email',
  'kill:worker-webhooks',
  'kill:worker-events',
  'restart:temporal',
  'stop:kafka',
  'stop:smtp',
  'fail:webhook-receiver',
  'stop:postgres',
] as const;

/**
 * The cluster topology's faults (scripts/lib/cluster.ts), each a kill -9 of
 * one process and its restart on the same data: a Kafka broker, the Temporal
 * history and matching services, one replica of each worker type, one API and
 * one relay. Its replicas keep the work going meanwhile.
 */
export const CLUSTER_FAULTS = [
  'kill:kafka-2',
  'kill:temporal-history',
  'kill:temporal-matching',
  'kill:worker-orders-1',
  'kill:worker-email-1',
  'kill:worker-webhooks-1',
  'kill:worker-events-1',
  'kill:api-1',
  'kill:relay-1',
] as const;
export type Fault = (typeof FAULTS)[number] | (typeof CLUSTER_FAULTS)[number];

export interface ChaosSettings {
  /** `single`: npm start's stack; `cluster`: the cluster topology (two of every app). */
  topology?: Topology;
  faults: Fault[];
  /**
   * WEBHOOK_RATE_PER_SECOND of the webhook workers (default 50, not binding);
   * set below the offered rate, the run checks that no one-second window at the
   * receiver holds more deliveries than this, across all webhook workers.
   */
  webhookRatePerSecond?: number;
  /** Orders per second offered to POST /orders. */
  rate: number;
  /** Steady load before the first fault and after each one. */
  warmupS: number;
  gapS: number;
  temporalDownS: number;
  kafkaDownS: number;
  smtpDownS: number;
  receiverDownS: number;
  postgresDownS: number;
  /** Bound on waiting for every accepted order to complete after the load stops. */
  drainS: number;
  maxOrders: number;
  /** The receiver answers after this long, so deliveries overlap (a killed worker dies mid-request). */
  webhookDelayMs: number;
  /** Start-to-close timeout of one attempt of the email, webhook and event steps. */
  attemptTimeout: string;
  keepData: boolean;
}

/**
 * Settings from CHAOS_* variables over `defaults`: CHAOS_FAULTS (comma list of
 * FAULTS), CHAOS_RATE, CHAOS_WARMUP_S, CHAOS_GAP_S, CHAOS_TEMPORAL_DOWN_S,
 * CHAOS_KAFKA_DOWN_S, CHAOS_SMTP_DOWN_S, CHAOS_RECEIVER_DOWN_S,
 * CHAOS_POSTGRES_DOWN_S, CHAOS_DRAIN_S, CHAOS_MAX_ORDERS,
 * CHAOS_WEBHOOK_DELAY_MS, CHAOS_ATTEMPT_TIMEOUT, CHAOS_KEEP_DATA=1.
 */
export function chaosSettings(defaults: ChaosSettings, env = process.env): ChaosSettings {
  let faults = defaults.faults;
  const known: readonly string[] = defaults.topology === 'cluster' ? CLUSTER_FAULTS : FAULTS;
  if (env.CHAOS_FAULTS) {
    faults = env.CHAOS_FAULTS.split(',').map((f) => f.trim()) as Fault[];
    const unknown = faults.filter((f) => !known.includes(f));
    if (unknown.length)
      throw new Error(`CHAOS_FAULTS: unknown ${unknown.join(', ')}; known: ${known.join(', ')}`);
  }
  return {
    ...defaults,
    faults,
    rate: intEnv('CHAOS_RATE', defaults.rate, 1, 50, env),
    warmupS: intEnv('CHAOS_WARMUP_S', defaults.warmupS, 0, 600, env),
    gapS: intEnv('CHAOS_GAP_S', defaults.gapS, 0, 600, env),
    temporalDownS: intEnv('CHAOS_TEMPORAL_DOWN_S', defaults.temporalDownS, 0, 600, env),
    kafkaDownS: intEnv('CHAOS_KAFKA_DOWN_S', defaults.kafkaDownS, 0, 600, env),
    smtpDownS: intEnv('CHAOS_SMTP_DOWN_S', defaults.smtpDownS, 0, 600, env),
    receiverDownS: intEnv('CHAOS_RECEIVER_DOWN_S', defaults.receiverDownS, 0, 600, env),
    postgresDownS: intEnv('CHAOS_POSTGRES_DOWN_S', defaults.postgresDownS, 0, 600, env),
    drainS: intEnv('CHAOS_DRAIN_S', defaults.drainS, 10, 3600, env),
    maxOrders: intEnv('CHAOS_MAX_ORDERS', defaults.maxOrders, 1, 100_000, env),
    webhookDelayMs: intEnv('CHAOS_WEBHOOK_DELAY_MS', defaults.webhookDelayMs, 0, 5000, env),
    attemptTimeout: env.CHAOS_ATTEMPT_TIMEOUT || defaults.attemptTimeout,
    keepData: env.CHAOS_KEEP_DATA === '1' || defaults.keepData,
  };
}

// ---------------------------------------------------------------- ledger

interface LedgerEntry {
  n: number;
  idempotencyKey: string;
  sku: string;
  quantity: number;
  totalCents: number;
  sentAt: number;
  answeredAt?: number;
  /** HTTP status, or undefined when no answer came (network error, client timeout). */
  status?: number;
  /** Problem type or network error of a non-accepted answer. */
  error?: string;
  orderId?: string;
}

export interface FaultRecord {
  fault: Fault;
  /** Seconds since the load started. */
  startS: number;
  /** How long the component was down / failing (kills: until the new process was ready). */
  downS: number;
  detail: string;
  /**
   * The longest time without a completed order that overlaps the fault (from
   * its start to the end of the gap after it), in seconds; null when unknown.
   */
  stallS?: number | null;
}

export interface NonAccepted {
  answer: string;
  count: number;
  /** The fault whose window (plus a grace) the answers fell in, or "unexplained". */
  explainedBy: string;
  /** Orders that exist in the database all the same (the answer was lost, the commit was not). */
  committedAnyway: number;
}

export interface ChaosResult {
  settings: ChaosSettings;
  startedAt: Date;
  /** Epoch ms when the load started: the report places duplicates after the fault that preceded them. */
  loadStartMs: number;
  loadS: number;
  faults: FaultRecord[];
  offered: number;
  accepted: { total: number; status201: number; status202: number };
  nonAccepted: NonAccepted[];
  unexplainedNonAccepted: number;
  /** Accepted orders (and committed-anyway ones) missing from the database. */
  lost: string[];
  completed: number;
  notCompleted: {
    id: string;
    status: string;
    failedStep: string | null;
    lastError: string | null;
  }[];
  parked: {
    id: string;
    failedStep: string;
    lastError: string;
    retries: number;
    /** Answers to POST /orders/{id}/retry other than 202 (409: no longer parked; 503: Temporal unreachable). */
    otherAnswers: string[];
  }[];
  drainS: number | null;
  /** When each part of the drain was first done (s after the load stopped): all COMPLETED, each group applied all. */
  drainParts: Record<string, number>;
  consumers: {
    group: string;
    processed: number;
    expected: number;
    /** Projection sums equal the ledger's. */
    projectionMatches: boolean;
    projectionDetail: string;
  }[];
  kafka: {
    records: number;
    ordersWithRecord: number;
    duplicateRecords: number;
    /** Producer timestamps of the second and later records of one ce_id. */
    duplicateTimes: number[];
    missing: number;
  };
  email: {
    mails: number;
    ordersMailed: number;
    /** `lastAt`: the Date header (send time) of the latest copy. */
    duplicates: { messageId: string; count: number; attempts: number; lastAt: number }[];
    /** Mails whose Message-ID is no checked order's (e.g. one cut off when maildev stopped mid-DATA). */
    foreign: { messageId: string; subject: string; time: string }[];
    missing: number;
  };
  webhooks: {
    requests: number;
    unverified: number;
    /** Answered 204 (delivered) per webhook-id beyond the first. */
    duplicateDeliveries: number;
    /** When the second and later 2xx deliveries of one webhook-id arrived. */
    duplicateTimes: number[];
    idsWithDifferentPayloads: string[];
    missing: number;
    /** The most deliveries (any answer) the receiver saw within one second, and the limit set. */
    maxInOneSecond: number;
    ratePerSecond: number;
    /**
     * The shortest time (ms) that rate + 1 consecutive requests spanned at the
     * receiver (the gate spaces sends so that this is at least 1 s + 25 ms);
     * null with fewer requests.
     */
    tightestSpanMs: number | null;
    /**
     * Deliveries each webhook worker process made since its latest start (its
     * orderflow_webhook_deliveries_total{outcome="delivered"}), by process name.
     */
    perWorker: Record<string, number | null>;
  };
  temporalRunning: number | null;
  /**
   * What the Temporal Web UI (its server's API, as the browser reads it) said
   * of the last accepted order's workflow: its status, or why it could not.
   */
  webUi: { workflowId: string; status: string };
  /** Processes that died on their own and were started again by the run's supervisor. */
  unexpectedExits: string[];
  report: string;
}

/** "all COMPLETED after 12.0 s, orderflow.analytics after 13.9 s, ..." (parts not done are left out). */
function drainPartsText(parts: Record<string, number>): string {
  const done = Object.entries(parts).map(([part, s]) => `${part} after ${s.toFixed(1)} s`);
  return done.length ? done.join(', ') : 'nothing done';
}

// ---------------------------------------------------------------- the run

const log = (m: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${m}`);
const CONSUMER_GROUPS = ['orderflow.analytics', 'orderflow.inventory'] as const;
/** The app a process belongs to: worker-email-1 → worker-email. */
const appOf = (name: string) => name.replace(/-\d+$/, '');
const STOP_GRACE = {
  postgresql: 15_000,
  kafka: 30_000,
  temporal: 15_000,
  maildev: 5_000,
} as const;
const messageIdOf = (orderId: string) => `order-${orderId}.confirmation@orderflow.local`;

export async function runChaos(
  settings: ChaosSettings,
  tools: Tools,
  temporalServer?: TemporalServerTools,
): Promise<ChaosResult> {
  const runId = Date.now().toString(36);
  const startedAt = new Date();
  let outcome: ChaosResult | undefined;
  // Short budgets, so a fault of tens of seconds is recovered (or parks) within the run:
  // webhooks give up after about half the receiver's outage, so orders park and are retried.
  // Without a receiver outage nothing should park: deliveries that wait for the rate limit
  // (a binding WEBHOOK_RATE_PER_SECOND) get ten minutes.
  const webhookTotalS = settings.faults.includes('fail:webhook-receiver')
    ? Math.max(3, Math.floor(settings.receiverDownS / 2))
    : 600;
  const webhookRate = settings.webhookRatePerSecond ?? 50;
  const topology = settings.topology ?? 'single';
  const appEnv = {
    LOG_LEVEL: 'info',
    WEBHOOK_RATE_PER_SECOND: String(webhookRate),
    RETRY_EMAIL: `initial=1s,backoff=2,max=10s,attempts=1000,total=30m,attempt=${settings.attemptTimeout}`,
    RETRY_EVENTS: `initial=1s,backoff=2,max=10s,attempts=0,total=30m,attempt=${settings.attemptTimeout}`,
    RETRY_WEBHOOKS: `initial=1s,backoff=2,max=4s,attempts=0,total=${webhookTotalS}s,attempt=${settings.attemptTimeout}`,
    // A webhook request must fit in an attempt with room around it (retry-budgets.ts).
    WEBHOOK_TIMEOUT_MS: String(
      Math.min(10_000, parseDuration(settings.attemptTimeout)! - WEBHOOK_ATTEMPT_MARGIN_MS),
    ),
  };
  log(
    `starting the ${topology} stack (${settings.faults.length} faults, ${settings.rate} orders/s)`,
  );
  const app = await startChaosTarget({ topology, tools, temporalServer, appEnv, log });
  const db = new pg.Pool({
    connectionString: app.env.DATABASE_URL,
    max: 3,
    connectionTimeoutMillis: 3000,
  });
  db.on('error', () => {}); // idle clients die with PostgreSQL's stop; the next query reconnects
  let sub: ChaosSubscriber | undefined;
  let connection: Connection | undefined;
  const unexpectedExits: string[] = [];
  /** Processes being killed or restarted on purpose: the supervisor leaves them alone. */
  const handsOff = new Set<string>();
  let supervising = true;
  /** When the load started (reset when it does); times in the report count from it. */
  let loadStart = Date.now();

  /**
   * A request to the APIs as a load balancer sends it: to the next replica in
   * turn, and to the following one when a replica does not answer at all
   * (connection refused: a killed API); the same request, so the same
   * Idempotency-Key.
   */
  let nextApi = 0;
  const toApi = async (pathname: string, init: RequestInit): Promise<Response> => {
    const first = nextApi++ % app.apiUrls.length;
    for (let i = 0; ; i++) {
      const url = app.apiUrls[(first + i) % app.apiUrls.length]!;
      try {
        return await fetch(`${url}${pathname}`, init);
      } catch (err) {
        const refused = /ECONNREFUSED|ECONNRESET/.test(String((err as Error).cause ?? err));
        if (!refused || i + 1 >= app.apiUrls.length) throw err;
      }
    }
  };

  try {
    sub = await startChaosSubscriber(app.apiUrls[0]!, { delayMs: settings.webhookDelayMs });
    connection = await Connection.connect({ address: app.env.TEMPORAL_ADDRESS });

    // A supervisor, as a process manager would be: a worker or consumer that dies on its own
    // is started again, and the report says so.
    const supervisor = (async () => {
      while (supervising) {
        await delay(1000);
        for (const [name, proc] of [...app.apps]) {
          const restart = () => app.restart(name);
          if (!supervising || handsOff.has(name) || !proc || proc.running) continue;
          const what = `${name} exited on its own (code ${proc.exitCode}, signal ${proc.exitSignal}) at t+${((Date.now() - loadStart) / 1000).toFixed(0)} s`;
          log(`${what}; starting it again. Last lines:\n${proc.tail(15)}`);
          unexpectedExits.push(what);
          handsOff.add(name);
          await restart().catch((e: unknown) => log(`restarting ${name} failed: ${String(e)}`));
          handsOff.delete(name);
        }
      }
    })();

    // ------------------------------------------------------------ load
    const ledger: LedgerEntry[] = [];
    const pending = new Set<Promise<void>>();
    let stopLoad = false;
    loadStart = Date.now();
    const since = () => (Date.now() - loadStart) / 1000;

    const post = async (e: LedgerEntry) => {
      try {
        const res = await toApi('/orders', {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': e.idempotencyKey },
          body: JSON.stringify({
            customerEmail: `chaos-${runId}-${e.n}@example.com`,
            items: [
              { sku: e.sku, quantity: e.quantity, unitPriceCents: e.totalCents / e.quantity },
            ],
            currency: 'USD',
          }),
          signal: AbortSignal.timeout(15_000),
        });
        const body = (await res.json().catch(() => ({}))) as { id?: string; type?: string };
        e.status = res.status;
        if (res.status === 201 || res.status === 202) e.orderId = body.id;
        else e.error = body.type ?? `HTTP ${res.status}`;
      } catch (err) {
        e.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      e.answeredAt = Date.now();
    };

    const load = (async () => {
      for (let n = 0; !stopLoad && n < settings.maxOrders; n++) {
        const wait = loadStart + (n * 1000) / settings.rate - Date.now();
        if (wait > 0) await delay(wait);
        const quantity = 1 + (n % 3);
        const e: LedgerEntry = {
          n,
          idempotencyKey: `chaos-${runId}-${n}`,
          sku: `CHAOS-${runId.toUpperCase()}-${n % 7}`,
          quantity,
          totalCents: quantity * (1000 + (n % 50)),
          sentAt: Date.now(),
        };
        ledger.push(e);
        const p = post(e).finally(() => pending.delete(p));
        pending.add(p);
      }
    })();

    // ------------------------------------------------------------ faults
    const faults: FaultRecord[] = [];
    const windows: { fault: Fault; from: number; to: number }[] = [];
    const inFlightOrders = async () => {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM orders WHERE status IN ('RECEIVED', 'PROCESSING')`,
      );
      return rows[0]!.n;
    };
    /** Waits (≤ 10 s) until `evidence` says an activity of the worker is in flight; returns it. */
    const awaitInFlight = async (evidence: () => Promise<number>) => {
      const until = Date.now() + 10_000;
      let v = 0;
      while (Date.now() < until && (v = await evidence().catch(() => 0)) === 0) await delay(50);
      return v;
    };

    await delay(settings.warmupS * 1000);
    for (const fault of settings.faults) {
      if (stopLoad) break;
      const t0 = Date.now();
      let detail = '';
      let downMs = 0;
      if (fault.startsWith('kill:')) {
        const name = fault.slice(5);
        const evidence =
          appOf(name) === 'worker-webhooks'
            ? async () => sub!.inFlight
            : appOf(name) === 'worker-email'
              ? async () =>
                  (
                    await db.query<{ n: number }>(
                      'SELECT count(*)::int AS n FROM email_deliveries WHERE sent_at IS NULL',
                    )
                  ).rows[0]!.n
              : inFlightOrders;
        const inFlight = await awaitInFlight(evidence);
        handsOff.add(name);
        const killedAt = Date.now();
        await app.killAndRestart(name);
        handsOff.delete(name);
        downMs = Date.now() - killedAt;
        const what =
          appOf(name) === 'worker-webhooks'
            ? 'deliveries in flight at the receiver'
            : appOf(name) === 'worker-email'
              ? 'email sends started, not recorded'
              : 'orders RECEIVED/PROCESSING';
        detail = `SIGKILL with ${inFlight} ${what}; new process ready in ${(downMs / 1000).toFixed(1)} s`;
        windows.push({ fault, from: killedAt, to: Date.now() });
      } else if (fault === 'fail:webhook-receiver') {
        sub.failing = true;
        await delay(settings.receiverDownS * 1000);
        sub.failing = false;
        downMs = Date.now() - t0;
        const failed = sub.deliveries.filter((d) => d.status === 503).length;
        detail = `answered 503 to ${failed} requests; webhook retry budget ${webhookTotalS} s`;
        windows.push({ fault, from: t0, to: Date.now() });
      } else {
        const outage = fault as Exclude<Fault, `kill:${string}` | 'fail:webhook-receiver'>;
        const [component, downS] = (
          {
            'restart:temporal': ['temporal', settings.temporalDownS],
            'stop:kafka': ['kafka', settings.kafkaDownS],
            'stop:smtp': ['maildev', settings.smtpDownS],
            'stop:postgres': ['postgresql', settings.postgresDownS],
          } as const
        )[outage];
        const old = app.stack.procs.find((p) => p.name === component && p.running);
        if (!old) throw new Error(`${component} is not running: cannot inject ${fault}`);
        const stopStart = Date.now();
        await old.stop(STOP_GRACE[component]);
        const stoppedIn = Date.now() - stopStart;
        await delay(downS * 1000);
        const fresh = new ManagedProcess(old.spec);
        app.stack.procs[app.stack.procs.indexOf(old)] = fresh;
        const startAt = Date.now();
        await waitUntilReady(fresh, component, () => componentReady(component, app), 180_000);
        downMs = Date.now() - t0;
        detail = `stopped (${old.spec.stopSignal ?? 'SIGTERM'}) in ${(stoppedIn / 1000).toFixed(1)} s, down ${downS} s, ready again ${((Date.now() - startAt) / 1000).toFixed(1)} s after its start (same data)`;
        windows.push({ fault, from: t0, to: Date.now() });
      }
      faults.push({ fault, startS: (t0 - loadStart) / 1000, downS: downMs / 1000, detail });
      log(`${fault}: ${detail}`);
      await delay(settings.gapS * 1000);
    }
    stopLoad = true;
    await load;
    const loadS = since();
    log(
      `load stopped after ${loadS.toFixed(0)} s, ${ledger.length} orders offered; waiting for answers`,
    );
    await Promise.allSettled([...pending]);

    // ------------------------------------------------------------ ledger vs database
    const acceptedEntries = ledger.filter((e) => e.orderId);
    const { rows: byKey } = await db.query<{ id: string; idempotency_key: string }>(
      'SELECT id, idempotency_key FROM orders WHERE idempotency_key LIKE $1',
      [`chaos-${runId}-%`],
    );
    const dbIdByKey = new Map(byKey.map((r) => [r.idempotency_key, r.id]));
    const lost = acceptedEntries
      .filter((e) => dbIdByKey.get(e.idempotencyKey) !== e.orderId)
      .map((e) => e.orderId!);
    // An order whose answer was lost (client timeout) but which was committed is an order all the same.
    const committedAnyway = ledger.filter((e) => !e.orderId && dbIdByKey.has(e.idempotencyKey));
    for (const e of committedAnyway) e.orderId = dbIdByKey.get(e.idempotencyKey);
    const orders = ledger.filter((e) => e.orderId);
    const ids = orders.map((e) => e.orderId!);

    const grace = 20_000;
    const nonAcceptedMap = new Map<string, NonAccepted>();
    let unexplainedNonAccepted = 0;
    for (const e of ledger) {
      if (e.status === 201 || e.status === 202) continue;
      const answer = e.status ? `${e.status} ${e.error ?? ''}`.trim() : (e.error ?? 'no answer');
      const at = e.answeredAt ?? e.sentAt;
      // The contract: PostgreSQL unreachable → 503 (retry later); anything else is unexplained.
      const w =
        e.status === 503
          ? windows.find(
              (x) => x.fault === 'stop:postgres' && at >= x.from - 1000 && at <= x.to + grace,
            )
          : undefined;
      const explainedBy = w
        ? `${w.fault} (answered within its window + ${grace / 1000} s)`
        : 'unexplained';
      if (!w) unexplainedNonAccepted++;
      const k = `${answer}|${explainedBy}`;
      const item = nonAcceptedMap.get(k) ?? { answer, count: 0, explainedBy, committedAnyway: 0 };
      item.count++;
      if (dbIdByKey.has(e.idempotencyKey)) item.committedAnyway++;
      nonAcceptedMap.set(k, item);
    }

    // ------------------------------------------------------------ drain (parked orders are retried)
    const drainStart = Date.now();
    const parked = new Map<
      string,
      {
        id: string;
        failedStep: string;
        lastError: string;
        retries: number;
        lastRetry: number;
        otherAnswers: string[];
      }
    >();
    let drainS: number | null = null;
    const drainParts: Record<string, number> = {};
    const partDone = (part: string, done: boolean) => {
      if (done) drainParts[part] ??= Math.round((Date.now() - drainStart) / 100) / 10;
    };
    let statuses: {
      id: string;
      status: string;
      failed_step: string | null;
      last_error: string | null;
    }[] = [];
    while (Date.now() - drainStart < settings.drainS * 1000) {
      try {
        statuses = (
          await db.query<{
            id: string;
            status: string;
            failed_step: string | null;
            last_error: string | null;
          }>('SELECT id, status, failed_step, last_error FROM orders WHERE id = ANY($1::uuid[])', [
            ids,
          ])
        ).rows;
        for (const o of statuses.filter((s) => s.status === 'PARKED')) {
          const p = parked.get(o.id) ?? {
            id: o.id,
            failedStep: o.failed_step ?? '?',
            lastError: o.last_error ?? '?',
            retries: 0,
            lastRetry: 0,
            otherAnswers: [],
          };
          parked.set(o.id, p);
          if (Date.now() - p.lastRetry < 5000) continue;
          const res = await toApi(`/orders/${o.id}/retry`, {
            method: 'POST',
            signal: AbortSignal.timeout(15_000),
          }).catch(() => undefined);
          p.lastRetry = Date.now();
          if (res?.status === 202) p.retries++;
          else p.otherAnswers.push(res ? String(res.status) : 'no answer');
        }
        const processed = await processedPerGroup(db, ids);
        partDone(
          'all COMPLETED',
          statuses.length === ids.length && statuses.every((s) => s.status === 'COMPLETED'),
        );
        for (const g of CONSUMER_GROUPS) partDone(g, (processed.get(g) ?? 0) === ids.length);
        const done = ['all COMPLETED', ...CONSUMER_GROUPS].every((p) => p in drainParts);
        if (done) {
          drainS = (Date.now() - drainStart) / 1000;
          break;
        }
      } catch (e) {
        log(`drain check failed (${String(e)}); trying again`);
      }
      await delay(2000);
    }
    supervising = false;
    await supervisor;
    log(
      `${drainS === null ? `not drained within ${settings.drainS} s` : `drained in ${drainS.toFixed(1)} s`} (${drainPartsText(drainParts)})`,
    );

    // ------------------------------------------------------------ checks
    const completed = statuses.filter((s) => s.status === 'COMPLETED').length;
    const notCompleted = statuses
      .filter((s) => s.status !== 'COMPLETED')
      .map((s) => ({
        id: s.id,
        status: s.status,
        failedStep: s.failed_step,
        lastError: s.last_error,
      }));
    const consumersResult = await checkConsumers(db, orders);
    const kafka = await auditKafka(app.env.KAFKA_BROKERS, new Set(ids));
    const email = await auditEmail(app.env.MAIL_API_URL, db, ids);
    const webhooks = {
      ...auditWebhooks(sub, ids, webhookRate),
      perWorker: await deliveriesPerWebhookWorker(app),
    };
    await completionStalls(db, ids, faults, loadStart, settings.gapS);
    const temporalRunning = await countRunning(connection);
    const webUi = await webUiStatus(app.env.TEMPORAL_UI_URL, ids.at(-1));

    const result: Omit<ChaosResult, 'report'> = {
      settings,
      startedAt,
      loadS,
      loadStartMs: loadStart,
      faults,
      offered: ledger.length,
      accepted: {
        total: acceptedEntries.length,
        status201: acceptedEntries.filter((e) => e.status === 201).length,
        status202: acceptedEntries.filter((e) => e.status === 202).length,
      },
      nonAccepted: [...nonAcceptedMap.values()],
      unexplainedNonAccepted,
      lost,
      completed,
      notCompleted,
      parked: [...parked.values()].map(({ lastRetry: _, ...p }) => p),
      drainS,
      drainParts,
      consumers: consumersResult,
      kafka,
      email,
      webhooks,
      temporalRunning,
      webUi,
      unexpectedExits,
    };
    outcome = { ...result, report: chaosReport(result, orders.length, committedAnyway.length) };
    return outcome;
  } finally {
    supervising = false;
    await connection?.close().catch(() => {});
    await sub?.close().catch(() => {});
    await db.end().catch(() => {});
    await app.stop();
    if (!settings.keepData) {
      const fs = await import('node:fs');
      // A failed run keeps its processes' logs (test-results/ is not committed).
      const logs = path.join(app.stack.opts.dataDir, 'logs');
      if ((!outcome || violations(outcome).length > 0) && fs.existsSync(logs)) {
        const kept = path.resolve(
          'test-results',
          `chaos-logs-${startedAt.toISOString().replace(/[:.]/g, '-')}`,
        );
        fs.cpSync(logs, kept, { recursive: true });
        log(`the run failed: its processes' logs kept in ${kept}`);
      }
      fs.rmSync(app.stack.opts.dataDir, { recursive: true, force: true });
    } else log(`stack data kept in ${app.stack.opts.dataDir}`);
  }
}

async function componentReady(component: string, app: ChaosTarget): Promise<boolean> {
  const env = app.env;
  switch (component) {
    case 'postgresql':
      return postgresAnswers(env.DATABASE_URL);
    case 'temporal': {
      const c = await Connection.connect({ address: env.TEMPORAL_ADDRESS, connectTimeout: 1000 });
      try {
        await c.workflowService.describeNamespace({ namespace: env.TEMPORAL_NAMESPACE });
        return true;
      } finally {
        await c.close();
      }
    }
    case 'kafka':
      return kafkaReady(env.KAFKA_BROKERS, 'chaos-ready');
    case 'maildev':
      return (
        (await isListening(app.smtpPort)) &&
        (await fetch(`${env.MAIL_API_URL}/email`, { signal: AbortSignal.timeout(2000) })).ok
      );
    default:
      throw new Error(`no readiness check for ${component}`);
  }
}

async function processedPerGroup(db: pg.Pool, ids: string[]): Promise<Map<string, number>> {
  const eventIds = ids.map(orderPlacedEventId);
  const { rows } = await db.query<{ group_id: string; n: number }>(
    'SELECT group_id, count(*)::int AS n FROM processed_events WHERE event_id = ANY($1::text[]) GROUP BY group_id',
    [eventIds],
  );
  return new Map(rows.map((r) => [r.group_id, r.n]));
}

async function checkConsumers(
  db: pg.Pool,
  orders: LedgerEntry[],
): Promise<ChaosResult['consumers']> {
  const ids = orders.map((o) => o.orderId!);
  const processed = await processedPerGroup(db, ids);
  // The stack is this run's own: its projections hold this run's orders only.
  const { rows: a } = await db.query<{ n: string; revenue: string }>(
    'SELECT coalesce(sum(order_count), 0)::text AS n, coalesce(sum(revenue_cents), 0)::text AS revenue FROM analytics_daily',
  );
  const revenue = orders.reduce((s, o) => s + o.totalCents, 0);
  const analyticsOk = Number(a[0]!.n) === orders.length && Number(a[0]!.revenue) === revenue;
  const { rows: inv } = await db.query<{ sku: string; q: string; n: number }>(
    'SELECT sku, reserved_quantity::text AS q, order_count AS n FROM stock_reservations',
  );
  const want = new Map<string, { q: number; n: number }>();
  for (const o of orders) {
    const w = want.get(o.sku) ?? { q: 0, n: 0 };
    w.q += o.quantity;
    w.n += 1;
    want.set(o.sku, w);
  }
  const invMismatch = [...want].filter(([sku, w]) => {
    const r = inv.find((x) => x.sku === sku);
    return !r || Number(r.q) !== w.q || r.n !== w.n;
  });
  const invOk = invMismatch.length === 0 && inv.length === want.size;
  return [
    {
      group: 'orderflow.analytics',
      processed: processed.get('orderflow.analytics') ?? 0,
      expected: ids.length,
      projectionMatches: analyticsOk,
      projectionDetail: `orders ${a[0]!.n}/${orders.length}, revenue ${a[0]!.revenue}/${revenue} cents`,
    },
    {
      group: 'orderflow.inventory',
      processed: processed.get('orderflow.inventory') ?? 0,
      expected: ids.length,
      projectionMatches: invOk,
      projectionDetail: invOk
        ? `${want.size} SKUs: reserved quantity and order count equal the ledger's`
        : `mismatched SKUs: ${invMismatch.map(([s, w]) => `${s} want ${w.q}/${w.n}`).join(', ')}; rows ${inv.length}/${want.size}`,
    },
  ];
}

/** Reads the whole topic with a fresh consumer group, up to the high watermarks as they are now (bounded). */
async function auditKafka(brokers: string, ids: Set<string>): Promise<ChaosResult['kafka']> {
  const { kafka, ends } = await topicEnds(brokers, 'chaos-audit', ORDERS_PLACED_TOPIC);
  const left = new Map([...ends].filter(([, high]) => high > 0));
  const perEvent = new Map<string, number>();
  const duplicateTimes: number[] = [];
  let records = 0;
  const consumer = kafka.consumer({ groupId: `chaos-audit-${Date.now().toString(36)}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: ORDERS_PLACED_TOPIC, fromBeginning: true });
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    if (left.size === 0) resolveDone();
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        records++;
        const ceId = message.headers?.ce_id?.toString() ?? '';
        if (perEvent.has(ceId)) duplicateTimes.push(Number(message.timestamp));
        perEvent.set(ceId, (perEvent.get(ceId) ?? 0) + 1);
        if (Number(message.offset) + 1 >= (left.get(partition) ?? Infinity)) left.delete(partition);
        if (left.size === 0) resolveDone();
      },
    });
    await Promise.race([done, delay(120_000)]);
  } finally {
    await consumer.disconnect();
  }
  const wanted = new Set([...ids].map(orderPlacedEventId));
  const ordersWithRecord = [...wanted].filter((e) => perEvent.has(e)).length;
  const duplicateRecords = [...perEvent].reduce((s, [, n]) => s + n - 1, 0);
  return {
    records,
    ordersWithRecord,
    duplicateRecords,
    duplicateTimes,
    missing: wanted.size - ordersWithRecord,
  };
}

async function auditEmail(
  mailApi: string,
  db: pg.Pool,
  ids: string[],
): Promise<ChaosResult['email']> {
  const res = await fetch(`${mailApi}/email`, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`maildev GET /email answered ${res.status}`);
  const mails = (await res.json()) as { messageId: string; subject?: string; time?: string }[];
  const perId = new Map<string, number>();
  const lastAt = new Map<string, number>();
  for (const m of mails) {
    perId.set(m.messageId, (perId.get(m.messageId) ?? 0) + 1);
    const t = m.time ? Date.parse(m.time) : NaN;
    if (t > (lastAt.get(m.messageId) ?? 0)) lastAt.set(m.messageId, t);
  }
  const { rows } = await db.query<{ message_id: string; attempts: number }>(
    'SELECT message_id, attempts FROM email_deliveries WHERE order_id = ANY($1::uuid[])',
    [ids],
  );
  const attempts = new Map(rows.map((r) => [r.message_id.replace(/^<|>$/g, ''), r.attempts]));
  const wanted = ids.map(messageIdOf);
  const duplicates = wanted
    .filter((m) => (perId.get(m) ?? 0) > 1)
    .map((m) => ({
      messageId: m,
      count: perId.get(m)!,
      attempts: attempts.get(m) ?? 0,
      lastAt: lastAt.get(m) ?? NaN,
    }));
  const ordersMailed = wanted.filter((m) => perId.has(m)).length;
  const wantedSet = new Set(wanted);
  const foreign = mails
    .filter((m) => !wantedSet.has(m.messageId))
    .map((m) => ({
      messageId: String(m.messageId),
      subject: String(m.subject),
      time: String(m.time),
    }));
  return {
    mails: mails.length,
    ordersMailed,
    duplicates,
    foreign,
    missing: wanted.length - ordersMailed,
  };
}

/**
 * For each fault, the longest stretch without a completed order (orders.updated_at
 * of the COMPLETED ones) that overlaps the fault's window, from its start to the
 * end of the gap after it: how long the fault stalled completions.
 */
async function completionStalls(
  db: pg.Pool,
  ids: string[],
  faults: FaultRecord[],
  loadStart: number,
  gapS: number,
): Promise<void> {
  const { rows } = await db.query<{ at: Date }>(
    `SELECT updated_at AS at FROM orders WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED' ORDER BY updated_at`,
    [ids],
  );
  const times = rows.map((r) => r.at.getTime());
  for (const f of faults) {
    const from = loadStart + f.startS * 1000;
    const to = from + (f.downS + gapS) * 1000;
    let stall = 0;
    for (let i = 1; i < times.length; i++) {
      const [a, b] = [times[i - 1]!, times[i]!];
      if (b < from || a > to) continue;
      stall = Math.max(stall, b - a);
    }
    f.stallS = times.length > 1 ? stall / 1000 : null;
  }
}

/** The shortest time `n` consecutive `times` span (null with fewer than n). */
function tightestSpan(times: number[], n: number): number | null {
  const t = [...times].sort((a, b) => a - b);
  let min: number | null = null;
  for (let i = 0; i + n - 1 < t.length; i++) {
    const span = t[i + n - 1]! - t[i]!;
    if (min === null || span < min) min = span;
  }
  return min;
}

/** Each running webhook worker's delivered count from its /metrics (null when unreadable). */
async function deliveriesPerWebhookWorker(
  app: ChaosTarget,
): Promise<Record<string, number | null>> {
  const out: Record<string, number | null> = {};
  for (const [name, proc] of app.apps) {
    if (appOf(name) !== 'worker-webhooks') continue;
    const url = metricsUrlOf(proc);
    if (!url) {
      out[name] = null;
      continue;
    }
    try {
      const text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
      const line = /^orderflow_webhook_deliveries_total\{outcome="delivered"\} (\d+)/m.exec(text);
      out[name] = line ? Number(line[1]) : 0;
    } catch {
      out[name] = null;
    }
  }
  return out;
}

function auditWebhooks(
  sub: ChaosSubscriber,
  ids: string[],
  ratePerSecond: number,
): Omit<ChaosResult['webhooks'], 'perWorker'> {
  const bodies = new Map<string, Set<string>>();
  const delivered = new Map<string, number>();
  const duplicateTimes: number[] = [];
  for (const d of sub.deliveries) {
    const set = bodies.get(d.webhookId) ?? new Set<string>();
    set.add(d.body);
    bodies.set(d.webhookId, set);
    if (d.status === 204 && d.verified) {
      if (delivered.has(d.webhookId)) duplicateTimes.push(d.at);
      delivered.set(d.webhookId, (delivered.get(d.webhookId) ?? 0) + 1);
    }
  }
  const wanted = ids.map((id) => webhookMessageId(orderPlacedEventId(id), sub.endpointId));
  return {
    requests: sub.deliveries.length,
    unverified: sub.deliveries.filter((d) => !d.verified).length,
    duplicateDeliveries: [...delivered.values()].reduce((s, n) => s + n - 1, 0),
    duplicateTimes,
    idsWithDifferentPayloads: [...bodies].filter(([, s]) => s.size > 1).map(([id]) => id),
    missing: wanted.filter((w) => !delivered.has(w)).length,
    tightestSpanMs: tightestSpan(
      sub.deliveries.map((d) => d.at),
      ratePerSecond + 1,
    ),
    maxInOneSecond: mostInWindow(
      sub.deliveries.map((d) => d.at),
      1000,
    ),
    ratePerSecond,
  };
}

/** The status the Web UI's server gives for the workflow of order `id` (what its page shows). */
async function webUiStatus(uiUrl: string, id: string | undefined): Promise<ChaosResult['webUi']> {
  const workflowId = id ? `order-${id}` : '(no order)';
  if (!id) return { workflowId, status: 'no accepted order' };
  try {
    const res = await fetch(
      `${uiUrl}/api/v1/namespaces/default/workflows/${encodeURIComponent(workflowId)}`,
      { signal: AbortSignal.timeout(10_000) },
    );
    if (!res.ok) return { workflowId, status: `HTTP ${res.status}` };
    const body = (await res.json()) as { workflowExecutionInfo?: { status?: string } };
    return { workflowId, status: body.workflowExecutionInfo?.status ?? 'no status in the answer' };
  } catch (e) {
    return { workflowId, status: `no answer: ${String(e)}` };
  }
}

/** Order workflows still running (visibility is eventually consistent: polled briefly). */
async function countRunning(connection: Connection): Promise<number | null> {
  const client = new Client({ connection });
  let n: number | null = null;
  for (let i = 0; i < 10; i++) {
    try {
      ({ count: n } = await client.workflow.count(
        `WorkflowType="orderWorkflow" AND ExecutionStatus="Running"`,
      ));
      if (n === 0) return 0;
    } catch (e) {
      log(`counting running workflows failed: ${String(e)}`);
    }
    await delay(1000);
  }
  return n;
}

// ---------------------------------------------------------------- report

function chaosReport(
  r: Omit<ChaosResult, 'report'>,
  orders: number,
  committedAnyway: number,
): string {
  const s = r.settings;
  const load = os
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
  const lines: string[] = [];
  const row = (...cells: (string | number)[]) => lines.push(`| ${cells.join(' | ')} |`);
  /** Where copies fell: each after the latest fault that started before it (the window it hit). */
  const after = (times: number[]) => {
    if (!times.length) return '';
    const byFault = new Map<string, number>();
    for (const t of times) {
      const s = (t - r.loadStartMs) / 1000;
      const f = r.faults.filter((x) => x.startS <= s).at(-1);
      const k = f ? `after ${f.fault}` : 'before any fault';
      byFault.set(k, (byFault.get(k) ?? 0) + 1);
    }
    return ` (${[...byFault].map(([k, n]) => `${n} ${k}`).join(', ')})`;
  };
  lines.push(
    `# Chaos run ${r.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `Machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, load average at the end ${load} (shared with other work).`,
    `Topology: ${s.topology === 'cluster' ? 'cluster (Temporal services on PostgreSQL, three Kafka brokers, two processes of every app; the load alternates between the two APIs and fails over to the other on a refused connection)' : "npm start's (one process of each)"}.`,
    `Load: ${s.rate} orders/s for ${r.loadS.toFixed(0)} s over loopback (one item, one webhook endpoint per order). ` +
      `Budgets: attempt timeout ${s.attemptTimeout}; ${s.faults.includes('fail:webhook-receiver') ? `webhooks give up after ${Math.max(3, Math.floor(s.receiverDownS / 2))} s (so the receiver outage parks orders)` : 'webhooks give up after 600 s'}${s.webhookRatePerSecond ? `; webhook rate limit ${s.webhookRatePerSecond}/s across all webhook workers` : ''}.`,
    '',
    '## Faults injected (in order)',
    '',
    '| # | fault | at (s after load start) | down / until ready (s) | completions stalled (s) | detail |',
    '|---|---|---|---|---|---|',
  );
  r.faults.forEach((f, i) =>
    row(
      i + 1,
      f.fault,
      f.startS.toFixed(0),
      f.downS.toFixed(1),
      f.stallS == null ? '–' : f.stallS.toFixed(1),
      f.detail,
    ),
  );
  lines.push('', '## Outcome', '', '| measure | value |', '|---|---|');
  row('orders offered (POST /orders)', r.offered);
  row(
    'accepted (201 / 202)',
    `${r.accepted.total} (${r.accepted.status201} / ${r.accepted.status202})`,
  );
  row(
    'not accepted',
    r.nonAccepted.reduce((x, n) => x + n.count, 0),
  );
  row('committed although the answer was lost', committedAnyway);
  row('orders checked (accepted + committed anyway)', orders);
  row('**lost** (accepted, not in the database)', r.lost.length);
  row('COMPLETED', `${r.completed} / ${orders}`);
  row('parked, then retried by the test (POST /orders/{id}/retry)', r.parked.length);
  row(
    'drain time (load stopped → all COMPLETED and consumed)',
    `${r.drainS === null ? `not drained in ${s.drainS} s` : `${r.drainS.toFixed(1)} s`} (${drainPartsText(r.drainParts)})`,
  );
  row('order workflows still running in Temporal', r.temporalRunning ?? 'unknown');
  row(`the Web UI's status of ${r.webUi.workflowId}`, r.webUi.status);
  for (const c of r.consumers)
    row(
      `consumer ${c.group}: events applied (processed_events) / orders`,
      `${c.processed} / ${c.expected}; projection ${c.projectionMatches ? 'consistent' : 'INCONSISTENT'} (${c.projectionDetail})`,
    );
  row(
    'Kafka records (independent read) / orders with a record',
    `${r.kafka.records} / ${r.kafka.ordersWithRecord} (missing ${r.kafka.missing})`,
  );
  row(
    'duplicates: Kafka records with the same ce_id (consumers deduplicate)',
    `${r.kafka.duplicateRecords}${after(r.kafka.duplicateTimes)}`,
  );
  row(
    'duplicates: emails with the same Message-ID',
    `${r.email.duplicates.length}${after(r.email.duplicates.map((d) => d.lastAt))}`,
  );
  row(
    'emails (maildev) / orders mailed',
    `${r.email.mails} / ${r.email.ordersMailed} (missing ${r.email.missing})`,
  );
  row(
    "emails with no checked order's Message-ID",
    r.email.foreign.length
      ? r.email.foreign.map((m) => `${m.messageId} "${m.subject}" ${m.time}`).join('; ')
      : 0,
  );
  row(
    'webhook requests received / unverified',
    `${r.webhooks.requests} / ${r.webhooks.unverified}`,
  );
  row(
    'duplicates: webhook deliveries answered 2xx again for the same webhook-id',
    `${r.webhooks.duplicateDeliveries}${after(r.webhooks.duplicateTimes)}`,
  );
  row(
    'webhook-ids delivered with two different payloads',
    r.webhooks.idsWithDifferentPayloads.length,
  );
  row('orders without a successful webhook delivery', r.webhooks.missing);
  row(
    'webhook deliveries per webhook worker process (since its latest start)',
    Object.entries(r.webhooks.perWorker)
      .map(([k, v]) => `${k} ${v ?? 'unknown'}`)
      .join(', '),
  );
  row(
    'webhook requests in the busiest second at the receiver / WEBHOOK_RATE_PER_SECOND',
    `${r.webhooks.maxInOneSecond} / ${r.webhooks.ratePerSecond} (the shortest span of ${r.webhooks.ratePerSecond + 1} consecutive requests: ${r.webhooks.tightestSpanMs ?? '–'} ms)`,
  );
  row(
    'processes that died on their own (restarted by the run)',
    r.unexpectedExits.length ? r.unexpectedExits.join('; ') : 0,
  );

  if (r.nonAccepted.length) {
    lines.push(
      '',
      '## Answers that were not 201/202',
      '',
      '| answer | count | explained by | committed anyway |',
      '|---|---|---|---|',
    );
    for (const n of r.nonAccepted) row(n.answer, n.count, n.explainedBy, n.committedAnyway);
  }
  if (r.parked.length) {
    const byStep = new Map<string, { n: number; example: string; retries: number }>();
    for (const p of r.parked) {
      const b = byStep.get(p.failedStep) ?? { n: 0, example: p.lastError, retries: 0 };
      b.n++;
      b.retries += p.retries;
      byStep.set(p.failedStep, b);
    }
    const other = r.parked.flatMap((p) => p.otherAnswers);
    lines.push(
      '',
      `## Parked orders (all retried through the API${other.length ? `; other answers to the retry: ${other.join(', ')}` : ''})`,
      '',
      '| failed step | orders | retries issued | a last error |',
      '|---|---|---|---|',
    );
    for (const [step, b] of byStep)
      row(step, b.n, b.retries, b.example.replace(/\|/g, '\\|').slice(0, 160));
  }
  if (r.email.duplicates.length) {
    lines.push(
      '',
      '## Duplicate emails',
      '',
      'Each is the known window: the SMTP server accepted the mail, then the sender died (worker SIGKILL), lost the',
      'connection (SMTP server stopped) or could not write the record (PostgreSQL stopped) before the send was recorded;',
      'the retry sent it again with the same Message-ID.',
      '',
      '| Message-ID | copies | send attempts recorded | last copy sent (s after load start) |',
      '|---|---|---|---|',
    );
    for (const d of r.email.duplicates)
      row(
        d.messageId,
        d.count,
        d.attempts,
        `${((d.lastAt - r.loadStartMs) / 1000).toFixed(1)}${after([d.lastAt])}`,
      );
  }
  if (r.notCompleted.length) {
    lines.push(
      '',
      '## Not completed',
      '',
      '| order | status | failed step | last error |',
      '|---|---|---|---|',
    );
    for (const o of r.notCompleted.slice(0, 50))
      row(o.id, o.status, o.failedStep ?? '', (o.lastError ?? '').slice(0, 120));
  }
  lines.push('');
  return lines.join('\n');
}

// ---------------------------------------------------------------- what must hold

/**
 * The guarantees of docs/reliability.md, checked on a run's findings; each
 * violation is a sentence naming what is wrong (empty: all hold).
 */
export function violations(r: ChaosResult): string[] {
  const out: string[] = [];
  const sample = (xs: string[]) => xs.slice(0, 5).join(', ') + (xs.length > 5 ? ', …' : '');
  if (r.accepted.total === 0) out.push('no order was accepted: the load never reached the API');
  if (r.lost.length)
    out.push(`${r.lost.length} accepted orders are not in the database: ${sample(r.lost)}`);
  if (r.unexplainedNonAccepted)
    out.push(
      `${r.unexplainedNonAccepted} answers to POST /orders were neither 201/202 nor explained by a PostgreSQL outage`,
    );
  if (r.drainS === null) out.push(`not drained within ${r.settings.drainS} s`);
  if (r.notCompleted.length)
    out.push(
      `${r.notCompleted.length} orders are not COMPLETED: ${sample(r.notCompleted.map((o) => `${o.id} ${o.status} ${o.failedStep ?? ''}`))}`,
    );
  for (const c of r.consumers) {
    if (c.processed !== c.expected)
      out.push(`${c.group} applied ${c.processed} events for ${c.expected} orders`);
    if (!c.projectionMatches)
      out.push(`${c.group}'s projection does not match the ledger: ${c.projectionDetail}`);
  }
  if (r.kafka.missing)
    out.push(`${r.kafka.missing} orders have no record on ${ORDERS_PLACED_TOPIC}`);
  if (r.email.missing) out.push(`${r.email.missing} orders have no confirmation email in maildev`);
  // A mail is sent twice only in the window between the SMTP server's accept and the record:
  // the email worker killed, the SMTP connection lost, or PostgreSQL unreachable for the
  // record. Each such send was attempted again, is repeated once, and there are at most as
  // many as the SMTP pool (5 connections) had in flight per such fault.
  const emailWindows = ['kill:worker-email', 'stop:smtp', 'stop:postgres'];
  const windows = r.faults.filter((f) => emailWindows.includes(appOf(f.fault))).length;
  for (const d of r.email.duplicates)
    if (d.count !== 2 || d.attempts < 2)
      out.push(
        `email ${d.messageId} arrived ${d.count} times with ${d.attempts} recorded attempts`,
      );
  if (r.email.duplicates.length > 5 * windows)
    out.push(
      `${r.email.duplicates.length} duplicated emails, more than 5 per email-worker kill, SMTP stop or PostgreSQL stop (${windows})`,
    );
  if (r.webhooks.idsWithDifferentPayloads.length)
    out.push(
      `webhook-ids delivered with different payloads: ${sample(r.webhooks.idsWithDifferentPayloads)}`,
    );
  if (r.webhooks.unverified)
    out.push(`${r.webhooks.unverified} webhook requests failed signature verification`);
  if (r.webhooks.missing)
    out.push(`${r.webhooks.missing} orders have no successful webhook delivery`);
  if (r.webhooks.maxInOneSecond > r.webhooks.ratePerSecond)
    out.push(
      `the receiver got ${r.webhooks.maxInOneSecond} webhook requests within one second; the limit is ${r.webhooks.ratePerSecond}/s`,
    );
  if (r.webUi.status !== 'WORKFLOW_EXECUTION_STATUS_COMPLETED')
    out.push(`the Web UI shows ${r.webUi.workflowId} as ${r.webUi.status}, not completed`);
  if (r.temporalRunning !== 0)
    out.push(
      `${r.temporalRunning ?? 'an unknown number of'} order workflows are still running in Temporal`,
    );
  return out;
}
