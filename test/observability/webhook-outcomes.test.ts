/**
 * orderflow_webhook_deliveries_total counts each delivery attempt by how it
 * ended: the deliverWebhook activity (in a mock activity context, as the
 * worker runs it) against PostgreSQL and a real receiver that answers 204,
 * 503, 400 and 410, a refused target, a deleted endpoint and a repeat.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import client from 'prom-client';
import { describe, expect, inject, it } from 'vitest';
import {
  createWebhookActivities,
  type WebhookDeliveryOutcome,
} from '../../src/activities/webhooks.ts';
import { ORDER_PLACED } from '../../src/shared/steps.ts';
import { createRateGate } from '../../src/webhooks/rate-gate.ts';
import { webhookDeliveriesCounter } from '../../src/workers/metrics.ts';
import { useWebhookFixture } from '../support/webhook-fixture.ts';
import { sample } from './processes.ts';

const fx = useWebhookFixture(inject('stack').DATABASE_URL);

async function orderAndEndpoint(url = `${fx.receiver.url}/hooks`) {
  const order = await fx.createOrder({
    customerEmail: 'metrics@example.com',
    totalCents: 100n,
    items: [{ line: 1, sku: 'SKU-1', quantity: 1, unitPriceCents: 100n }],
  });
  const endpoint = await fx.createEndpoint({ url });
  return { orderId: order.id, endpointId: endpoint.id, eventType: ORDER_PLACED };
}

describe('orderflow_webhook_deliveries_total', () => {
  it('counts delivered, duplicate, retryable, permanent, disabled, gone, skipped and throttled attempts', async () => {
    const registry = new client.Registry();
    const deliveries = webhookDeliveriesCounter(registry);
    const acts = createWebhookActivities({
      db: fx.db,
      timeoutMs: 2000,
      allowedTargets: 'loopback',
      deliveries,
    });
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
    const attempt = (input: Awaited<ReturnType<typeof orderAndEndpoint>>) =>
      env
        .run(() => acts.deliverWebhook(input))
        .then(
          () => 'ok',
          () => 'failed',
        );

    const delivered = await orderAndEndpoint();
    fx.receiver.respondWith({ status: 204 });
    expect(await attempt(delivered)).toBe('ok');
    expect(await attempt(delivered)).toBe('ok'); // already delivered: nothing sent

    fx.receiver.respondWith({ status: 503 }, { status: 400 }, { status: 410 });
    expect(await attempt(await orderAndEndpoint())).toBe('failed');
    expect(await attempt(await orderAndEndpoint())).toBe('failed');
    expect(await attempt(await orderAndEndpoint())).toBe('failed');

    // A target the SSRF guard refuses fails permanently without a request.
    expect(await attempt(await orderAndEndpoint('http://169.254.169.254/latest'))).toBe('failed');

    // With WEBHOOK_DISABLE_AFTER_FAILURES=1 the first refusal disables the endpoint.
    const strict = createWebhookActivities({
      db: fx.db,
      timeoutMs: 2000,
      allowedTargets: 'loopback',
      deliveries,
      disableAfterFailures: 1,
    });
    const disabledNow = await orderAndEndpoint();
    fx.receiver.respondWith({ status: 404 });
    await expect(env.run(() => strict.deliverWebhook(disabledNow))).rejects.toThrow(
      /disabled after 1 permanent failures in a row/,
    );

    const deleted = await orderAndEndpoint();
    await fx.db.webhookEndpoint.delete({ where: { id: deleted.endpointId } });
    expect(await attempt(deleted)).toBe('failed');

    // A rate gate with its one send per 2.25 s taken: the attempt cannot wait for the next.
    const gate = createRateGate(fx.db, 0.5, `test-${randomUUID()}`);
    expect((await gate.reserve(0)).kind).toBe('reserved');
    const gated = createWebhookActivities({
      db: fx.db,
      timeoutMs: 2000,
      allowedTargets: 'loopback',
      deliveries,
      rateGate: gate,
    });
    const throttled = await orderAndEndpoint();
    await expect(env.run(() => gated.deliverWebhook(throttled))).rejects.toThrow(/rate limit/);

    const text = await registry.metrics();
    const expected: Record<WebhookDeliveryOutcome, number> = {
      delivered: 1,
      duplicate: 1,
      retryable_failure: 1,
      permanent_failure: 2,
      disabled: 1,
      gone: 1,
      skipped: 1,
      throttled: 1,
    };
    const counted = Object.fromEntries(
      Object.keys(expected).map((outcome) => [
        outcome,
        sample(text, 'orderflow_webhook_deliveries_total', { outcome }),
      ]),
    );
    expect(counted).toEqual(expected);
    expect(fx.receiver.requests).toHaveLength(5);
  });
});
