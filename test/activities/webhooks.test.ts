import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, inject, it } from 'vitest';
import {
  WEBHOOK_USER_AGENT,
  createWebhookActivities,
  type WebhookActivityDeps,
} from '../../src/activities/webhooks.ts';
import { createOrderRecordActivities } from '../../src/activities/order-records.ts';
import { orderPlacedEventId, webhookMessageId } from '../../src/shared/events.ts';
import { FailureType, ORDER_PLACED } from '../../src/shared/steps.ts';
import {
  LOGGED_BODY_CHARS,
  bodyForLog,
  parseRetryAfter,
} from '../../src/webhooks/http-delivery.ts';
import { LATE_TOLERANCE_MS, createRateGate, type RateGate } from '../../src/webhooks/rate-gate.ts';
import {
  checkWebhookTarget,
  classifyAddress,
  guardedLookup,
  isAllowedAddress,
  refusalOfUrl,
  type Resolver,
  type TargetPolicy,
} from '../../src/webhooks/ssrf-guard.ts';
import { useWebhookFixture } from '../support/webhook-fixture.ts';
import { startWebhookReceiver } from '../support/webhook-receiver.ts';
import { mostInWindow } from '../support/windows.ts';

const fx = useWebhookFixture(inject('stack').DATABASE_URL);

beforeEach(() => {
  fx.receiver.reset();
  logs.length = 0;
});

const createOrder = () =>
  fx.createOrder({
    customerEmail: 'hook@example.com',
    totalCents: 2599n,
    items: [
      { line: 1, sku: 'SKU-1', quantity: 2, unitPriceCents: 1250n },
      { line: 2, sku: 'SKU-2', quantity: 1, unitPriceCents: 99n },
    ],
  });
const createEndpoint = fx.createEndpoint;

/** What activities logged (kept out of the test output). */
const logs: LogEntry[] = [];
const logger = new DefaultLogger('INFO', (entry) => logs.push(entry));

/** Runs `body` in a mock activity context (as the worker would run the activity). */
const runActivity = <R>(body: () => Promise<R>) =>
  new MockActivityEnvironment(undefined, { logger }).run<[], R, () => Promise<R>>(body);

const activities = (deps: Partial<WebhookActivityDeps> = {}) =>
  createWebhookActivities({ db: fx.db, timeoutMs: 2000, allowedTargets: 'loopback', ...deps });

/** One order, one endpoint and a function that runs one delivery attempt as an activity. */
async function fixture(deps: Partial<WebhookActivityDeps> = {}, endpointUrl?: string) {
  const order = await createOrder();
  const endpoint = await createEndpoint({ url: endpointUrl });
  const input = { orderId: order.id, endpointId: endpoint.id, eventType: ORDER_PLACED };
  const acts = activities(deps);
  return {
    order,
    endpoint,
    webhookId: webhookMessageId(orderPlacedEventId(order.id), endpoint.id),
    deliver: () => runActivity(() => acts.deliverWebhook(input)),
    row: () => fx.db.webhookDelivery.findUnique({ where: { orderId_endpointId_eventType: input } }),
  };
}

/** The ApplicationFailure an attempt failed with. */
async function failureOf(attempt: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await attempt.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe('deliverWebhook', () => {
  it('sends an order.placed webhook that the Standard Webhooks library verifies', async () => {
    const f = await fixture();
    const result = await f.deliver();
    expect(result).toEqual({ webhookId: f.webhookId, status: 204, alreadyDelivered: false });
    const [req] = await fx.receiver.waitForRequests(1);
    expect(req!.verified).toBe(true);
    expect(req!.path).toBe(`/hooks/${f.endpoint.id}`);
    expect(req!.headers).toMatchObject({
      'webhook-id': f.webhookId,
      'content-type': 'application/json',
      'user-agent': WEBHOOK_USER_AGENT,
    });
    expect(req!.payload).toEqual({
      type: ORDER_PLACED,
      timestamp: f.order.createdAt.toISOString(),
      data: {
        orderId: f.order.id,
        customerEmail: 'hook@example.com',
        currency: 'EUR',
        totalCents: 2599,
        items: [
          { sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 },
          { sku: 'SKU-2', quantity: 1, unitPriceCents: 99 },
        ],
        placedAt: f.order.createdAt.toISOString(),
      },
    });
    expect(logs.find((l) => l.message === 'webhook delivered')?.meta).toMatchObject({
      orderId: f.order.id,
      webhookId: f.webhookId,
      status: 204,
    });
  });

  it('keeps the webhook-id and body across attempts while webhook-timestamp is each attempt’s, and counts both in the delivery log', async () => {
    let offsetMs = -120_000;
    const f = await fixture({ now: () => new Date(Date.now() + offsetMs) });
    fx.receiver.respondWith({ status: 500, body: 'database is down' });
    const first = await failureOf(f.deliver());
    expect([first.type, first.nonRetryable]).toEqual([FailureType.WebhookUnavailable, false]);
    expect(first.nextRetryDelay).toBeUndefined();
    expect(await f.row()).toMatchObject({
      attempts: 1,
      lastStatus: 500,
      lastError: 'HTTP 500 Internal Server Error (receiver unavailable, retried)',
      deliveredAt: null,
    });

    offsetMs = 0;
    expect(await f.deliver()).toMatchObject({ status: 204, alreadyDelivered: false });
    const [a, b] = await fx.receiver.waitForRequests(2);
    expect(a!.verified && b!.verified).toBe(true);
    expect(b!.headers['webhook-id']).toBe(a!.headers['webhook-id']);
    expect(b!.body).toBe(a!.body);
    const delta = Number(b!.headers['webhook-timestamp']) - Number(a!.headers['webhook-timestamp']);
    expect(delta).toBeGreaterThanOrEqual(119);
    expect(delta).toBeLessThanOrEqual(122);
    expect(b!.headers['webhook-signature']).not.toBe(a!.headers['webhook-signature']);
    const row = await f.row();
    expect(row).toMatchObject({
      webhookId: f.webhookId,
      attempts: 2,
      lastStatus: 204,
      lastError: null,
    });
    expect(row!.deliveredAt).toBeInstanceOf(Date);
  });

  it('does not send a delivered webhook again: alreadyDelivered and no second request', async () => {
    const f = await fixture();
    await f.deliver();
    await fx.receiver.waitForRequests(1);
    expect(await f.deliver()).toEqual({
      webhookId: f.webhookId,
      status: 204,
      alreadyDelivered: true,
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(fx.receiver.requests).toHaveLength(1);
    expect((await f.row())!.attempts).toBe(1);
  });

  it('retries a 429 after exactly its Retry-After seconds', async () => {
    const f = await fixture();
    fx.receiver.respondWith({ status: 429, headers: { 'Retry-After': '7' } });
    const failure = await failureOf(f.deliver());
    expect(failure.type).toBe(FailureType.WebhookUnavailable);
    expect(failure.nonRetryable).toBe(false);
    expect(failure.nextRetryDelay).toBe(7000);
  });

  it('retries a 503 at the HTTP-date of its Retry-After', async () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const f = await fixture({ now: () => now });
    const at = new Date(now.getTime() + 30_000).toUTCString();
    fx.receiver.respondWith({ status: 503, headers: { 'Retry-After': at } });
    const failure = await failureOf(f.deliver());
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.WebhookUnavailable, false]);
    expect(failure.nextRetryDelay).toBe(30_000);
  });

  it('retries a 408 with the retry policy’s own backoff', async () => {
    const f = await fixture();
    fx.receiver.respondWith({ status: 408, headers: { 'Retry-After': '7' } });
    const failure = await failureOf(f.deliver());
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.WebhookUnavailable, false]);
    expect(failure.nextRetryDelay).toBeUndefined();
  });

  it('rejects a 404 for good (WebhookRejected): the log and the failure say the status and verdict, never the body, which is only logged truncated and sanitized', async () => {
    const f = await fixture();
    const body = `root:x:0:0\u001b[2J\r\nFAKE LOG LINE level=error\u202e${'x'.repeat(20_000)}`;
    fx.receiver.respondWith({ status: 404, body });
    const failure = await failureOf(f.deliver());
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.WebhookRejected, true]);
    expect(failure.message).toBe(
      `Webhook endpoint ${f.endpoint.id} answered HTTP 404 Not Found (rejected, not retried)`,
    );
    expect(await f.row()).toMatchObject({
      attempts: 1,
      lastStatus: 404,
      lastError: 'HTTP 404 Not Found (rejected, not retried)',
      deliveredAt: null,
    });
    const logged = logs.find((l) => l.message === 'webhook refused')?.meta as { body: string };
    expect(logged).toMatchObject({ endpointId: f.endpoint.id, status: 404, verdict: 'reject' });
    expect(logged.body.startsWith('root:x:0:0 [2J FAKE LOG LINE level=error x')).toBe(true);
    expect(logged.body).not.toMatch(/[\p{Cc}\p{Cf}]/u);
    expect(logged.body.length).toBeLessThanOrEqual(LOGGED_BODY_CHARS + ' characters)'.length + 10);
  });

  it('disables the endpoint after N permanent failures in a row (the Nth is EndpointDisabled, so the order skips it); a delivery starts the count again', async () => {
    const acts = activities({ disableAfterFailures: 3 });
    const endpoint = await createEndpoint();
    const attempt = async () => {
      const order = await createOrder();
      const input = { orderId: order.id, endpointId: endpoint.id, eventType: ORDER_PLACED };
      return runActivity(() => acts.deliverWebhook(input));
    };
    const failures = async () =>
      (await fx.db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpoint.id } }))
        .consecutiveFailures;

    fx.receiver.respondWith({ status: 404 }, { status: 400 }, { status: 204 });
    expect((await failureOf(attempt())).type).toBe(FailureType.WebhookRejected);
    expect((await failureOf(attempt())).type).toBe(FailureType.WebhookRejected);
    expect(await failures()).toBe(2);
    expect((await attempt()).status).toBe(204);
    expect(await failures()).toBe(0);

    // Retryable failures neither count nor reset.
    fx.receiver.respondWith({ status: 422 }, { status: 503 }, { status: 403 }, { status: 404 });
    expect((await failureOf(attempt())).type).toBe(FailureType.WebhookRejected);
    expect((await failureOf(attempt())).type).toBe(FailureType.WebhookUnavailable);
    expect((await failureOf(attempt())).type).toBe(FailureType.WebhookRejected);
    const third = await failureOf(attempt());
    expect([third.type, third.nonRetryable]).toEqual([FailureType.EndpointDisabled, true]);
    expect(third.message).toMatch(
      /answered HTTP 404 Not Found \(rejected, not retried\); the endpoint is disabled after 3 permanent failures in a row$/,
    );
    const row = await fx.db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpoint.id } });
    expect(row).toMatchObject({ status: 'DISABLED', consecutiveFailures: 3 });
    expect(row.disabledAt).toBeInstanceOf(Date);
    expect(row.disabledReason).toMatch(
      /^3 permanent failures in a row; the last at .* \(webhook msg_[\w-]+\): HTTP 404 Not Found \(rejected, not retried\)$/,
    );
    expect(logs.some((l) => l.message.startsWith('webhook endpoint disabled'))).toBe(true);

    // Later deliveries skip it without a request.
    const sent = fx.receiver.requests.length;
    expect((await failureOf(attempt())).type).toBe(FailureType.EndpointDisabled);
    expect(fx.receiver.requests).toHaveLength(sent);
  });

  it('disables the endpoint on 410 Gone (EndpointGone) and refuses later deliveries to it', async () => {
    const f = await fixture();
    fx.receiver.respondWith({ status: 410 });
    const failure = await failureOf(f.deliver());
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.EndpointGone, true]);
    const endpoint = await fx.db.webhookEndpoint.findUniqueOrThrow({
      where: { id: f.endpoint.id },
    });
    expect(endpoint.status).toBe('DISABLED');
    expect(endpoint.disabledReason).toMatch(/410 Gone/);
    expect(endpoint.disabledAt).toBeInstanceOf(Date);
    const again = await failureOf(f.deliver());
    expect([again.type, again.nonRetryable]).toEqual([FailureType.EndpointDisabled, true]);
    expect(fx.receiver.requests).toHaveLength(1);
  });

  it('does not follow a 302 redirect: WebhookRejected and one request only', async () => {
    const f = await fixture();
    fx.receiver.respondWith({ status: 302, headers: { Location: `${fx.receiver.url}/elsewhere` } });
    const failure = await failureOf(f.deliver());
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.WebhookRejected, true]);
    await new Promise((r) => setTimeout(r, 100));
    expect(fx.receiver.requests.map((r) => r.path)).toEqual([`/hooks/${f.endpoint.id}`]);
  });

  it('gives up an attempt after timeoutMs and leaves it to be retried', async () => {
    const f = await fixture({ timeoutMs: 300 });
    fx.receiver.respondWith({ status: 200, delayMs: 2000 });
    const started = Date.now();
    const failure = await failureOf(f.deliver());
    expect(Date.now() - started).toBeLessThan(1500);
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.WebhookUnavailable, false]);
    expect(failure.message).toMatch(/timed out/);
    expect(await f.row()).toMatchObject({ attempts: 1, lastStatus: null, deliveredAt: null });
  });

  it('retries when the receiver is unreachable (connection refused)', async () => {
    const closed = await startWebhookReceiver({ secret: fx.secret });
    await closed.close();
    const f = await fixture({}, `${closed.url}/gone`);
    const failure = await failureOf(f.deliver());
    expect([failure.type, failure.nonRetryable]).toEqual([FailureType.WebhookUnavailable, false]);
    expect((await f.row())!.lastError).toBe('network error (ECONNREFUSED)');
  });

  it('refuses a loopback target under the "public" policy (TargetForbidden) without sending anything', async () => {
    const literal = await fixture({ allowedTargets: 'public' });
    const byIp = await failureOf(literal.deliver());
    expect([byIp.type, byIp.nonRetryable]).toEqual([FailureType.TargetForbidden, true]);
    expect(byIp.message).toMatch(/127\.0\.0\.1, a loopback address/);

    // By name: the check runs on the address DNS returns, inside the socket's lookup.
    const port = new URL(fx.receiver.url).port;
    const named = await fixture({ allowedTargets: 'public' }, `http://localhost:${port}/named`);
    const byName = await failureOf(named.deliver());
    expect([byName.type, byName.nonRetryable]).toEqual([FailureType.TargetForbidden, true]);
    expect(byName.message).toMatch(/localhost resolves to/);

    await new Promise((r) => setTimeout(r, 100));
    expect(fx.receiver.requests).toHaveLength(0);
    expect((await named.row())!.lastError).toMatch(/refuses/);
  });

  it('checks the addresses DNS gives at connect time: a name that rebinds to a forbidden address sends nothing and counts against the endpoint', async () => {
    const port = new URL(fx.receiver.url).port;
    let answer = ['127.0.0.1'];
    const asked: string[] = [];
    const resolve: Resolver = async (host) => {
      asked.push(host);
      return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
    const url = `http://rebind.attacker.test:${port}/hooks/rebind`;
    const first = await fixture({ resolve }, url);
    // The answer it was checked against is the address it connects to.
    expect((await first.deliver()).status).toBe(204);
    expect(fx.receiver.requests.map((r) => r.path)).toEqual(['/hooks/rebind']);

    for (const rebound of [['169.254.169.254'], ['fd00:ec2::254'], ['127.0.0.1', '10.0.0.9']]) {
      answer = rebound;
      const f = await fixture({ resolve }, url);
      const refused = await failureOf(f.deliver());
      expect([refused.type, refused.nonRetryable]).toEqual([FailureType.TargetForbidden, true]);
      expect(refused.message).toMatch(/^rebind\.attacker\.test resolves to /);
      expect((await f.row())!.lastError).toBe(refused.message);
      expect(
        (await fx.db.webhookEndpoint.findUniqueOrThrow({ where: { id: f.endpoint.id } }))
          .consecutiveFailures,
      ).toBe(1);
    }
    expect(asked.every((h) => h === 'rebind.attacker.test')).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(fx.receiver.requests).toHaveLength(1);
  });

  it('fails for good when the order or the endpoint is gone', async () => {
    const acts = activities();
    const endpoint = await createEndpoint();
    const noOrder = await failureOf(
      runActivity(() =>
        acts.deliverWebhook({
          orderId: randomUUID(),
          endpointId: endpoint.id,
          eventType: ORDER_PLACED,
        }),
      ),
    );
    expect([noOrder.type, noOrder.nonRetryable]).toEqual([FailureType.OrderNotFound, true]);
    const order = await createOrder();
    const noEndpoint = await failureOf(
      runActivity(() =>
        acts.deliverWebhook({
          orderId: order.id,
          endpointId: randomUUID(),
          eventType: ORDER_PLACED,
        }),
      ),
    );
    expect([noEndpoint.type, noEndpoint.nonRetryable]).toEqual([
      FailureType.EndpointDisabled,
      true,
    ]);
    expect(fx.receiver.requests).toHaveLength(0);
  });
});

describe('the webhook rate gate', () => {
  /** A gate of its own per test (its row is created on first use), shared by `workers` activity sets. */
  const gateName = () => `test-${randomUUID()}`;
  /** As the worker runs an attempt: a 30 s start-to-close timeout. */
  const runAttempt = <R>(body: () => Promise<R>) =>
    new MockActivityEnvironment({ startToCloseTimeoutMs: 30_000 }, { logger }).run<
      [],
      R,
      () => Promise<R>
    >(body);

  it('spaces the sends of concurrent deliveries from several workers to the rate, as the receiver sees them', async () => {
    const rate = 20;
    const name = gateName();
    // Three "workers": activity sets with a gate each, on the same row.
    const gates = [0, 1, 2].map(() => createRateGate(fx.db, rate, name));
    const workersGate = gates[0]!;
    const workers = gates.map((rateGate) => activities({ rateGate }));
    const endpoint = await createEndpoint();
    const orders = await Promise.all(Array.from({ length: 45 }, () => createOrder()));
    const t0 = Date.now();
    const results = await Promise.all(
      orders.map((o, i) =>
        runAttempt(() =>
          workers[i % 3]!.deliverWebhook({
            orderId: o.id,
            endpointId: endpoint.id,
            eventType: ORDER_PLACED,
          }),
        ),
      ),
    );
    expect(results.every((r) => r.status === 204 && !r.alreadyDelivered)).toBe(true);
    const arrivals = fx.receiver.requests.map((r) => r.receivedAt.getTime());
    expect(arrivals).toHaveLength(45);
    expect(mostInWindow(arrivals, 1000)).toBeLessThanOrEqual(rate);
    // Evenly spaced, not 20 at once and 20 a second later: no 200 ms holds more than 5.
    expect(mostInWindow(arrivals, 200)).toBeLessThanOrEqual(5);
    // 45 sends, each within the tolerance after its reserved time, reserved 1.05/20 s apart.
    const span = Math.max(...arrivals) - Math.min(...arrivals);
    expect(span).toBeGreaterThanOrEqual(44 * workersGate.spacingMs - LATE_TOLERANCE_MS);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('takes no turn further away than the attempt can wait: a retryable WebhookThrottled after the gate is free, nothing sent', async () => {
    const gate = createRateGate(fx.db, 0.5, gateName()); // one send per 2.25 s
    const first = await fixture({ rateGate: gate });
    const second = await fixture({ rateGate: gate });
    // The mock attempt's start-to-close timeout (1 s) is below the request timeout: no waiting.
    expect((await first.deliver()).status).toBe(204);
    const throttled = await failureOf(second.deliver());
    expect([throttled.type, throttled.nonRetryable]).toEqual([FailureType.WebhookThrottled, false]);
    expect(throttled.nextRetryDelay).toBeGreaterThan(gate.spacingMs - 500);
    expect(throttled.nextRetryDelay).toBeLessThanOrEqual(gate.spacingMs + 100);
    expect(fx.receiver.requests).toHaveLength(1);
    // Nothing was reserved by the refused attempt: the next turn is still the one after the first send.
    const again = await gate.reserve(5000);
    expect(again.kind).toBe('reserved');
    expect(again.kind === 'reserved' && again.waitMs).toBeLessThanOrEqual(gate.spacingMs + 100);
  });

  it('gives up a send time it woke up too late for and reserves another: never a burst after a stall', async () => {
    const gate = createRateGate(fx.db, 10, gateName());
    expect((await gate.reserve(0)).kind).toBe('reserved'); // the next time is 112.5 ms away
    const sleeps: number[] = [];
    let stalls = 1;
    const t0 = performance.now();
    const got = await gate.acquire({
      maxWaitMs: 5000,
      // The first wake-up comes 300 ms late, as for a process starved of CPU.
      sleep: async (ms) => {
        sleeps.push(ms);
        await new Promise((r) => setTimeout(r, ms + (stalls-- > 0 ? 300 : 0)));
      },
    });
    expect(got.kind).toBe('acquired');
    expect(got.kind === 'acquired' && got.late).toBe(1);
    // It slept once, woke 300 ms late, gave that time up and took the next free one (now).
    expect(sleeps).toHaveLength(1);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(400);
  });

  it('sends nothing on a connection that came up too late for its send time, and takes another', async () => {
    const real = createRateGate(fx.db, 50, gateName());
    let checks = 0;
    // The first connection is judged late at the last check before writing.
    const gate: RateGate = {
      ...real,
      acquire: async (opts) => {
        const turn = await real.acquire(opts);
        return turn.kind === 'acquired' ? { ...turn, onTime: () => ++checks > 1 } : turn;
      },
    };
    const f = await fixture();
    const acts = activities({ rateGate: gate });
    const input = { orderId: f.order.id, endpointId: f.endpoint.id, eventType: ORDER_PLACED };
    const result = await runAttempt(() => acts.deliverWebhook(input));
    expect(result.status).toBe(204);
    expect(checks).toBe(2);
    expect(fx.receiver.requests).toHaveLength(1);
    expect((await f.row())!.attempts).toBe(1);
  });

  it('gives the attempt up as WebhookThrottled after five missed send times, nothing sent', async () => {
    const real = createRateGate(fx.db, 50, gateName());
    const gate: RateGate = {
      ...real,
      acquire: async (opts) => {
        const turn = await real.acquire(opts);
        return turn.kind === 'acquired' ? { ...turn, onTime: () => false } : turn;
      },
    };
    const f = await fixture();
    const acts = activities({ rateGate: gate });
    const input = { orderId: f.order.id, endpointId: f.endpoint.id, eventType: ORDER_PLACED };
    const failed = await failureOf(runAttempt(() => acts.deliverWebhook(input)));
    expect([failed.type, failed.nonRetryable]).toEqual([FailureType.WebhookThrottled, false]);
    expect(fx.receiver.requests).toHaveLength(0);
  });

  it('reserves times (1 s + 25 ms + the margin)/rate apart: any rate + 1 of them span 1 s + the margin', async () => {
    for (const [marginMs, spacingMs] of [
      [undefined, 112.5], // the default margin, 100 ms
      [0, 102.5],
      [300, 132.5],
    ] as const) {
      const gate = createRateGate(fx.db, 10, gateName(), { marginMs });
      expect(gate.spacingMs).toBe(spacingMs);
      const times: number[] = [];
      for (let i = 0; i < 11; i++) {
        const turn = await gate.reserve(5000);
        if (turn.kind !== 'reserved') throw new Error(`turn ${i} not reserved: ${turn.kind}`);
        times.push(turn.atMs);
      }
      // Reserved on the database's clock: each exactly one spacing after the one before.
      for (let i = 1; i < times.length; i++)
        expect(times[i]! - times[i - 1]!).toBeCloseTo(spacingMs, 3);
      expect(times[10]! - times[0]! - LATE_TOLERANCE_MS).toBeCloseTo(1000 + (marginMs ?? 100), 3);
    }
  });

  it('refuses a rate that is not positive, and a negative margin', () => {
    expect(() => createRateGate(fx.db, 0)).toThrow(/rate must be positive/);
    expect(() => createRateGate(fx.db, 1, 'x', { marginMs: -1 })).toThrow(
      /margin must be 0 or more/,
    );
  });
});

describe('webhookTargets', () => {
  it('returns the enabled endpoints subscribed to the event type, sorted by id', async () => {
    const subscribed = await Promise.all([createEndpoint(), createEndpoint(), createEndpoint()]);
    const disabled = await createEndpoint({ status: 'DISABLED' });
    const other = await createEndpoint({ eventTypes: ['order.cancelled'] });
    const order = await createOrder();
    const targets = await runActivity(() =>
      activities().webhookTargets({
        orderId: order.id,
        eventType: ORDER_PLACED,
      }),
    );
    expect(targets).toEqual([...targets].sort());
    const mine = new Set([...subscribed, disabled, other].map((e) => e.id));
    expect(targets.filter((id) => mine.has(id))).toEqual(subscribed.map((e) => e.id).sort());
  });
});

describe('beginOrderProcessing', () => {
  it('marks the order PROCESSING and returns the same sorted subscribers as webhookTargets', async () => {
    const subscribed = await Promise.all([createEndpoint(), createEndpoint()]);
    const disabled = await createEndpoint({ status: 'DISABLED' });
    const order = await createOrder();
    await fx.db.order.update({
      where: { id: order.id },
      data: { failedStep: 'webhooks', lastError: 'left over' },
    });
    const records = createOrderRecordActivities({ db: fx.db });
    const targets = await runActivity(() =>
      records.beginOrderProcessing({ orderId: order.id, eventType: ORDER_PLACED }),
    );
    expect(targets).toEqual(
      await runActivity(() =>
        activities().webhookTargets({ orderId: order.id, eventType: ORDER_PLACED }),
      ),
    );
    const mine = new Set([...subscribed, disabled].map((e) => e.id));
    expect(targets!.filter((id) => mine.has(id))).toEqual(subscribed.map((e) => e.id).sort());
    const row = await fx.db.order.findUniqueOrThrow({ where: { id: order.id } });
    expect(row).toMatchObject({ status: 'PROCESSING', failedStep: null, lastError: null });
    expect(row.updatedAt.getTime()).toBeGreaterThan(order.updatedAt.getTime());
  });

  it('still returns the subscribers when the order row is missing, and writes no row', async () => {
    const subscribed = await createEndpoint();
    const orderId = randomUUID();
    const targets = await runActivity(() =>
      createOrderRecordActivities({ db: fx.db }).beginOrderProcessing({
        orderId,
        eventType: ORDER_PLACED,
      }),
    );
    expect(targets).toContain(subscribed.id);
    expect(await fx.db.order.findUnique({ where: { id: orderId } })).toBeNull();
  });
});

describe('SSRF guard', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['100.100.100.200', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['fd00:ec2::23', 'metadata'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['::ffff:10.0.0.1', 'private'],
    ['64:ff9b::a00:1', 'private'],
    ['2002:c0a8:101::1', 'private'],
    ['8.8.8.8', 'public'],
    ['172.32.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
  ])('classifies %s as %s', (ip, cls) => {
    expect(classifyAddress(ip)).toBe(cls);
  });

  it('allows per policy: public only public; loopback adds loopback; private adds private; never metadata or link-local', () => {
    const allowed = (policy: TargetPolicy) =>
      [
        '8.8.8.8',
        '127.0.0.1',
        '::1',
        '10.0.0.1',
        'fc00::1',
        '169.254.169.254',
        'fd00:ec2::254',
        '100.100.100.200',
        '::ffff:a9fe:a9fe',
        '169.254.1.1',
        'fe80::1',
        '0.0.0.0',
        '224.0.0.1',
      ].filter((ip) => isAllowedAddress(ip, policy));
    expect(allowed('public')).toEqual(['8.8.8.8']);
    expect(allowed('loopback')).toEqual(['8.8.8.8', '127.0.0.1', '::1']);
    expect(allowed('private')).toEqual(['8.8.8.8', '127.0.0.1', '::1', '10.0.0.1', 'fc00::1']);
  });

  it('refuses literal private hosts at registration and leaves names to delivery', () => {
    expect(refusalOfUrl('http://10.0.0.1/x', 'loopback')).toMatch(/private address/);
    expect(refusalOfUrl('http://[::1]:8080/x', 'public')).toMatch(/loopback/);
    expect(refusalOfUrl('http://[::ffff:169.254.169.254]/', 'private')).toMatch(
      /a cloud metadata address, which webhooks may never reach/,
    );
    expect(refusalOfUrl('http://[fd00:ec2::254]/', 'private')).toMatch(/cloud metadata/);
    expect(refusalOfUrl('http://100.100.100.200/', 'private')).toMatch(/cloud metadata/);
    expect(refusalOfUrl('http://localhost:3000/', 'public')).toMatch(/loopback/);
    expect(refusalOfUrl('http://127.0.0.1:3000/', 'loopback')).toBeUndefined();
    expect(refusalOfUrl('https://hooks.example.com/x', 'public')).toBeUndefined();
  });

  it('guards DNS answers in the lookup the socket uses', async () => {
    const lookupWith = (addresses: string[], all: boolean) =>
      new Promise<unknown>((resolve, reject) => {
        const lookup = guardedLookup('public', async () =>
          addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
        );
        lookup('hooks.example.com', { all }, (err, address, family) =>
          err ? reject(err) : resolve(all ? address : [address, family]),
        );
      });
    await expect(lookupWith(['93.184.216.34'], false)).resolves.toEqual(['93.184.216.34', 4]);
    await expect(lookupWith(['93.184.216.34', '2606:2800::1'], true)).resolves.toHaveLength(2);
    // A rebinding answer that mixes a public and a private address is refused outright.
    await expect(lookupWith(['93.184.216.34', '10.0.0.7'], true)).rejects.toThrow(
      /hooks\.example\.com resolves to 10\.0\.0\.7, a private address/,
    );
  });

  it('gives up a registration lookup after its time limit as a failure for now, not a refusal', async () => {
    const never: Resolver = () => new Promise(() => {});
    const started = Date.now();
    expect(await checkWebhookTarget('https://slow.attacker.test/', 'public', never, 50)).toEqual({
      kind: 'lookup-failed',
      message: 'the DNS lookup of slow.attacker.test failed (ETIMEOUT)',
    });
    expect(Date.now() - started).toBeLessThan(1000);
    // A name DNS cannot carry (over 253 characters) is the URL's fault, not a failure for now.
    const longLabel = Array.from({ length: 5 }, () => 'a'.repeat(63)).join('.');
    expect(await checkWebhookTarget(`https://${longLabel}/`, 'public')).toEqual({
      kind: 'unresolvable',
      message: `${longLabel} does not resolve to any address (EINVAL)`,
    });
    const empty: Resolver = async () => [];
    expect(await checkWebhookTarget('https://empty.attacker.test/', 'public', empty)).toEqual({
      kind: 'unresolvable',
      message: 'empty.attacker.test does not resolve to any address',
    });
  });

  it('keeps a log excerpt of a body short and free of control characters', () => {
    expect(bodyForLog('  not\nfound\t\u0007 ')).toBe('not found');
    expect(bodyForLog('\u202egnp.exe')).toBe('gnp.exe');
    const long = bodyForLog('é'.repeat(LOGGED_BODY_CHARS + 50));
    expect(long).toBe(`${'é'.repeat(LOGGED_BODY_CHARS)}… (${LOGGED_BODY_CHARS + 50} characters)`);
  });

  it('reads Retry-After as delta-seconds or an HTTP-date', () => {
    const now = new Date('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:01:00 GMT', now)).toBe(60_000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:00:00 GMT', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
