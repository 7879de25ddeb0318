/**
 * `orderflow webhooks list|add|remove` against the stack's PostgreSQL: the
 * same validation and SSRF policy as POST /webhook-endpoints, the signing
 * secret printed once at creation and never listed.
 */
import { randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { WebhookEndpointView } from '../../src/api/webhooks/endpoint-service.ts';
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
      createdAt: endpoint.createdAt,
      updatedAt: endpoint.updatedAt,
    });
    expect(listed.stdout).not.toContain('whsec_');
    expect(items.every((i) => !('secret' in i))).toBe(true);

    const table = await cli(['webhooks', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+URL\s+EVENTS\s+ENABLED\s+CREATED$/m);
    expect(table.stdout).toMatch(
      new RegExp(
        `^${endpoint.id}\\s+${url.replace(/[.]/g, '\\.')}\\s+order\\.placed\\s+yes\\s+${endpoint.createdAt}$`,
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
    ['the metadata address', ['http://169.254.169.254/latest'], /invalid url: .*link-local/],
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
  });

  it('exits 2 naming the id when remove gets something that is not a UUID', async () => {
    const run = await cli(['webhooks', 'remove', 'nope']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('invalid id: must be a UUID');
  });
});
