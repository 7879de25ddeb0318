/**
 * Typed fake activities for the order workflows, and a helper that runs a
 * worker per task queue (orders with the workflow bundle, one per activity
 * queue) on a test environment: time-skipping or a local dev server alike.
 * Shared by the workflow and replay tests and scripts/record-histories.ts.
 */
import { Context } from '@temporalio/activity';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import path from 'node:path';
import type {
  OrderPage,
  OrderPageInput,
  RecordStatusInput,
} from '../../src/activities/order-records.ts';
import type { OrderCursor } from '../../src/shared/messages.ts';
import { defaultRetryPolicies, type RetryPolicies } from '../../src/shared/steps.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE, TaskQueue } from '../../src/shared/task-queues.ts';
import { projectRoot } from './tools.ts';

/** The OrderStatus search attribute, as the workflow and the starter define it. */
export const orderStatusKey = defineSearchAttributeKey(
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  SearchAttributeType.KEYWORD,
);

/** A logger that drops everything (bundler chatter). */
export const silentLogger = {
  log() {},
  info() {},
  warn() {},
  error() {},
  debug() {},
  trace() {},
};

/** Fast budgets for tests (three attempts per step); each case overrides what it measures. */
export const testPolicies = (overrides: Partial<RetryPolicies> = {}): RetryPolicies => ({
  email: { ...defaultRetryPolicies.email, maximumAttempts: 3 },
  webhooks: { ...defaultRetryPolicies.webhooks, maximumAttempts: 3 },
  events: { ...defaultRetryPolicies.events, maximumAttempts: 3 },
  ...overrides,
});

/** What a fake step does on each call: resolve to succeed, throw to fail. */
export type Behaviour = () => Promise<void>;

export interface FakeOptions {
  /** Webhook endpoints the order is delivered to (default one, `ep-1`). */
  endpoints?: string[];
  email?: Behaviour;
  webhook?: Behaviour;
  events?: Behaviour;
  /** Endpoints subscribed to order.cancelled (default none). */
  cancelledEndpoints?: string[];
  /** The row was CANCELLED before the workflow began: beginOrderProcessing finds nothing to do. */
  cancelledBeforeStart?: boolean;
  /** Order ids `listOrderIdsPage` serves, oldest first (for the resend workflow). */
  orderIds?: string[];
}

export interface WebhookCall {
  endpointId: string;
  /** The environment's clock when the attempt ran (virtual time on the time-skipping server). */
  scheduledMs: number;
  /** The wall clock when the attempt ran. */
  realMs: number;
  attempt: number;
}

/** Fake activities that record their calls, with the environment's clock at each attempt. */
export function fakeActivities(env: TestWorkflowEnvironment, opts: FakeOptions = {}) {
  const calls = {
    statuses: [] as RecordStatusInput[],
    email: [] as number[],
    webhook: [] as WebhookCall[],
    events: [] as number[],
    /** Order ids published, in call order. */
    published: [] as string[],
    /** Order ids whose order.cancelled was published. */
    cancelled: [] as string[],
    pages: [] as OrderPageInput[],
  };
  // The test server's virtual clock when the attempt runs (its scheduled-time field lags one retry).
  const scheduled = () => env.currentTimeMs();
  const orderIds = opts.orderIds ?? [];
  const orders = {
    async recordOrderStatus(input: RecordStatusInput) {
      calls.statuses.push(input);
    },
    async webhookTargets({ eventType }: { eventType?: string } = {}) {
      if (eventType === 'order.cancelled') return opts.cancelledEndpoints ?? [];
      return opts.endpoints ?? ['ep-1'];
    },
    async beginOrderProcessing({ orderId }: { orderId: string }) {
      if (opts.cancelledBeforeStart) return null;
      calls.statuses.push({ orderId, status: 'PROCESSING' });
      return opts.endpoints ?? ['ep-1'];
    },
    async listOrderIdsPage(input: OrderPageInput): Promise<OrderPage> {
      calls.pages.push(input);
      // The fake's cursor is the position in `orderIds`; createdAt is fixed.
      const from = input.after ? orderIds.indexOf(input.after.id) + 1 : 0;
      const ids = orderIds.slice(from, from + input.limit);
      const last = ids.at(-1);
      const next: OrderCursor | null =
        ids.length === input.limit && last ? { createdAt: input.since, id: last } : null;
      return { ids, next };
    },
  };
  const email = {
    async sendConfirmationEmail() {
      calls.email.push(await scheduled());
      await opts.email?.();
      return { messageId: '<m@x>', alreadySent: false };
    },
  };
  const webhooks = {
    async deliverWebhook({ endpointId }: { endpointId: string }) {
      calls.webhook.push({
        endpointId,
        scheduledMs: await scheduled(),
        realMs: Date.now(),
        attempt: Context.current().info.attempt,
      });
      await opts.webhook?.();
      return { webhookId: 'msg_x', status: 200, alreadyDelivered: false };
    },
  };
  const events = {
    async publishOrderPlaced({ orderId }: { orderId: string }) {
      calls.events.push(await scheduled());
      calls.published.push(orderId);
      await opts.events?.();
      return { eventId: `evt_${orderId}`, partition: 0, offset: '0' };
    },
    async publishOrderCancelled({ orderId }: { orderId: string }) {
      calls.cancelled.push(orderId);
      return { eventId: `evt_c_${orderId}`, partition: 0, offset: '1' };
    },
  };
  return { calls, activities: { orders, email, webhooks, events } };
}

export type Fakes = ReturnType<typeof fakeActivities>;

/** What the fakes were asked to do: the attempts of each step, and the statuses written, in order. */
export const callSummary = ({ calls }: Fakes) => ({
  email: calls.email.length,
  webhook: calls.webhook.length,
  events: calls.events.length,
  statuses: calls.statuses.map((s) => s.status),
});

/**
 * Runs one worker per task queue (orders with the workflows; email, webhooks,
 * events and events-bulk with the fakes) while `fn` runs, then stops them.
 */
export async function withWorkers<T>(
  env: TestWorkflowEnvironment,
  bundle: WorkflowBundleWithSourceMap,
  f: Fakes,
  fn: () => Promise<T>,
): Promise<T> {
  const make = (taskQueue: string, activities: object, withWorkflows = false) =>
    Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      activities,
      ...(withWorkflows ? { workflowBundle: bundle } : {}),
    });
  const workers = await Promise.all([
    make(TaskQueue.orders, f.activities.orders, true),
    make(TaskQueue.email, f.activities.email),
    make(TaskQueue.webhooks, f.activities.webhooks),
    make(TaskQueue.events, f.activities.events),
    make(TaskQueue.eventsBulk, f.activities.events),
  ]);
  const [first, ...rest] = workers;
  // runUntil on one worker; the others run alongside and stop with it.
  const others = rest.map((w) => w.run());
  try {
    return await first.runUntil(fn);
  } finally {
    for (const w of rest) w.shutdown();
    await Promise.all(others);
  }
}

/** The order workflows (src/workflows) bundled for a worker, quietly. */
export const bundleOrderWorkflows = (): Promise<WorkflowBundleWithSourceMap> =>
  bundleWorkflowCode({
    workflowsPath: path.join(projectRoot, 'src/workflows/index.ts'),
    logger: silentLogger,
  });

/** fakeActivities and withWorkers bound to one environment and one bundle of the workflows. */
export interface WorkflowHarness {
  fakes: (opts?: FakeOptions) => Fakes;
  withWorkers: <T>(f: Fakes, fn: () => Promise<T>) => Promise<T>;
}

/** A test file's harness on `env`: the workflows bundled once, then fakes and workers at will. */
export async function workflowHarness(env: TestWorkflowEnvironment): Promise<WorkflowHarness> {
  const bundle = await bundleOrderWorkflows();
  return {
    fakes: (opts = {}) => fakeActivities(env, opts),
    withWorkers: (f, fn) => withWorkers(env, bundle, f, fn),
  };
}

/**
 * Registers OrderStatus, which the workflow keeps current, on a time-skipping
 * test server (a dev server takes it at start, as the stack's does).
 */
export async function registerOrderStatus(env: TestWorkflowEnvironment): Promise<void> {
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: {
      [ORDER_STATUS_SEARCH_ATTRIBUTE]:
        proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    },
  });
}
