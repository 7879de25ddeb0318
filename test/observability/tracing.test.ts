/**
 * One trace from POST /orders to a consumer group's effect, on the real
 * stack: the in-process API (its relay sweeps the outbox, as the relay
 * process does), the real workers of every queue and a consumer group on the
 * real `orders.placed` topic, all sharing this process's tracer provider with
 * an in-memory exporter. The trace context crosses the outbox row, Temporal's
 * headers and the Kafka record's `traceparent` header; dropping any of them
 * splits the trace, and the assertions name the span that left it.
 */
import { ROOT_CONTEXT, SpanKind, context, propagation, trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/lib/process.ts';
import { loadConfig } from '../../src/config/env.ts';
import { consumerGroups } from '../../src/consumers/runtime/groups.ts';
import type { OrderPlacedEvent } from '../../src/consumers/runtime/order-placed-decoder.ts';
import { inProcessSpans } from '../../src/consumers/runtime/tracing.ts';
import type { KafkaRecord } from '../../src/events/kafka-types.ts';
import { temporalWorkerPlugins } from '../../src/observability/temporal-tracing.ts';
import {
  otlpTracesProtocol,
  otlpTracesUrl,
  startTracing,
  tracingEnabled,
  type Tracing,
} from '../../src/observability/tracing.ts';
import { ORDERS_PLACED_TOPIC, orderPlacedEventId } from '../../src/shared/events.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { postOrder, startStackApi, validOrder, type TestApi } from '../support/api.ts';
import { startOrdersWorker } from '../support/orders-worker.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';
import { stackEnvOf, startAppProcess, startCollector, type ExportedSpan } from './processes.ts';
import {
  admin,
  closeClients,
  config,
  connectClients,
  db,
  startRunner,
  stack,
  uniqueGroupId,
} from '../consumers/support.ts';

const groupId = uniqueGroupId('tracing');
let runner: Awaited<ReturnType<typeof startRunner>> | undefined;

beforeAll(async () => {
  await connectClients();
});
afterAll(async () => {
  await runner?.stop();
  await closeClients();
});

/** Polls `check` until it returns a value; fails after `timeoutMs` naming `what`. */
async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 45_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** The analytics group (its real projection) on the real topic (created by the workers), from its end on. */
async function startConsumer(): Promise<void> {
  if (runner) return;
  // Only this file's orders: older records of the shared topic stay unread.
  const ends = await admin.fetchTopicOffsets(ORDERS_PLACED_TOPIC);
  await admin.setOffsets({
    groupId,
    topic: ORDERS_PLACED_TOPIC,
    partitions: ends.map(({ partition, high }) => ({ partition, offset: high })),
  });
  runner = await startRunner({
    groupId,
    projection: consumerGroups.analytics.projection,
    topic: ORDERS_PLACED_TOPIC,
    transaction: 'per-batch',
  });
}

/** Places an order with the caller's `traceparent`; resolves once the consumer group applied its event. */
async function placeTracedOrder(api: TestApi, traceparent: string) {
  const res = await postOrder(api.url, validOrder(), { traceparent });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  const orderId = res.body.id as string;
  const eventId = orderPlacedEventId(orderId);
  await waitFor(
    `the consumer group to apply order ${orderId}`,
    async () => (await db.processedEvent.findFirst({ where: { groupId, eventId } })) ?? undefined,
  );
  const start = await db.workflowStart.findUniqueOrThrow({ where: { orderId } });
  return { orderId, start };
}

/** `span` and its parents, as far as they were exported (at most 20). */
function ancestry(span: ReadableSpan, spans: readonly ReadableSpan[]): ReadableSpan[] {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const chain: ReadableSpan[] = [];
  for (let at: ReadableSpan | undefined = span; at && chain.length < 20;) {
    chain.push(at);
    at = at.parentSpanId ? byId.get(at.parentSpanId) : undefined;
  }
  return chain;
}

const newTraceparent = () => {
  const traceId = randomBytes(16).toString('hex');
  const parentId = randomBytes(8).toString('hex');
  return { traceId, parentId, header: `00-${traceId}-${parentId}-01` };
};

describe('tracing off (no OTLP endpoint configured)', () => {
  it('writes no traceparent and creates no span, even with a tracer provider registered by someone else', async () => {
    const off = startTracing(config, 'orderflow-test');
    expect(off.enabled).toBe(false);
    expect(tracingEnabled()).toBe(false);
    // A provider and W3C propagator registered globally: any span or injection our code made would show here.
    const spy = new InMemorySpanExporter();
    const spyProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spy)] });
    spyProvider.register();
    const workers = await startOrdersWorker({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: stack.TEMPORAL_ADDRESS,
      plugins: temporalWorkerPlugins(off),
    });
    const api = await startStackApi({
      workflowStartMode: 'relay',
      relay: { intervalMs: 100 },
    });
    try {
      await startConsumer();
      const { start } = await placeTracedOrder(api, newTraceparent().header);
      expect(start.traceparent).toBeNull();
      expect(start.tracestate).toBeNull();
      expect(spy.getFinishedSpans().map((s) => s.name)).toEqual([]);
    } finally {
      await api.close();
      await workers.stop();
      await spyProvider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    }
  }, 120_000);
});

describe('tracing on', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let api: TestApi;
  let workers: Awaited<ReturnType<typeof startOrdersWorker>>;
  let receiver: WebhookReceiver;
  let endpointId: string | undefined;

  beforeAll(async () => {
    tracing = startTracing(config, 'orderflow-test', { exporter });
    expect(tracing.enabled).toBe(true);
    workers = await startOrdersWorker({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: stack.TEMPORAL_ADDRESS,
      plugins: temporalWorkerPlugins(tracing),
    });
    // Mode relay: the API only commits; its relay sweeps the outbox on a timer (no request
    // context), exactly like the relay process, so the context must come from the row.
    api = await startStackApi({
      workflowStartMode: 'relay',
      relay: { intervalMs: 100 },
    });
    receiver = await startWebhookReceiver({
      secret: `whsec_${randomBytes(24).toString('base64')}`,
    });
    const res = await fetch(`${api.url}/webhook-endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: `${receiver.url}/hook`, eventTypes: ['order.placed'] }),
    });
    expect(res.status).toBe(201);
    endpointId = ((await res.json()) as { id: string }).id;
    await startConsumer();
  }, 120_000);

  afterAll(async () => {
    if (endpointId) await db.webhookEndpoint.deleteMany({ where: { id: endpointId } });
    await api?.close();
    await workers?.stop();
    await receiver?.close();
    await tracing?.shutdown();
  });

  it('follows an order in one trace from POST /orders through the outbox, the workflow, its activities and Kafka to the consumer effect', async () => {
    const caller = newTraceparent();
    const { orderId, start } = await placeTracedOrder(api, caller.header);
    // The outbox row carried the request's context to the relay.
    expect(start.traceparent).toMatch(new RegExp(`^00-${caller.traceId}-[0-9a-f]{16}-01$`));

    await waitFor(`order ${orderId} to complete`, async () => {
      const order = await db.order.findUnique({ where: { id: orderId } });
      return order?.status === 'COMPLETED' ? order : undefined;
    });
    const workflowId = orderWorkflowId(orderId);
    const isConsumerSpan = (s: ReadableSpan) =>
      s.name === 'process orders.placed' &&
      s.attributes['messaging.consumer.group.name'] === groupId &&
      s.attributes['messaging.kafka.message.key'] === orderId;
    // Workflow spans reach the exporter through the worker's sink once the workflow has completed.
    await waitFor(
      'the consumer span and its ancestry up to POST /orders',
      () => {
        const spans = exporter.getFinishedSpans();
        const consumer = spans.find(isConsumerSpan);
        return consumer && ancestry(consumer, spans).at(-1)?.name === 'POST /orders'
          ? true
          : undefined;
      },
      30_000,
    ).catch(() => undefined); // the assertions below say what is missing

    const spans = exporter.getFinishedSpans();
    const listing = (list: readonly ReadableSpan[]) =>
      list.map((s) => `  ${s.name} trace=${s.spanContext().traceId}`).join('\n');
    const find = (what: string, match: (s: ReadableSpan) => boolean) => {
      const span = spans.find(match);
      expect(span, `${what} among the spans:\n${listing(spans)}`).toBeDefined();
      return span!;
    };
    // Each span found by what it is about (route, workflow id, record key), not by its trace.
    const server = find(
      'the POST /orders server span',
      (s) =>
        s.name === 'POST /orders' &&
        s.kind === SpanKind.SERVER &&
        s.parentSpanId === caller.parentId,
    );
    expect(server.attributes['http.route']).toBe('/orders');
    expect(server.attributes['http.response.status_code']).toBe(201);
    const insert = find(
      'the intake transaction span',
      (s) => s.name === 'INSERT orders' && s.parentSpanId === server.spanContext().spanId,
    );
    const byWorkflow = (name: string) =>
      find(
        `"${name}" of ${workflowId}`,
        (s) => s.name === name && s.attributes.temporalWorkflowId === workflowId,
      );
    const workflowStart = byWorkflow('StartWorkflow:orderWorkflow');
    const activities = [
      'sendConfirmationEmail',
      // PROCESSING and the subscriber read, one local activity (patch lean-bookkeeping).
      'beginOrderProcessing',
      'deliverWebhook',
      'publishOrderPlaced',
    ].map((a) => byWorkflow(`RunActivity:${a}`));
    const producer = find(
      'the Kafka producer span',
      (s) =>
        s.name === 'send orders.placed' &&
        s.kind === SpanKind.PRODUCER &&
        s.attributes['messaging.kafka.message.key'] === orderId,
    );
    const consumer = find(`the consumer span of group ${groupId}`, isConsumerSpan);
    expect(consumer.kind).toBe(SpanKind.CONSUMER);
    expect(consumer.attributes['messaging.message.id']).toBe(orderPlacedEventId(orderId));
    expect(consumer.attributes['orderflow.consumer.outcome']).toBe('processed');

    // ONE trace: the caller's.
    const ofOrder = [server, insert, workflowStart, ...activities, producer, consumer];
    expect(new Set(ofOrder.map((s) => s.spanContext().traceId)), listing(ofOrder)).toEqual(
      new Set([caller.traceId]),
    );

    // The consumer span's ancestry reaches the POST span through the producer, the publish
    // activity, the workflow and its start.
    const chain = ancestry(consumer, spans).map((s) => s.name);
    expect(chain, `ancestry of the consumer span: ${chain.join(' <- ')}`).toEqual([
      'process orders.placed',
      'send orders.placed',
      'RunActivity:publishOrderPlaced',
      'StartActivity:publishOrderPlaced',
      'RunWorkflow:orderWorkflow',
      'StartWorkflow:orderWorkflow',
      'POST /orders',
    ]);
  }, 90_000);

  it('propagates the W3C trace context only: an incoming baggage header is not parsed (GHSA-8988-4f7v-96qf)', async () => {
    expect(propagation.fields()).toEqual(['traceparent', 'tracestate']);
    const caller = newTraceparent();
    const carrier = { traceparent: caller.header, baggage: `k=${'v'.repeat(8000)},a=1` };
    const extracted = propagation.extract(ROOT_CONTEXT, carrier);
    expect(trace.getSpanContext(extracted)?.traceId).toBe(caller.traceId);
    expect(propagation.getBaggage(extracted)).toBeUndefined();
    // The API takes such a request as any other.
    const res = await postOrder(api.url, validOrder(), {
      traceparent: caller.header,
      baggage: carrier.baggage,
    });
    expect(res.status).toBe(201);
  });

  it('gives each record of a per-batch transaction its own consumer span in its own trace', async () => {
    const traces = [newTraceparent(), newTraceparent()];
    const items = traces.map((t, n) => ({
      message: {
        key: Buffer.from(`order-${n}`),
        value: null,
        timestamp: '0',
        offset: String(n),
        // The client hands headers over as Buffers.
        headers: { traceparent: Buffer.from(t.header) },
      } satisfies KafkaRecord,
      record: {
        event: { id: `event-${n}` } as OrderPlacedEvent,
        topic: 'orders.placed',
        partition: 3,
        offset: String(n),
      },
    }));
    const group = uniqueGroupId('batch');
    await inProcessSpans(group, items, async () => ({
      applied: [items[0]!.record],
      duplicates: [items[1]!.record],
    }));
    const spans = exporter
      .getFinishedSpans()
      .filter((s) => s.attributes['messaging.consumer.group.name'] === group);
    expect(spans.map((s) => [s.spanContext().traceId, s.parentSpanId])).toEqual(
      traces.map((t) => [t.traceId, t.parentId]),
    );
    expect(spans.map((s) => s.attributes['orderflow.consumer.outcome'])).toEqual([
      'processed',
      'duplicate',
    ]);
    expect(spans.every((s) => s.attributes['messaging.batch.message_count'] === 2)).toBe(true);
  });

  it('in mode async, each kicked start runs in the trace of its own request, also when it waited for a slot', async () => {
    // One start at a time: the later orders' starts are run by whichever start finished before.
    const asyncApi = await startStackApi({
      workflowStartMode: 'async',
      relay: { concurrency: 1 },
    });
    try {
      const callers = Array.from({ length: 4 }, newTraceparent);
      const placed = await Promise.all(
        callers.map((c) => postOrder(asyncApi.url, validOrder(), { traceparent: c.header })),
      );
      for (const [i, res] of placed.entries()) {
        expect(res.status).toBe(201);
        const workflowId = orderWorkflowId(res.body.id as string);
        const start = await waitFor(`the workflow start span of ${workflowId}`, () =>
          exporter
            .getFinishedSpans()
            .find(
              (s) =>
                s.name === 'StartWorkflow:orderWorkflow' &&
                s.attributes.temporalWorkflowId === workflowId,
            ),
        );
        const parent = exporter
          .getFinishedSpans()
          .find((s) => s.spanContext().spanId === start.parentSpanId);
        expect(start.spanContext().traceId, `order ${i + 1} of 4`).toBe(callers[i]!.traceId);
        expect(parent?.name).toBe('POST /orders');
      }
    } finally {
      await asyncApi.close();
    }
  }, 60_000);
});

describe('the API process with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  const protocols: {
    protocol: ExportedSpan['protocol'];
    env: Record<string, string>;
    as: string;
  }[] = [
    { protocol: 'http/protobuf', env: {}, as: 'protobuf, the OTLP default' },
    { protocol: 'http/json', env: { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }, as: 'JSON' },
  ];
  it.each(protocols)(
    'exports its spans over OTLP/HTTP as orderflow-api in $as, and flushes them when stopped',
    async ({ protocol, env }) => {
      const collector = await startCollector();
      const port = await freePort();
      const api = startAppProcess('api', 'src/api/server.ts', {
        ...stackEnvOf(stack),
        PORT: String(port),
        WORKFLOW_START_MODE: 'relay',
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        ...env,
      });
      try {
        await api.waitForLine('api listening', (l) => l.msg === 'api listening', 60_000);
        const caller = newTraceparent();
        const res = await postOrder(`http://127.0.0.1:${port}`, validOrder(), {
          traceparent: caller.header,
        });
        expect(res.status).toBe(201);
        await api.stop();
        expect((await api.exited).code, api.output().slice(-2000)).toBe(0);
        expect(collector.spans).toContainEqual({
          service: 'orderflow-api',
          name: 'POST /orders',
          traceId: caller.traceId,
          protocol,
        });
        expect(new Set(collector.spans.map((s) => s.protocol))).toEqual(new Set([protocol]));
      } finally {
        await api.stop();
        await collector.close();
      }
    },
    90_000,
  );
});

describe('configuration', () => {
  const urlOf = (env: Record<string, string>) => otlpTracesUrl(loadConfig(env));

  it('is off without an endpoint, with OTEL_SDK_DISABLED=true and with OTEL_TRACES_EXPORTER=none', () => {
    expect(urlOf({})).toBeUndefined();
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(urlOf({ ...endpoint, OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(urlOf({ ...endpoint, OTEL_SDK_DISABLED: 'TRUE' })).toBeUndefined();
    expect(urlOf({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(startTracing(loadConfig({}), 'orderflow-api').enabled).toBe(tracingEnabled());
  });

  it('sends to <endpoint>/v1/traces, the traces endpoint as given, or the OTLP default', () => {
    expect(urlOf({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toBe(
      'http://collector:4318/v1/traces',
    );
    expect(
      urlOf({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/api/v1/otlp',
      }),
    ).toBe('https://traces.example/api/v1/otlp');
    expect(urlOf({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe('http://localhost:4318/v1/traces');
  });

  it('sends http/protobuf unless told http/json, the traces variable winning over the general one', () => {
    const protocolOf = (env: Record<string, string>) => otlpTracesProtocol(loadConfig(env));
    expect(protocolOf({})).toBe('http/protobuf');
    expect(protocolOf({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toBe('http/json');
    expect(protocolOf({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' })).toBe('http/json');
    expect(
      protocolOf({
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }),
    ).toBe('http/protobuf');
  });

  it('refuses what it cannot do, naming the variable', () => {
    for (const variable of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL']) {
      for (const value of ['grpc', 'http/xml', 'HTTP/JSON']) {
        expect(() => loadConfig({ [variable]: value })).toThrow(
          `${variable}: http/protobuf (the default) or http/json; grpc is not built in`,
        );
      }
    }
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: 'zipkin' })).toThrow(/OTEL_TRACES_EXPORTER/);
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector' })).toThrow(
      /OTEL_EXPORTER_OTLP_ENDPOINT/,
    );
  });
});
