/**
 * The transactional outbox's relay. An order and its pending workflow start
 * are committed together. In the API process (WORKFLOW_START_MODE async), the
 * API hands the start to `kick()` right after the commit and `sweep()` starts
 * whatever stayed unconfirmed (the API crashed, Temporal was down). In the
 * relay process (`npm run relay`, mode relay) the API only commits and the
 * sweep does all the starting: it polls, and sweeps again at once while it
 * finds a full batch. Rows are leased with FOR UPDATE SKIP LOCKED, so any
 * number of relays never block each other, and a double start is harmless
 * anyway (see startOrderWorkflow). While tracing is on, each start runs in
 * the trace of the request that accepted the order (its context travels in
 * the row), so the workflow, its activities and the Kafka event join it.
 */
import { context, type Context } from '@opentelemetry/api';
import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import { contextFromStored, runInContext, tracingEnabled } from '../observability/tracing.ts';
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
}

export const defaultRelayOptions: RelayOptions = {
  graceMs: 3000,
  intervalMs: 1000,
  batchSize: 100,
  concurrency: 32,
};

export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  /** Set by stop(): no new starts, so a shutdown waits for one start, not a whole batch. */
  private stopping = false;
  private sweeping: Promise<void> | undefined;
  /** Kicked starts, with the trace context of the request that kicked them (tracing on). */
  private readonly queue: { orderId: string; trace?: Context }[] = [];
  private active = 0;
  private readonly inFlight = new Set<Promise<void>>();
  /** False after a start failed to reach Temporal, until one succeeds. */
  temporalReachable = true;
  started = 0;
  failed = 0;

  constructor(
    private readonly db: Db,
    private readonly client: () => Promise<Client>,
    private readonly log: Logger,
    readonly opts: RelayOptions = defaultRelayOptions,
    /** Health probe of the Temporal frontend, run on every tick. */
    private readonly ping?: () => Promise<boolean>,
  ) {}

  /** Starts the periodic sweep (and health probe). */
  run(): void {
    const sweeps = this.opts.sweep !== false;
    let full = false;
    let lastProbe = 0;
    const tick = () => {
      // While full batches keep coming the probe runs once per interval, not per batch.
      const probe = Date.now() - lastProbe >= this.opts.intervalMs;
      if (probe) lastProbe = Date.now();
      this.sweeping = (probe ? this.probe() : Promise.resolve())
        .then(() => (sweeps && this.temporalReachable ? this.sweepBatch() : { due: 0 }))
        .then(({ due }) => {
          full = due >= this.opts.batchSize;
        })
        .catch((err: unknown) => {
          full = false;
          this.log.warn({ err: (err as Error).message }, 'outbox sweep failed');
        })
        .finally(() => {
          this.sweeping = undefined;
          if (this.timer) this.timer = setTimeout(tick, full ? 0 : this.opts.intervalMs);
        });
    };
    this.timer = setTimeout(tick, this.opts.intervalMs);
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

  /** Starts an order's workflow soon, in the background (after the commit). */
  kick(orderId: string): void {
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
    await this.db.workflowStart.update({
      where: { orderId },
      data: { startedAt: new Date(), lastError: null },
    });
    return true;
  }

  /** Starts one workflow without confirming it; on failure records the error on its row. */
  private async startOnly(orderId: string): Promise<boolean> {
    try {
      const outcome = await startOrderWorkflow(
        await this.client(),
        orderId,
        this.opts.retryPolicies,
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
        .update({ where: { orderId }, data: { lastError: message.slice(0, 1000) } })
        .catch(() => {});
      return false;
    }
  }

  /** Leases due, unconfirmed starts and starts them; returns how many were confirmed. */
  async sweep(): Promise<number> {
    return (await this.sweepBatch()).confirmed;
  }

  /**
   * One batch: lease up to batchSize due rows, start them `concurrency` at a
   * time, confirm the started ones in one statement. The first start that
   * cannot reach Temporal ends the batch: the rest keep their lease and come
   * back later (here or in another relay).
   */
  private async sweepBatch(): Promise<{ due: number; confirmed: number }> {
    // Lease: push next_attempt_at out (exponential backoff, capped at a minute)
    // so concurrent relays skip these rows while this one works on them.
    const due = await this.db.$queryRaw<
      { order_id: string; traceparent: string | null; tracestate: string | null }[]
    >`
      UPDATE workflow_starts SET
        attempts = attempts + 1,
        next_attempt_at = now() + LEAST(interval '60 seconds', interval '1 second' * power(2, LEAST(attempts, 6)))
      WHERE order_id IN (
        SELECT order_id FROM workflow_starts
        WHERE started_at IS NULL AND next_attempt_at <= now()
        ORDER BY next_attempt_at
        LIMIT ${this.opts.batchSize}
        FOR UPDATE SKIP LOCKED
      )
      RETURNING order_id, traceparent, tracestate`;
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
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sweeping;
    await Promise.allSettled([...this.inFlight]);
  }
}
