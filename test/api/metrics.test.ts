import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { OrderService } from '../../src/orders/order-service.ts';
import { postOrder, startApi, validOrder, type TestApi } from '../support/api.ts';

const stack = inject('stack');
let api: TestApi;
beforeAll(async () => {
  // No relay sweeps, so a pending start stays pending and the backlog gauge must show it.
  api = await startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
    relay: { run: false },
  });
});
afterAll(async () => {
  await api?.close();
});

const sample = (text: string, name: string, labels = ''): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels}`) && !l.startsWith('#'));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
};

describe('GET /metrics', () => {
  it('exposes request latency by route pattern and status, the outbox backlog and process metrics', async () => {
    const created = await postOrder(api.url, validOrder());
    expect(created.status).toBe(201);
    await fetch(`${api.url}/orders/${created.body.id}`);
    await postOrder(api.url, {});
    // An order committed without its workflow start (as a crashed API leaves it).
    const pending = await new OrderService(api.db).createOrder({
      ...validOrder(),
      currency: 'USD',
    });

    const res = await fetch(`${api.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(
      sample(
        text,
        'orderflow_http_request_duration_seconds_count',
        '{method="POST",route="/orders",status="201"}',
      ),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(
        text,
        'orderflow_http_request_duration_seconds_count',
        '{method="GET",route="/orders/:id",status="200"}',
      ),
    ).toBeGreaterThanOrEqual(1);
    expect(
      sample(
        text,
        'orderflow_http_request_duration_seconds_count',
        '{method="POST",route="/orders",status="400"}',
      ),
    ).toBeGreaterThanOrEqual(1);
    // The raw id never becomes a label (bounded cardinality).
    expect(text).not.toContain(created.body.id as string);
    expect(sample(text, 'orderflow_outbox_pending')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'orderflow_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'orderflow_temporal_reachable')).toBe(1);
    expect(text).toContain('process_resident_memory_bytes');

    await api.relay.startOne(pending.order.id);
  });
});
