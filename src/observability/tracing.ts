/**
 * OpenTelemetry tracing of an orderflow process. Every entry point calls
 * `startTracing` first. It is on when an OTLP endpoint is configured (or
 * OTEL_TRACES_EXPORTER=otlp) and off otherwise: then no provider is
 * registered, nothing is exported, and the helpers below return at once, so
 * the request path does no tracing work at all.
 *
 * One trace follows an order: the API's server span, the workflow start (its
 * W3C context stored with the pending start in the outbox), the workflow and
 * its activities (Temporal headers), the Kafka record (`traceparent` header)
 * and each consumer group's processing.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtobufTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { Resource, envDetectorSync } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Config, OTLP_PROTOCOLS } from '../config/env.ts';

type TracingConfig = Pick<
  Config,
  | 'OTEL_SDK_DISABLED'
  | 'OTEL_TRACES_EXPORTER'
  | 'OTEL_EXPORTER_OTLP_ENDPOINT'
  | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
  | 'OTEL_EXPORTER_OTLP_PROTOCOL'
  | 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
  | 'OTEL_SERVICE_NAME'
>;

export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** Where spans go when tracing is on (the OTLP/HTTP default when only OTEL_TRACES_EXPORTER=otlp is set). */
export function otlpTracesUrl(config: TracingConfig): string | undefined {
  if (config.OTEL_SDK_DISABLED || config.OTEL_TRACES_EXPORTER === 'none') return undefined;
  if (config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT)
    return `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  return config.OTEL_TRACES_EXPORTER === 'otlp' ? 'http://localhost:4318/v1/traces' : undefined;
}

/** How spans are sent: the traces variable, else the general one, else the OTLP spec's default (http/protobuf). */
export const otlpTracesProtocol = (config: TracingConfig): OtlpProtocol =>
  config.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ??
  config.OTEL_EXPORTER_OTLP_PROTOCOL ??
  'http/protobuf';

/** The OTLP/HTTP exporter of `protocol` (both read OTEL_EXPORTER_OTLP_HEADERS and the timeouts themselves). */
function otlpExporter(protocol: OtlpProtocol, url: string): SpanExporter {
  return protocol === 'http/json'
    ? new OTLPJsonTraceExporter({ url })
    : new OTLPProtobufTraceExporter({ url });
}

/** The process's tracing: on or off, and what the Temporal worker plugin needs. */
export interface Tracing {
  readonly enabled: boolean;
  readonly serviceName: string;
  /** Where spans are exported (undefined when off or when a test passed its own exporter). */
  readonly url?: string;
  /** Set when enabled: the workflow span sink exports through the same processor and resource. */
  readonly resource?: Resource;
  readonly spanProcessor?: SpanProcessor;
  /** Exports what is buffered and unregisters the provider (tracing is off afterwards); never rejects. */
  shutdown(): Promise<void>;
}

let active: Tracing | undefined;

/** True while a tracer provider of this module is registered. */
export const tracingEnabled = (): boolean => active !== undefined;

/**
 * Turns tracing on for this process when the configuration asks for it (or
 * when `exporter` is given: tests export to memory). Call it before building
 * anything else. A second call while on returns the running one.
 */
export function startTracing(
  config: TracingConfig,
  defaultServiceName: string,
  opts: { exporter?: SpanExporter } = {},
): Tracing {
  if (active) return active;
  const serviceName = config.OTEL_SERVICE_NAME ?? defaultServiceName;
  const url = opts.exporter ? undefined : otlpTracesUrl(config);
  const exporter = opts.exporter ?? (url && otlpExporter(otlpTracesProtocol(config), url));
  if (!exporter) return { enabled: false, serviceName, shutdown: async () => {} };

  const resource = Resource.default()
    .merge(envDetectorSync.detect())
    .merge(new Resource({ [ATTR_SERVICE_NAME]: serviceName }));
  // Tests export synchronously (spans are there when the effect is); OTLP batches (OTEL_BSP_* apply).
  const spanProcessor = opts.exporter
    ? new SimpleSpanProcessor(exporter)
    : new BatchSpanProcessor(exporter);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  // Registers the provider, the W3C trace-context propagator and the AsyncLocalStorage context
  // manager. Not the baggage propagator: orderflow carries no baggage, and @opentelemetry/core
  // 1.x parses an incoming `baggage` header without size limits (GHSA-8988-4f7v-96qf, fixed
  // only in 2.8.0, which @temporalio/interceptors-opentelemetry 1.24 cannot use).
  provider.register({ propagator: new W3CTraceContextPropagator() });
  const tracing: Tracing = {
    enabled: true,
    serviceName,
    url,
    resource,
    spanProcessor,
    async shutdown() {
      if (active !== tracing) return;
      active = undefined;
      try {
        // A collector that is down must not hold up or fail the process's exit.
        await provider.shutdown().catch(() => {});
      } finally {
        trace.disable();
        propagation.disable();
        context.disable();
      }
    },
  };
  active = tracing;
  return tracing;
}

/** The tracer of orderflow's own spans. */
export const tracer = (): Tracer => trace.getTracer('orderflow');

/** W3C trace context as stored with an outbox row or sent in a Kafka record. */
export interface StoredTraceContext {
  traceparent: string;
  tracestate?: string;
}

/** The active context in W3C form; undefined when tracing is off or nothing is being traced. */
export function currentTraceContext(
  ctx: Context = context.active(),
): StoredTraceContext | undefined {
  if (!active) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  if (!carrier.traceparent) return undefined;
  return carrier.tracestate
    ? { traceparent: carrier.traceparent, tracestate: carrier.tracestate }
    : { traceparent: carrier.traceparent };
}

/**
 * The context a stored `traceparent` (and `tracestate`) describes, as the
 * parent of what runs next; undefined when tracing is off or nothing is stored.
 */
export function contextFromStored(
  stored: { traceparent?: string | null; tracestate?: string | null } | undefined,
): Context | undefined {
  if (!active || !stored?.traceparent) return undefined;
  const carrier: Record<string, string> = { traceparent: stored.traceparent };
  if (stored.tracestate) carrier.tracestate = stored.tracestate;
  const ctx = propagation.extract(ROOT_CONTEXT, carrier);
  return trace.getSpanContext(ctx) ? ctx : undefined;
}

/** Runs `fn` inside `ctx` (as is when there is none). */
export function runInContext<T>(ctx: Context | undefined, fn: () => T): T {
  return ctx ? context.with(ctx, fn) : fn();
}

/**
 * Runs `fn` in a span that ends when it settles (error status and the
 * exception when it throws); with tracing off, just runs `fn`.
 */
export function inSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  return active ? inNewSpan(name, options, fn) : fn(undefined);
}

async function inNewSpan<T>(
  name: string,
  options: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const span = tracer().startSpan(
    name,
    { kind: options.kind ?? SpanKind.INTERNAL, attributes: options.attributes },
    options.parent ?? context.active(),
  );
  try {
    return await context.with(trace.setSpan(options.parent ?? context.active(), span), () =>
      fn(span),
    );
  } catch (err) {
    recordFailure(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Marks a span failed by `err`. */
export function recordFailure(span: Span, err: unknown): void {
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
}
