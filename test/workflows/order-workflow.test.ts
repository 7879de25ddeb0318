/**
 * orderWorkflow on Temporal's time-skipping test server, with typed fake
 * activities on the real task queues: retry timing over virtual hours,
 * parking, retry of only the failed steps, cancel, and start deduplication.
 */
import { ApplicationFailure } from '@temporalio/common';
import proto from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startOrderWorkflow } from '../../src/api/workflow-starter.ts';
import {
  progressQuery,
  retrySignal,
  retryUpdate,
  cancelSignal,
} from '../../src/shared/messages.ts';
import { FailureType, defaultRetryPolicies, type RetryPolicies } from '../../src/shared/steps.ts';
import { TaskQueue, orderWorkflowId } from '../../src/shared/task-queues.ts';
import {
  callSummary,
  registerOrderStatus,
  testPolicies,
  workflowHarness,
  type WorkflowHarness,
} from '../../scripts/lib/workflow-fakes.ts';

const { temporal } = proto;
let env: TestWorkflowEnvironment;
let fakes: WorkflowHarness['fakes'];
/** Runs a worker per task queue with the fakes while `fn` runs. */
let withWorkers: WorkflowHarness['withWorkers'];

beforeAll(async () => {
  env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: inject('tools').testServer! } },
  });
  await registerOrderStatus(env);
  ({ fakes, withWorkers } = await workflowHarness(env));
});
afterAll(async () => {
  await env?.teardown();
});

const policies = testPolicies;

const start = (orderId: string, retryPolicies: RetryPolicies) =>
  env.client.workflow.start('orderWorkflow', {
    workflowId: orderWorkflowId(orderId),
    taskQueue: TaskQueue.orders,
    args: [{ orderId, retryPolicies }],
  });

async function waitForStatus(orderId: string, status: string) {
  const handle = env.client.workflow.getHandle(orderWorkflowId(orderId));
  for (let i = 0; i < 200; i++) {
    const p = await handle.query(progressQuery);
    if (p.status === status) return p;
    await env.sleep('1 second');
  }
  throw new Error(`never reached ${status}`);
}

/**
 * Waits for the workflow's result while advancing virtual time in small steps.
 * (`handle.result()` would let the server skip time freely, also past the
 * start-to-close timeout of an activity that is still running in real time.)
 */
async function resultOf(orderId: string, stepSeconds = 1, maxSteps = 3000): Promise<unknown> {
  const handle = env.client.workflow.getHandle(orderWorkflowId(orderId));
  for (let i = 0; i < maxSteps; i++) {
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') return await handle.result();
    await env.sleep(`${stepSeconds} seconds`);
  }
  const d = await handle.describe();
  throw new Error(
    `workflow ${orderId} still running after ${maxSteps} steps: ${JSON.stringify((await handle.fetchHistory()).events?.slice(-6).map((e) => [e.eventType, e.eventTime?.seconds?.toString()]))} ${d.status.name}`,
  );
}

const failAlways =
  (type: string = FailureType.WebhookUnavailable) =>
  async () => {
    throw ApplicationFailure.create({ type, message: 'receiver answered 503' });
  };

describe('orderWorkflow', () => {
  it('sends the email, delivers each webhook and publishes the event, then completes', async () => {
    const f = fakes({ endpoints: ['ep-1', 'ep-2'] });
    const orderId = randomUUID();
    const result = await withWorkers(f, async () => {
      await start(orderId, policies());
      return resultOf(orderId);
    });
    expect(result).toBe('COMPLETED');
    expect(callSummary(f)).toMatchObject({
      email: 1,
      events: 1,
      statuses: ['PROCESSING', 'COMPLETED'],
    });
    expect(f.calls.webhook.map((w) => w.endpointId).sort()).toEqual(['ep-1', 'ep-2']);
    // Bookkeeping runs as local activities (markers); only the four effects are queued tasks.
    const { events } = await env.client.workflow.getHandle(orderWorkflowId(orderId)).fetchHistory();
    const types = (events ?? []).map((e) => e.eventType);
    const scheduled = (events ?? []).flatMap((e) =>
      e.activityTaskScheduledEventAttributes?.activityType?.name
        ? [e.activityTaskScheduledEventAttributes.activityType.name]
        : [],
    );
    expect(scheduled.sort()).toEqual([
      'deliverWebhook',
      'deliverWebhook',
      'publishOrderPlaced',
      'sendConfirmationEmail',
    ]);
    const EventType = temporal.api.enums.v1.EventType;
    // One patch marker, PROCESSING with the subscribers in one local activity, and COMPLETED.
    expect(types.filter((t) => t === EventType.EVENT_TYPE_MARKER_RECORDED)).toHaveLength(3);
    // The only search-attribute upsert is the SDK's TemporalChangeVersion for the patch:
    // a run that never parks leaves OrderStatus to ExecutionStatus.
    const upserted = (events ?? []).flatMap((e) =>
      Object.keys(
        e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields ?? {},
      ),
    );
    expect(upserted).toEqual(['TemporalChangeVersion']);
  });

  it('retries a failing webhook with exponential backoff over virtual hours, then succeeds', async () => {
    let n = 0;
    const f = fakes({
      webhook: async () => {
        if (++n < 6)
          throw ApplicationFailure.create({ type: FailureType.WebhookUnavailable, message: '503' });
      },
    });
    const webhooks = {
      ...defaultRetryPolicies.webhooks,
      initialIntervalMs: 60_000,
      backoffCoefficient: 2,
      maximumIntervalMs: 10 * 60_000,
      maximumAttempts: 0, // no limit: the total time bounds it
      totalTimeoutMs: 3 * 3_600_000,
    };
    const orderId = randomUUID();
    const t0 = Date.now();
    const result = await withWorkers(f, async () => {
      await start(orderId, policies({ webhooks }));
      return resultOf(orderId, 10);
    });
    expect(result).toBe('COMPLETED');
    const gaps = f.calls.webhook
      .slice(1)
      .map((c, i) => c.scheduledMs - f.calls.webhook[i]!.scheduledMs);
    // 1, 2, 4, 8 minutes, then capped at 10.
    const expected = [1, 2, 4, 8, 10].map((m) => m * 60_000);
    gaps.forEach((g, i) => {
      expect(g).toBeGreaterThanOrEqual(expected[i]! - 1000);
      expect(g).toBeLessThan(expected[i]! + 5000);
    });
    expect(f.calls.webhook.map((c) => c.attempt)).toEqual([1, 2, 3, 4, 5, 6]);
    // 25 virtual minutes passed in a few real seconds.
    expect(Date.now() - t0).toBeLessThan(60_000);
  });

  it('parks after the last attempt, re-runs only the failed step on retry, and can park again', async () => {
    let webhookOk = false;
    const f = fakes({
      webhook: async () => {
        if (!webhookOk) await failAlways()();
      },
    });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      const handle = await start(orderId, policies());
      const parked = await waitForStatus(orderId, 'PARKED');
      expect(parked).toMatchObject({ failedSteps: ['webhooks'], parkedCount: 1 });
      expect(parked.completedSteps.sort()).toEqual(['email', 'events']);
      expect(parked.lastError).toContain('WebhookUnavailable');
      expect(f.calls.webhook).toHaveLength(3);
      const parkedRecord = f.calls.statuses.at(-1)!;
      expect(parkedRecord).toMatchObject({ status: 'PARKED', failedStep: 'webhooks' });
      expect(parkedRecord.lastError).toContain('webhooks:ep-1: WebhookUnavailable');

      // A retry while the receiver is still down parks it again.
      await handle.signal(retrySignal);
      await waitForParkedCount(orderId, 2);
      expect(f.calls.webhook).toHaveLength(6);

      webhookOk = true;
      const { retrying } = await handle.executeUpdate(retryUpdate);
      expect(retrying).toEqual(['webhooks']);
      expect(await resultOf(orderId)).toBe('COMPLETED');
    });
    expect(callSummary(f)).toEqual({
      email: 1,
      events: 1,
      webhook: 7,
      statuses: ['PROCESSING', 'PARKED', 'PROCESSING', 'PARKED', 'PROCESSING', 'COMPLETED'],
    });
  });

  it('parks at once on a permanent failure, without spending the retry budget', async () => {
    const f = fakes({
      email: async () => {
        throw ApplicationFailure.create({
          type: FailureType.InvalidAddress,
          message: '550 no such user',
          nonRetryable: true,
        });
      },
    });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      await start(orderId, policies());
      const parked = await waitForStatus(orderId, 'PARKED');
      expect(parked.failedSteps).toEqual(['email']);
      expect(f.calls.email).toHaveLength(1);
      await env.client.workflow
        .getHandle(orderWorkflowId(orderId))
        .signal(cancelSignal, 'test over');
      expect(await resultOf(orderId)).toBe('CANCELLED');
    });
  });

  it('ends as CANCELLED on cancel while a step is still retrying', async () => {
    const f = fakes({ webhook: failAlways() });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      const handle = await start(
        orderId,
        policies({
          webhooks: {
            ...defaultRetryPolicies.webhooks,
            maximumAttempts: 50,
            initialIntervalMs: 3_600_000,
            maximumIntervalMs: 3_600_000,
            totalTimeoutMs: 100 * 3_600_000,
          },
        }),
      );
      await waitForStatus(orderId, 'PROCESSING');
      // The webhook failed once and waits an hour for its next attempt.
      for (let i = 0; i < 100 && f.calls.webhook.length === 0; i++) await env.sleep('1 second');
      expect(f.calls.webhook).toHaveLength(1);
      await handle.signal(cancelSignal, 'customer called');
      expect(await resultOf(orderId)).toBe('CANCELLED');
    });
    expect(f.calls.statuses.at(-1)).toMatchObject({
      status: 'CANCELLED',
      lastError: 'customer called',
    });
  });

  it('returns the existing run for a second start with the same workflow ID', async () => {
    const f = fakes({ webhook: failAlways() });
    const orderId = randomUUID();
    await withWorkers(f, async () => {
      expect(await startOrderWorkflow(env.client, orderId, policies())).toBe('started');
      const first = await env.client.workflow.getHandle(orderWorkflowId(orderId)).describe();
      expect(await startOrderWorkflow(env.client, orderId, policies())).toBe('started');
      const second = await env.client.workflow.getHandle(orderWorkflowId(orderId)).describe();
      expect(second.runId).toBe(first.runId);
      await waitForStatus(orderId, 'PARKED');
      await env.client.workflow.getHandle(orderWorkflowId(orderId)).signal(cancelSignal);
      expect(await resultOf(orderId)).toBe('CANCELLED');
      // Closed: a third start is refused by the reuse policy, and reported as already started.
      expect(await startOrderWorkflow(env.client, orderId, policies())).toBe('already-started');
    });
  });
});

async function waitForParkedCount(orderId: string, count: number) {
  const handle = env.client.workflow.getHandle(orderWorkflowId(orderId));
  for (let i = 0; i < 200; i++) {
    if ((await handle.query(progressQuery)).parkedCount >= count) return;
    await env.sleep('1 second');
  }
  throw new Error(`never parked ${count} times`);
}
