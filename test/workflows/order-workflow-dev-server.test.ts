/**
 * orderWorkflow on a real Temporal dev server of its own (not the stack's),
 * with typed fake activities on the real task queues: what the time-skipping
 * test server does not reproduce faithfully — the server honouring an
 * activity's nextRetryDelay in real time, update validators, and the
 * OrderStatus search attribute in visibility.
 */
import { Context } from '@temporalio/activity';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  NOT_PARKED,
  cancelSignal,
  progressQuery,
  retrySignal,
  retryUpdate,
  type OrderProgress,
} from '../../src/shared/messages.ts';
import type { OrderStatus } from '../../src/shared/orders.ts';
import { FailureType, defaultRetryPolicies, type RetryPolicies } from '../../src/shared/steps.ts';
import { TaskQueue, orderWorkflowId } from '../../src/shared/task-queues.ts';
import type { orderWorkflow } from '../../src/workflows/order.ts';
import {
  callSummary,
  orderStatusKey,
  testPolicies,
  workflowHarness,
  type WorkflowHarness,
} from '../../scripts/lib/workflow-fakes.ts';

let env: TestWorkflowEnvironment;
let fakes: WorkflowHarness['fakes'];
/** Runs a worker per task queue with the fakes while `fn` runs. */
let withWorkers: WorkflowHarness['withWorkers'];

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: inject('tools').temporalCli },
      ip: '127.0.0.1',
      ui: false,
      // Registered at start (`--search-attribute OrderStatus=Keyword`), as the stack does.
      searchAttributes: [orderStatusKey],
    },
  });
  ({ fakes, withWorkers } = await workflowHarness(env));
});
afterAll(async () => {
  await env?.teardown();
});

const start = (orderId: string, retryPolicies: RetryPolicies = testPolicies()) =>
  env.client.workflow.start<typeof orderWorkflow>('orderWorkflow', {
    workflowId: orderWorkflowId(orderId),
    taskQueue: TaskQueue.orders,
    args: [{ orderId, retryPolicies }],
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls (bounded, real time) until `done` holds. */
async function eventually<T>(
  what: string,
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (done(last)) return last;
    await sleep(100);
  }
  throw new Error(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
}

const progressOf = (orderId: string): Promise<OrderProgress> =>
  env.client.workflow.getHandle(orderWorkflowId(orderId)).query(progressQuery);

const waitForStatus = (orderId: string, status: OrderStatus) =>
  eventually(
    `order ${orderId} reaching ${status}`,
    () => progressOf(orderId),
    (p) => p.status === status,
  );

/** Workflow IDs that Temporal visibility lists for a query. */
async function listed(query: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of env.client.workflow.list({ query })) ids.push(wf.workflowId);
  return ids;
}

/** Waits (bounded) until visibility lists the order under `OrderStatus="<value>"`. */
const waitForListing = (orderId: string, value: string) =>
  eventually(
    `visibility listing order ${orderId} as OrderStatus="${value}"`,
    () => listed(`WorkflowId="${orderWorkflowId(orderId)}" AND OrderStatus="${value}"`),
    (ids) => ids.length === 1,
  );

/** A promise the test resolves when it chooses: holds an activity attempt in flight. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

const rejected = () =>
  ApplicationFailure.create({
    type: FailureType.WebhookRejected,
    message: 'HTTP 400',
    nonRetryable: true,
  });

describe('orderWorkflow on the dev server', () => {
  it("waits the receiver's Retry-After (nextRetryDelay) before the next webhook attempt, then the policy's interval again", async () => {
    let attempts = 0;
    const f = fakes({
      webhook: async () => {
        attempts++;
        if (attempts === 1)
          throw ApplicationFailure.create({
            type: FailureType.WebhookUnavailable,
            message: 'HTTP 429',
            nextRetryDelay: '2 seconds',
          });
        if (attempts === 2)
          throw ApplicationFailure.create({
            type: FailureType.WebhookUnavailable,
            message: 'HTTP 503',
          });
      },
    });
    const webhooks = {
      ...defaultRetryPolicies.webhooks,
      initialIntervalMs: 100,
      backoffCoefficient: 2,
      // Above the Retry-After: some server versions cap nextRetryDelay at the maximum interval.
      maximumIntervalMs: 10_000,
      maximumAttempts: 5,
      totalTimeoutMs: 60_000,
      attemptTimeoutMs: 10_000,
    };
    const orderId = randomUUID();
    const result = await withWorkers(f, async () => {
      const handle = await start(orderId, testPolicies({ webhooks }));
      return handle.result();
    });
    expect(result).toBe('COMPLETED');
    const [first, second, third] = f.calls.webhook;
    expect(f.calls.webhook.map((c) => c.attempt)).toEqual([1, 2, 3]);
    const afterRetryAfter = second!.realMs - first!.realMs;
    const afterBackoff = third!.realMs - second!.realMs;
    // Retry-After: 2 s, although the policy would have retried after 100 ms.
    expect(afterRetryAfter).toBeGreaterThanOrEqual(2000);
    expect(afterRetryAfter).toBeLessThan(2000 + 3000);
    // Without Retry-After the policy's backoff applies again: 200 ms, which the dev server's
    // timer queue rounds up to about a second — still well short of the Retry-After.
    expect(afterBackoff).toBeLessThan(2000);
  });

  it('refuses the retry update with NOT_PARKED while processing, accepts it when parked, and visibility lists the order as Parked, then Completed', async () => {
    const held = gate();
    let receiverUp = false;
    const f = fakes({
      webhook: async () => {
        if (f.calls.webhook.length === 1) {
          await held.opened;
          throw rejected();
        }
        if (!receiverUp) throw rejected();
      },
    });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      const handle = await start(orderId);
      try {
        await waitForStatus(orderId, 'PROCESSING');
        await eventually(
          'the first webhook attempt in flight',
          async () => f.calls.webhook.length,
          (n) => n === 1,
        );
        // Running and never parked: ExecutionStatus says it, OrderStatus is not set (no upsert).
        expect((await handle.describe()).typedSearchAttributes.get(orderStatusKey)).toBeUndefined();

        const refused = await handle.executeUpdate(retryUpdate).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
        expect((refused as WorkflowUpdateFailedError).cause?.message).toBe(NOT_PARKED);
      } finally {
        held.open();
      }

      const parked = await waitForStatus(orderId, 'PARKED');
      expect(parked).toMatchObject({ failedSteps: ['webhooks'], parkedCount: 1 });
      await waitForListing(orderId, 'Parked');
      expect(
        await listed(`WorkflowId="${orderWorkflowId(orderId)}" AND OrderStatus="Processing"`),
      ).toEqual([]);

      receiverUp = true;
      expect(await handle.executeUpdate(retryUpdate)).toEqual({ retrying: ['webhooks'] });
      expect(await handle.result()).toBe('COMPLETED');
      await waitForListing(orderId, 'Completed');
    });
    expect(callSummary(f)).toMatchObject({ webhook: 2, email: 1, events: 1 });
  });

  it('resumes a parked order on the retry signal (as the Web UI sends it), and ignores one sent while still processing', async () => {
    const held = gate();
    let receiverUp = false;
    const f = fakes({
      webhook: async () => {
        if (f.calls.webhook.length === 1) await held.opened;
        if (!receiverUp) throw rejected();
      },
    });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      const handle = await start(orderId);
      try {
        await eventually(
          'the first webhook attempt in flight',
          async () => f.calls.webhook.length,
          (n) => n === 1,
        );
        // Not parked yet: this signal must not make the coming park resume at once.
        await handle.signal(retrySignal);
        expect((await progressOf(orderId)).status).toBe('PROCESSING');
      } finally {
        held.open();
      }

      await waitForStatus(orderId, 'PARKED');
      await sleep(1000);
      expect(await progressOf(orderId)).toMatchObject({ status: 'PARKED', parkedCount: 1 });
      expect(f.calls.webhook).toHaveLength(1);

      receiverUp = true;
      await handle.signal(retrySignal);
      expect(await handle.result()).toBe('COMPLETED');
    });
    expect(callSummary(f)).toEqual({
      webhook: 2,
      email: 1,
      events: 1,
      statuses: ['PROCESSING', 'PARKED', 'PROCESSING', 'COMPLETED'],
    });
  });
  it('on a cancel, waits for every running attempt before it records the cancel and announces it', async () => {
    // The webhook attempt is talking to its receiver: it cannot be called back, and ends
    // delivered. It outlasts the email attempt's cancel, which reaches the email attempt at
    // its next heartbeat (the SDK sends them at most every 0.8 x the 10 s heartbeat timeout).
    const webhookMs = 15_000;
    let webhookDoneAt: number | undefined;
    const f = fakes({
      // The email attempt heartbeats and stops as soon as a cancel reaches it.
      email: async () => {
        const ctx = Context.current();
        for (let i = 0; i < 600; i++) {
          ctx.heartbeat();
          await ctx.sleep(100);
        }
      },
      // Its heartbeats go on (as the real one's do), and the cancel they bring back is too late.
      webhook: async () => {
        const ctx = Context.current();
        for (const until = Date.now() + webhookMs; Date.now() < until;) {
          ctx.heartbeat();
          await sleep(100);
        }
        webhookDoneAt = Date.now();
      },
    });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      const handle = await start(orderId);
      await eventually(
        'the email and webhook attempts running',
        async () => [f.calls.email.length, f.calls.webhook.length],
        ([email, webhook]) => email === 1 && webhook === 1,
      );
      await handle.signal(cancelSignal, 'customer called');
      expect(await handle.result()).toBe('CANCELLED');
      const endedAt = Date.now();
      // The order ended only once the webhook attempt had ended, and says it was sent.
      expect(webhookDoneAt).toBeDefined();
      expect(webhookDoneAt!).toBeLessThanOrEqual(endedAt);
      expect((await progressOf(orderId)).sent).toEqual(['events', 'webhooks:ep-1']);
      expect(f.calls.cancelled).toEqual([orderId]);
    });
  }, 60_000);
});
