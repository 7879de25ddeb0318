import { SpanKind } from '@opentelemetry/api';
import { ApplicationFailure, log } from '@temporalio/activity';
import { CloudEvent, Kafka } from 'cloudevents';
import type { Histogram } from 'prom-client';
import type { Db } from '../db/client.ts';
import { loadOrder, orderCancelledData, orderPlacedData } from './order-data.ts';
import { isKafkaClientError, isUnknownTopicError } from '../events/kafka.ts';
import type { EventProducer, OutgoingRecord } from '../events/kafka-types.ts';
import { kafkaSpanAttributes } from '../observability/semconv.ts';
import { currentTraceContext, inSpan } from '../observability/tracing.ts';
import {
  CLOUDEVENT_SOURCE,
  CLOUDEVENT_TYPE_ORDER_CANCELLED,
  CLOUDEVENT_TYPE_ORDER_PLACED,
  ORDERS_PLACED_TOPIC,
  orderCancelledEventId,
  orderPlacedEventId,
  type OrderCancelledData,
  type OrderPlacedData,
} from '../shared/events.ts';
import { FailureType } from '../shared/steps.ts';

export interface PublishOrderPlacedInput {
  orderId: string;
}

/** Where the broker stored the event; `offset` is a string (Kafka offsets exceed 2^53). */
export interface PublishOrderPlacedResult {
  eventId: string;
  partition: number;
  offset: string;
}

/** The `order.placed` CloudEvent; its id derives from the order, so every retry sends the same id. */
export function orderPlacedCloudEvent(data: OrderPlacedData): CloudEvent<OrderPlacedData> {
  return new CloudEvent({
    id: orderPlacedEventId(data.orderId),
    type: CLOUDEVENT_TYPE_ORDER_PLACED,
    source: CLOUDEVENT_SOURCE,
    subject: data.orderId,
    time: data.placedAt,
    datacontenttype: 'application/json',
    data,
  });
}

/** The `order.cancelled` CloudEvent: same source, subject and key as the order's order.placed. */
export function orderCancelledCloudEvent(
  data: OrderCancelledData,
  cancelledAt: Date,
): CloudEvent<OrderCancelledData> {
  return new CloudEvent({
    id: orderCancelledEventId(data.orderId),
    type: CLOUDEVENT_TYPE_ORDER_CANCELLED,
    source: CLOUDEVENT_SOURCE,
    subject: data.orderId,
    time: cancelledAt.toISOString(),
    datacontenttype: 'application/json',
    data,
  });
}

/**
 * The event as a Kafka record in the CloudEvents Kafka binding's binary mode:
 * attributes in `ce_*` headers, `content-type`, the JSON data as the value.
 */
export function toKafkaMessage(
  event: CloudEvent<OrderPlacedData | OrderCancelledData>,
  key: string,
): OutgoingRecord {
  const binary = Kafka.binary(event);
  // The library also emits unset attributes (undefined) and ce_datacontenttype, which the
  // binding maps to content-type only.
  const headers = Object.fromEntries(
    Object.entries(binary.headers).filter(
      (entry): entry is [string, string] =>
        typeof entry[1] === 'string' && entry[0] !== 'ce_datacontenttype',
    ),
  );
  return { key, value: JSON.stringify(binary.value), headers, timestamp: binary.timestamp };
}

/** A failed send as an ApplicationFailure of its kind; errors that are not the Kafka client's pass unchanged. */
function publishFailure(err: unknown, topic: string): unknown {
  if (!isKafkaClientError(err)) return err;
  if (isUnknownTopicError(err)) {
    return ApplicationFailure.create({
      type: FailureType.UnknownTopic,
      message: `topic ${topic} does not exist: ${err.message}`,
      nonRetryable: true,
      cause: err,
    });
  }
  return ApplicationFailure.create({
    type: FailureType.KafkaUnavailable,
    message: `Kafka did not acknowledge the event: ${err.message}`,
    nonRetryable: false,
    cause: err,
  });
}

/** Activities that publish an order's events to Kafka (task queue `events`). */
export function createEventActivities({
  db,
  producer,
  topic = ORDERS_PLACED_TOPIC,
  publishSeconds,
}: {
  db: Db;
  producer: EventProducer;
  /** Tests bind a missing topic here; processes use the default. */
  topic?: string;
  /** Times each send (the worker's orderflow_kafka_publish_duration_seconds). */
  publishSeconds?: Pick<Histogram<'topic' | 'outcome'>, 'startTimer'>;
}) {
  /**
   * Sends one record, acknowledged by all in-sync replicas (`timed`: into
   * publishSeconds), and logs where it was stored; a failure is logged and
   * thrown as the activity's failure, an answer without an offset as KafkaUnavailable.
   */
  async function send(
    what: string,
    orderId: string,
    message: OutgoingRecord,
    eventId: string,
    { timed = false } = {},
  ): Promise<PublishOrderPlacedResult> {
    let metadata;
    const timer = timed ? publishSeconds?.startTimer({ topic }) : undefined;
    try {
      [metadata] = await producer.send({ topic, acks: -1, messages: [message] });
      timer?.({ outcome: 'ok' });
    } catch (err) {
      timer?.({ outcome: 'error' });
      log.warn(`${what} not published`, { orderId, eventId, topic, error: String(err) });
      throw publishFailure(err, topic);
    }
    const offset = metadata?.baseOffset ?? metadata?.offset;
    if (!metadata || offset === undefined) {
      throw ApplicationFailure.create({
        type: FailureType.KafkaUnavailable,
        message: `Kafka answered without the record's offset (topic ${topic})`,
      });
    }
    const result = { eventId, partition: metadata.partition, offset };
    log.info(`${what} published`, { orderId, topic, ...result });
    return result;
  }

  return {
    /**
     * Publishes the order's `order.placed` CloudEvent keyed by order id and
     * completes once all in-sync replicas acknowledged it.
     */
    async publishOrderPlaced({
      orderId,
    }: PublishOrderPlacedInput): Promise<PublishOrderPlacedResult> {
      const event = orderPlacedCloudEvent(orderPlacedData(await loadOrder(db, orderId)));
      const message = toKafkaMessage(event, orderId);
      const record = { topic, messageId: event.id, key: orderId };
      return inSpan(
        `send ${topic}`,
        { kind: SpanKind.PRODUCER, attributes: kafkaSpanAttributes('send', record) },
        async (span) => {
          // W3C trace context next to the ce_* headers: consumers continue this span's trace.
          const traceContext = currentTraceContext();
          if (traceContext) message.headers = { ...message.headers, ...traceContext };
          const sent = await send('order.placed', orderId, message, event.id, { timed: true });
          span?.setAttributes(kafkaSpanAttributes('send', { ...record, ...sent }));
          return sent;
        },
      );
    },

    /**
     * Publishes the order's `order.cancelled` CloudEvent on the same topic,
     * keyed by order id (after its order.placed, in the same partition).
     */
    async publishOrderCancelled({
      orderId,
      reason,
    }: PublishOrderPlacedInput & { reason: string }): Promise<PublishOrderPlacedResult> {
      const order = await loadOrder(db, orderId);
      const event = orderCancelledCloudEvent(orderCancelledData(order, reason), order.updatedAt);
      return send('order.cancelled', orderId, toKafkaMessage(event, orderId), event.id);
    },
  };
}

export type EventActivities = ReturnType<typeof createEventActivities>;
