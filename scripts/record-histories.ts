/**
 * Records the event histories that test/replay/replay.test.ts replays: each
 * scenario runs the real workflow code on Temporal's time-skipping test server
 * with fake activities, and its history is written as JSON (the format
 * `temporal workflow show --output json` and the SDKs use) to
 * test/replay/histories/<name>.json.
 *
 *   npm run histories:record              # every scenario
 *   npm run histories:record -- happy-path  # only these
 *
 *   npm run histories:record -- --tag local-bookkeeping  # as <name>.local-bookkeeping.json
 *
 * Record a new history when the workflow gains behaviour; never re-record an
 * old one to make a failing replay pass: that failure is the point. So an
 * existing file is never overwritten (--force does); after a patch, record the
 * scenarios again under a --tag and keep the old files: both paths replay.
 */
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startCancellationAnnouncement, startOrderWorkflow } from '../src/api/workflow-starter.ts';
import {
  cancelSignal,
  progressQuery,
  retrySignal,
  retryUpdate,
  type OrderProgress,
  type ResendEventsInput,
  type ResendProgress,
} from '../src/shared/messages.ts';
import type { OrderStatus } from '../src/shared/orders.ts';
import { FailureType, defaultRetryPolicies } from '../src/shared/steps.ts';
import {
  TaskQueue,
  cancellationAnnouncementWorkflowId,
  orderWorkflowId,
} from '../src/shared/task-queues.ts';
import {
  registerOrderStatus,
  testPolicies,
  workflowHarness,
  type FakeOptions,
  type Fakes,
} from './lib/workflow-fakes.ts';
import { historiesDir, historyToJSON } from './lib/history-json.ts';
import { projectRoot, provisionTestServer } from './lib/tools.ts';

/** One recorded run: what it does, and the history it leaves behind. */
interface Scenario {
  name: string;
  description: string;
  /** The fake activities; `healed()` turns true once the run calls `heal()`. */
  fakes?: (healed: () => boolean) => FakeOptions;
  /** Drives the workflow to its end and returns the workflow ID and run ID to record. */
  run: (ctx: ScenarioContext) => Promise<{ workflowId: string; runId?: string }>;
}

interface ScenarioContext {
  env: TestWorkflowEnvironment;
  calls: Fakes['calls'];
  /** Makes the scenario's failing fake succeed from now on. */
  heal: () => void;
}

const receiverDown = () =>
  ApplicationFailure.create({ type: FailureType.WebhookUnavailable, message: 'HTTP 503' });

/** Polls the order's progress, advancing virtual time a second at a time. */
async function waitFor(
  env: TestWorkflowEnvironment,
  orderId: string,
  done: (p: OrderProgress) => boolean,
  what: string,
): Promise<void> {
  const handle = env.client.workflow.getHandle(orderWorkflowId(orderId));
  for (let i = 0; i < 300; i++) {
    if (done(await handle.query(progressQuery))) return;
    await env.sleep('1 second');
  }
  throw new Error(`order ${orderId} never ${what}`);
}

/**
 * The result of the workflow's latest run, advancing virtual time a second at
 * a time (`result()` alone lets the test server skip past the timeouts of
 * activities that are still running in real time).
 */
async function settle(env: TestWorkflowEnvironment, workflowId: string): Promise<unknown> {
  const handle = env.client.workflow.getHandle(workflowId);
  for (let i = 0; i < 3000; i++) {
    if ((await handle.describe()).status.name !== 'RUNNING') return await handle.result();
    await env.sleep('1 second');
  }
  throw new Error(`${workflowId} still running`);
}

async function expectResult(
  env: TestWorkflowEnvironment,
  orderId: string,
  expected: OrderStatus,
): Promise<{ workflowId: string }> {
  const workflowId = orderWorkflowId(orderId);
  const result = await settle(env, workflowId);
  if (result !== expected)
    throw new Error(`order ${orderId} ended ${String(result)}, not ${expected}`);
  return { workflowId };
}

/** Starts the order's workflow with the test policies and waits until it parks. */
async function startParked(env: TestWorkflowEnvironment, orderId: string): Promise<void> {
  await startOrderWorkflow(env.client, orderId, testPolicies());
  await waitFor(env, orderId, (p) => p.status === 'PARKED', 'parked');
}

/** Sends the cancel signal (as the API and the CLI do); the order must end CANCELLED. */
async function cancelOrder(
  env: TestWorkflowEnvironment,
  orderId: string,
  reason: string,
): Promise<{ workflowId: string }> {
  await env.client.workflow.getHandle(orderWorkflowId(orderId)).signal(cancelSignal, reason);
  return expectResult(env, orderId, 'CANCELLED');
}

// Fixed order ids keep re-recorded files comparable.
const orderIdOf = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

/** A receiver that rejects order.placed (4xx, not retried: the order parks) and a subscriber of order.cancelled. */
const parkedOnRejectionWithUndoSubscriber = () => ({
  cancelledEndpoints: ['ep-undo'],
  webhook: async () => {
    throw ApplicationFailure.create({
      type: FailureType.WebhookRejected,
      message: 'HTTP 400',
      nonRetryable: true,
    });
  },
});

const scenarios: Scenario[] = [
  {
    name: 'happy-path',
    description: 'email, two webhook endpoints and the Kafka event all succeed at once',
    fakes: () => ({ endpoints: ['ep-1', 'ep-2'] }),
    async run({ env }) {
      const orderId = orderIdOf(1);
      await startOrderWorkflow(env.client, orderId, testPolicies());
      return expectResult(env, orderId, 'COMPLETED');
    },
  },
  {
    name: 'parked-then-retried',
    description: 'a webhook exhausts its attempts, the order parks, the retry update completes it',
    fakes: (healed) => ({
      endpoints: ['ep-1', 'ep-2'],
      webhook: async () => {
        if (!healed()) throw receiverDown();
      },
    }),
    async run({ env, heal }) {
      const orderId = orderIdOf(2);
      await startParked(env, orderId);
      heal();
      await env.client.workflow.getHandle(orderWorkflowId(orderId)).executeUpdate(retryUpdate);
      return expectResult(env, orderId, 'COMPLETED');
    },
  },
  {
    name: 'parked-then-signalled',
    description: 'parked twice: a retry signal (as the Web UI sends) parks it again, then resumes',
    fakes: (healed) => ({
      webhook: async () => {
        if (!healed()) throw receiverDown();
      },
    }),
    async run({ env, heal }) {
      const orderId = orderIdOf(3);
      const handle = env.client.workflow.getHandle(orderWorkflowId(orderId));
      await startParked(env, orderId);
      await handle.signal(retrySignal);
      await waitFor(env, orderId, (p) => p.parkedCount === 2, 'parked twice');
      heal();
      await handle.signal(retrySignal);
      return expectResult(env, orderId, 'COMPLETED');
    },
  },
  {
    name: 'webhook-429-then-success',
    description:
      'the first delivery is answered 429 with Retry-After (nextRetryDelay), the next one succeeds',
    fakes: () => {
      let calls = 0;
      return {
        webhook: async () => {
          if (++calls === 1)
            throw ApplicationFailure.create({
              type: FailureType.WebhookUnavailable,
              message: 'HTTP 429',
              nextRetryDelay: '30 seconds',
            });
        },
      };
    },
    async run({ env }) {
      const orderId = orderIdOf(4);
      await startOrderWorkflow(env.client, orderId, testPolicies());
      return expectResult(env, orderId, 'COMPLETED');
    },
  },
  {
    name: 'cancelled-while-parked',
    description:
      'a receiver rejects the webhook (4xx, not retried), the order parks, an operator cancels (the API, the CLI: the cancel signal)',
    fakes: parkedOnRejectionWithUndoSubscriber,
    async run({ env }) {
      const orderId = orderIdOf(5);
      await startParked(env, orderId);
      return cancelOrder(env, orderId, 'customer withdrew');
    },
  },
  {
    name: 'cancelled-in-temporal-while-parked',
    description:
      'parked on a rejecting receiver, then cancelled from Temporal (Web UI, `temporal workflow cancel`); order.cancelled goes to Kafka and a subscriber',
    fakes: parkedOnRejectionWithUndoSubscriber,
    async run({ env, calls }) {
      const orderId = orderIdOf(7);
      const workflowId = orderWorkflowId(orderId);
      await startParked(env, orderId);
      await env.client.workflow.getHandle(workflowId).cancel();
      await settle(env, workflowId).catch(() => undefined);
      const { status } = await env.client.workflow.getHandle(workflowId).describe();
      if (status.name !== 'CANCELLED' || !calls.cancelled.includes(orderId))
        throw new Error(`order ${orderId} ended ${status.name}; order.cancelled not published`);
      return { workflowId };
    },
  },
  {
    name: 'cancelled-before-start',
    description:
      'the row was cancelled while the start waited in the outbox: the first bookkeeping finds it CANCELLED and nothing is sent',
    fakes: () => ({ cancelledBeforeStart: true }),
    async run({ env, calls }) {
      const orderId = orderIdOf(8);
      await startOrderWorkflow(env.client, orderId, testPolicies());
      const ended = await expectResult(env, orderId, 'CANCELLED');
      if (calls.email.length || calls.webhook.length || calls.events.length)
        throw new Error('a step ran for an order cancelled before it began');
      return ended;
    },
  },
  {
    name: 'cancelled-while-retrying',
    description: 'cancel arrives while a webhook waits an hour for its next attempt',
    fakes: () => ({
      webhook: async () => {
        throw receiverDown();
      },
    }),
    async run({ env, calls }) {
      const orderId = orderIdOf(6);
      const hour = 3_600_000;
      await startOrderWorkflow(
        env.client,
        orderId,
        testPolicies({
          webhooks: {
            ...defaultRetryPolicies.webhooks,
            maximumAttempts: 50,
            initialIntervalMs: hour,
            maximumIntervalMs: hour,
            totalTimeoutMs: 100 * hour,
          },
        }),
      );
      // The first attempt failed; the next is an hour away.
      for (let i = 0; i < 100 && calls.webhook.length === 0; i++) await env.sleep('1 second');
      if (calls.webhook.length !== 1) throw new Error('the webhook never ran once');
      return cancelOrder(env, orderId, 'customer called');
    },
  },
  {
    name: 'announce-cancellation',
    description:
      'announceCancellationWorkflow for an order whose workflow was terminated: order.cancelled to Kafka and one subscriber',
    fakes: () => ({ cancelledEndpoints: ['ep-undo'] }),
    async run({ env, calls }) {
      const orderId = orderIdOf(9);
      const workflowId = cancellationAnnouncementWorkflowId(orderId);
      await startCancellationAnnouncement(env.client, orderId, 'workflow terminated in Temporal');
      const result = (await settle(env, workflowId)) as { published: boolean; webhooks: number };
      if (!result.published || result.webhooks !== 1 || !calls.cancelled.includes(orderId))
        throw new Error(`announcement ended ${JSON.stringify(result)}`);
      return { workflowId };
    },
  },
  {
    name: 'resend-events',
    description:
      'resendOrderEventsWorkflow over 3 orders, 2 per page: the first run, which continues as new',
    fakes: () => ({ orderIds: [orderIdOf(11), orderIdOf(12), orderIdOf(13)] }),
    async run({ env }) {
      const input: ResendEventsInput = {
        since: '2026-01-01T00:00:00.000Z',
        pageSize: 2,
        concurrency: 2,
      };
      const handle = await env.client.workflow.start('resendOrderEventsWorkflow', {
        workflowId: 'resend-events-replay',
        taskQueue: TaskQueue.orders,
        args: [input],
      });
      // The latest run's result: the one after continue-as-new.
      const result = (await settle(env, handle.workflowId)) as ResendProgress;
      if (result.published !== 3 || !result.done)
        throw new Error(`resend ended ${JSON.stringify(result)}`);
      return { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
    },
  },
];

async function main(): Promise<void> {
  const {
    values: { force, tag },
    positionals: only,
  } = parseArgs({
    options: { force: { type: 'boolean', default: false }, tag: { type: 'string' } },
    allowPositionals: true,
  });
  if (tag !== undefined && !/^[a-z0-9-]+$/.test(tag)) {
    console.error('--tag needs a name of a-z, 0-9 and -');
    process.exitCode = 2;
    return;
  }
  const fileOf = (name: string) => path.join(historiesDir, `${name}${tag ? `.${tag}` : ''}.json`);
  const existing = scenarios
    .filter((s) => !only.length || only.includes(s.name))
    .map((s) => fileOf(s.name))
    .filter((f) => fs.existsSync(f));
  if (existing.length && !force) {
    console.error(
      `not overwriting ${existing.map((f) => path.relative(projectRoot, f)).join(', ')}: ` +
        'record under a new --tag, or pass --force',
    );
    process.exitCode = 2;
    return;
  }
  const unknown = only.filter((n) => !scenarios.some((s) => s.name === n));
  if (unknown.length) {
    console.error(
      `unknown scenario(s): ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`,
    );
    process.exitCode = 2;
    return;
  }
  // Failing attempts are the point of several scenarios: log only errors.
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR' } } },
  });
  const testServer = provisionTestServer((m) => console.error(`[provision] ${m}`));
  const env = await TestWorkflowEnvironment.createTimeSkipping(
    testServer ? { server: { executable: { type: 'existing-path', path: testServer } } } : {},
  );
  try {
    await registerOrderStatus(env);
    const { fakes, withWorkers } = await workflowHarness(env);
    fs.mkdirSync(historiesDir, { recursive: true });
    for (const scenario of scenarios) {
      if (only.length && !only.includes(scenario.name)) continue;
      let healed = false;
      const f = fakes(scenario.fakes?.(() => healed));
      const { workflowId, runId } = await withWorkers(f, () =>
        scenario.run({
          env,
          calls: f.calls,
          heal: () => {
            healed = true;
          },
        }),
      );
      const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
      const file = fileOf(scenario.name);
      // Indented, so a re-recording shows up as a readable diff.
      fs.writeFileSync(file, `${historyToJSON(history)}\n`);
      console.error(
        `${path.relative(projectRoot, file)}: ${history.events?.length ?? 0} events — ${scenario.description}`,
      );
    }
  } finally {
    await env.teardown();
  }
}

await main();
