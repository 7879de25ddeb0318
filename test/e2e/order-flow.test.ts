/**
 * End to end on real processes: the API and the four workers run as their own
 * Node.js processes (started like `npm start` starts them) against a stack of
 * this file's own (PostgreSQL, Temporal, Kafka, maildev), isolated from the
 * suite's shared stack and its in-process workers. Webhook retries are short
 * (RETRY_WEBHOOKS) so an order parks within seconds.
 */
import { Client, Connection } from '@temporalio/client';
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import { Kafka, logLevel, type IHeaders } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  CLOUDEVENT_SOURCE,
  CLOUDEVENT_TYPE_ORDER_PLACED,
  ORDERS_PLACED_TOPIC,
  orderPlacedEventId,
} from '../../src/shared/events.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE } from '../../src/shared/task-queues.ts';
import { mailsWithMessageId, waitForMail, type MaildevEmail } from '../support/email-maildev.ts';
import { startAppStack, type AppStack } from '../../scripts/lib/app-stack.ts';
import { sampleOrder } from '../../scripts/lib/sample-order.ts';
import { waitForOrderStatus } from '../support/api.ts';
import { subscribe } from './subscriber.ts';

let app: AppStack;
let connection: Connection;
let temporal: Client;
let db: pg.Pool;

const orderStatusKey = defineSearchAttributeKey(
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  SearchAttributeType.KEYWORD,
);

beforeAll(async () => {
  app = await startAppStack({
    tools: inject('tools'),
    ephemeral: true,
    appEnv: {
      WEBHOOK_RATE_PER_SECOND: '50',
      LOG_LEVEL: 'info',
      RETRY_WEBHOOKS: 'initial=200ms,backoff=2,max=1s,attempts=3,total=2m,attempt=5s',
      // A webhook request must fit in such an attempt, with 2 s around it (retry-budgets.ts).
      WEBHOOK_TIMEOUT_MS: '3000',
    },
  });
  connection = await Connection.connect({ address: app.env.TEMPORAL_ADDRESS });
  temporal = new Client({ connection });
  db = new pg.Pool({ connectionString: app.env.DATABASE_URL, max: 2 });
}, 300_000);

afterAll(async () => {
  await db?.end();
  await connection?.close();
  if (!app) return;
  await app.stop();
  if (!process.env.KEEP_TEST_STACK)
    fs.rmSync(app.stack.opts.dataDir, { recursive: true, force: true });
}, 120_000);

interface OrderView {
  id: string;
  status: string;
  workflowId: string;
  failedStep: string | null;
  lastError: string | null;
}

async function postOrder(customerEmail = `e2e-${randomUUID()}@example.com`): Promise<OrderView> {
  const res = await fetch(`${app.apiUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(sampleOrder(customerEmail)),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as OrderView;
}

/** Polls GET /orders/{id} (bounded) until the order has `status`. */
const waitForStatus = async (id: string, status: string, timeoutMs?: number): Promise<OrderView> =>
  (await waitForOrderStatus(app.apiUrl, id, status, timeoutMs)) as OrderView;

const messageIdOf = (orderId: string) => `order-${orderId}.confirmation@orderflow.local`;

/** Reads `orders.placed` from the beginning with a group of its own until the record keyed `key` shows up (bounded). */
async function kafkaRecordKeyed(key: string, timeoutMs = 30_000) {
  const kafka = new Kafka({
    clientId: 'e2e-test',
    brokers: app.env.KAFKA_BROKERS.split(','),
    logLevel: logLevel.NOTHING,
  });
  const consumer = kafka.consumer({ groupId: `e2e-${randomUUID()}` });
  let found: { key: string; value: string; headers: Record<string, string> } | undefined;
  let resolveFound!: () => void;
  const foundIt = new Promise<void>((r) => (resolveFound = r));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: ORDERS_PLACED_TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        if (found || message.key?.toString() !== key) return;
        found = {
          key: message.key.toString(),
          value: message.value?.toString() ?? '',
          headers: headerStrings(message.headers),
        };
        resolveFound();
      },
    });
    await Promise.race([foundIt, new Promise((r) => setTimeout(r, timeoutMs))]);
  } finally {
    await consumer.disconnect();
  }
  if (!found)
    throw new Error(`no record keyed ${key} on ${ORDERS_PLACED_TOPIC} in ${timeoutMs} ms`);
  return found;
}

function headerStrings(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {}))
    if (v !== undefined) out[k] = Array.isArray(v) ? v.map(String).join(',') : v.toString();
  return out;
}

/** Workflow ids listed by a visibility query, polled (bounded) until `workflowId` is among them. */
async function waitForVisibility(query: string, workflowId: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ids: string[] = [];
    for await (const wf of temporal.workflow.list({ query })) {
      ids.push(wf.workflowId);
      if (ids.length >= 1000) break;
    }
    if (ids.includes(workflowId)) return ids;
    if (Date.now() > deadline)
      throw new Error(`${workflowId} not listed under ${query} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function retry(id: string) {
  const res = await fetch(`${app.apiUrl}/orders/${id}/retry`, { method: 'POST' });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('an order on real processes', () => {
  it('is mailed, delivered to a subscriber with a verifiable signature, published keyed to Kafka as a CloudEvent, and completed in the database and in Temporal', async () => {
    const sub = await subscribe(app.apiUrl);
    try {
      const customerEmail = `e2e-${randomUUID()}@example.com`;
      const order = await postOrder(customerEmail);
      expect(order.workflowId).toBe(`order-${order.id}`);

      const done = await waitForStatus(order.id, 'COMPLETED');
      expect(done.failedStep).toBeNull();

      const mail = await waitForMail(app.env.MAIL_API_URL, messageIdOf(order.id));
      expect(mail.to.map((t) => t.address)).toEqual([customerEmail]);
      expect(mail.subject).toContain(order.id.slice(0, 8));

      const [hook, ...more] = await sub.receiver.waitForRequests(1);
      expect(more).toHaveLength(0);
      expect(hook!.verifyError).toBeUndefined();
      expect(hook!.verified).toBe(true);
      expect(hook!.headers['webhook-id']).toBe(sub.webhookIdOf(order.id));
      expect(hook!.payload).toMatchObject({ type: 'order.placed', data: { orderId: order.id } });

      const record = await kafkaRecordKeyed(order.id);
      expect(record.key).toBe(order.id);
      expect(record.headers).toMatchObject({
        ce_id: orderPlacedEventId(order.id),
        ce_type: CLOUDEVENT_TYPE_ORDER_PLACED,
        ce_source: CLOUDEVENT_SOURCE,
        ce_specversion: '1.0',
      });
      expect(JSON.parse(record.value)).toMatchObject({ orderId: order.id });

      const handle = temporal.workflow.getHandle(`order-${order.id}`);
      expect(await handle.result()).toBe('COMPLETED');
      const description = await handle.describe();
      expect(description.status.name).toBe('COMPLETED');
      // Never parked: ExecutionStatus says it all, so OrderStatus was never upserted.
      expect(description.typedSearchAttributes.get(orderStatusKey)).toBeUndefined();
    } finally {
      await sub.close();
    }
  });

  it('parks when the subscriber keeps answering 503, is listed as Parked in Temporal, and after an operator retry completes with one email and one successful delivery', async () => {
    // A completed order is not parked: retrying it is a conflict.
    const completed = await postOrder();
    await waitForStatus(completed.id, 'COMPLETED');
    const notParked = await retry(completed.id);
    expect(notParked.status).toBe(409);
    expect(notParked.body.type).toBe('urn:orderflow:problem:not-parked');

    const sub = await subscribe(app.apiUrl);
    try {
      // attempts=3: the receiver is down for exactly the step's whole retry budget.
      const down = { status: 503, body: 'down for maintenance' };
      sub.receiver.respondWith(down, down, down);
      const order = await postOrder();

      const parked = await waitForStatus(order.id, 'PARKED');
      expect(parked.failedStep).toBe('webhooks');
      expect(parked.lastError).toContain('503');
      expect(sub.receiver.requests).toHaveLength(3);
      await waitForVisibility(`${ORDER_STATUS_SEARCH_ATTRIBUTE}="Parked"`, `order-${order.id}`);

      // The receiver is back (nothing more is scripted: it answers 204).
      const retried = await retry(order.id);
      expect(retried.status).toBe(202);
      expect(retried.body.retrying).toEqual(['webhooks']);
      await waitForStatus(order.id, 'COMPLETED');
      expect((await retry(order.id)).status).toBe(409);

      const mails = await mailsWithMessageId(app.env.MAIL_API_URL, messageIdOf(order.id));
      expect(mails).toHaveLength(1);

      const webhookId = sub.webhookIdOf(order.id);
      const attempts = sub.receiver.requests.filter((r) => r.headers['webhook-id'] === webhookId);
      expect(attempts).toHaveLength(sub.receiver.requests.length);
      // The receiver answered in arrival order: three 503s, then 204 from then on.
      const failed = attempts.slice(0, 3);
      const succeeded = attempts.slice(3);
      expect(failed.length).toBeGreaterThanOrEqual(3);
      expect(failed.every((r) => r.verified)).toBe(true);
      expect(succeeded.filter((r) => r.verified)).toHaveLength(1);
      expect(succeeded).toHaveLength(1);

      const log = await fetch(`${app.apiUrl}/orders/${order.id}/webhook-deliveries`);
      const { items } = (await log.json()) as {
        items: { webhookId: string; attempts: number; lastStatus: number; deliveredAt: string }[];
      };
      expect(items).toEqual([expect.objectContaining({ webhookId, attempts: 4, lastStatus: 204 })]);
      expect(items[0]!.deliveredAt).toBeTruthy();

      const description = await temporal.workflow.getHandle(`order-${order.id}`).describe();
      // Parked once, so OrderStatus was set and follows the order to its end.
      expect(description.typedSearchAttributes.get(orderStatusKey)).toBe('Completed');
    } finally {
      await sub.close();
    }
  });

  it('loses no order when the email worker is killed with SIGKILL mid-flight, and sends a confirmation twice only when the kill fell between its SMTP send and its record', async () => {
    const orders = await Promise.all(Array.from({ length: 20 }, () => postOrder()));
    const ids = orders.map((o) => o.id);

    // Kill once some confirmations are recorded as sent, while others are being sent.
    let sentAtKill = 0;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const { rows } = await db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM email_deliveries WHERE order_id = ANY($1::uuid[]) AND sent_at IS NOT NULL',
        [ids],
      );
      sentAtKill = rows[0]!.n;
      if (sentAtKill >= 5) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    await app.kill('worker-email');
    expect(sentAtKill).toBeGreaterThan(0);
    expect(sentAtKill).toBeLessThan(20);

    await app.restart('worker-email');
    // Tasks the dead worker held come back after their attempt timeout (30 s by default).
    for (const id of ids) await waitForStatus(id, 'COMPLETED', 90_000);

    const res = await fetch(`${app.env.MAIL_API_URL}/email`);
    const all = (await res.json()) as MaildevEmail[];
    const wanted = new Set(ids.map(messageIdOf));
    const perMessageId = new Map<string, number>();
    for (const m of all)
      if (wanted.has(m.messageId))
        perMessageId.set(m.messageId, (perMessageId.get(m.messageId) ?? 0) + 1);
    const duplicated = [...perMessageId].filter(([, n]) => n > 1);
    const { rows: retried } = await db.query<{ order_id: string; attempts: number }>(
      'SELECT order_id, attempts FROM email_deliveries WHERE order_id = ANY($1::uuid[]) AND attempts > 1',
      [ids],
    );
    console.info(
      `SIGKILL with ${sentAtKill}/20 confirmations recorded as sent; ${retried.length} sends attempted again; ${duplicated.length} duplicated`,
    );
    if (duplicated.length)
      console.warn(
        `duplicated confirmations (sent, then killed before the send was recorded): ${JSON.stringify(duplicated)}`,
      );
    expect(perMessageId.size).toBe(20);
    // At least once, not exactly once: SMTP has no idempotent send, so a mail the relay accepted
    // just before the kill, whose send was not yet recorded, is sent again with the same
    // Message-ID. Only sends that were attempted again can repeat, each once, and no more of
    // them than the worker's SMTP pool had in flight (min(EMAIL_WORKER_CONCURRENCY, 5)).
    const retriedIds = new Set(retried.map((r) => messageIdOf(r.order_id)));
    for (const [messageId, n] of duplicated) {
      expect(n).toBe(2);
      expect(retriedIds.has(messageId)).toBe(true);
    }
    expect(duplicated.length).toBeLessThanOrEqual(5);
  }, 180_000);
});
