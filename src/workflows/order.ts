import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
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

/** Activity options of a step: its task queue and its retry budget. */
function stepOptions(taskQueue: string, p: StepRetryPolicy): ActivityOptions {
  return {
    taskQueue,
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
const localRecords = proxyLocalActivities<Bookkeeping>({
  startToCloseTimeout: '10 seconds',
  retry: bookkeepingRetry,
});

/** The same bookkeeping as ordinary activities on the `orders` queue: orders started before the patch. */
const queuedRecords = proxyActivities<Bookkeeping>({
  taskQueue: TaskQueue.orders,
  startToCloseTimeout: '10 seconds',
  retry: bookkeepingRetry,
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

/** One unit of work that can fail and be retried on its own: a step, or one webhook delivery. */
type Task = { step: 'email' } | { step: 'events' } | { step: 'webhooks'; endpointId: string };

const taskKey = (t: Task): string => (t.step === 'webhooks' ? `webhooks:${t.endpointId}` : t.step);

/** Processes one order: email, webhooks and the Kafka event; parks on failure until retried or cancelled. */
export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderStatus> {
  const { orderId } = input;
  const policies = input.retryPolicies ?? defaultRetryPolicies;
  const email = proxyActivities<EmailActivities>(stepOptions(TaskQueue.email, policies.email));
  const webhooks = proxyActivities<WebhookActivities>(
    stepOptions(TaskQueue.webhooks, policies.webhooks),
  );
  const events = proxyActivities<EventActivities>(stepOptions(TaskQueue.events, policies.events));

  const lean = patched(LEAN_BOOKKEEPING_PATCH);
  const records = lean || patched(LOCAL_BOOKKEEPING_PATCH) ? localRecords : queuedRecords;

  const state = {
    status: 'RECEIVED' as OrderStatus,
    failures: new Map<string, { task: Task; error: string }>(),
    completed: new Set<StepName>(),
    parkedCount: 0,
    retryRequested: false,
    cancelRequested: false,
    cancelReason: undefined as string | undefined,
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
    running?.cancel();
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
            ? (state.cancelReason ?? null)
            : null,
    });
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
    } catch (err) {
      if (isCancellation(err)) throw err;
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

  // Subscribers are fixed when the order is processed: one delivery per endpoint.
  let endpointIds: string[];
  if (lean) {
    state.status = 'PROCESSING';
    endpointIds = await records.beginOrderProcessing({ orderId, eventType: ORDER_PLACED });
  } else {
    await setStatus('PROCESSING');
    endpointIds = await records.webhookTargets({ orderId, eventType: ORDER_PLACED });
  }
  let tasks: Task[] = [
    { step: 'email' },
    ...endpointIds.map((endpointId): Task => ({ step: 'webhooks', endpointId })),
    { step: 'events' },
  ];

  for (;;) {
    // A cancel that arrived before this round began would otherwise wait for its steps.
    if (state.cancelRequested) return await cancel();
    running = new CancellationScope();
    try {
      await running.run(() => Promise.all(tasks.map(runTask)));
    } catch (err) {
      if (!isCancellation(err)) throw err;
    }
    running = undefined;
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

  function markCompleted(step: StepName): void {
    if (![...state.failures.values()].some((f) => f.task.step === step)) state.completed.add(step);
  }

  async function cancel(): Promise<OrderStatus> {
    // Bookkeeping must still run although the operator cancelled.
    await CancellationScope.nonCancellable(() => setStatus('CANCELLED'));
    return 'CANCELLED';
  }
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
