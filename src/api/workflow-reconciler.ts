/**
 * Puts right the rows of orders whose workflow ended in Temporal without its
 * code running: `temporal workflow terminate` (or the Web UI's terminate), a
 * workflow execution timeout. Nothing in orderflow hears of those, so the row
 * would stay RECEIVED, PROCESSING or PARKED until someone cancels the order.
 * The relay process runs this every WORKFLOW_RECONCILE_INTERVAL_MS: it lists
 * order workflows closed that way (Temporal visibility) since its last sweep
 * (the first sweep looks back `lookbackMs`), and marks the orders whose row
 * is still unfinished CANCELLED with the same statement the API's cancel uses
 * for a terminated workflow (cancelAbandonedOrder). The order's own workflow
 * can no longer announce `order.cancelled`, so the reconciler starts
 * announceCancellationWorkflow for it (once per order), also for orders the
 * API's cancel set CANCELLED after a terminate.
 */
import type { Client } from '@temporalio/client';
import type { Db } from '../db/client.ts';
import type { Logger } from '../shared/logger.ts';
import { cancelAbandonedOrder } from '../orders/order-cancellation.ts';
import {
  ABANDONED_WORKFLOW_STATUSES,
  CANCELLABLE_STATUSES,
  abandonedReason,
} from '../orders/rules.ts';
import type { RetryPolicies } from '../shared/steps.ts';
import { startCancellationAnnouncement } from './workflow-starter.ts';

export interface WorkflowReconcilerOptions {
  intervalMs: number;
  /** How far back the first sweep looks (later ones look from the previous one). */
  lookbackMs: number;
  /** Closed workflows examined per sweep at most (the next sweep goes on). */
  maxPerSweep: number;
  /** The announcement workflow's step retry policies (RETRY_EVENTS, RETRY_WEBHOOKS). */
  retryPolicies?: RetryPolicies;
}

export const defaultReconcilerOptions: WorkflowReconcilerOptions = {
  intervalMs: 30_000,
  lookbackMs: 7 * 86_400_000,
  maxPerSweep: 1_000,
};

/** Visibility's close statuses that no workflow code saw, as describe().status.name spells them. */
const CLOSED_WITHOUT_CODE = { Terminated: 'TERMINATED', TimedOut: 'TIMED_OUT' } as const;
/** Visibility lags the close a little: each sweep overlaps the previous one by this much. */
const OVERLAP_MS = 60_000;
const WORKFLOW_ID_PREFIX = 'order-';
const abandonedReasons = ABANDONED_WORKFLOW_STATUSES.map(abandonedReason);

export class WorkflowReconciler {
  /** Orders marked CANCELLED since start. */
  reconciled = 0;
  /** order.cancelled announcements started since start. */
  announced = 0;
  private since: Date;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly client: () => Promise<Client>,
    private readonly log: Logger,
    private readonly opts: WorkflowReconcilerOptions = defaultReconcilerOptions,
  ) {
    this.since = new Date(Date.now() - opts.lookbackMs);
  }

  /** One sweep; returns the orders it marked CANCELLED. */
  async sweep(): Promise<string[]> {
    const startedAt = Date.now();
    const client = await this.client();
    const statuses = Object.keys(CLOSED_WITHOUT_CODE)
      .map((s) => `ExecutionStatus = '${s}'`)
      .join(' OR ');
    const query = `WorkflowType = 'orderWorkflow' AND (${statuses}) AND CloseTime > '${this.since.toISOString()}'`;
    const closed = new Set<string>(); // order ids
    let examined = 0;
    for await (const wf of client.workflow.list({ query, pageSize: 100 })) {
      if (++examined > this.opts.maxPerSweep) break;
      if (!wf.workflowId.startsWith(WORKFLOW_ID_PREFIX)) continue;
      closed.add(wf.workflowId.slice(WORKFLOW_ID_PREFIX.length));
    }
    const ids = [...closed].filter((id) => /^[0-9a-f-]{36}$/i.test(id));
    // Rows still unfinished, and rows already set CANCELLED for such a workflow (here or by the
    // API's cancel) whose order.cancelled may not be announced yet.
    const rows =
      ids.length === 0
        ? []
        : await this.db.order.findMany({
            where: {
              id: { in: ids },
              OR: [
                { status: { in: [...CANCELLABLE_STATUSES] } },
                { status: 'CANCELLED', lastError: { in: abandonedReasons } },
              ],
            },
            select: { id: true, status: true },
          });
    const cancelled: string[] = [];
    for (const { id, status } of rows) {
      // The latest run decides: a reset terminates a run and starts another under the same id.
      const latest = await client.workflow.getHandle(`${WORKFLOW_ID_PREFIX}${id}`).describe();
      const workflowStatus = latest.status.name;
      if (!(Object.values(CLOSED_WITHOUT_CODE) as string[]).includes(workflowStatus)) continue;
      if (status !== 'CANCELLED') {
        if (!(await cancelAbandonedOrder(this.db, id, workflowStatus))) continue;
        cancelled.push(id);
        this.reconciled += 1;
        this.log.warn(
          { orderId: id, was: status, workflowStatus },
          'order workflow ended in Temporal without finishing the order: marked CANCELLED',
        );
      }
      // Once per order (its own workflow ID); a failure fails the sweep, which keeps its window.
      const started = await startCancellationAnnouncement(
        client,
        id,
        abandonedReason(workflowStatus),
        this.opts.retryPolicies,
      );
      if (started === 'started') this.announced += 1;
    }
    // A full sweep moves the window on; a truncated one looks at the same window again.
    if (examined <= this.opts.maxPerSweep) this.since = new Date(startedAt - OVERLAP_MS);
    return cancelled;
  }

  /** Sweeps every intervalMs until stop(); a failed sweep is logged and retried next time. */
  run(): void {
    if (this.opts.intervalMs <= 0 || this.timer || this.stopped) return;
    const tick = () => {
      this.running = this.sweep()
        .catch((err: unknown) => this.log.warn({ err }, 'workflow reconcile sweep failed'))
        .finally(() => {
          this.running = undefined;
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs);
        });
    };
    this.timer = setTimeout(tick, Math.min(this.opts.intervalMs, 1_000));
  }

  /** No more sweeps; waits for the one in hand. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
