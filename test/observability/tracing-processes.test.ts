/**
 * Tracing across the real processes, as `npm start` runs them with
 * OTEL_EXPORTER_OTLP_ENDPOINT set: the API (mode relay), the relay process,
 * the four workers and the analytics consumer export over OTLP/HTTP (protobuf,
 * the default) to a collector on loopback, and one order's spans arrive from every one of them
 * in the trace of the caller's `traceparent`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../scripts/lib/process.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';
import { stackEnvOf, startAppProcess, startCollector, type AppProcess } from './processes.ts';

const stack = inject('stack');

let collector: Awaited<ReturnType<typeof startCollector>>;
let receiver: WebhookReceiver;
let apiUrl: string;
const procs: AppProcess[] = [];
let endpointId: string | undefined;

beforeAll(async () => {
  collector = await startCollector();
  receiver = await startWebhookReceiver({ secret: `whsec_${randomBytes(24).toString('base64')}` });
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  const env = {
    ...stackEnvOf(stack),
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
    // Export within a fraction of a second instead of every 5 s.
    OTEL_BSP_SCHEDULE_DELAY: '200',
    WORKFLOW_START_MODE: 'relay',
    OUTBOX_POLL_MS: '100',
  };
  const starting = [
    startAppProcess('api', 'src/api/server.ts', { ...env, PORT: String(port) }),
    startAppProcess('relay', 'src/api/relay.ts', env),
    ...['orders', 'email', 'webhooks', 'events'].map((w) =>
      startAppProcess(`worker-${w}`, `src/workers/${w}.ts`, env),
    ),
    startAppProcess('consumer-analytics', 'src/consumers/analytics.ts', env),
  ];
  procs.push(...starting);
  await Promise.all(
    starting.map((p) =>
      p.waitForLine(
        'that it runs',
        (l) =>
          typeof l.msg === 'string' &&
          ['api listening', 'relay running', 'worker running', 'consumer running'].includes(l.msg),
        150_000,
      ),
    ),
  );
  const created = await fetch(`${apiUrl}/webhook-endpoints`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: `${receiver.url}/hook`, eventTypes: ['order.placed'] }),
  });
  expect(created.status).toBe(201);
  endpointId = ((await created.json()) as { id: string }).id;
}, 240_000);

afterAll(async () => {
  if (endpointId) {
    await fetch(`${apiUrl}/webhook-endpoints/${endpointId}`, { method: 'DELETE' }).catch(() => {});
  }
  await Promise.allSettled(procs.map((p) => p.stop()));
  await receiver?.close();
  await collector?.close();
}, 60_000);

describe('tracing across the real processes', () => {
  it('receives one trace for an order from the API, the relay, every worker and the consumer', async () => {
    const traceId = randomBytes(16).toString('hex');
    const res = await fetch(`${apiUrl}/orders`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
      },
      body: JSON.stringify({
        customerEmail: `trace-${randomUUID()}@example.com`,
        currency: 'EUR',
        items: [{ sku: 'SKU-TRACE', quantity: 1, unitPriceCents: 990 }],
      }),
    });
    expect(res.status).toBe(201);

    const expected = new Map([
      ['orderflow-api', 'POST /orders'],
      ['orderflow-relay', 'StartWorkflow:orderWorkflow'],
      ['orderflow-worker-orders', 'RunWorkflow:orderWorkflow'],
      ['orderflow-worker-email', 'RunActivity:sendConfirmationEmail'],
      ['orderflow-worker-webhooks', 'RunActivity:deliverWebhook'],
      ['orderflow-worker-events', 'send orders.placed'],
      ['orderflow-consumer-analytics', 'process orders.placed'],
    ]);
    const missing = () =>
      [...expected].filter(
        ([service, name]) =>
          !collector.spans.some(
            (s) => s.traceId === traceId && s.service === service && s.name === name,
          ),
      );
    const deadline = Date.now() + 90_000;
    while (missing().length > 0 && Date.now() < deadline) await sleep(200);
    const ofTrace = collector.spans
      .filter((s) => s.traceId === traceId)
      .map((s) => `${s.service}: ${s.name}`);
    expect(
      missing().map(([service, name]) => `${service}: ${name}`),
      `spans of trace ${traceId} received:\n${ofTrace.join('\n')}`,
    ).toEqual([]);
    expect(new Set(collector.spans.map((s) => s.protocol))).toEqual(new Set(['http/protobuf']));
  }, 120_000);
});
