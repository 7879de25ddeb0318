/**
 * Every client fault is a 4xx problem document, never a 500, over real HTTP
 * against the in-process API (real PostgreSQL and Temporal): bad
 * percent-encoding in a path, a corrupt compressed body, a JSON request without
 * a body, forged list cursors, retry and cancel of an order whose workflow has
 * not started, and retry when no worker answers (a deadline, 504 + Retry-After).
 * No orders worker runs in this file, so a started workflow never makes progress.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { postOrder, startApi, validOrder, type Body, type TestApi } from '../support/api.ts';

const stack = inject('stack');
const common = { databaseUrl: stack.DATABASE_URL, temporalAddress: stack.TEMPORAL_ADDRESS };

let api: TestApi;
/** Its relay never starts a workflow: every order it accepts stays in the outbox. */
let parked: TestApi;

beforeAll(async () => {
  api = await startApi({ ...common, orderActionTimeoutMs: 1500 });
  parked = await startApi({ ...common, workflowStartMode: 'relay', relay: { run: false } });
});
afterAll(async () => {
  await api?.close();
  await parked?.close();
});

interface Answer {
  status: number;
  headers: Headers;
  body: Body;
}

async function send(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(20_000) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Body) : {} };
}

function expectProblem(res: Answer, status: number, type: string): Body {
  expect([res.status, res.body.type], JSON.stringify(res.body)).toEqual([
    status,
    `urn:orderflow:problem:${type}`,
  ]);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  return res.body;
}

/** A raw HTTP/1.1 request on a socket (no framing headers unless given), and the status line. */
async function rawRequest(
  url: string,
  head: string[],
  body = '',
): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
  let text = '';
  socket.on('data', (b: Buffer) => (text += b.toString()));
  socket.write(
    `${[...head, `Host: ${hostname}:${port}`, 'Connection: close'].join('\r\n')}\r\n\r\n${body}`,
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), text };
}

describe('paths with bad percent-encoding', () => {
  it.each([
    ['GET', '/orders/%E0%A4%A'],
    ['GET', '/webhook-endpoints/%ff'],
    ['DELETE', '/webhook-endpoints/%ff'],
    ['POST', '/orders/%ff/retry'],
    ['POST', '/orders/%C0%80/cancel'],
    ['GET', '/orders/%E0%A4%A/webhook-deliveries'],
  ])('answers %s %s with a 400 problem', async (method, path) => {
    const body = expectProblem(await send(`${api.url}${path}`, { method }), 400, 'bad-request');
    expect(body.detail).toMatch(/percent-encoding/);
    expect(body.instance).toBe(path);
  });
});

describe('bodies that cannot be read', () => {
  it('answers a corrupt gzip body with 400 and writes nothing, while a good one is accepted', async () => {
    const before = await api.db.order.count();
    const corrupt = await send(`${api.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: Buffer.from('this is not gzip at all'),
    });
    expect(expectProblem(corrupt, 400, 'bad-request').detail).toMatch(/decompress/);
    const truncated = gzipSync(JSON.stringify(validOrder())).subarray(0, 20);
    expectProblem(
      await send(`${api.url}/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
        body: truncated,
      }),
      400,
      'bad-request',
    );
    expect(await api.db.order.count()).toBe(before);

    const good = await send(`${api.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(validOrder())),
    });
    expect(good.status).toBe(201);
  });

  it('answers an unknown Content-Encoding with a 415 problem', async () => {
    expectProblem(
      await postOrder(api.url, validOrder(), { 'content-encoding': 'snappy' }),
      415,
      'unsupported-media-type',
    );
  });

  it('answers a JSON request without a body with 400 "no body", not 415, however it is framed', async () => {
    const before = await api.db.order.count();
    for (const framing of [[], ['Content-Length: 0'], ['Transfer-Encoding: chunked']]) {
      const head = ['POST /orders HTTP/1.1', 'Content-Type: application/json', ...framing];
      // A chunked request still sends its last (empty) chunk.
      const chunked = framing[0]?.startsWith('Transfer') === true;
      const res = await rawRequest(api.url, head, chunked ? '0\r\n\r\n' : '');
      expect(res.status, `${framing.join() || 'no framing'}:\n${res.text}`).toBe(400);
      expect(res.text).toContain('urn:orderflow:problem:validation-error');
      expect(res.text).not.toContain('is not application/json');
    }
    expect(await api.db.order.count()).toBe(before);
    // A body that is there but not JSON is still a 415.
    expectProblem(
      await postOrder(api.url, 'hello', { 'content-type': 'text/plain' }),
      415,
      'unsupported-media-type',
    );
  });
});

describe('list cursors', () => {
  const cursor = (text: string) => Buffer.from(text).toString('base64url');

  it.each([
    ['base64 of a non-UUID id', cursor(`2026-01-01T00:00:00.000Z|${'-'.repeat(36)}`)],
    [
      'base64 of an id with hex but no UUID shape',
      cursor(`2026-01-01T00:00:00.000Z|${'a'.repeat(36)}`),
    ],
    ['an out-of-range date', cursor(`-010000-01-01T00:00:00.000Z|${randomUUID()}`)],
    ['a far-future date', cursor(`+200000-01-01T00:00:00.000Z|${randomUUID()}`)],
    ['a date that is not ISO', cursor(`Jan 1 2026|${randomUUID()}`)],
    ['three parts', cursor(`2026-01-01T00:00:00.000Z|${randomUUID()}|x`)],
    ['no separator', cursor('2026-01-01T00:00:00.000Z')],
    ['not base64url', '!!!!'],
  ])('answers a cursor with %s with a 400 naming the cursor', async (_what, c) => {
    const body = expectProblem(
      await send(`${api.url}/orders?cursor=${encodeURIComponent(c)}`),
      400,
      'validation-error',
    );
    expect(body.errors).toEqual([{ field: 'cursor', message: expect.any(String) }]);
  });

  it('still pages with the cursors it hands out', async () => {
    await postOrder(api.url, validOrder());
    await postOrder(api.url, validOrder());
    const first = await send(`${api.url}/orders?limit=1`);
    expect(first.status).toBe(200);
    const next = await send(`${api.url}/orders?limit=1&cursor=${first.body.nextCursor as string}`);
    expect(next.status).toBe(200);
    expect(next.body.items[0].id).not.toBe(first.body.items[0].id);
  });
});

describe('retry and cancel before the workflow runs', () => {
  it('answers a cancel whose reason holds a control character (NUL, which PostgreSQL refuses) with 400 naming reason, and leaves the order as it was', async () => {
    const created = await postOrder(parked.url, validOrder());
    const id = created.body.id as string;
    for (const reason of ['\u0000\u00a4', 'two\nlines']) {
      const res = await send(`${parked.url}/orders/${id}/cancel`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ reason }),
      });
      const body = expectProblem(res, 400, 'validation-error');
      expect(body.errors).toEqual([
        { field: 'reason', message: 'must be text without control characters' },
      ]);
    }
    const row = await parked.db.order.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe('RECEIVED');
  });

  it('answers a retry of an order whose workflow has not started with 409 and Retry-After; a cancel then wins (200 CANCELLED)', async () => {
    const created = await postOrder(parked.url, validOrder());
    expect([201, 202]).toContain(created.status);
    const id = created.body.id as string;
    // Other relays share this database: keep them off the order for the whole test.
    await parked.db.workflowStart.update({
      where: { orderId: id },
      data: { nextAttemptAt: new Date(Date.now() + 3_600_000) },
    });
    const res = await send(`${parked.url}/orders/${id}/retry`, { method: 'POST' });
    const body = expectProblem(res, 409, 'workflow-not-ready');
    expect(body.detail).toMatch(/has not started yet/);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    // Cancellation that holds (issue 13 item 3): before the workflow begins, the cancel wins.
    const cancelled = await send(`${parked.url}/orders/${id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('CANCELLED');
  });

  it('answers a retry no worker answers with 504 and Retry-After within the deadline', async () => {
    const created = await postOrder(api.url, validOrder());
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    // The API's relay starts the workflow; no worker ever runs its tasks.
    for (let i = 0; i < 100; i++) {
      const start = await api.db.workflowStart.findUnique({ where: { orderId: id } });
      if (start?.startedAt) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const t0 = Date.now();
    const res = await send(`${api.url}/orders/${id}/retry`, { method: 'POST' });
    const took = Date.now() - t0;
    expect([504, 409]).toContain(res.status);
    if (res.status === 409) {
      // The server may refuse the update at once while the first task is pending.
      expectProblem(res, 409, 'workflow-not-ready');
    } else {
      expectProblem(res, 504, 'upstream-timeout');
    }
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(took).toBeLessThan(10_000);
  });
});
