import { Client, Connection } from '@temporalio/client';
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CURRENCIES } from '../../src/shared/orders.ts';
import {
  postOrder,
  startStackApi,
  validOrder,
  waitForOrderStatus,
  type TestApi,
} from '../support/api.ts';
import { startOrdersWorker } from '../support/orders-worker.ts';

const stack = inject('stack');
let api: TestApi;
let worker: Awaited<ReturnType<typeof startOrdersWorker>>;
let connection: Connection;
let temporal: Client;

beforeAll(async () => {
  api = await startStackApi();
  worker = await startOrdersWorker({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
  });
  connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
  temporal = new Client({ connection });
});
afterAll(async () => {
  await api?.close();
  await worker?.stop();
  await connection?.close();
});

const orderCount = () => api.db.order.count();

/** Polls (bounded) until the order reaches a status. */
const waitForStatus = (id: string, status: string) =>
  waitForOrderStatus(api.url, id, status, 20_000);

async function runsOf(workflowId: string): Promise<string[]> {
  const runs: string[] = [];
  for await (const wf of temporal.workflow.list({ query: `WorkflowId = '${workflowId}'` }))
    runs.push(wf.runId);
  return runs;
}

describe('POST /orders', () => {
  it('accepts a valid order: 201, Location, server-computed total, and the workflow completes it', async () => {
    const body = {
      ...validOrder(),
      items: [
        { sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 },
        { sku: 'SKU-2', quantity: 1, unitPriceCents: 99 },
      ],
    };
    const res = await postOrder(api.url, body);
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toBe(`/orders/${res.body.id}`);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(res.body).toMatchObject({
      status: 'RECEIVED',
      workflowId: `order-${res.body.id}`,
      totalCents: 2599,
      currency: 'USD',
      customerEmail: 'a@example.com',
    });
    await waitForStatus(res.body.id, 'COMPLETED');
    const start = await api.db.workflowStart.findUniqueOrThrow({ where: { orderId: res.body.id } });
    expect(start.startedAt).not.toBeNull();
  });

  const invalid: [string, unknown, string[]][] = [
    ['missing everything', {}, ['customerEmail', 'items', 'currency']],
    ['bad email', { ...validOrder(), customerEmail: 'not-an-email' }, ['customerEmail']],
    [
      'an email with a 65-character local part',
      { ...validOrder(), customerEmail: `${'a'.repeat(65)}@example.com` },
      ['customerEmail'],
    ],
    ['no items', { ...validOrder(), items: [] }, ['items']],
    [
      '101 items',
      {
        ...validOrder(),
        items: Array.from({ length: 101 }, () => ({ sku: 'A', quantity: 1, unitPriceCents: 1 })),
      },
      ['items'],
    ],
    [
      'bad sku',
      { ...validOrder(), items: [{ sku: 'bad sku!', quantity: 1, unitPriceCents: 1 }] },
      ['items[0].sku'],
    ],
    [
      'fractional quantity',
      { ...validOrder(), items: [{ sku: 'A', quantity: 1.5, unitPriceCents: 1 }] },
      ['items[0].quantity'],
    ],
    [
      'zero quantity',
      { ...validOrder(), items: [{ sku: 'A', quantity: 0, unitPriceCents: 1 }] },
      ['items[0].quantity'],
    ],
    [
      'quantity over 10,000',
      { ...validOrder(), items: [{ sku: 'A', quantity: 10_001, unitPriceCents: 1 }] },
      ['items[0].quantity'],
    ],
    [
      'negative price',
      { ...validOrder(), items: [{ sku: 'A', quantity: 1, unitPriceCents: -1 }] },
      ['items[0].unitPriceCents'],
    ],
    [
      'price over 10^9',
      { ...validOrder(), items: [{ sku: 'A', quantity: 1, unitPriceCents: 1_000_000_001 }] },
      ['items[0].unitPriceCents'],
    ],
    [
      'price as string',
      { ...validOrder(), items: [{ sku: 'A', quantity: 1, unitPriceCents: '1' }] },
      ['items[0].unitPriceCents'],
    ],
    ['unknown currency', { ...validOrder(), currency: 'XYZ' }, ['currency']],
    ['unknown field', { ...validOrder(), discount: 5 }, ['discount']],
    [
      'unknown item field',
      { ...validOrder(), items: [{ sku: 'A', quantity: 1, unitPriceCents: 1, note: 'x' }] },
      ['items[0].note'],
    ],
    ['array body', [validOrder()], ['(body)']],
  ];

  it.each(invalid)(
    'rejects %s with 400 naming the fields, and writes nothing',
    async (_name, body, fields) => {
      const before = await orderCount();
      const res = await postOrder(api.url, body);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body.type).toBe('urn:orderflow:problem:validation-error');
      expect(res.body.status).toBe(400);
      expect((res.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(
        [...fields].sort(),
      );
      expect(await orderCount()).toBe(before);
    },
  );

  it('rejects malformed JSON (400), a wrong content type (415) and a body over 64 KiB (413)', async () => {
    const before = await orderCount();
    const malformed = await postOrder(api.url, '{"customerEmail": ');
    expect([malformed.status, malformed.body.type]).toEqual([
      400,
      'urn:orderflow:problem:malformed-json',
    ]);
    const text = await fetch(`${api.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hi',
    });
    expect(text.status).toBe(415);
    expect(((await text.json()) as { type: string }).type).toBe(
      'urn:orderflow:problem:unsupported-media-type',
    );
    const huge = await postOrder(api.url, {
      ...validOrder(),
      customerEmail: `${'a'.repeat(70_000)}@example.com`,
    });
    expect([huge.status, huge.body.type]).toEqual([413, 'urn:orderflow:problem:payload-too-large']);
    expect(await orderCount()).toBe(before);
  });

  it('rejects every invalid body a generator can make, leaving the order count unchanged (property)', async () => {
    const before = await orderCount();
    const validItem = fc.record({
      sku: fc.stringMatching(/^[A-Z0-9][A-Z0-9._-]{0,10}$/),
      quantity: fc.integer({ min: 1, max: 10_000 }),
      unitPriceCents: fc.integer({ min: 0, max: 1000 }),
    });
    // One field of an otherwise valid order broken in one way.
    const breakage = fc.oneof(
      fc.record({ customerEmail: fc.string({ maxLength: 20 }).filter((s) => !s.includes('@')) }),
      fc.record({
        currency: fc
          .string({ maxLength: 4 })
          .filter((c) => !(CURRENCIES as readonly string[]).includes(c)),
      }),
      fc.record({ items: fc.constant([]) }),
      fc.record({
        items: fc.array(
          validItem.map((i) => ({ ...i, quantity: -i.quantity })),
          { minLength: 1, maxLength: 3 },
        ),
      }),
      fc.record({
        items: fc.array(
          validItem.map((i) => ({ ...i, unitPriceCents: i.unitPriceCents + 0.5 })),
          { minLength: 1, maxLength: 3 },
        ),
      }),
      fc.record({
        items: fc.array(
          validItem.map((i) => ({ ...i, sku: `${i.sku} ` })),
          { minLength: 1, maxLength: 3 },
        ),
      }),
      fc.dictionary(
        fc.stringMatching(/^[a-z]{3,8}$/).filter((k) => !['items', 'currency'].includes(k)),
        fc.jsonValue(),
        { minKeys: 1, maxKeys: 2 },
      ),
    );
    await fc.assert(
      fc.asyncProperty(breakage, async (broken) => {
        const res = await postOrder(api.url, { ...validOrder(), ...broken });
        return (
          res.status === 400 &&
          res.body.type === 'urn:orderflow:problem:validation-error' &&
          (res.body.errors as unknown[]).length > 0
        );
      }),
      { numRuns: 150 },
    );
    expect(await orderCount()).toBe(before);
  });

  it('answers the same order for the same Idempotency-Key, and 422 for the same key with another body', async () => {
    const key = `k-${randomUUID()}`;
    const first = await postOrder(api.url, validOrder(), { 'idempotency-key': key });
    const again = await postOrder(
      api.url,
      { currency: 'USD', items: validOrder().items, customerEmail: 'a@example.com' },
      { 'idempotency-key': key },
    );
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const other = await postOrder(
      api.url,
      { ...validOrder(), currency: 'EUR' },
      { 'idempotency-key': key },
    );
    expect(other.status).toBe(422);
    expect(other.body.type).toBe('urn:orderflow:problem:idempotency-key-reused');
    expect(await api.db.order.count({ where: { idempotencyKey: key } })).toBe(1);
    const bad = await postOrder(api.url, validOrder(), { 'idempotency-key': 'x'.repeat(256) });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toEqual([expect.objectContaining({ field: 'Idempotency-Key' })]);
  });

  it('turns 50 concurrent POSTs with one key into exactly one order and one workflow run', async () => {
    const key = `burst-${randomUUID()}`;
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        postOrder(api.url, validOrder(), { 'idempotency-key': key }),
      ),
    );
    expect(new Set(responses.map((r) => r.status))).toEqual(new Set([201]));
    const ids = new Set(responses.map((r) => r.body.id as string));
    expect(ids.size).toBe(1);
    const [id] = [...ids];
    expect(await api.db.order.count({ where: { idempotencyKey: key } })).toBe(1);
    await waitForStatus(id!, 'COMPLETED');
    let runs: string[] = [];
    for (let i = 0; i < 50 && runs.length === 0; i++) {
      runs = await runsOf(`order-${id}`);
      if (!runs.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(runs).toHaveLength(1);
  });
});

describe('GET /orders', () => {
  it('returns an order by id, 404 for an unknown one and 400 for a malformed id', async () => {
    const created = await postOrder(api.url, validOrder());
    const got = await fetch(`${api.url}/orders/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(((await got.json()) as { id: string }).id).toBe(created.body.id);
    const missing = await fetch(`${api.url}/orders/${randomUUID()}`);
    expect(missing.status).toBe(404);
    const malformed = await fetch(`${api.url}/orders/not-a-uuid`);
    expect(malformed.status).toBe(400);
  });

  it('pages through orders by status with a cursor, newest first, without repeats', async () => {
    const email = `pager-${randomUUID()}@example.com`;
    for (let i = 0; i < 5; i++) await postOrder(api.url, { ...validOrder(), customerEmail: email });
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const qs = new URLSearchParams({ limit: '7', ...(cursor ? { cursor } : {}) });
      const res = await fetch(`${api.url}/orders?${qs.toString()}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        items: { id: string; createdAt: string }[];
        nextCursor: string | null;
      };
      seen.push(...body.items.map((o) => o.id));
      cursor = body.nextCursor;
      if (!cursor) break;
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.length).toBe(await orderCount());
    const mine = await api.db.order.findMany({
      where: { customerEmail: email },
      select: { id: true },
    });
    expect(mine).toHaveLength(5);
    expect(mine.every((o) => seen.includes(o.id))).toBe(true);
    const completed = await fetch(`${api.url}/orders?status=COMPLETED&limit=200`);
    const items = ((await completed.json()) as { items: { status: string }[] }).items;
    expect(items.every((o) => o.status === 'COMPLETED')).toBe(true);
    const bad = await fetch(`${api.url}/orders?status=DONE`);
    expect(bad.status).toBe(400);
  });
});
