import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { EmailActivities } from '../activities/email.ts';
import type { EventActivities } from '../activities/events.ts';
import type { OrderRecordActivities } from '../activities/order-records.ts';
import type { WebhookActivities } from '../activities/webhooks.ts';
import {
  NOT_PARKED,
  cancelSignal,
  progressQuery,
  retrySignal,
  retryUpdate,
  type OrderProgress,
} from '../shared/messages.ts';
import type { OrderStatus, OrderWorkflowInput } from '../shared/orders.ts';
import {
  FailureType,
  ORDER_CANCELLED,
  ORDER_PLACED,
  defaultRetryPolicies,
  type StepName,
  type StepRetryPolicy,
} from '../shared/steps.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE, TaskQueue } from '../shared/task-queues.ts';

const orderStatusKey = defineSearchAttributeKey(
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  SearchAttributeType.KEYWORD,
);

/** Search attribute values, as operators type them in the Web UI: OrderStatus="Parked". */
const searchValue: Record<OrderStatus, string> = {
  RECEIVED: 'Received',
  PROCESSING: 'Processing',
  PARKED: 'Parked',
  COMPLETED: 'Completed',
  CANCELLED: 'Cancelled',
};

/**
 * Activity options of a step: its task queue and its retry budget. `holding`
 * (patch cancellation-holds): a cancel waits until the running attempt has
 * stopped or finished, so the order reports what was sent; the heartbeat
 * timeout makes a dead worker's attempt fail over in seconds.
 */
export function stepOptions(
  taskQueue: string,
  p: StepRetryPolicy,
  holding?: { heartbeats: boolean },
): ActivityOptions {
  return {
    taskQueue,
    ...(holding
      ? {
          cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
          ...(holding.heartbeats ? { heartbeatTimeout: STEP_HEARTBEAT_TIMEOUT } : {}),
        }
      : {}),
    startToCloseTimeout: p.attemptTimeoutMs,
    scheduleToCloseTimeout: p.totalTimeoutMs,
    retry: {
      initialInterval: p.initialIntervalMs,
      backoffCoefficient: p.backoffCoefficient,
      maximumInterval: p.maximumIntervalMs,
      // 0 means no limit, which the SDK spells as leaving it out.
      ...(p.maximumAttempts > 0 ? { maximumAttempts: p.maximumAttempts } : {}),
    },
  };
}

/** Heartbeat timeout of the steps that heartbeat (email, webhooks): they learn of a cancel through their heartbeats. */
export const STEP_HEARTBEAT_TIMEOUT = '10 seconds';

type Bookkeeping = OrderRecordActivities & Pick<WebhookActivities, 'webhookTargets'>;
const bookkeepingRetry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
} as const;

/**
 * Bookkeeping (the order's row, the webhook subscribers): quick database writes
 * and reads, retried until they succeed. They run as local activities in the
 * orders worker, inside the workflow task that needs them: no task queue round
 * trip and three history events fewer each (a marker instead), which is most
 * of the Temporal server's work per order. A worker that dies mid-write makes
 * the workflow task time out and the write run again: each one is idempotent.
 */
export const bookkeepingOptions = { startToCloseTimeout: '10 seconds', retry: bookkeepingRetry };
const localRecords = proxyLocalActivities<Bookkeeping>(bookkeepingOptions);

/** The same bookkeeping as ordinary activities on the `orders` queue: orders started before the patch. */
const queuedRecords = proxyActivities<Bookkeeping>({
  taskQueue: TaskQueue.orders,
  ...bookkeepingOptions,
});

/** Patch id of the move of the bookkeeping to local activities (histories before it replay as they ran). */
export const LOCAL_BOOKKEEPING_PATCH = 'bookkeeping-local-activities';

/**
 * Patch id of the lean bookkeeping (implies the local one): the first status
 * write and the subscriber read are one local activity, and `OrderStatus` is
 * upserted only where it says more than `ExecutionStatus` (see setStatus).
 * Each patch costs a marker and a search-attribute upsert per order, so new
 * orders record only this one.
 */
export const LEAN_BOOKKEEPING_PATCH = 'lean-bookkeeping';

/**
 * Patch id of cancellation that holds (implies the lean bookkeeping): the cancel
 * signal writes CANCELLED before it stops the running attempts (which read the
 * row before sending), waits for them, records what was already sent, and
 * announces `order.cancelled` (Kafka and webhooks); steps heartbeat.
 */
export const CANCELLATION_PATCH = 'cancellation-holds';

/** One unit of work that can fail and be retried on its own: a step, or one webhook delivery. */
type Task = { step: 'email' } | { step: 'events' } | { step: 'webhooks'; endpointId: string };

const taskKey = (t: Task): string => (t.step === 'webhooks' ? `webhooks:${t.endpointId}` : t.step);

/** Processes one order: email, webhooks and the Kafka event; parks on failure until retried or cancelled. */
export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderStatus> {
  const { orderId } = input;
  const policies = input.retryPolicies ?? defaultRetryPolicies;
  // Each patch costs a marker per order: new orders record only the newest one.
  const holds = patched(CANCELLATION_PATCH);
  const lean = holds || patched(LEAN_BOOKKEEPING_PATCH);
  const records = lean || patched(LOCAL_BOOKKEEPING_PATCH) ? localRecords : queuedRecords;
  const heartbeating = holds ? { heartbeats: true } : undefined;
  const email = proxyActivities<EmailActivities>(
    stepOptions(TaskQueue.email, policies.email, heartbeating),
  );
  const webhooks = proxyActivities<WebhookActivities>(
    stepOptions(TaskQueue.webhooks, policies.webhooks, heartbeating),
  );
  const events = proxyActivities<EventActivities>(
    stepOptions(TaskQueue.events, policies.events, holds ? { heartbeats: false } : undefined),
  );

  const state = {
    status: 'RECEIVED' as OrderStatus,
    failures: new Map<string, { task: Task; error: string }>(),
    completed: new Set<StepName>(),
    parkedCount: 0,
    retryRequested: false,
    cancelRequested: false,
    cancelReason: undefined as string | undefined,
    /** Tasks whose activity completed (sent, or found sent before). */
    sent: new Set<string>(),
    /** Processing began (the first bookkeeping ran): something may have been sent. */
    began: false,
    /** The CANCELLED bookkeeping ran (once, also when Temporal cancelled the workflow). */
    cancelled: false,
  };
  let running: CancellationScope | undefined;

  const failedSteps = (): StepName[] => [
    ...new Set([...state.failures.values()].map((f) => f.task.step)),
  ];
  setHandler(progressQuery, (): OrderProgress => ({
    status: state.status,
    failedSteps: failedSteps(),
    lastError: [...state.failures.values()][0]?.error ?? null,
    completedSteps: [...state.completed],
    parkedCount: state.parkedCount,
    sent: [...state.sent].sort(),
  }));
  setHandler(retrySignal, () => {
    if (state.status === 'PARKED') state.retryRequested = true;
    else log.info('retry signal ignored: order is not parked', { orderId, status: state.status });
  });
  setHandler(
    retryUpdate,
    () => {
      state.retryRequested = true;
      return { retrying: failedSteps() };
    },
    {
      validator: () => {
        if (state.status !== 'PARKED') throw new Error(NOT_PARKED);
      },
    },
  );
  setHandler(cancelSignal, (reason?: string) => {
    state.cancelRequested = true;
    state.cancelReason = reason;
    // Holding: the round writes CANCELLED first, then stops the attempts (runRoundHolding).
    if (!holds) running?.cancel();
  });

  async function setStatus(status: OrderStatus): Promise<void> {
    state.status = status;
    if (!lean || searchAttributeNeeded(status)) {
      upsertSearchAttributes([{ key: orderStatusKey, value: searchValue[status] }]);
    }
    const first = [...state.failures.values()][0];
    await records.recordOrderStatus({
      orderId,
      status,
      failedStep: status === 'PARKED' ? failedSteps().join(',') : null,
      lastError:
        status === 'PARKED'
          ? first
            ? `${taskKey(first.task)}: ${first.error}`
            : null
          : status === 'CANCELLED'
            ? cancelSummary()
            : null,
    });
  }

  /** The reason of a cancel, as the row records it (what was sent: the progress query's `sent`). */
  function cancelSummary(): string | null {
    return state.cancelReason ?? (holds ? 'cancelled' : null);
  }

  /** Runs one task; a failure that outlived its retries is recorded, not thrown. */
  async function runTask(task: Task): Promise<void> {
    try {
      if (task.step === 'email') await email.sendConfirmationEmail({ orderId });
      else if (task.step === 'events') await events.publishOrderPlaced({ orderId });
      else
        await webhooks.deliverWebhook({
          orderId,
          endpointId: task.endpointId,
          eventType: ORDER_PLACED,
        });
      state.failures.delete(taskKey(task));
      state.sent.add(taskKey(task));
    } catch (err) {
      if (isCancellation(err)) throw err;
      if (failureTypeOf(err) === FailureType.OrderCancelled) {
        // The row says CANCELLED (an operator's cancel reached it first): end as cancelled.
        state.cancelRequested = true;
        state.failures.delete(taskKey(task));
        return;
      }
      if (task.step === 'webhooks' && isEndpointGone(err)) {
        // A subscriber that was deleted, disabled or answered 410 no longer wants it: nothing to park.
        log.info('webhook endpoint gone; delivery skipped', {
          orderId,
          endpointId: task.endpointId,
        });
        state.failures.delete(taskKey(task));
        return;
      }
      state.failures.set(taskKey(task), { task, error: describeFailure(err) });
    }
  }

  /** The steps of one round, stopped by the cancel signal (before the patch). */
  async function runRound(tasks: Task[]): Promise<void> {
    running = new CancellationScope();
    try {
      await running.run(() => Promise.all(tasks.map(runTask)));
    } catch (err) {
      // A cancellation without the signal is Temporal's: the workflow's handler below.
      if (!isCancellation(err) || !state.cancelRequested) throw err;
    }
    running = undefined;
  }

  /**
   * The steps of one round, shielded from Temporal's cancel: on a cancel (the
   * signal or Temporal's) the row is CANCELLED first, so an attempt that has not
   * sent yet finds it so and sends nothing, then the attempts are told (through
   * their heartbeats) and the round waits until they have stopped or finished.
   */
  async function runRoundHolding(tasks: Task[]): Promise<void> {
    let done = false;
    let steps: CancellationScope | undefined;
    const round = CancellationScope.nonCancellable(() => {
      steps = new CancellationScope();
      return steps.run(() => Promise.all(tasks.map(runTask)));
    }).then(
      () => {
        done = true;
      },
      (err: unknown) => {
        done = true;
        if (!isCancellation(err)) throw err;
      },
    );
    try {
      await condition(() => done || state.cancelRequested);
    } catch (err) {
      if (!isCancellation(err)) throw err;
      state.cancelRequested = true;
      state.cancelReason ??= CANCELLED_IN_TEMPORAL;
    }
    if (!done) {
      await CancellationScope.nonCancellable(() => writeCancelled());
      steps?.cancel();
    }
    await round;
  }

  try {
    // Subscribers are fixed when the order is processed: one delivery per endpoint.
    let endpointIds: string[] | null;
    if (lean) {
      state.status = 'PROCESSING';
      endpointIds = await records.beginOrderProcessing({ orderId, eventType: ORDER_PLACED });
    } else {
      await setStatus('PROCESSING');
      endpointIds = await records.webhookTargets({ orderId, eventType: ORDER_PLACED });
    }
    if (endpointIds === null) return cancelledBeforeStart();
    state.began = true;
    return await processOrder(endpointIds);
  } catch (err) {
    // Temporal's cancel (Web UI, `temporal workflow cancel`): the row ends CANCELLED too.
    if (!isCancellation(err) || state.cancelled || !CancellationScope.current().consideredCancelled)
      throw err;
    state.cancelReason ??= CANCELLED_IN_TEMPORAL;
    await cancel();
    throw err;
  }

  async function processOrder(endpointIds: string[]): Promise<OrderStatus> {
    let tasks: Task[] = [
      { step: 'email' },
      ...endpointIds.map((endpointId): Task => ({ step: 'webhooks', endpointId })),
      { step: 'events' },
    ];

    for (;;) {
      // A cancel that arrived before this round began would otherwise wait for its steps.
      if (state.cancelRequested) return await cancel();
      await (holds ? runRoundHolding(tasks) : runRound(tasks));
      if (state.cancelRequested) return await cancel();
      for (const t of tasks) if (!state.failures.has(taskKey(t))) markCompleted(t.step);
      if (state.failures.size === 0) break;

      // Park: the order waits, durably, for an operator's retry or cancel.
      state.parkedCount++;
      await setStatus('PARKED');
      log.warn('order parked', { orderId, failedSteps: failedSteps() });
      await condition(() => state.retryRequested || state.cancelRequested);
      if (state.cancelRequested) return await cancel();
      state.retryRequested = false;
      tasks = [...state.failures.values()].map((f) => f.task);
      await setStatus('PROCESSING');
    }

    await setStatus('COMPLETED');
    return 'COMPLETED';
  }

  function markCompleted(step: StepName): void {
    if (![...state.failures.values()].some((f) => f.task.step === step)) state.completed.add(step);
  }

  /** Writes CANCELLED before the running attempts are stopped: those that have not sent find it so. */
  async function writeCancelled(): Promise<void> {
    state.status = 'CANCELLED';
    upsertSearchAttributes([{ key: orderStatusKey, value: searchValue.CANCELLED }]);
    await records.recordOrderStatus({
      orderId,
      status: 'CANCELLED',
      failedStep: null,
      lastError: cancelSummary(),
    });
  }

  /** Ends the order CANCELLED; rethrows Temporal's cancel afterwards (the execution then shows Canceled). */
  async function cancel(): Promise<OrderStatus> {
    state.cancelled = true;
    // Bookkeeping must still run although the operator cancelled.
    await CancellationScope.nonCancellable(async () => {
      await setStatus('CANCELLED');
      if (holds && state.began) {
        log.info('order cancelled', { orderId, sentBeforeCancel: [...state.sent].sort() });
        await announceCancellation();
      }
    });
    if (CancellationScope.current().consideredCancelled)
      throw new CancelledFailure(state.cancelReason ?? CANCELLED_IN_TEMPORAL);
    return 'CANCELLED';
  }

  /** The row was cancelled while the order waited in the outbox: nothing was sent, nothing to undo. */
  function cancelledBeforeStart(): OrderStatus {
    state.status = 'CANCELLED';
    state.cancelled = true;
    upsertSearchAttributes([{ key: orderStatusKey, value: searchValue.CANCELLED }]);
    log.info('order cancelled before processing began', { orderId });
    return 'CANCELLED';
  }

  /**
   * `order.cancelled` to Kafka and to the webhook subscribers of that type, so
   * they (and the inventory projection) can undo; a failure is logged, the
   * order stays CANCELLED.
   */
  async function announceCancellation(): Promise<void> {
    const reason = state.cancelReason ?? 'cancelled';
    const results = await Promise.allSettled([
      events.publishOrderCancelled({ orderId, reason }),
      records
        .webhookTargets({ orderId, eventType: ORDER_CANCELLED })
        .then((ids) =>
          Promise.all(
            ids.map((endpointId) =>
              webhooks.deliverWebhook({ orderId, endpointId, eventType: ORDER_CANCELLED }),
            ),
          ),
        ),
    ]);
    for (const r of results)
      if (r.status === 'rejected')
        log.warn('order.cancelled not announced everywhere', {
          orderId,
          error: describeFailure(r.reason),
        });
  }
}

const CANCELLED_IN_TEMPORAL = 'cancelled in Temporal';

function failureTypeOf(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

/**
 * Whether the lean path upserts `OrderStatus` for `status`: always when parked
 * or cancelled (operators query OrderStatus="Parked"; a cancelled order closes
 * as Completed), otherwise only once the attribute is set (after a park), so
 * it never goes stale. An order that runs straight through carries none:
 * `ExecutionStatus` (Running, Completed) already says it, and each upsert is
 * a history event and a visibility write.
 */
function searchAttributeNeeded(status: OrderStatus): boolean {
  if (status === 'PARKED' || status === 'CANCELLED') return true;
  return workflowInfo().typedSearchAttributes.get(orderStatusKey) !== undefined;
}

function isEndpointGone(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return (
    cause instanceof ApplicationFailure &&
    (cause.type === FailureType.EndpointDisabled || cause.type === FailureType.EndpointGone)
  );
}

/** The root cause of an activity failure, in one line. */
function describeFailure(err: unknown): string {
  let e: unknown = err;
  if (e instanceof ActivityFailure && e.cause) e = e.cause;
  if (e instanceof ApplicationFailure) return `${e.type ?? 'Error'}: ${e.message}`;
  if (e instanceof Error)
    return e.cause instanceof Error ? `${e.message}: ${e.cause.message}` : e.message;
  return String(e);
}
