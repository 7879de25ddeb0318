/**
 * A subscriber's blast radius, on the real stack (API, workers, Temporal,
 * PostgreSQL, a signature-verifying receiver on loopback): an endpoint that
 * keeps refusing is disabled after WEBHOOK_DISABLE_AFTER_FAILURES (5)
 * permanent failures in a row, later orders skip it and complete, operators
 * see it (API, CLI, /metrics) and enable it again; the receiver's response
 * body reaches no API caller and no CLI output.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { WebhookEndpointView } from '../../src/webhooks/endpoints.ts';
import type { OrderStatus } from '../../src/shared/orders.ts';
import { placeStartedOrder, validOrder, type Body, type TestApi } from '../support/api.ts';
import { startInlineApp, waitForRowStatus } from '../support/inline-app.ts';
import type { startOrdersWorker } from '../support/orders-worker.ts';
import { cli, parseStdout } from '../cli/run-cli.ts';
import { subscribeAlone, type Subscriber } from '../e2e/subscriber.ts';

const stack = inject('stack');
/** What the receiver answers with its 404s: nothing of it may reach an API caller or the CLI. */
const SECRET_BODY = `root:x:0:0 internal-token=${randomUUID()}`;
const REFUSED = 'HTTP 404 Not Found (rejected, not retried)';

let api: TestApi;
let worker: Awaited<ReturnType<typeof startOrdersWorker>>;
let subscriber: Subscriber;
const orders: string[] = [];

async function get(path: string): Promise<{ status: number; text: string; body: Body }> {
  const res = await fetch(`${api.url}${path}`);
  const text = await res.text();
  return { status: res.status, text, body: text ? (JSON.parse(text) as Body) : {} };
}

const settle = (orderId: string, statuses: OrderStatus[]) =>
  waitForRowStatus(api, orderId, statuses, 45_000);

/** Places an order (inline start) and waits until it parks or completes. */
async function placeAndSettle(): Promise<{ id: string; status: OrderStatus }> {
  const id = await placeStartedOrder(api, {
    ...validOrder(),
    customerEmail: `blast-${randomUUID()}@example.com`,
  });
  orders.push(id);
  return { id, status: await settle(id, ['PARKED', 'COMPLETED']) };
}

beforeAll(async () => {
  ({ api, worker } = await startInlineApp(stack));
  subscriber = await subscribeAlone(api);
}, 120_000);

afterAll(async () => {
  await subscriber?.close();
  await worker?.stop();
  await api?.close();
});

describe('a subscriber that keeps refusing', () => {
  it('parks 4 orders, is disabled by the 5th refusal, and later orders skip it and complete; bodies never reach callers', async () => {
    const { receiver, endpointId } = subscriber;
    receiver.respondWith(...Array.from({ length: 10 }, () => ({ status: 404, body: SECRET_BODY })));

    // One at a time, so each refusal is counted before the next order asks.
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await placeAndSettle());
    expect(results.map((r) => r.status)).toEqual([
      'PARKED',
      'PARKED',
      'PARKED',
      'PARKED',
      'COMPLETED', // its refusal disabled the endpoint: skipped, not parked
      'COMPLETED', // the endpoint is disabled: not even asked
    ]);
    expect(receiver.requests).toHaveLength(5);

    // The endpoint as operators see it: API, CLI and /metrics.
    const endpoint = await get(`/webhook-endpoints/${endpointId}`);
    expect(endpoint.status).toBe(200);
    expect(endpoint.body).toMatchObject({
      status: 'DISABLED',
      consecutiveFailures: 5,
      disabledAt: expect.any(String),
    });
    expect(endpoint.body.disabledReason).toMatch(/^5 permanent failures in a row; the last at /);
    expect(endpoint.body.disabledReason).toContain(REFUSED);
    const listed = await cli(['webhooks', 'list', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(parseStdout<WebhookEndpointView[]>(listed).find((e) => e.id === endpointId)).toEqual(
      endpoint.body,
    );
    const table = await cli(['webhooks', 'list']);
    expect(table.stdout).toMatch(
      new RegExp(`^${endpointId}\\s.*\\sno \\(5 permanent failures in a row.*\\s5\\s`, 'm'),
    );
    const metrics = await (await fetch(`${api.url}/metrics`)).text();
    expect(metrics).toMatch(/^orderflow_webhook_endpoints\{status="DISABLED"\} [1-9]/m);

    // What callers read about the parked orders: our classification, never the receiver's body.
    const parked = results[0]!.id;
    const order = await get(`/orders/${parked}`);
    expect(order.body).toMatchObject({ status: 'PARKED', failedStep: 'webhooks' });
    expect(order.body.lastError).toContain(`answered ${REFUSED}`);
    const deliveries = await get(`/orders/${parked}/webhook-deliveries`);
    expect(deliveries.body.items).toEqual([
      expect.objectContaining({ endpointId, lastStatus: 404, lastError: REFUSED, attempts: 1 }),
    ]);
    const shown = await cli(['orders', 'show', parked, '--json']);
    const parkedList = await cli(['orders', 'list', '--status', 'PARKED', '--json']);
    for (const text of [
      order.text,
      deliveries.text,
      endpoint.text,
      listed.stdout,
      table.stdout,
      shown.stdout,
      shown.stderr,
      parkedList.stdout,
    ])
      expect(text).not.toContain('internal-token');
  }, 180_000);

  it('is enabled again with PATCH: retried parked orders and new ones deliver to it', async () => {
    const { receiver, endpointId } = subscriber;
    receiver.reset(); // answers 204 from now on
    const enabled = await fetch(`${api.url}/webhook-endpoints/${endpointId}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ status: 'ENABLED' }),
    });
    expect(enabled.status).toBe(200);
    expect(await enabled.json()).toMatchObject({
      id: endpointId,
      status: 'ENABLED',
      disabledReason: null,
      disabledAt: null,
      consecutiveFailures: 0,
    });

    const parked = orders[0]!;
    const retry = await fetch(`${api.url}/orders/${parked}/retry`, { method: 'POST' });
    expect(retry.status).toBe(202);
    expect(await settle(parked, ['COMPLETED'])).toBe('COMPLETED');
    const [delivery] = await receiver.waitForRequests(1);
    expect(delivery!.verified).toBe(true);

    // A new order delivers too.
    expect((await placeAndSettle()).status).toBe('COMPLETED');
    await receiver.waitForRequests(2);
    expect((await get(`/webhook-endpoints/${endpointId}`)).body).toMatchObject({
      status: 'ENABLED',
      consecutiveFailures: 0,
    });

    // The rest of the parked orders: retried, they deliver and complete.
    for (const id of orders.slice(1, 4)) {
      expect((await fetch(`${api.url}/orders/${id}/retry`, { method: 'POST' })).status).toBe(202);
      expect(await settle(id, ['COMPLETED'])).toBe('COMPLETED');
    }
  }, 180_000);
});
