import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp, type AppDeps } from '../../src/api/app.ts';
import { buildOpenApiDocument } from '../../src/api/openapi.ts';
import { ORDER_PLACED } from '../../src/shared/steps.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import type { Resolver, TargetPolicy } from '../../src/webhooks/ssrf-guard.ts';
import { startApi, type Body, type TestApi } from '../support/api.ts';

const stack = inject('stack');

/**
 * DNS for made-up names (this machine reaches no public DNS): the answers a
 * zone under an attacker's control could give. `.invalid` names go to the
 * system's resolver in the CLI tests.
 */
const zone: Record<string, string[]> = {
  'hooks.example.com': ['93.184.215.14'],
  'metadata.attacker.test': ['169.254.169.254'],
  'imds6.attacker.test': ['fd00:ec2::254'],
  'alibaba.attacker.test': ['100.100.100.200'],
  'internal.attacker.test': ['10.0.0.5', '192.168.1.9'],
  'mixed.attacker.test': ['93.184.215.14', '127.0.0.1'],
};
const resolver: Resolver = async (host) => {
  if (host === 'dns-down.attacker.test')
    throw Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: 'EAI_AGAIN' });
  const addresses = zone[host.toLowerCase()];
  if (!addresses)
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return addresses.map((address) => ({ address, family: isIP(address) }));
};

let api: TestApi;
/** Base URLs of the same app and dependencies under each SSRF policy (`api` is loopback, as in tests). */
const urls = new Map<TargetPolicy, string>();
const servers: Server[] = [];

/** The app over `api`'s dependencies with other settings, on its own port. */
async function listen(deps: Partial<AppDeps>): Promise<{ url: string; server: Server }> {
  const app = createApp({
    db: api.db,
    temporal: api.temporal,
    relay: api.relay,
    log: pino({ level: 'silent' }),
    webhookResolver: resolver,
    ...deps,
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
const stop = async ({ server }: { server: Server }) => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
};

beforeAll(async () => {
  api = await startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
    relay: { run: false },
    webhookResolver: resolver,
  });
  urls.set('loopback', api.url);
  for (const policy of ['public', 'private'] as const) {
    const app = await listen({ webhookAllowedTargets: policy });
    servers.push(app.server);
    urls.set(policy, app.url);
  }
});
afterAll(async () => {
  // Leave no subscribers behind: other files' order workflows would deliver to them.
  await api?.db.webhookEndpoint.deleteMany({
    where: { url: { contains: 'webhook-endpoints-test' } },
  });
  for (const server of servers) await stop({ server });
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
const urlOf = (policy: TargetPolicy) => urls.get(policy)!;

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
    const linkLocal = await call('POST', '/webhook-endpoints', { url: 'http://169.254.1.1/x' });
    expect(linkLocal.status).toBe(400);
    expect(linkLocal.body.errors).toEqual([
      {
        field: 'url',
        message: expect.stringMatching(/link-local address, which webhooks may never reach/),
      },
    ]);
    const rfc1918 = await call('POST', '/webhook-endpoints', { url: 'http://10.0.0.5:8080/x' });
    expect(rfc1918.status).toBe(400);

    const loopback = `http://127.0.0.1:9/webhook-endpoints-test/${randomUUID()}`;
    const refused = await call('POST', '/webhook-endpoints', { url: loopback }, urlOf('public'));
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([
      { field: 'url', message: expect.stringMatching(/loopback address.*"public"/) },
    ]);
    const v6 = await call(
      'POST',
      '/webhook-endpoints',
      { url: 'http://[::1]:9/x' },
      urlOf('public'),
    );
    expect(v6.status).toBe(400);
    // The tests' setting (npm start's too) allows loopback.
    expect((await call('POST', '/webhook-endpoints', { url: loopback })).status).toBe(201);
  });

  const metadata = [
    'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
    'http://[fd00:ec2::254]/latest/meta-data/',
    'http://100.100.100.200/latest/meta-data/',
    'http://[::ffff:169.254.169.254]/',
    'http://168.63.129.16/machine?comp=goalstate',
    'http://metadata.attacker.test/computeMetadata/v1/',
    'http://imds6.attacker.test/latest/',
    'http://alibaba.attacker.test/latest/',
  ];
  it.each(['public', 'loopback', 'private'] as const)(
    'refuses cloud metadata targets, by address or by name, under the "%s" policy',
    async (policy) => {
      const before = await api.db.webhookEndpoint.count();
      for (const url of metadata) {
        const res = await call('POST', '/webhook-endpoints', { url }, urlOf(policy));
        expect([url, res.status]).toEqual([url, 400]);
        expect(res.body.errors).toEqual([
          {
            field: 'url',
            message: expect.stringMatching(
              /a cloud metadata address, which webhooks may never reach/,
            ),
          },
        ]);
      }
      expect(await api.db.webhookEndpoint.count()).toBe(before);
    },
  );

  it('resolves the host and refuses a URL with any address the policy forbids', async () => {
    const post = (url: string, policy: TargetPolicy) =>
      call('POST', '/webhook-endpoints', { url }, urlOf(policy));
    const internal = 'http://internal.attacker.test/webhook-endpoints-test';
    const refused = await post(internal, 'public');
    expect(refused.status).toBe(400);
    expect(refused.body.errors).toEqual([
      {
        field: 'url',
        message:
          'internal.attacker.test resolves to 10.0.0.5, a private address, which the "public" webhook target policy refuses (WEBHOOK_ALLOWED_TARGETS)',
      },
    ]);
    expect((await post(internal, 'private')).status).toBe(201);
    // A public address beside a loopback one is a rebinding trick: refused, as delivery would.
    const mixed = await post('http://mixed.attacker.test/webhook-endpoints-test', 'public');
    expect(mixed.status).toBe(400);
    expect(mixed.body.errors[0].message).toMatch(/resolves to 127\.0\.0\.1, a loopback address/);
    expect((await post(hookUrl(), 'public')).status).toBe(201);
  });

  it('refuses a host that does not resolve (400), and answers 503 with Retry-After when DNS fails for now', async () => {
    const before = await api.db.webhookEndpoint.count();
    const unknown = await call('POST', '/webhook-endpoints', {
      url: 'https://nowhere.attacker.test/webhook-endpoints-test',
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors).toEqual([
      {
        field: 'url',
        message: 'nowhere.attacker.test does not resolve to any address (ENOTFOUND)',
      },
    ]);
    const down = await call('POST', '/webhook-endpoints', {
      url: 'https://dns-down.attacker.test/webhook-endpoints-test',
    });
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('5');
    expect(down.body).toMatchObject({
      type: 'urn:orderflow:problem:service-unavailable',
      detail:
        'Cannot check the url now: the DNS lookup of dns-down.attacker.test failed (EAI_AGAIN)',
    });
    expect(await api.db.webhookEndpoint.count()).toBe(before);
  });

  it('refuses an endpoint beyond WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE with a 409 problem, under concurrent requests too', async () => {
    const existing = await api.db.webhookEndpoint.count({
      where: { eventTypes: { has: ORDER_PLACED } },
    });
    const capped = await listen({ webhookMaxEndpointsPerEventType: existing + 3 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 7 }, () =>
          call('POST', '/webhook-endpoints', { url: hookUrl() }, capped.url),
        ),
      );
      expect(answers.map((a) => a.status).sort()).toEqual([201, 201, 201, 409, 409, 409, 409]);
      const refusal = answers.find((a) => a.status === 409)!;
      expect(refusal.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(refusal.body).toMatchObject({
        type: 'urn:orderflow:problem:endpoint-limit-reached',
        status: 409,
        detail: `order.placed already has ${existing + 3} webhook endpoints, the most allowed (WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE=${existing + 3}); delete one first`,
        errors: [{ field: 'eventTypes', message: 'order.placed has no room for another endpoint' }],
      });
      expect(
        await api.db.webhookEndpoint.count({ where: { eventTypes: { has: ORDER_PLACED } } }),
      ).toBe(existing + 3);
      // Room again once one is deleted.
      const one = answers.find((a) => a.status === 201)!;
      expect((await call('DELETE', `/webhook-endpoints/${one.body.id}`)).status).toBe(204);
      expect(
        (await call('POST', '/webhook-endpoints', { url: hookUrl() }, capped.url)).status,
      ).toBe(201);
    } finally {
      await stop(capped);
    }
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

describe('PATCH /webhook-endpoints/{id}', () => {
  it('disables and enables an endpoint: the reason, time and failure count say why, enabling clears them', async () => {
    const created = await call('POST', '/webhook-endpoints', { url: hookUrl() });
    const path = `/webhook-endpoints/${created.body.id}`;
    expect(created.body).toMatchObject({ disabledAt: null, consecutiveFailures: 0 });

    const disabled = await call('PATCH', path, { status: 'DISABLED' });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({
      status: 'DISABLED',
      disabledReason: 'disabled by an operator',
      disabledAt: expect.any(String),
    });
    expect((await call('GET', path)).body).toEqual(disabled.body);

    // As deliveries leave an endpoint they disabled.
    await api.db.webhookEndpoint.update({
      where: { id: created.body.id as string },
      data: { consecutiveFailures: 5, disabledReason: '5 permanent failures in a row' },
    });
    const enabled = await call('PATCH', path, { status: 'ENABLED' });
    expect(enabled.status).toBe(200);
    expect(enabled.body).toMatchObject({
      id: created.body.id,
      status: 'ENABLED',
      disabledReason: null,
      disabledAt: null,
      consecutiveFailures: 0,
    });
    const row = await api.db.webhookEndpoint.findUniqueOrThrow({
      where: { id: created.body.id as string },
    });
    expect(row).toMatchObject({ status: 'ENABLED', consecutiveFailures: 0, disabledReason: null });
  });

  it('answers 400 naming the field, 404 for an unknown id and 415 for a body that is not JSON', async () => {
    const created = await call('POST', '/webhook-endpoints', { url: hookUrl() });
    const path = `/webhook-endpoints/${created.body.id}`;
    const invalid: [unknown, string[]][] = [
      [{ status: 'PAUSED' }, ['status']],
      [{}, ['status']],
      [{ status: 'ENABLED', url: 'https://elsewhere.example.com/' }, ['url']],
    ];
    for (const [body, fields] of invalid) {
      const res = await call('PATCH', path, body);
      expect(res.status).toBe(400);
      expect((res.body.errors as { field: string }[]).map((e) => e.field)).toEqual(fields);
    }
    const unknown = await call('PATCH', `/webhook-endpoints/${randomUUID()}`, {
      status: 'ENABLED',
    });
    expect([unknown.status, unknown.body.type]).toEqual([404, 'urn:orderflow:problem:not-found']);
    expect((await call('PATCH', '/webhook-endpoints/nope', { status: 'ENABLED' })).status).toBe(
      400,
    );
    const text = await fetch(`${api.url}${path}`, {
      method: 'PATCH',
      headers: { 'content-type': 'text/plain' },
      body: 'ENABLED',
    });
    expect(text.status).toBe(415);
    expect((await call('GET', path)).body).toMatchObject({ status: 'ENABLED' });
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
    expect(Object.keys(doc.paths['/webhook-endpoints/{id}']!)).toEqual(['get', 'patch', 'delete']);
    expect(doc.paths['/orders/{id}/webhook-deliveries']).toHaveProperty('get');
    expect(doc.components.schemas.CreateWebhookEndpointRequest!.required).toEqual(['url']);
    expect(doc.components.schemas.CreatedWebhookEndpoint!.required).toContain('secret');
    expect(doc.components.schemas.WebhookEndpoint!.required).not.toContain('secret');
    expect(doc.components.schemas.WebhookEndpoint!.required).toEqual(
      expect.arrayContaining(['status', 'disabledReason', 'disabledAt', 'consecutiveFailures']),
    );
    expect(doc.components.schemas.ChangeWebhookEndpointRequest!.required).toEqual(['status']);
    expect(
      Object.keys(
        (doc.paths['/webhook-endpoints'] as { post: { responses: object } }).post.responses,
      ),
    ).toEqual(expect.arrayContaining(['201', '400', '409', '503']));
  });
});
