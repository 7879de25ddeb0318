import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp } from '../../src/api/app.ts';
import { buildOpenApiDocument } from '../../src/api/openapi.ts';
import { ORDER_PLACED } from '../../src/shared/steps.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { startApi, type Body, type TestApi } from '../support/api.ts';

const stack = inject('stack');
let api: TestApi;
/** The same app and dependencies with the strictest SSRF policy. */
let strict: { url: string; server: Server };

beforeAll(async () => {
  api = await startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
    relay: { run: false },
  });
  const app = createApp({
    db: api.db,
    temporal: api.temporal,
    relay: api.relay,
    log: pino({ level: 'silent' }),
    webhookAllowedTargets: 'public',
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  strict = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
});
afterAll(async () => {
  // Leave no subscribers behind: other files' order workflows would deliver to them.
  await api?.db.webhookEndpoint.deleteMany({
    where: { url: { contains: 'webhook-endpoints-test' } },
  });
  strict?.server.closeAllConnections();
  await new Promise((r) => (strict ? strict.server.close(r) : r(undefined)));
  await api?.close();
});

async function call(method: string, path: string, body?: unknown, base = api.url) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Body) : {} };
}

const hookUrl = (n = randomUUID()) => `https://hooks.example.com/webhook-endpoints-test/${n}`;

describe('POST /webhook-endpoints', () => {
  it('registers a subscriber: 201, Location, and a whsec_ secret shown only once', async () => {
    const url = hookUrl();
    const created = await call('POST', '/webhook-endpoints', { url, eventTypes: [ORDER_PLACED] });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe(`/webhook-endpoints/${created.body.id}`);
    expect(created.body).toMatchObject({ url, eventTypes: [ORDER_PLACED], status: 'ENABLED' });
    expect(created.body.createdAt).toEqual(expect.any(String));
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    // The secret is a key the Standard Webhooks library accepts (24 bytes).
    const key = Buffer.from((created.body.secret as string).slice('whsec_'.length), 'base64');
    expect(key).toHaveLength(24);
    expect(() => new Webhook(created.body.secret as string)).not.toThrow();

    const got = await call('GET', `/webhook-endpoints/${created.body.id}`);
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ id: created.body.id, url, status: 'ENABLED' });
    expect(got.body).not.toHaveProperty('secret');
    const list = await call('GET', '/webhook-endpoints');
    expect(list.status).toBe(200);
    const items = list.body.items as Body[];
    expect(items.map((e) => e.id as string)).toContain(created.body.id);
    expect(items.every((e) => !('secret' in e))).toBe(true);
    expect(JSON.stringify(list.body)).not.toContain(created.body.secret);
  });

  it('subscribes to order.placed when eventTypes is left out', async () => {
    const created = await call('POST', '/webhook-endpoints', { url: hookUrl() });
    expect(created.status).toBe(201);
    expect(created.body.eventTypes).toEqual([ORDER_PLACED]);
  });

  const invalid: [string, unknown, string[]][] = [
    ['missing url', {}, ['url']],
    ['relative url', { url: '/hooks' }, ['url']],
    ['ftp url', { url: 'ftp://hooks.example.com/x' }, ['url']],
    ['url with credentials', { url: 'https://u:p@hooks.example.com/x' }, ['url']],
    ['url over 2048 characters', { url: `https://hooks.example.com/${'a'.repeat(2048)}` }, ['url']],
    ['empty eventTypes', { url: hookUrl(), eventTypes: [] }, ['eventTypes']],
    ['unknown event type', { url: hookUrl(), eventTypes: ['order.shipped'] }, ['eventTypes[0]']],
    ['unknown field', { url: hookUrl(), secret: 'mine' }, ['secret']],
    ['array body', [{ url: hookUrl() }], ['(body)']],
  ];
  it.each(invalid)('rejects %s with 400 naming the fields', async (_name, body, fields) => {
    const res = await call('POST', '/webhook-endpoints', body);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(res.body.type).toBe('urn:orderflow:problem:validation-error');
    expect((res.body.errors as { field: string }[]).map((e) => e.field).sort()).toEqual(
      [...fields].sort(),
    );
  });

  it('refuses private and link-local targets, and loopback too under the "public" policy', async () => {
    const metadata = await call('POST', '/webhook-endpoints', {
      url: 'http://169.254.169.254/latest/meta-data',
    });
    expect(metadata.status).toBe(400);
    expect(metadata.body.errors).toEqual([
      { field: 'url', message: expect.stringMatching(/link-local/) },
    ]);
    const rfc1918 = await call('POST', '/webhook-endpoints', { url: 'http://10.0.0.5:8080/x' });
    expect(rfc1918.status).toBe(400);

    const loopback = `http://127.0.0.1:9/webhook-endpoints-test/${randomUUID()}`;
    const refused = await call('POST', '/webhook-endpoints', { url: loopback }, strict.url);
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([
      { field: 'url', message: expect.stringMatching(/loopback address.*"public"/) },
    ]);
    const v6 = await call('POST', '/webhook-endpoints', { url: 'http://[::1]:9/x' }, strict.url);
    expect(v6.status).toBe(400);
    // The one-machine default allows loopback.
    expect((await call('POST', '/webhook-endpoints', { url: loopback })).status).toBe(201);
  });

  it('rejects a body that is not JSON with 415', async () => {
    const res = await fetch(`${api.url}/webhook-endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: hookUrl(),
    });
    expect(res.status).toBe(415);
  });
});

describe('GET and DELETE /webhook-endpoints/{id}', () => {
  it('deletes with 204, then answers 404; 400 for a malformed id', async () => {
    const created = await call('POST', '/webhook-endpoints', { url: hookUrl() });
    const path = `/webhook-endpoints/${created.body.id}`;
    expect((await call('DELETE', path)).status).toBe(204);
    const gone = await call('GET', path);
    expect([gone.status, gone.body.type]).toEqual([404, 'urn:orderflow:problem:not-found']);
    expect((await call('DELETE', path)).status).toBe(404);
    expect((await call('DELETE', `/webhook-endpoints/${randomUUID()}`)).status).toBe(404);
    const malformed = await call('GET', '/webhook-endpoints/nope');
    expect(malformed.status).toBe(400);
    expect(malformed.body.errors).toEqual([expect.objectContaining({ field: 'id' })]);
  });
});

describe('GET /orders/{id}/webhook-deliveries', () => {
  it("lists the order's delivery log rows; 404 for an unknown order", async () => {
    const created = await call('POST', '/webhook-endpoints', { url: hookUrl() });
    const orderId = randomUUID();
    await api.db.order.create({
      data: {
        id: orderId,
        customerEmail: 'log@example.com',
        currency: 'USD',
        totalCents: 100n,
        workflowId: orderWorkflowId(orderId),
        items: { create: { line: 1, sku: 'SKU-1', quantity: 1, unitPriceCents: 100n } },
      },
    });
    const deliveredAt = new Date();
    await api.db.webhookDelivery.create({
      data: {
        webhookId: 'msg_test',
        orderId,
        endpointId: created.body.id as string,
        eventType: ORDER_PLACED,
        attempts: 3,
        lastStatus: 200,
        deliveredAt,
      },
    });
    try {
      const res = await call('GET', `/orders/${orderId}/webhook-deliveries`);
      expect(res.status).toBe(200);
      expect(res.body.items).toEqual([
        {
          webhookId: 'msg_test',
          endpointId: created.body.id,
          eventType: ORDER_PLACED,
          attempts: 3,
          lastStatus: 200,
          lastError: null,
          deliveredAt: deliveredAt.toISOString(),
          updatedAt: expect.any(String),
        },
      ]);
      expect((await call('GET', `/orders/${randomUUID()}/webhook-deliveries`)).status).toBe(404);
    } finally {
      await api.db.order.delete({ where: { id: orderId } });
    }
  });
});

describe('OpenAPI', () => {
  it('documents the webhook routes and schemas', () => {
    const doc = buildOpenApiDocument() as {
      paths: Record<string, Record<string, unknown>>;
      components: { schemas: Record<string, { required?: string[] }> };
    };
    expect(Object.keys(doc.paths['/webhook-endpoints']!)).toEqual(['post', 'get']);
    expect(Object.keys(doc.paths['/webhook-endpoints/{id}']!)).toEqual(['get', 'delete']);
    expect(doc.paths['/orders/{id}/webhook-deliveries']).toHaveProperty('get');
    expect(doc.components.schemas.CreateWebhookEndpointRequest!.required).toEqual(['url']);
    expect(doc.components.schemas.CreatedWebhookEndpoint!.required).toContain('secret');
    expect(doc.components.schemas.WebhookEndpoint!.required).not.toContain('secret');
  });
});
