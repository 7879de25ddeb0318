/**
 * The transactional outbox's relay. An order and its pending workflow start
 * are committed together. In the API process (WORKFLOW_START_MODE async), the
 * API hands the start to `kick()` right after the commit and `sweep()` starts
 * whatever stayed unconfirmed (the API crashed, Temporal was down). In the
 * relay process (`npm run relay`, mode relay) the API only commits and the
 * sweep does all the starting: it polls, and sweeps again at once after a
 * batch that leased something. Rows are leased with FOR UPDATE SKIP LOCKED,
 * so any number of relays never block each other, and a double start is
 * harmless anyway (see startOrderWorkflow). While tracing is on, each start runs in
 * the trace of the request that accepted the order (its context travels in
 * the row), so the workflow, its activities and the Kafka event join it.
 * In the relay process, `wake()` (a notification from the intake statement,
 * see OutboxListener) makes it sweep at once instead of at the next poll.
 *
 * Backpressure: with `maxInFlight` set, a sweep starts no more than the bound
 * leaves free of orders in flight (counted in PostgreSQL, so across all
 * relays), and a kick is dropped while the bound is reached (its row waits for
 * a sweep); a spike waits in the outbox instead of inside Temporal. An order
 * counts only for `inFlightWindowMs` after its start: one still unfinished
 * after that is waiting on a retry timer, which costs Temporal nothing, so a
 * subscriber that keeps failing does not stall every start.
 */
import { context, type Context } from '@opentelemetry/api';
import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { contextFromStored, runInContext, tracingEnabled } from '../observability/tracing.ts';
import { WORKFLOW_START_GRACE_MS } from '../orders/workflow-start.ts';
import type { Logger } from '../shared/logger.ts';
import type { RetryPolicies } from '../shared/steps.ts';
import { startOrderWorkflow } from './workflow-starter.ts';

export interface RelayOptions {
  /** How long a fresh start is left to the API before the sweep takes it. */
  graceMs: number;
  /** Sweep period (while the last sweep found less than a full batch). */
  intervalMs: number;
  batchSize: number;
  /** Starts running at once (kicked ones, and those of one sweep). */
  concurrency: number;
  /** False: only the Temporal probe runs (the API when a relay process does the starting). */
  sweep?: boolean;
  /** Retry budgets passed to each workflow (defaults when absent). */
  retryPolicies?: RetryPolicies;
  /**
   * Orders in flight (see countInFlight) above which no workflow is started;
   * 0 or absent: no bound. The processes pass OUTBOX_MAX_IN_FLIGHT.
   */
  maxInFlight?: number;
  /** How long after its start an unfinished order counts as in flight (OUTBOX_IN_FLIGHT_WINDOW_MS). */
  inFlightWindowMs: number;
  /**
   * Deadline of one workflow start (default START_TIMEOUT_MS): a frontend that
   * stops answering fails the start, which stays in the outbox, instead of
   * holding the sweep, and with it every later start, forever.
   */
  startTimeoutMs?: number;
}

/** A start takes milliseconds; seconds mean Temporal is overloaded or gone. */
export const START_TIMEOUT_MS = 10_000;

/**
 * The Temporal probe runs at most this often, however short the poll: a
 * relay polling every 100 ms asked the frontend for its system info ten
 * times a second, a gRPC call on both sides for nothing (of an idle stack's
 * CPU, the relay's 24 ms a second were most of it). An outage is still
 * noticed at the first start that fails; the probe only tells when it ended.
 */
export const PROBE_INTERVAL_MS = 1_000;

export const defaultRelayOptions: RelayOptions = {
  graceMs: WORKFLOW_START_GRACE_MS,
  intervalMs: 1000,
  batchSize: 100,
  concurrency: 32,
  inFlightWindowMs: 60_000,
};

/** What countInFlight and the lease statement need: the client or a transaction's. */
type Sql = Pick<Db, '$queryRaw'>;

/** The advisory lock relays take turns on to count and lease (an id no other lock uses). */
const LEASE_LOCK = 72707370;

/**
 * Orders in flight, for every relay alike: those being actively processed,
 * i.e. not finished (RECEIVED or PROCESSING; PARKED ones wait for an operator)
 * with their workflow started less than `windowMs` ago (by a sweep or a kick),
 * plus the starts a relay is making (leased rows: attempts > 0, not due, not
 * confirmed; a start that failed counts until its retry is due). An order
 * still unfinished after the window is waiting on a retry timer and no longer
 * counts. The window's starts are joined to the unfinished orders, index-only
 * on both sides (workflow_starts_started_idx, orders_unfinished_idx), driven
 * from the smaller side, so a large outbox backlog costs little (see the
 * migration 20261128060000_outbox_in_flight_indexes). `due` is how many starts
 * are waiting now, counted up to `dueCap`.
 */
export async function countInFlight(
  db: Sql,
  windowMs: number,
  dueCap = 1,
): Promise<{ inFlight: number; due: number }> {
  const [row] = await db.$queryRaw<{ started: number; leased: number; due: number }[]>`
    SELECT
      (SELECT count(*) FROM workflow_starts s JOIN orders o ON o.id = s.order_id
        WHERE s.started_at > now() - ${windowMs}::int * interval '1 millisecond'
          AND o.status IN ('RECEIVED', 'PROCESSING'))::int AS started,
      (SELECT count(*) FROM workflow_starts
        WHERE started_at IS NULL AND attempts > 0 AND next_attempt_at > now())::int AS leased,
      (SELECT count(*) FROM (SELECT FROM workflow_starts
        WHERE started_at IS NULL AND next_attempt_at <= now()
        ORDER BY next_attempt_at LIMIT ${dueCap}) d)::int AS due`;
  const { started = 0, leased = 0, due = 0 } = row ?? {};
  return { inFlight: started + leased, due };
}

/**
 * Whether any start is due now: one index probe, the earliest pending start.
 * Not `EXISTS (... WHERE next_attempt_at <= now())`: once pending rows are a few
 * percent of the table, the planner takes that for a sequential scan (it
 * assumes they are spread through the table, but they are all at its end), which
 * reads the whole history (6-11 ms at 100,000 started rows, against 0.05 ms).
 */
async function anyDue(db: Sql): Promise<boolean> {
  const [row] = await db.$queryRaw<{ due: boolean }[]>`
    SELECT coalesce((SELECT next_attempt_at FROM workflow_starts WHERE started_at IS NULL
      ORDER BY next_attempt_at LIMIT 1) <= now(), false) AS due`;
  return row?.due ?? false;
}

/**
 * Leases up to `limit` due, unconfirmed starts: pushes next_attempt_at out
 * (exponential backoff, capped at a minute) so concurrent relays skip them
 * while this one works on them.
 */
function leaseDue(db: Sql, limit: number) {
  return db.$queryRaw<
    { order_id: string; traceparent: string | null; tracestate: string | null }[]
  >`
    UPDATE workflow_starts SET
      attempts = attempts + 1,
      next_attempt_at = now() + LEAST(interval '60 seconds', interval '1 second' * power(2, LEAST(attempts, 6)))
    WHERE order_id IN (
      SELECT order_id FROM workflow_starts
      WHERE started_at IS NULL AND next_attempt_at <= now()
      ORDER BY next_attempt_at
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED
    )
    RETURNING order_id, traceparent, tracestate`;
}

export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  /** Between run() and stop(). */
  private running = false;
  /** Set by stop(): no new starts, so a shutdown waits for one start, not a whole batch. */
  private stopping = false;
  private sweeping: Promise<void> | undefined;
  /** A wake-up arrived during a sweep: sweep again right after it. */
  private wokenWhileSweeping = false;
  private lastProbe = 0;
  /** Set by the first kick: kicks are admitted against the count, so every sweep keeps it fresh. */
  private kicked = false;
  /** Kicked starts, with the trace context of the request that kicked them (tracing on). */
  private readonly queue: { orderId: string; trace?: Context }[] = [];
  private active = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** False after a start failed to reach Temporal, until one succeeds. */
  temporalReachable = true;
  started = 0;
  failed = 0;
  /** True while the last bounded sweep left due starts in the outbox because of the bound. */
  holdingBack = false;
  /** Kicks admitted so far (bounded: each one is in flight until the next count sees it). */
  private kicksAdmitted = 0;
  /** In flight at the last count (with this process's starts it could not see), and kicksAdmitted then. */
  private counted = { inFlight: 0, kicksAdmitted: 0 };

  constructor(
    private readonly db: Db,
    private readonly client: () => Promise<Client>,
    private readonly log: Logger,
    readonly opts: RelayOptions = defaultRelayOptions,
    /** Health probe of the Temporal frontend, run on a tick at most every PROBE_INTERVAL_MS. */
    private readonly ping?: () => Promise<boolean>,
  ) {}

  private get maxInFlight(): number {
    return this.opts.maxInFlight ?? 0;
  }

  /** Kicked starts not confirmed yet: invisible to countInFlight (their rows are never attempted). */
  private get kicksInHand(): number {
    return this.active + this.queue.length;
  }

  /** Starts the periodic sweep (and health probe). */
  run(): void {
    // Kicks are admitted against the last count: take one now rather than after the first interval.
    if (this.opts.sweep !== false && this.maxInFlight > 0)
      this.countForBound(this.db).catch(() => {});
    this.running = true;
    this.timer = setTimeout(() => this.tick(), this.opts.intervalMs);
  }

  /**
   * Sweeps at once instead of at the next poll (a start was committed); at
   * most one sweep runs, and a wake-up during a sweep makes it sweep again
   * right after. Ignored while the bound holds starts back (room comes from
   * orders finishing, and the poll takes it) and while Temporal is
   * unreachable (the poll's probe finds out when it is back).
   */
  wake(): void {
    const ignore = this.opts.sweep === false || this.holdingBack || !this.temporalReachable;
    if (!this.running || this.stopping || ignore) return;
    if (this.sweeping) {
      this.wokenWhileSweeping = true;
      return;
    }
    clearTimeout(this.timer);
    this.tick(true);
  }

  /**
   * One probe (at most once per interval and PROBE_INTERVAL_MS, never ahead of a woken sweep) and
   * one sweep batch, then the next tick: at once after a batch that leased
   * something or a wake-up during it, otherwise after the poll interval. The
   * intake notifies only when no other start is due, so an order committed
   * while a batch was leased may have sent none: the sweep after that batch
   * takes it.
   */
  private tick(woken = false): void {
    this.timer = undefined;
    const sweeps = this.opts.sweep !== false;
    const probeEvery = Math.max(this.opts.intervalMs, PROBE_INTERVAL_MS);
    const probe = !woken && Date.now() - this.lastProbe >= probeEvery;
    if (probe) this.lastProbe = Date.now();
    let again = false;
    this.sweeping = (probe ? this.probe() : Promise.resolve())
      .then(() => (sweeps && this.temporalReachable ? this.sweepBatch() : { due: 0 }))
      .then(({ due }) => {
        again = due > 0;
      })
      .catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message }, 'outbox sweep failed');
      })
      .finally(() => {
        this.sweeping = undefined;
        const wokenMeanwhile = this.wokenWhileSweeping;
        this.wokenWhileSweeping = false;
        if (!this.running || this.stopping) return;
        this.timer = setTimeout(
          () => this.tick(wokenMeanwhile),
          again || wokenMeanwhile ? 0 : this.opts.intervalMs,
        );
      });
  }

  /** Keeps `temporalReachable` current, so POST /orders answers 202 during an outage. */
  private async probe(): Promise<void> {
    if (!this.ping) return;
    const reachable = await this.ping();
    if (reachable !== this.temporalReachable) {
      this.log.warn(
        { reachable },
        reachable ? 'Temporal is reachable again' : 'Temporal is unreachable',
      );
    }
    this.temporalReachable = reachable;
  }

  /**
   * Starts an order's workflow soon, in the background (after the commit).
   * While the in-flight bound is reached (at the last count, plus the starts
   * made since) it starts nothing: the row is due after its grace period and a
   * sweep starts it within the bound.
   */
  kick(orderId: string): void {
    this.kicked = true;
    if (this.maxInFlight > 0) {
      const estimate = this.counted.inFlight + this.kicksAdmitted - this.counted.kicksAdmitted;
      if (estimate >= this.maxInFlight) return;
      this.kicksAdmitted++;
    }
    this.queue.push({ orderId, trace: tracingEnabled() ? context.active() : undefined });
    this.drain();
  }

  private drain(): void {
    while (!this.stopping && this.active < this.opts.concurrency && this.queue.length > 0) {
      const { orderId, trace } = this.queue.shift()!;
      this.active++;
      // drain() runs in whichever request or start freed the slot: each start gets its own trace back.
      const p: Promise<void> = runInContext(trace, () => this.startOne(orderId))
        .then(() => undefined)
        .catch(() => {})
        .finally(() => {
          this.active--;
          this.inFlight.delete(p);
          this.drain();
        });
      this.inFlight.add(p);
    }
  }

  /** Starts one workflow and confirms it; on failure leaves the row for the sweep. */
  async startOne(orderId: string): Promise<boolean> {
    if (!(await this.startOnly(orderId))) return false;
    // updateMany: a cancel before the start may have removed the row (the workflow then ends at once).
    await this.db.workflowStart.updateMany({
      where: { orderId },
      data: { startedAt: new Date(), lastError: null },
    });
    return true;
  }

  /** Starts one workflow without confirming it; on failure records the error on its row. */
  private async startOnly(orderId: string): Promise<boolean> {
    try {
      const client = await this.client();
      const deadline = Date.now() + (this.opts.startTimeoutMs ?? START_TIMEOUT_MS);
      const outcome = await client.connection.withDeadline(deadline, () =>
        startOrderWorkflow(client, orderId, this.opts.retryPolicies),
      );
      this.temporalReachable = true;
      this.started++;
      this.log.debug({ orderId, outcome }, 'workflow started');
      return true;
    } catch (err) {
      this.failed++;
      this.temporalReachable = false;
      const e = err as Error & { cause?: Error };
      const message = e.cause?.message ? `${e.message}: ${e.cause.message}` : e.message;
      this.log.warn({ orderId, err: message }, 'workflow start failed; the relay will retry');
      await this.db.workflowStart
        .updateMany({ where: { orderId }, data: { lastError: message.slice(0, 1000) } })
        .catch(() => {});
      return false;
    }
  }

  /** Leases due, unconfirmed starts and starts them; returns how many were confirmed. */
  async sweep(): Promise<number> {
    return (await this.sweepBatch()).confirmed;
  }

  /**
   * One batch: lease up to batchSize due rows (fewer when the in-flight bound
   * leaves less room), start them `concurrency` at a time, confirm the started
   * ones in one statement. The first start that cannot reach Temporal ends the
   * batch: the rest keep their lease and come back later (here or in another relay).
   */
  private async sweepBatch(): Promise<{ due: number; confirmed: number }> {
    const due =
      this.maxInFlight > 0
        ? await this.leaseWithinBound()
        : await leaseDue(this.db, this.opts.batchSize);
    const ids = due.map((r) => r.order_id);
    const started: string[] = [];
    let next = 0;
    let unreachable = false;
    const lane = async () => {
      while (!this.stopping && !unreachable && next < ids.length) {
        const { order_id: id, ...stored } = due[next++]!;
        if (await runInContext(contextFromStored(stored), () => this.startOnly(id)))
          started.push(id);
        else unreachable = true;
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.opts.concurrency, ids.length) }, () => lane()),
    );
    if (started.length) {
      await this.db.$executeRaw`
        UPDATE workflow_starts SET started_at = now(), last_error = NULL
        WHERE order_id = ANY(${started}::uuid[])`;
    }
    if (ids.length) this.log.info({ due: ids.length, confirmed: started.length }, 'outbox sweep');
    return { due: ids.length, confirmed: started.length };
  }

  /**
   * Counts and leases in one transaction, under an advisory lock held for
   * those two statements only: relays take turns, so two never fill the same
   * room. A leased row counts as in flight from the commit on. With nothing
   * due there is nothing to count for (an idle poll, or the check after a
   * woken sweep), unless kicks are admitted against the count.
   */
  private async leaseWithinBound() {
    if (!this.kicked && !this.holdingBack && !(await anyDue(this.db))) return [];
    return this.db.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LEASE_LOCK}::bigint)`;
      const { inFlight, due } = await this.countForBound(tx, this.opts.batchSize + 1);
      const room = this.maxInFlight - inFlight;
      const limit = Math.max(0, Math.min(this.opts.batchSize, room));
      this.noteHoldingBack(room < this.opts.batchSize && due > limit, inFlight);
      const leased = limit > 0 ? await leaseDue(tx, limit) : [];
      this.counted.inFlight += leased.length;
      return leased;
    });
  }

  /**
   * countInFlight plus this process's kicks it cannot see (not confirmed when
   * counted, or admitted since); kept as the base kicks are admitted against.
   */
  private async countForBound(db: Sql, dueCap = 1): Promise<{ inFlight: number; due: number }> {
    const inHand = this.kicksInHand;
    const admitted = this.kicksAdmitted;
    const counted = await countInFlight(db, this.opts.inFlightWindowMs, dueCap);
    const inFlight = counted.inFlight + inHand + this.kicksAdmitted - admitted;
    this.counted = { inFlight, kicksAdmitted: this.kicksAdmitted };
    return { inFlight, due: counted.due };
  }

  /** Logs when the relay starts and stops holding starts back (not on every sweep). */
  private noteHoldingBack(holding: boolean, inFlight: number): void {
    if (holding === this.holdingBack) return;
    this.holdingBack = holding;
    const fields = { inFlight, maxInFlight: this.maxInFlight };
    if (holding)
      this.log.info(fields, 'in-flight bound reached: workflow starts wait in the outbox');
    else this.log.info(fields, 'below the in-flight bound again: starts no longer held back');
  }

  /**
   * Orders in flight (countInFlight) plus this process's kicks not confirmed
   * yet; with `timeoutMs` the server gives up too (statement_timeout), so a
   * blocked count does not hold a pooled connection (metrics).
   */
  async ordersInFlight(timeoutMs?: number): Promise<number> {
    const window = this.opts.inFlightWindowMs;
    const { inFlight } =
      timeoutMs === undefined
        ? await countInFlight(this.db, window)
        : await this.db.$transaction(async (tx) => {
            await tx.$executeRawUnsafe(
              `SET LOCAL statement_timeout = ${Math.max(1, Math.round(timeoutMs))}`,
            );
            return countInFlight(tx, window);
          });
    return inFlight + this.kicksInHand;
  }

  /** Rows waiting for their workflow start, and the age of the oldest. */
  async backlog(): Promise<{ pending: number; oldestAgeSeconds: number }> {
    const [row] = await this.db.$queryRaw<{ pending: bigint; oldest: number | null }[]>`
      SELECT count(*) AS pending, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS oldest
      FROM workflow_starts WHERE started_at IS NULL`;
    return { pending: Number(row?.pending ?? 0), oldestAgeSeconds: row?.oldest ?? 0 };
  }

  /** Stops sweeping and waits for in-flight starts (bounded by the caller). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sweeping;
    await Promise.allSettled([...this.inFlight]);
  }
}
