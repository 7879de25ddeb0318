/**
 * Consumer spans: the processing of each record (its database transaction)
 * runs in a span that continues the trace in the record's `traceparent`
 * header, so an order's trace reaches every consumer group's effect. Records
 * without a trace context get a span of their own; with tracing off nothing
 * is done.
 */
import { SpanKind, context, trace, type Span } from '@opentelemetry/api';
import type { KafkaRecord } from '../../events/kafka-types.ts';
import { kafkaSpanAttributes } from '../../observability/semconv.ts';
import {
  contextFromStored,
  recordFailure,
  tracer,
  tracingEnabled,
} from '../../observability/tracing.ts';
import type { ApplyResult, SourcedEvent } from './processed-events.ts';

/** A decoded record and the Kafka message it came from. */
export interface ConsumedRecord {
  message: KafkaRecord;
  record: SourcedEvent;
}

const headerText = (value: unknown): string | undefined => {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  return Buffer.isBuffer(first)
    ? first.toString('utf8')
    : typeof first === 'string'
      ? first
      : undefined;
};

/** The trace context a record's headers carry (undefined when none or tracing is off). */
export function recordTraceContext(message: KafkaRecord) {
  return contextFromStored({
    traceparent: headerText(message.headers?.traceparent),
    tracestate: headerText(message.headers?.tracestate),
  });
}

/**
 * Runs `apply` (one transaction over `items`) with a `process <topic>` span
 * per record, each a child of its record's context; one record's span is the
 * active one while its transaction runs. Spans end with the record's outcome
 * (processed or duplicate), or with the error.
 */
export async function inProcessSpans(
  groupId: string,
  items: readonly ConsumedRecord[],
  apply: () => Promise<ApplyResult>,
): Promise<ApplyResult> {
  if (!tracingEnabled()) return apply();
  const spans = new Map<SourcedEvent, Span>();
  let parentOfOne = context.active();
  for (const { message, record } of items) {
    const parent = recordTraceContext(message) ?? context.active();
    if (items.length === 1) parentOfOne = parent;
    const span = tracer().startSpan(
      `process ${record.topic}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: kafkaSpanAttributes('process', {
          topic: record.topic,
          messageId: record.event.id,
          key: message.key?.toString(),
          partition: record.partition,
          offset: record.offset,
          consumerGroup: groupId,
          batchCount: items.length,
        }),
      },
      parent,
    );
    spans.set(record, span);
  }
  try {
    const only = items.length === 1 ? spans.get(items[0]!.record) : undefined;
    const result = await (only ? context.with(trace.setSpan(parentOfOne, only), apply) : apply());
    for (const r of result.applied)
      spans.get(r)?.setAttribute('orderflow.consumer.outcome', 'processed');
    for (const r of result.duplicates)
      spans.get(r)?.setAttribute('orderflow.consumer.outcome', 'duplicate');
    return result;
  } catch (err) {
    for (const span of spans.values()) recordFailure(span, err);
    throw err;
  } finally {
    for (const span of spans.values()) span.end();
  }
}
