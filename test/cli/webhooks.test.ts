/**
 * `orderflow webhooks list|add|remove|enable|disable` against the stack's
 * PostgreSQL: the same validation, SSRF policy (host names resolved with the
 * system's resolver) and cap as POST /webhook-endpoints, the signing secret
 * printed once at creation and never listed.
 */
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { WebhookEndpointView } from '../../src/webhooks/endpoints.ts';
import { createDb } from '../../src/db/client.ts';
import { cli, parseStdout } from './run-cli.ts';

const stack = inject('stack');
const db = createDb(stack.DATABASE_URL, 2);
/** Endpoints this file created: removed in afterAll even when a test fails half-way. */
const created = new Set<string>();
// Port 9 (discard) on loopback: nothing is ever delivered, and no order is placed while these exist.
const hookUrl = () => `http://127.0.0.1:9/cli-test/${randomUUID()}`;

afterAll(async () => {
  await db.webhookEndpoint.deleteMany({ where: { id: { in: [...created] } } });
  await db.$disconnect();
});

describe('orderflow webhooks', () => {
  // Seven CLI processes: 1.5 s each on an idle machine, up to 6 s on the shared 2-core one.
  it('adds an endpoint, prints its secret only then, lists it without secrets, and removes it', async () => {
    const url = hookUrl();
    const add = await cli(['webhooks', 'add', url, '--event', 'order.placed', '--json']);
    expect(add.code, add.stderr).toBe(0);
    const endpoint = parseStdout<WebhookEndpointView & { secret: string }>(add);
    created.add(endpoint.id);
    expect(endpoint).toMatchObject({ url, eventTypes: ['order.placed'], status: 'ENABLED' });
    expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(() => new Webhook(endpoint.secret)).not.toThrow();
    // The secret printed is the one deliveries are signed with.
    const row = await db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpoint.id } });
    expect(row.secret).toBe(endpoint.secret);

    const listed = await cli(['webhooks', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    const items = parseStdout<Record<string, unknown>[]>(listed);
    expect(items).toContainEqual({
      id: endpoint.id,
      url,
      eventTypes: ['order.placed'],
      status: 'ENABLED',
      disabledReason: null,
      disabledAt: null,
      consecutiveFailures: 0,
      createdAt: endpoint.createdAt,
      updatedAt: endpoint.updatedAt,
    });
    expect(listed.stdout).not.toContain('whsec_');
    expect(items.every((i) => !('secret' in i))).toBe(true);

    const table = await cli(['webhooks', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+URL\s+EVENTS\s+ENABLED\s+FAILURES\s+CREATED$/m);
    expect(table.stdout).toMatch(
      new RegExp(
        `^${endpoint.id}\\s+${url.replace(/[.]/g, '\\.')}\\s+order\\.placed\\s+yes\\s+0\\s+${endpoint.createdAt}$`,
        'm',
      ),
    );
    expect(`${table.stdout}${table.stderr}`).not.toContain(endpoint.secret);

    const removed = await cli(['webhooks', 'remove', endpoint.id]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stderr).toContain(`webhook endpoint ${endpoint.id} removed`);
    expect(await db.webhookEndpoint.findUnique({ where: { id: endpoint.id } })).toBeNull();
    const after = parseStdout<{ id: string }[]>(await cli(['webhooks', 'list', '--json']));
    expect(after.map((e) => e.id)).not.toContain(endpoint.id);

    // Removing it again is an unknown id: exit 1, the message names it.
    const again = await cli(['webhooks', 'remove', endpoint.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`Webhook endpoint ${endpoint.id} does not exist`);
    expect(again.stdout).toBe('');
  }, 120_000);

  it('prints the secret once in the human output too, and defaults the event types', async () => {
    const url = hookUrl();
    const add = await cli(['webhooks', 'add', url]);
    expect(add.code, add.stderr).toBe(0);
    const secret = /^secret\s+(whsec_\S+)$/m.exec(add.stdout)?.[1];
    expect(secret).toBeDefined();
    expect(add.stderr).toContain('not shown again');
    const row = await db.webhookEndpoint.findFirstOrThrow({ where: { url } });
    created.add(row.id);
    expect(row).toMatchObject({ secret, eventTypes: ['order.placed'] });
    expect(add.stdout).toContain(row.id);
  });

  it.each([
    ['not a URL', ['not-a-url'], /invalid url: must be an absolute http:\/\/ or https:\/\/ URL/],
    ['another scheme', ['ftp://127.0.0.1/x'], /invalid url: must be an absolute http/],
    ['credentials', ['http://user:pw@127.0.0.1:9/x'], /invalid url: must not contain credentials/],
    ['a private address (policy loopback)', ['http://10.1.2.3/x'], /invalid url: .*private/],
    [
      'the metadata address',
      ['http://169.254.169.254/latest'],
      /invalid url: 169\.254\.169\.254, a cloud metadata address, which webhooks may never reach/,
    ],
    [
      'the IPv6 metadata address',
      ['http://[fd00:ec2::254]/latest'],
      /invalid url: .*cloud metadata/,
    ],
    [
      'a name that does not exist (resolved by the system)',
      ['http://orderflow-cli-test.invalid/hook'],
      /invalid url: orderflow-cli-test\.invalid does not resolve to any address \(ENOTFOUND\)/,
    ],
    [
      'an unknown event type',
      ['http://127.0.0.1:9/x', '--event', 'orders.placed'],
      /invalid eventTypes\[0\]: must be one of order\.placed/,
    ],
  ])('refuses %s with exit code 2 and a message naming the field', async (_what, args, message) => {
    const before = await db.webhookEndpoint.count();
    const run = await cli(['webhooks', 'add', ...args]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
    expect(await db.webhookEndpoint.count()).toBe(before);
  });

  it('applies WEBHOOK_ALLOWED_TARGETS as the API does', async () => {
    const url = 'http://10.1.2.3/hook';
    const allowed = await cli(['webhooks', 'add', url, '--json'], {
      WEBHOOK_ALLOWED_TARGETS: 'private',
    });
    expect(allowed.code, allowed.stderr).toBe(0);
    created.add(parseStdout<{ id: string }>(allowed).id);

    const refused = await cli(['webhooks', 'add', 'http://127.0.0.1:9/x'], {
      WEBHOOK_ALLOWED_TARGETS: 'public',
    });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/invalid url: .*loopback/);

    // Unset (an empty value counts as unset), the policy is public: loopback is refused.
    const byDefault = await cli(['webhooks', 'add', 'http://127.0.0.1:9/x'], {
      WEBHOOK_ALLOWED_TARGETS: '',
    });
    expect(byDefault.code).toBe(2);
    expect(byDefault.stderr).toMatch(
      /invalid url: 127\.0\.0\.1, a loopback address, which the "public"/,
    );

    // Cloud metadata stays out of reach under the most open policy.
    const metadata = await cli(['webhooks', 'add', 'http://100.100.100.200/latest'], {
      WEBHOOK_ALLOWED_TARGETS: 'private',
    });
    expect(metadata.code).toBe(2);
    expect(metadata.stderr).toMatch(/invalid url: 100\.100\.100\.200, a cloud metadata address/);
  });

  it('refuses a name that resolves to loopback under the "public" policy', async () => {
    const run = await cli(['webhooks', 'add', 'http://localhost:9/x'], {
      WEBHOOK_ALLOWED_TARGETS: 'public',
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /invalid url: localhost resolves to 127\.0\.0\.1, a loopback address/,
    );
  });

  it('refuses an endpoint beyond WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE with exit code 1, writing nothing', async () => {
    const add = await cli(['webhooks', 'add', hookUrl(), '--json']);
    expect(add.code, add.stderr).toBe(0);
    created.add(parseStdout<{ id: string }>(add).id);
    const placed = { eventTypes: { has: 'order.placed' } };
    const existing = await db.webhookEndpoint.count({ where: placed });
    const run = await cli(['webhooks', 'add', hookUrl()], {
      WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE: String(existing),
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `order.placed already has ${existing} webhook endpoints, the most allowed (WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE=${existing}); delete one first (endpoint-limit-reached)`,
    );
    expect(run.stdout).toBe('');
    expect(await db.webhookEndpoint.count({ where: placed })).toBe(existing);
  });

  it('disables and enables an endpoint, as PATCH /webhook-endpoints/{id} does', async () => {
    const add = await cli(['webhooks', 'add', hookUrl(), '--json']);
    expect(add.code, add.stderr).toBe(0);
    const { id } = parseStdout<{ id: string }>(add);
    created.add(id);
    // As deliveries leave it after failures (the count shows in the list).
    await db.webhookEndpoint.update({ where: { id }, data: { consecutiveFailures: 2 } });

    const disable = await cli(['webhooks', 'disable', id, '--json']);
    expect(disable.code, disable.stderr).toBe(0);
    expect(parseStdout(disable)).toMatchObject({
      id,
      status: 'DISABLED',
      disabledReason: 'disabled by an operator',
      consecutiveFailures: 2,
    });
    const table = await cli(['webhooks', 'list']);
    expect(table.stdout).toMatch(
      new RegExp(`^${id}\\s.*\\sno \\(disabled by an operator\\)\\s+2\\s`, 'm'),
    );

    const enable = await cli(['webhooks', 'enable', id]);
    expect(enable.code, enable.stderr).toBe(0);
    expect(enable.stderr).toContain(`webhook endpoint ${id} enabled`);
    expect(await db.webhookEndpoint.findUniqueOrThrow({ where: { id } })).toMatchObject({
      status: 'ENABLED',
      disabledReason: null,
      disabledAt: null,
      consecutiveFailures: 0,
    });

    const unknown = await cli(['webhooks', 'enable', randomUUID()]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/Webhook endpoint .* does not exist/);
    expect((await cli(['webhooks', 'disable', 'nope'])).code).toBe(2);
    // Six CLI processes: up to 15 s each on the shared 2-core machine.
  }, 180_000);

  it('exits 2 naming the id when remove gets something that is not a UUID', async () => {
    const run = await cli(['webhooks', 'remove', 'nope']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('invalid id: must be a UUID');
  });
});
