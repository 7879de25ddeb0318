/**
 * Cancellation that holds, on the real stack (PostgreSQL, Temporal, Kafka,
 * SMTP sink) with the API in-process and the real workers: a cancel while the
 * order waits in the outbox wins, a cancel from Temporal (Web UI, `temporal
 * workflow cancel`) or a terminate leaves the row CANCELLED, the order reports
 * what was sent, subscribers get `order.cancelled`, and status writes never go
 * backwards.
 */
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createOrderRecordActivities } from '../../src/activities/order-records.ts';
import { newSigningSecret } from '../../src/webhooks/endpoints.ts';
import { WorkflowReconciler } from '../../src/api/workflow-reconciler.ts';
import { createRateGate } from '../../src/webhooks/rate-gate.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { progressQuery } from '../../src/shared/messages.ts';
import { ORDER_CANCELLED, ORDER_PLACED } from '../../src/shared/steps.ts';
import {
  cancellationAnnouncementWorkflowId,
  orderWorkflowId,
} from '../../src/shared/task-queues.ts';
import { postOrder, startApi, validOrder, type Body, type TestApi } from '../support/api.ts';
import { startOrdersWorker } from '../support/orders-worker.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

const stack = inject('stack');
const common = { databaseUrl: stack.DATABASE_URL, temporalAddress: stack.TEMPORAL_ADDRESS };
const SECRET = newSigningSecret();
const silentLog = createLogger('test', 'silent');

/** Accepted orders stay in the outbox until the test sweeps (no relay runs). */
let outboxApi: TestApi;
let connection: Connection;
let temporal: Client;
let receiver: WebhookReceiver;
const endpoints: string[] = [];

beforeAll(async () => {
  outboxApi = await startApi({ ...common, workflowStartMode: 'relay', relay: { run: false } });
  connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
  temporal = new Client({ connection });
  receiver = await startWebhookReceiver({ secret: SECRET });
});
afterAll(async () => {
  // Leave no subscribers behind: other files' order workflows would deliver to them.
  if (endpoints.length)
    await outboxApi?.db.webhookEndpoint.deleteMany({ where: { id: { in: endpoints } } });
  await receiver?.close();
  await connection?.close();
  await outboxApi?.close();
});

async function cancel(url: string, id: string, reason = 'customer asked') {
  const res = await fetch(`${url}/orders/${id}/cancel`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ reason }),
  });
  return { status: res.status, body: (await res.json()) as Body };
}

async function subscribe(eventType: string, path: string): Promise<string> {
  const endpoint = await outboxApi.db.webhookEndpoint.create({
    data: {
      id: randomUUID(),
      url: `${receiver.url}/${path}`,
      eventTypes: [eventType],
      secret: SECRET,
    },
  });
  endpoints.push(endpoint.id);
  return endpoint.id;
}

/** Polls the row (bounded) until `done` holds. */
async function rowWhen(
  id: string,
  done: (r: { status: string; lastError: string | null }) => boolean,
) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const row = await outboxApi.db.order.findUniqueOrThrow({ where: { id } });
    if (done(row)) return row;
    if (Date.now() > deadline)
      throw new Error(`order ${id} stayed ${row.status} (${row.lastError})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('a cancel before the workflow begins', () => {
  it('wins while the order waits in the outbox: 200 CANCELLED, the relay never starts it, nothing is sent', async () => {
    const created = await postOrder(outboxApi.url, validOrder());
    expect([201, 202]).toContain(created.status);
    const id = created.body.id as string;

    const res = await cancel(outboxApi.url, id);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id, status: 'CANCELLED', lastError: 'customer asked' });
    expect(await outboxApi.db.workflowStart.findUnique({ where: { orderId: id } })).toBeNull();

    await outboxApi.relay.sweep();
    await expect(temporal.workflow.getHandle(orderWorkflowId(id)).describe()).rejects.toThrow(
      WorkflowNotFoundError,
    );
    expect(await outboxApi.db.emailDelivery.findMany({ where: { orderId: id } })).toEqual([]);
    // A second cancel finds it ended.
    expect((await cancel(outboxApi.url, id)).status).toBe(409);
  });

  it('wins over a workflow the relay started but that has not begun: it ends CANCELLED and sends nothing', async () => {
    const created = await postOrder(outboxApi.url, validOrder());
    const id = created.body.id as string;
    // The relay starts the workflow; no orders worker runs yet, so it has not begun.
    expect(await outboxApi.relay.sweep()).toBeGreaterThanOrEqual(1);
    const res = await cancel(outboxApi.url, id);
    expect(res.status).toBe(200);
    expect(res.body.status).toBe('CANCELLED');

    const workers = await startOrdersWorker(common);
    try {
      const result: unknown = await temporal.workflow.getHandle(orderWorkflowId(id)).result();
      expect(result).toBe('CANCELLED');
    } finally {
      await workers.stop();
    }
    const row = await outboxApi.db.order.findUniqueOrThrow({ where: { id } });
    expect([row.status, row.lastError]).toEqual(['CANCELLED', 'customer asked']);
    expect(await outboxApi.db.emailDelivery.findMany({ where: { orderId: id } })).toEqual([]);
  });
});

/** An API that sweeps the outbox itself and the orders worker, for the describe block that calls it. */
function useApiAndOrdersWorker() {
  const running = {} as { api: TestApi; workers: Awaited<ReturnType<typeof startOrdersWorker>> };
  beforeAll(async () => {
    running.api = await startApi({ ...common, workflowStartMode: 'async' });
    running.workers = await startOrdersWorker(common);
  });
  afterAll(async () => {
    await running.workers?.stop();
    await running.api?.close();
  });
  return running;
}

describe('a cancel of a running order', () => {
  const running = useApiAndOrdersWorker();

  /** An order parked on a subscriber that refuses it (400), with a subscriber of order.cancelled. */
  async function parkedOrder(): Promise<{ id: string; cancelledEndpoint: string }> {
    receiver.reset();
    await subscribe(ORDER_PLACED, 'refuses');
    const cancelledEndpoint = await subscribe(ORDER_CANCELLED, 'undo');
    receiver.respondWith({ status: 400 });
    const created = await postOrder(running.api.url, validOrder());
    const id = created.body.id as string;
    await rowWhen(id, (r) => r.status === 'PARKED');
    return { id, cancelledEndpoint };
  }

  afterAll(async () => {
    await outboxApi.db.webhookEndpoint.deleteMany({ where: { id: { in: endpoints } } });
  });

  it('from Temporal (the Web UI, `temporal workflow cancel`) ends the row CANCELLED, reports what was sent and sends order.cancelled', async () => {
    const { id } = await parkedOrder();
    const handle = temporal.workflow.getHandle(orderWorkflowId(id));
    await handle.cancel();
    const row = await rowWhen(id, (r) => r.status === 'CANCELLED');
    expect(row.lastError).toBe('cancelled in Temporal');
    const [cancelled] = (await receiver.waitForRequests(2, 20_000)).filter((r) =>
      r.path.endsWith('/undo'),
    );
    expect(cancelled?.verified).toBe(true);
    expect(cancelled?.payload).toMatchObject({ type: ORDER_CANCELLED, data: { orderId: id } });
    // The execution shows Temporal's cancel; what was sent before it is reported.
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    expect((await handle.query(progressQuery)).sent).toEqual(['email', 'events']);
    for (const e of endpoints.splice(0))
      await running.api.db.webhookEndpoint.delete({ where: { id: e } });
  });

  it('after a terminate in Temporal puts the row right: 200 CANCELLED instead of PARKED for good', async () => {
    const { id } = await parkedOrder();
    for (const e of endpoints.splice(0))
      await running.api.db.webhookEndpoint.delete({ where: { id: e } });
    await temporal.workflow.getHandle(orderWorkflowId(id)).terminate('operator');
    const res = await cancel(running.api.url, id);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'CANCELLED',
      lastError: 'workflow terminated in Temporal',
    });
  });
});

describe('a cancel while a webhook attempt waits for its send time', () => {
  it('stops the attempt before it sends: the receiver never gets order.placed and the order ends CANCELLED', async () => {
    const api = await startApi({ ...common, workflowStartMode: 'async' });
    // A gate of its own at 0.1/s (a send time every ~10.5 s), its next send time taken by the test.
    const gateName = `test-cancel-${randomUUID()}`;
    const gate = createRateGate(api.db, 0.1, gateName);
    expect((await gate.reserve(0)).kind).toBe('reserved');
    const workers = await startOrdersWorker({ ...common, webhookRateGate: gate });
    try {
      receiver.reset();
      const endpoint = await subscribe(ORDER_PLACED, 'held');
      const id = (await postOrder(api.url, validOrder())).body.id as string;
      // The attempt has reserved the following send time (~10 s away) and sleeps until then.
      const deadline = Date.now() + 30_000;
      let waitsMs = 0;
      for (; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
        const [row] = await api.db.$queryRaw<{ ahead_ms: number }[]>`
          SELECT (EXTRACT(EPOCH FROM (next_at - clock_timestamp())) * 1000)::float8 AS ahead_ms
            FROM webhook_rate_gates WHERE name = ${gateName}`;
        waitsMs = Number(row?.ahead_ms ?? 0);
        if (waitsMs > gate.spacingMs + 1_000) break;
      }
      expect(waitsMs).toBeGreaterThan(gate.spacingMs + 1_000);
      const sendAt = Date.now() + waitsMs - gate.spacingMs;

      const res = await cancel(api.url, id);
      expect([200, 202]).toContain(res.status);
      const row = await rowWhen(id, (r) => r.status === 'CANCELLED');
      expect(row.lastError).toBe('customer asked');
      // The workflow ends once its running attempts have stopped (WAIT_CANCELLATION_COMPLETED).
      const handle = temporal.workflow.getHandle(orderWorkflowId(id));
      expect(await handle.result()).toBe('CANCELLED');
      // The held attempt was stopped (cancelled through its heartbeat, or it found the row
      // CANCELLED): it neither completed (a completed delivery is a sent one) nor was left to
      // time out while still running in the worker.
      const events = (await handle.fetchHistory()).events ?? [];
      const deliveries = events
        .filter(
          (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverWebhook',
        )
        .map((e) => Number(e.eventId));
      expect(deliveries.length).toBeGreaterThan(0);
      const endOf = (e: (typeof events)[number]) =>
        e.activityTaskCompletedEventAttributes
          ? { how: 'completed', of: e.activityTaskCompletedEventAttributes.scheduledEventId }
          : e.activityTaskTimedOutEventAttributes
            ? { how: 'timed out', of: e.activityTaskTimedOutEventAttributes.scheduledEventId }
            : e.activityTaskCanceledEventAttributes
              ? { how: 'cancelled', of: e.activityTaskCanceledEventAttributes.scheduledEventId }
              : e.activityTaskFailedEventAttributes
                ? { how: 'failed', of: e.activityTaskFailedEventAttributes.scheduledEventId }
                : undefined;
      const ends = events
        .map(endOf)
        .filter((end) => end && deliveries.includes(Number(end.of)))
        .map((end) => end!.how);
      expect(ends.length).toBe(deliveries.length);
      for (const how of ends) expect(['cancelled', 'failed']).toContain(how);
      expect((await handle.query(progressQuery)).sent).not.toContain(`webhooks:${endpoint}`);
      // Past the send time the attempt had, with room for a late wake-up: nothing reached the receiver.
      await new Promise((r) => setTimeout(r, Math.max(0, sendAt - Date.now()) + 2_000));
      expect(receiver.requests.filter((r) => r.path.endsWith('/held'))).toEqual([]);
      const delivery = await api.db.webhookDelivery.findFirst({
        where: { orderId: id, endpointId: endpoint },
      });
      expect(delivery?.deliveredAt ?? null).toBeNull();
    } finally {
      for (const e of endpoints.splice(0))
        await api.db.webhookEndpoint.delete({ where: { id: e } });
      await workers.stop();
      await api.close();
    }
  });
});

describe("the relay's reconciler", () => {
  const running = useApiAndOrdersWorker();

  it('marks CANCELLED, within its interval and without any API call, an order whose workflow was terminated', async () => {
    receiver.reset();
    await subscribe(ORDER_PLACED, 'refuses-terminated');
    receiver.respondWith({ status: 400 });
    const id = (await postOrder(running.api.url, validOrder())).body.id as string;
    await rowWhen(id, (r) => r.status === 'PARKED');
    for (const e of endpoints.splice(0))
      await running.api.db.webhookEndpoint.delete({ where: { id: e } });
    await subscribe(ORDER_CANCELLED, 'undo-terminated');
    receiver.reset();

    const intervalMs = 500;
    const reconciler = new WorkflowReconciler(running.api.db, async () => temporal, silentLog, {
      intervalMs,
      // Only what this test terminates (earlier files' workflows were terminated too).
      lookbackMs: 1_000,
      maxPerSweep: 1_000,
    });
    reconciler.run();
    try {
      await temporal.workflow.getHandle(orderWorkflowId(id)).terminate('operator');
      const terminatedAt = Date.now();
      const row = await rowWhen(id, (r) => r.status === 'CANCELLED');
      // Within the interval, plus visibility's lag and a loaded machine.
      expect(Date.now() - terminatedAt).toBeLessThan(intervalMs + 10_000);
      expect(row.lastError).toBe('workflow terminated in Temporal');
      expect(reconciler.reconciled).toBeGreaterThanOrEqual(1);
      // The terminated workflow cannot announce order.cancelled: the reconciler has it announced.
      // It writes the row first and starts the announcement right after: wait for that start.
      const announcement = temporal.workflow.getHandle(cancellationAnnouncementWorkflowId(id));
      for (let i = 0; i < 100; i++) {
        const started = await announcement.describe().then(
          () => true,
          () => false,
        );
        if (started) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await announcement.result()).toEqual({
        published: true,
        webhooks: 1,
        webhookFailures: 0,
      });
      // (Other orders terminated lately, e.g. by the test above, may be announced too.)
      const undoOf = () =>
        receiver.requests.filter(
          (r) =>
            r.path.endsWith('/undo-terminated') &&
            (r.payload as { data?: { orderId?: string } } | undefined)?.data?.orderId === id,
        );
      for (let i = 0; i < 200 && undoOf().length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      const [undo] = undoOf();
      expect(undo?.verified).toBe(true);
      expect(undo?.payload).toMatchObject({
        type: ORDER_CANCELLED,
        data: { orderId: id, reason: 'workflow terminated in Temporal' },
      });
      // Later sweeps neither cancel nor announce it again.
      expect(await reconciler.sweep()).not.toContain(id);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(undoOf()).toHaveLength(1);
      const runs = await temporal.workflow.count(
        `WorkflowId = '${cancellationAnnouncementWorkflowId(id)}'`,
      );
      expect(runs.count).toBe(1);
    } finally {
      await reconciler.stop();
      for (const e of endpoints.splice(0))
        await running.api.db.webhookEndpoint.delete({ where: { id: e } });
    }
    // The API then finds it ended.
    expect((await cancel(running.api.url, id)).status).toBe(409);
  });
});

describe('status writes', () => {
  it('never move an order backwards: a late PROCESSING after COMPLETED, or anything after CANCELLED, is refused', async () => {
    const created = await postOrder(outboxApi.url, validOrder());
    const id = created.body.id as string;
    const records = createOrderRecordActivities({ db: outboxApi.db });
    const env = new MockActivityEnvironment();
    const write = (status: 'PROCESSING' | 'COMPLETED' | 'PARKED' | 'CANCELLED') =>
      env.run(() => records.recordOrderStatus({ orderId: id, status }));
    expect(await write('PROCESSING')).toBe('PROCESSING');
    expect(await write('COMPLETED')).toBe('COMPLETED');
    expect(await write('PROCESSING')).toBe('COMPLETED');
    expect(await write('PARKED')).toBe('COMPLETED');
    expect(await write('CANCELLED')).toBe('COMPLETED');
    const row = await outboxApi.db.order.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe('COMPLETED');

    const other = (await postOrder(outboxApi.url, validOrder())).body.id as string;
    await env.run(() => records.recordOrderStatus({ orderId: other, status: 'CANCELLED' }));
    expect(
      await env.run(() => records.recordOrderStatus({ orderId: other, status: 'COMPLETED' })),
    ).toBe('CANCELLED');
    // The first bookkeeping of a workflow that a cancel beat: nothing to process.
    expect(
      await env.run(() =>
        records.beginOrderProcessing({ orderId: other, eventType: ORDER_PLACED }),
      ),
    ).toBeNull();

    // A parked order's row says why, and the next write clears it and moves updated_at.
    const third = (await postOrder(outboxApi.url, validOrder())).body.id as string;
    const before = await outboxApi.db.order.findUniqueOrThrow({ where: { id: third } });
    expect(
      await env.run(() =>
        records.recordOrderStatus({
          orderId: third,
          status: 'PARKED',
          failedStep: 'email',
          lastError: 'email: SMTP down',
        }),
      ),
    ).toBe('PARKED');
    const parked = await outboxApi.db.order.findUniqueOrThrow({ where: { id: third } });
    expect(parked).toMatchObject({
      status: 'PARKED',
      failedStep: 'email',
      lastError: 'email: SMTP down',
    });
    expect(parked.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    expect(
      await env.run(() => records.recordOrderStatus({ orderId: third, status: 'PROCESSING' })),
    ).toBe('PROCESSING');
    expect(await outboxApi.db.order.findUniqueOrThrow({ where: { id: third } })).toMatchObject({
      status: 'PROCESSING',
      failedStep: null,
      lastError: null,
    });
    // A missing row: nothing written, null.
    expect(
      await env.run(() =>
        records.recordOrderStatus({
          orderId: '00000000-0000-4000-8000-000000000000',
          status: 'COMPLETED',
        }),
      ),
    ).toBeNull();
  });
});
