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
import type { DeliverWebhookResult, WebhookActivities } from '../activities/webhooks.ts';
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
  type RetryPolicies,
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

/**
 * Patch id of a cancel that waits for every running attempt (implies
 * cancellation-holds): the round ends once all of its tasks have, not at the
 * first attempt that confirms its cancel, so an attempt that could not be
 * called back (already talking to the receiver, or not heartbeating) is
 * counted as sent before the order records and announces the cancel.
 */
export const CANCELLATION_WAITS_PATCH = 'cancellation-waits-for-all';

/** The activities that announce `order.cancelled`: the Kafka event, the subscribers and their deliveries. */
export interface CancellationAnnouncers {
  events: Pick<EventActivities, 'publishOrderCancelled'>;
  webhooks: Pick<WebhookActivities, 'deliverWebhook'>;
  records: Pick<WebhookActivities, 'webhookTargets'>;
}

/**
 * Publishes `order.cancelled` and, at the same time, delivers it to each
 * webhook subscriber of that type; `gather` combines the deliveries (the order
 * workflow wants all of them, the announcement workflow counts each). Settles
 * once both sides have.
 */
export function sendOrderCancelled<T>(
  { events, webhooks, records }: CancellationAnnouncers,
  orderId: string,
  reason: string,
  gather: (deliveries: Promise<DeliverWebhookResult>[]) => Promise<T>,
) {
  return Promise.allSettled([
    events.publishOrderCancelled({ orderId, reason }),
    records
      .webhookTargets({ orderId, eventType: ORDER_CANCELLED })
      .then((ids) =>
        gather(
          ids.map((endpointId) =>
            webhooks.deliverWebhook({ orderId, endpointId, eventType: ORDER_CANCELLED }),
          ),
        ),
      ),
  ]);
}

/** One unit of work that can fail and be retried on its own: a step, or one webhook delivery. */
type Task = { step: 'email' } | { step: 'events' } | { step: 'webhooks'; endpointId: string };

const taskKey = (t: Task): string => (t.step === 'webhooks' ? `webhooks:${t.endpointId}` : t.step);

/** The reason the row records for Temporal's cancel (Web UI, `temporal workflow cancel`). */
const CANCELLED_IN_TEMPORAL = 'cancelled in Temporal';

/** One order as its workflow runs it: the patches it runs under, its activities, and how far it got. */
interface OrderRun {
  readonly orderId: string;
  /** Patch cancellation-holds (implies `lean`). */
  readonly holds: boolean;
  /** Patch cancellation-waits-for-all (implies `holds`). */
  readonly waitsForAll: boolean;
  /** Patch lean-bookkeeping. */
  readonly lean: boolean;
  readonly records: typeof localRecords | typeof queuedRecords;
  readonly steps: StepActivities;
  status: OrderStatus;
  failures: Map<string, { task: Task; error: string }>;
  completed: Set<StepName>;
  parkedCount: number;
  retryRequested: boolean;
  cancelRequested: boolean;
  cancelReason: string | undefined;
  /** Tasks whose activity completed (sent, or found sent before). */
  sent: Set<string>;
  /** Processing began (the first bookkeeping ran): something may have been sent. */
  began: boolean;
  /** The CANCELLED bookkeeping ran (once, also when Temporal cancelled the workflow). */
  cancelled: boolean;
  /** The round the cancel signal stops (before cancellation-holds). */
  running: CancellationScope | undefined;
}

/** Processes one order: email, webhooks and the Kafka event; parks on failure until retried or cancelled. */
export async function orderWorkflow(input: OrderWorkflowInput): Promise<OrderStatus> {
  const order = prepareOrder(input);
  registerHandlers(order);
  try {
    const endpointIds = await beginProcessing(order);
    if (endpointIds === null) return cancelledBeforeStart(order);
    order.began = true;
    return await processSteps(order, endpointIds);
  } catch (err) {
    return await endCancelledInTemporal(order, err);
  }
}

/**
 * The order's patches, its step activities and its progress before it began.
 * Each patch costs a marker per order: new orders record only the newest one.
 */
function prepareOrder(input: OrderWorkflowInput): OrderRun {
  const waitsForAll = patched(CANCELLATION_WAITS_PATCH);
  const holds = waitsForAll || patched(CANCELLATION_PATCH);
  const lean = holds || patched(LEAN_BOOKKEEPING_PATCH);
  const local = lean || patched(LOCAL_BOOKKEEPING_PATCH);
  return {
    orderId: input.orderId,
    holds,
    waitsForAll,
    lean,
    records: local ? localRecords : queuedRecords,
    steps: stepActivities(input.retryPolicies ?? defaultRetryPolicies, holds),
    status: 'RECEIVED',
    failures: new Map(),
    completed: new Set(),
    parkedCount: 0,
    retryRequested: false,
    cancelRequested: false,
    cancelReason: undefined,
    sent: new Set(),
    began: false,
    cancelled: false,
    running: undefined,
  };
}

/** The steps' activities; holding (cancellation-holds) makes a cancel wait for the attempt. */
function stepActivities(policies: RetryPolicies, holds: boolean) {
  const holding = (heartbeats: boolean) => (holds ? { heartbeats } : undefined);
  return {
    email: proxyActivities<EmailActivities>(
      stepOptions(TaskQueue.email, policies.email, holding(true)),
    ),
    webhooks: proxyActivities<WebhookActivities>(
      stepOptions(TaskQueue.webhooks, policies.webhooks, holding(true)),
    ),
    events: proxyActivities<EventActivities>(
      stepOptions(TaskQueue.events, policies.events, holding(false)),
    ),
  };
}

type StepActivities = ReturnType<typeof stepActivities>;

/** What operators reach the order with: the progress query, retry (signal and update), cancel. */
function registerHandlers(order: OrderRun): void {
  setHandler(progressQuery, () => progressOf(order));
  setHandler(retrySignal, () => {
    if (order.status === 'PARKED') order.retryRequested = true;
    else
      log.info('retry signal ignored: order is not parked', {
        orderId: order.orderId,
        status: order.status,
      });
  });
  setHandler(
    retryUpdate,
    () => {
      order.retryRequested = true;
      return { retrying: failedSteps(order) };
    },
    {
      validator: () => {
        if (order.status !== 'PARKED') throw new Error(NOT_PARKED);
      },
    },
  );
  setHandler(cancelSignal, (reason?: string) => {
    order.cancelRequested = true;
    order.cancelReason = reason;
    // Holding: the round writes CANCELLED first, then stops the attempts (runRoundHolding).
    if (!order.holds) order.running?.cancel();
  });
}

/**
 * Writes PROCESSING and reads the subscribers of order.placed, fixed from now
 * on (one delivery per endpoint); null when the row was CANCELLED already.
 */
async function beginProcessing(order: OrderRun): Promise<string[] | null> {
  const { orderId, records } = order;
  if (!order.lean) {
    await setStatus(order, 'PROCESSING');
    return await records.webhookTargets({ orderId, eventType: ORDER_PLACED });
  }
  order.status = 'PROCESSING';
  return await records.beginOrderProcessing({ orderId, eventType: ORDER_PLACED });
}

/** The row was cancelled while the order waited in the outbox: nothing was sent, nothing to undo. */
function cancelledBeforeStart(order: OrderRun): OrderStatus {
  order.status = 'CANCELLED';
  order.cancelled = true;
  upsertOrderStatus('CANCELLED');
  log.info('order cancelled before processing began', { orderId: order.orderId });
  return 'CANCELLED';
}

/**
 * Runs the steps in rounds until none has failed: after a round with failures
 * the order parks, and the operator's retry runs the failed tasks again. A
 * cancel is looked for before each round too: one that arrived meanwhile
 * would otherwise wait for the round's steps.
 */
async function processSteps(order: OrderRun, endpointIds: string[]): Promise<OrderStatus> {
  let tasks: Task[] = [
    { step: 'email' },
    ...endpointIds.map((endpointId): Task => ({ step: 'webhooks', endpointId })),
    { step: 'events' },
  ];
  while (!order.cancelRequested) {
    await runRound(order, tasks);
    if (order.cancelRequested) break;
    recordCompletedSteps(order, tasks);
    if (order.failures.size === 0) return await complete(order);
    await parkUntilRetryOrCancel(order);
    if (order.cancelRequested) break;
    tasks = await resumeFailedTasks(order);
  }
  return await cancel(order);
}

/** The tasks of one round, run concurrently; the patch decides how a cancel stops them. */
function runRound(order: OrderRun, tasks: Task[]): Promise<void> {
  return order.holds ? runRoundHolding(order, tasks) : runRoundStoppable(order, tasks);
}

/** The steps of one round, stopped by the cancel signal (before the patch). */
async function runRoundStoppable(order: OrderRun, tasks: Task[]): Promise<void> {
  const round = new CancellationScope();
  order.running = round;
  try {
    await round.run(() => runTasks(order, tasks));
  } catch (err) {
    // A cancellation without the signal is Temporal's: endCancelledInTemporal handles it.
    if (!isCancellation(err) || !order.cancelRequested) throw err;
  }
  order.running = undefined;
}

/**
 * The steps of one round, shielded from Temporal's cancel: on a cancel (the
 * signal or Temporal's) the row is CANCELLED first, so an attempt that has not
 * sent yet finds it so and sends nothing, then the attempts are told (through
 * their heartbeats) and the round waits until they have stopped or finished.
 */
async function runRoundHolding(order: OrderRun, tasks: Task[]): Promise<void> {
  let done = false;
  let steps: CancellationScope | undefined;
  const round = CancellationScope.nonCancellable(() => {
    steps = new CancellationScope();
    return steps.run(() => runTasks(order, tasks));
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
    await condition(() => done || order.cancelRequested);
  } catch (err) {
    if (!isCancellation(err)) throw err;
    order.cancelRequested = true;
    order.cancelReason ??= CANCELLED_IN_TEMPORAL;
  }
  if (!done) {
    // CANCELLED before the attempts are stopped: those that have not sent find it so.
    await CancellationScope.nonCancellable(() => setStatus(order, 'CANCELLED'));
    steps?.cancel();
  }
  await round;
}

/**
 * The round's tasks, together. A cancellation (the only error runTask throws)
 * ends the round once every task has ended (patch cancellation-waits-for-all);
 * before the patch, at the first one.
 */
function runTasks(order: OrderRun, tasks: Task[]): Promise<unknown> {
  if (!order.waitsForAll) return Promise.all(tasks.map((task) => runTask(order, task)));
  return Promise.allSettled(tasks.map((task) => runTask(order, task))).then((results) => {
    const stopped = results.find((r) => r.status === 'rejected');
    if (stopped) throw stopped.reason;
  });
}

/** Runs one task; a failure that outlived its retries is recorded, not thrown. */
async function runTask(order: OrderRun, task: Task): Promise<void> {
  try {
    await sendTask(order, task);
    order.failures.delete(taskKey(task));
    order.sent.add(taskKey(task));
  } catch (err) {
    if (isCancellation(err)) throw err;
    recordFailure(order, task, err);
  }
}

/** The task's activity (not async: the caller awaits the activity itself). */
function sendTask({ orderId, steps }: OrderRun, task: Task): Promise<unknown> {
  if (task.step === 'email') return steps.email.sendConfirmationEmail({ orderId });
  if (task.step === 'events') return steps.events.publishOrderPlaced({ orderId });
  return steps.webhooks.deliverWebhook({
    orderId,
    endpointId: task.endpointId,
    eventType: ORDER_PLACED,
  });
}

/** A task's failure: the order parks on it, unless nothing is left to do. */
function recordFailure(order: OrderRun, task: Task, err: unknown): void {
  if (failureTypeOf(err) === FailureType.OrderCancelled) {
    // The row says CANCELLED (an operator's cancel reached it first): end as cancelled.
    order.cancelRequested = true;
    order.failures.delete(taskKey(task));
  } else if (task.step === 'webhooks' && isEndpointGone(err)) {
    // A subscriber that was deleted, disabled or answered 410 no longer wants it: nothing to park.
    log.info('webhook endpoint gone; delivery skipped', {
      orderId: order.orderId,
      endpointId: task.endpointId,
    });
    order.failures.delete(taskKey(task));
  } else {
    order.failures.set(taskKey(task), { task, error: describeFailure(err) });
  }
}

/** A step of the round is completed once none of its tasks has a failure (webhooks: every delivery). */
function recordCompletedSteps(order: OrderRun, tasks: Task[]): void {
  const failing = failedSteps(order);
  for (const { step } of tasks) if (!failing.includes(step)) order.completed.add(step);
}

/** Park: the order waits, durably, for an operator's retry or cancel. */
async function parkUntilRetryOrCancel(order: OrderRun): Promise<void> {
  order.parkedCount++;
  await setStatus(order, 'PARKED');
  log.warn('order parked', { orderId: order.orderId, failedSteps: failedSteps(order) });
  await condition(() => order.retryRequested || order.cancelRequested);
}

/** The operator's retry: the next round runs the failed tasks only. */
async function resumeFailedTasks(order: OrderRun): Promise<Task[]> {
  order.retryRequested = false;
  const tasks = [...order.failures.values()].map((f) => f.task);
  await setStatus(order, 'PROCESSING');
  return tasks;
}

async function complete(order: OrderRun): Promise<OrderStatus> {
  await setStatus(order, 'COMPLETED');
  return 'COMPLETED';
}

/** Ends the order CANCELLED; rethrows Temporal's cancel afterwards (the execution then shows Canceled). */
async function cancel(order: OrderRun): Promise<OrderStatus> {
  order.cancelled = true;
  // Bookkeeping must still run although the operator cancelled.
  await CancellationScope.nonCancellable(() => recordCancelled(order));
  if (CancellationScope.current().consideredCancelled)
    throw new CancelledFailure(order.cancelReason ?? CANCELLED_IN_TEMPORAL);
  return 'CANCELLED';
}

/** Writes CANCELLED and, once something may have been sent, announces it (cancellation-holds). */
async function recordCancelled(order: OrderRun): Promise<void> {
  await setStatus(order, 'CANCELLED');
  if (order.holds && order.began) {
    log.info('order cancelled', {
      orderId: order.orderId,
      sentBeforeCancel: [...order.sent].sort(),
    });
    await announceCancellation(order);
  }
}

/**
 * `order.cancelled` to Kafka and to the webhook subscribers of that type, so
 * they (and the inventory projection) can undo; a failure is logged, the
 * order stays CANCELLED.
 */
async function announceCancellation(order: OrderRun): Promise<void> {
  const { orderId, records, steps } = order;
  const reason = order.cancelReason ?? 'cancelled';
  const announcers = { events: steps.events, webhooks: steps.webhooks, records };
  const results = await sendOrderCancelled(announcers, orderId, reason, (d) => Promise.all(d));
  for (const r of results)
    if (r.status === 'rejected')
      log.warn('order.cancelled not announced everywhere', {
        orderId,
        error: describeFailure(r.reason),
      });
}

/** Temporal's cancel (Web UI, `temporal workflow cancel`) ends the row CANCELLED too; anything else is rethrown. */
async function endCancelledInTemporal(order: OrderRun, err: unknown): Promise<never> {
  if (!isCancellation(err) || order.cancelled || !CancellationScope.current().consideredCancelled)
    throw err;
  order.cancelReason ??= CANCELLED_IN_TEMPORAL;
  await cancel(order);
  throw err;
}

/** Records the status: the row (a local activity) and, where it says something, `OrderStatus`. */
async function setStatus(order: OrderRun, status: OrderStatus): Promise<void> {
  order.status = status;
  if (!order.lean || searchAttributeNeeded(status)) upsertOrderStatus(status);
  await order.records.recordOrderStatus({
    orderId: order.orderId,
    status,
    failedStep: status === 'PARKED' ? failedSteps(order).join(',') : null,
    lastError: lastErrorOf(order, status),
  });
}

function upsertOrderStatus(status: OrderStatus): void {
  upsertSearchAttributes([{ key: orderStatusKey, value: searchValue[status] }]);
}

/** The row's last_error: the first failure of a parked order, the reason of a cancelled one. */
function lastErrorOf(order: OrderRun, status: OrderStatus): string | null {
  if (status === 'CANCELLED') return cancelSummary(order);
  if (status !== 'PARKED') return null;
  const first = firstFailure(order);
  return first ? `${taskKey(first.task)}: ${first.error}` : null;
}

/** The reason of a cancel, as the row records it (what was sent: the progress query's `sent`). */
function cancelSummary(order: OrderRun): string | null {
  return order.cancelReason ?? (order.holds ? 'cancelled' : null);
}

const firstFailure = (order: OrderRun) => [...order.failures.values()][0];

const failedSteps = (order: OrderRun): StepName[] => [
  ...new Set([...order.failures.values()].map((f) => f.task.step)),
];

function progressOf(order: OrderRun): OrderProgress {
  return {
    status: order.status,
    failedSteps: failedSteps(order),
    lastError: firstFailure(order)?.error ?? null,
    completedSteps: [...order.completed],
    parkedCount: order.parkedCount,
    sent: [...order.sent].sort(),
  };
}

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
