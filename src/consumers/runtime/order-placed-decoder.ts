/**
 * Turns a Kafka record of `orders.placed` back into a validated event
 * (`order.placed` or `order.cancelled`, both on that topic, keyed by order
 * id): the CloudEvents Kafka binding (binary or structured mode) for the
 * envelope, zod for the data. A record that cannot be decoded is a poison
 * message.
 */
import {
  Kafka,
  ValidationError,
  type CloudEvent,
  type KafkaMessage as CloudEventsKafkaMessage,
} from 'cloudevents';
import { z } from 'zod';
import {
  CLOUDEVENT_TYPE_ORDER_CANCELLED,
  CLOUDEVENT_TYPE_ORDER_PLACED,
  type OrderCancelledData,
  type OrderPlacedData,
} from '../../shared/events.ts';
import type { KafkaHeaders, KafkaRecord } from '../../events/kafka-types.ts';

/** A record that will never be processed as it is (malformed, invalid); it is dead-lettered at once. */
export class PoisonMessageError extends Error {
  override name = 'PoisonMessageError';
}

const cents = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const orderPlacedDataSchema = z.object({
  orderId: z.string().min(1),
  customerEmail: z.string().min(1),
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code such as EUR'),
  totalCents: cents,
  items: z
    .array(
      z.object({
        sku: z.string().min(1),
        quantity: z.number().int().min(1).max(1_000_000),
        unitPriceCents: cents,
      }),
    )
    .min(1),
  placedAt: z.iso.datetime({ offset: true }),
}) satisfies z.ZodType<OrderPlacedData>;

export const orderCancelledDataSchema = orderPlacedDataSchema.extend({
  reason: z.string(),
}) satisfies z.ZodType<OrderCancelledData>;

/** The event types a projection may handle. */
export type OrderEventType = 'order.placed' | 'order.cancelled';

/** A decoded `order.placed` event; `source` + `id` identify it (CloudEvents' uniqueness rule). */
export interface OrderPlacedEvent {
  /** Absent means order.placed (events built before order.cancelled existed). */
  type?: 'order.placed';
  id: string;
  source: string;
  data: OrderPlacedData;
}

/** A decoded `order.cancelled` event: the order's lines as placed, and the reason. */
export interface OrderCancelledEvent {
  type: 'order.cancelled';
  id: string;
  source: string;
  data: OrderCancelledData;
}

/** An event of an order that projections may apply. */
export type OrderEvent = OrderPlacedEvent | OrderCancelledEvent;

export const eventTypeOf = (event: OrderEvent): OrderEventType => event.type ?? 'order.placed';

/** What a record turned out to be: an order event, or a CloudEvent of a type no consumer handles. */
export type DecodedRecord =
  | { kind: 'order.placed'; event: OrderPlacedEvent }
  | { kind: 'order.cancelled'; event: OrderCancelledEvent }
  | { kind: 'other'; id: string; type: string };

/** Kafka header values (Buffers, repeated headers) as the strings the CloudEvents binding expects. */
export function headerStrings(headers: KafkaHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) out[name] = first.toString();
  }
  return out;
}

/** The id the producer sent: the binding's decoder invents a random one when it is missing. */
function sentId(headers: Record<string, string>, value: string): unknown {
  if (headers.ce_id !== undefined) return headers.ce_id;
  if (!headers['content-type']?.startsWith('application/cloudevents')) return undefined;
  try {
    return (JSON.parse(value) as { id?: unknown }).id;
  } catch {
    return undefined;
  }
}

const reason = (err: unknown): string =>
  err instanceof ValidationError && err.errors?.length
    ? `${err.message}: ${JSON.stringify(err.errors)}`
    : err instanceof Error
      ? err.message
      : String(err);

/** Decodes and validates one record; throws PoisonMessageError saying what is wrong. */
export function decodeOrderPlaced(
  message: Pick<KafkaRecord, 'headers' | 'key' | 'value'>,
): DecodedRecord {
  const headers = headerStrings(message.headers);
  if (!message.value?.length) throw new PoisonMessageError('record has no value');
  const value = message.value.toString('utf8');
  let event: CloudEvent<unknown>;
  try {
    const received: CloudEventsKafkaMessage<string> = {
      headers,
      key: message.key?.toString() ?? '',
      value,
      body: value,
    };
    const decoded = Kafka.toEvent(received) as CloudEvent<unknown> | CloudEvent<unknown>[];
    if (Array.isArray(decoded)) throw new Error('batched CloudEvents are not supported');
    event = decoded;
    event.validate();
  } catch (err) {
    throw new PoisonMessageError(`not a valid CloudEvent: ${reason(err)}`);
  }
  const id = sentId(headers, value);
  if (typeof id !== 'string' || id === '' || id !== event.id) {
    throw new PoisonMessageError('not a valid CloudEvent: it has no id');
  }
  if (event.type === CLOUDEVENT_TYPE_ORDER_CANCELLED) {
    const cancelled = orderCancelledDataSchema.safeParse(event.data);
    if (!cancelled.success) {
      throw new PoisonMessageError(
        `invalid order.cancelled data: ${z.prettifyError(cancelled.error)}`,
      );
    }
    return {
      kind: 'order.cancelled',
      event: { type: 'order.cancelled', id, source: event.source, data: cancelled.data },
    };
  }
  if (event.type !== CLOUDEVENT_TYPE_ORDER_PLACED) return { kind: 'other', id, type: event.type };
  const data = orderPlacedDataSchema.safeParse(event.data);
  if (!data.success) {
    throw new PoisonMessageError(`invalid order.placed data: ${z.prettifyError(data.error)}`);
  }
  return { kind: 'order.placed', event: { id, source: event.source, data: data.data } };
}
