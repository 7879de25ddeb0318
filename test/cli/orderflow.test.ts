/**
 * The operator CLI, run as operators run it (`node --import tsx
 * src/cli/orderflow.ts ...`, a child process) against the real stack: orders
 * parked for real by a subscriber answering 400 (through the API, the real
 * workers and a signature-verifying receiver), listed, shown, retried (by id,
 * with partial failure, and --all-parked), and re-published with `events
 * resend` on the bulk task queue.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createEventActivities } from '../../src/activities/events.ts';
import { createKafka, createOrderEventsProducer } from '../../src/events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';
import { cancelSignal } from '../../src/shared/messages.ts';
import type { OrderStatus } from '../../src/shared/orders.ts';
import {
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  TaskQueue,
  orderWorkflowId,
} from '../../src/shared/task-queues.ts';
import { placeStartedOrder, validOrder, type Body, type TestApi } from '../support/api.ts';
import { startInlineApp, waitForRowStatus } from '../support/inline-app.ts';
import type { startOrdersWorker } from '../support/orders-worker.ts';
import type { WebhookReceiver } from '../support/webhook-receiver.ts';
import { subscribeAlone, type Subscriber } from '../e2e/subscriber.ts';
import { cli as runCli, parseStdout, type CliRun } from './run-cli.ts';

const stack = inject('stack');
const PARKED_ORDERS = 3;

let api: TestApi;
let worker: Awaited<ReturnType<typeof startOrdersWorker>>;
let subscriber: Subscriber | undefined;
let receiver: WebhookReceiver;
let connection: Connection;
let temporal: Client;
let endpointId: string;
/** Every order this file creates (cancelled in afterAll unless it finished). */
const created: string[] = [];
let parked: string[] = [];
/** One more parked order, for retrying named orders where some fail. */
let parkedForPartial: string;
/** Before this file placed its first order. */
let startedAt: Date;

const cli = (...args: string[]): Promise<CliRun> => runCli(args);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls (bounded) until the order's row has the status. */
const waitForStatus = (orderId: string, status: OrderStatus) =>
  waitForRowStatus(api, orderId, [status], 30_000);

/**
 * Polls (bounded) until Temporal visibility lists `expected` of the orders as
 * running and parked (what --all-parked reads): all of them by default.
 */
async function waitUntilListedParked(
  orderIds: string[],
  expected = orderIds.length,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  const ids = orderIds.map((id) => `"${orderWorkflowId(id)}"`).join(', ');
  const query = `WorkflowId IN (${ids}) AND ${ORDER_STATUS_SEARCH_ATTRIBUTE}="Parked" AND ExecutionStatus="Running"`;
  let seen = 0;
  while (Date.now() < deadline) {
    seen = (await temporal.workflow.count(query)).count;
    if (seen === expected) return;
    await sleep(200);
  }
  throw new Error(
    `visibility lists ${seen} of ${orderIds.length} orders as Parked, expected ${expected}`,
  );
}

/** Places an order through the API and makes sure its workflow started. */
async function placeOrder(): Promise<string> {
  // 202: the API's start missed Temporal (a busy machine); placeStartedOrder starts it as the relay would.
  const id = await placeStartedOrder(api, validOrder());
  created.push(id);
  return id;
}

beforeAll(async () => {
  startedAt = new Date();
  // Inline starts and no relay: this file starts exactly the workflows it creates.
  ({ api, worker } = await startInlineApp(stack));
  connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
  temporal = new Client({ connection });

  // A subscriber registered through the API, whose receiver verifies every signature.
  subscriber = await subscribeAlone(api);
  endpointId = subscriber.endpointId;
  receiver = subscriber.receiver;
  // Each order's one delivery is refused with a 400: not retried, so the order parks at once.
  receiver.respondWith(
    ...Array.from({ length: PARKED_ORDERS + 1 }, () => ({ status: 400, body: 'bad payload' })),
  );

  parked = await Promise.all(Array.from({ length: PARKED_ORDERS }, placeOrder));
  parkedForPartial = await placeOrder();
  await Promise.all([...parked, parkedForPartial].map((id) => waitForStatus(id, 'PARKED')));
  await waitUntilListedParked([...parked, parkedForPartial]);
  // The receiver's script is used up: from now on it answers 204.
  expect(receiver.requests).toHaveLength(PARKED_ORDERS + 1);
});

afterAll(async () => {
  // Leave no running workflow behind: a parked order of ours would outlive the endpoint.
  for (const id of created) {
    const handle = temporal?.workflow.getHandle(orderWorkflowId(id));
    const running = await handle
      ?.describe()
      .then((d) => d.status.name === 'RUNNING')
      .catch(() => false);
    if (running) await handle?.signal(cancelSignal, 'CLI test cleanup').catch(() => undefined);
  }
  for (const id of created) {
    await temporal?.workflow
      .getHandle(orderWorkflowId(id))
      .result()
      .catch(() => undefined);
  }
  // Deletes the endpoint, then closes its receiver.
  await subscriber?.close();
  await worker?.stop();
  await api?.close();
  await connection?.close();
});

describe('orderflow CLI', () => {
  it('prints its help with exit code 0', async () => {
    const run = await cli('--help');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: orderflow');
    expect(run.stdout).toMatch(/orders\s/);
  });

  it('exits 2 with a usage error on an unknown command', async () => {
    const run = await cli('frobnicate');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it('exits 2 when retry gets neither an order id nor --all-parked', async () => {
    const run = await cli('orders', 'retry');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('give an order id, or --all-parked');
  });

  it('lists the parked orders as JSON, each with the failed step and why', async () => {
    const run = await cli('orders', 'list', '--status', 'PARKED', '--json');
    expect(run.code).toBe(0);
    const listed = JSON.parse(run.stdout) as Body[];
    expect(listed.every((o) => o.status === 'PARKED')).toBe(true);
    const ours = listed.filter((o) => parked.includes(o.id as string));
    expect(ours.map((o) => o.id as string).sort()).toEqual([...parked].sort());
    for (const order of ours) {
      expect(order).toMatchObject({ status: 'PARKED', failedStep: 'webhooks' });
      expect(order.lastError).toContain(`webhooks:${endpointId}: WebhookRejected`);
    }
  });

  it('shows one order as JSON', async () => {
    const id = parked[0]!;
    const run = await cli('orders', 'show', id, '--json');
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      id,
      status: 'PARKED',
      failedStep: 'webhooks',
      workflowId: orderWorkflowId(id),
      customerEmail: validOrder().customerEmail,
      items: [expect.objectContaining({ sku: 'SKU-1', quantity: 2 })],
    });
  });

  it('exits 1 with a clear message when asked to retry an order that is not parked', async () => {
    const id = await placeOrder();
    await waitForStatus(id, 'COMPLETED');
    const run = await cli('orders', 'retry', id);
    expect(run.code).toBe(1);
    expect(`${run.stdout}${run.stderr}`).toContain(`Order ${id} has no running workflow`);
  });

  it('refuses `orders cancel --reason` with a control character as the API does: exit 2 naming reason, the order as it was', async () => {
    const id = parked[0]!;
    const run = await cli('orders', 'cancel', id, '--reason', 'two\nlines');
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain('error: invalid reason: must be text without control characters');
    const row = await api.db.order.findUniqueOrThrow({ where: { id } });
    expect([row.status, row.failedStep]).toEqual(['PARKED', 'webhooks']);
  });

  it('retries the orders named: exit 3 when some fail, with progress lines and a summary on stderr', async () => {
    const unknown = randomUUID();
    const run = await cli('orders', 'retry', parkedForPartial, unknown);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stdout).toMatch(
      new RegExp(`^${parkedForPartial}\\s+true\\s+retrying webhooks$`, 'm'),
    );
    expect(run.stdout).toMatch(
      new RegExp(
        `^${unknown}\\s+false\\s+Order ${unknown} has no running workflow: it has not started yet$`,
        'm',
      ),
    );
    // stderr is not a terminal here: plain progress lines instead of a bar.
    expect(run.stderr).toMatch(/^retried: 0\/2 \(0%\)$/m);
    expect(run.stderr).toMatch(/^retried: 2\/2 \(100%\), 1 failed$/m);
    expect(run.stderr).toMatch(/^1 retried, 1 failed$/m);

    // The retried one completes and leaves the parked list before --all-parked runs.
    await waitForStatus(parkedForPartial, 'COMPLETED');
    await waitUntilListedParked([parkedForPartial], 0);
  });

  it('exits 1 when every order named fails, with the outcome as JSON', async () => {
    const ids = [randomUUID(), randomUUID()];
    const run = await cli('orders', 'retry', ...ids, '--json');
    expect(run.code).toBe(1);
    expect(parseStdout(run)).toEqual({
      results: ids.map((id) => ({
        id,
        ok: false,
        detail: `Order ${id} has no running workflow: it has not started yet`,
      })),
      retried: 0,
      failed: 2,
    });
  });

  it('retries every parked order with --all-parked: "N retried, 0 failed", exit 0, and they complete', async () => {
    const run = await cli('orders', 'retry', '--all-parked');
    expect(run.stderr).toMatch(/^(\d+) retried, 0 failed/m);
    expect(run.code).toBe(0);
    const retried = Number(/^(\d+) retried/m.exec(run.stderr)![1]);
    expect(retried).toBeGreaterThanOrEqual(PARKED_ORDERS);
    for (const id of parked)
      expect(run.stdout).toMatch(new RegExp(`${id}\\s+true\\s+retrying webhooks`));

    await Promise.all(parked.map((id) => waitForStatus(id, 'COMPLETED')));
    // Only the failed step ran again: one more delivery per order (and two for the
    // order retried by name, one for the order that completed), each verified.
    expect(receiver.requests).toHaveLength(2 * (PARKED_ORDERS + 1) + 1);
    expect(receiver.requests.map((r) => r.verifyError ?? 'verified')).toEqual(
      receiver.requests.map(() => 'verified'),
    );

    const shown = await cli('orders', 'show', parked[0]!, '--json');
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      status: 'COMPLETED',
      failedStep: null,
      lastError: null,
    });
  });

  it('re-publishes the orders of a time range with `events resend`: progress lines, JSON outcome, records on Kafka', async () => {
    // The bulk queue's worker (the orders worker runs the workflow); live queues are untouched.
    const kafka = createKafka({
      KAFKA_BROKERS: stack.KAFKA_BROKERS.split(','),
      KAFKA_CLIENT_ID: 'cli-test',
    });
    const producer = createOrderEventsProducer(kafka);
    const admin = kafka.admin();
    await Promise.all([producer.connect(), admin.connect()]);
    const bulkConnection = await NativeConnection.connect({ address: stack.TEMPORAL_ADDRESS });
    const bulk = await Worker.create({
      connection: bulkConnection,
      taskQueue: TaskQueue.eventsBulk,
      activities: createEventActivities({ db: api.db, producer }),
    });
    const running = bulk.run();
    const records = async () =>
      (await admin.fetchTopicOffsets(ORDERS_PLACED_TOPIC)).reduce((n, p) => n + Number(p.high), 0);
    try {
      const until = new Date();
      const expected = await api.db.order.count({
        where: { createdAt: { gte: startedAt, lt: until }, status: { not: 'CANCELLED' } },
      });
      expect(expected).toBe(created.length);
      const before = await records();

      const run = await cli(
        'events',
        'resend',
        '--since',
        startedAt.toISOString(),
        '--until',
        until.toISOString(),
        '--json',
      );
      expect(run.code, run.stderr).toBe(0);
      const outcome = parseStdout<{ workflowId: string; orders: number; published: number }>(run);
      expect(outcome).toEqual({
        workflowId: expect.stringMatching(/^resend-events-/),
        orders: expected,
        published: expected,
      });
      expect(run.stderr).toMatch(new RegExp(`^published: 0/${expected} \\(0%\\)$`, 'm'));
      expect(run.stderr).toMatch(
        new RegExp(`^published: ${expected}/${expected} \\(100%\\)$`, 'm'),
      );
      // One more record per order on orders.placed (same event ids: consumers skip them).
      expect(await records()).toBe(before + expected);
    } finally {
      bulk.shutdown();
      await running;
      await Promise.allSettled([bulkConnection.close(), producer.disconnect(), admin.disconnect()]);
    }
  });
});
