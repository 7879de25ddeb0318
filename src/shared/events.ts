/**
 * Identities and payloads of the events an order produces. Ids are derived
 * from the order, never random, so every retry and re-run of a step sends the
 * same event id / webhook id and receivers can deduplicate.
 */
import { createHash } from 'node:crypto';

export const ORDERS_PLACED_TOPIC = 'orders.placed';
export const CLOUDEVENT_TYPE_ORDER_PLACED = 'dev.orderflow.order.placed';
/** Same topic and key as order.placed, so one order's events stay in order. */
export const CLOUDEVENT_TYPE_ORDER_CANCELLED = 'dev.orderflow.order.cancelled';
export const CLOUDEVENT_SOURCE = '/orderflow/orders';

/** The order as events carry it. */
export interface OrderPlacedData {
  orderId: string;
  customerEmail: string;
  currency: string;
  totalCents: number;
  items: { sku: string; quantity: number; unitPriceCents: number }[];
  placedAt: string;
}

/** A UUID (version 8, name-based on SHA-256) from a name: stable across processes and retries. */
function nameBasedUuid(name: string): string {
  const h = createHash('sha256').update(name).digest();
  h[6] = (h[6]! & 0x0f) | 0x80;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** Event id of an order's `order.placed` event (Kafka `ce_id`). */
export const orderPlacedEventId = (orderId: string): string =>
  nameBasedUuid(`order.placed:${orderId}`);

/** The order as an `order.cancelled` event carries it: what was placed, so consumers can undo it. */
export interface OrderCancelledData extends OrderPlacedData {
  reason: string;
}

/** Event id of an order's `order.cancelled` event. */
export const orderCancelledEventId = (orderId: string): string =>
  nameBasedUuid(`order.cancelled:${orderId}`);

/** Standard Webhooks `webhook-id`: stable per (event, endpoint). */
export const webhookMessageId = (eventId: string, endpointId: string): string =>
  `msg_${createHash('sha256').update(`${eventId}:${endpointId}`).digest('base64url').slice(0, 27)}`;

/** RFC 5322 Message-ID of an order's confirmation email. */
export const confirmationMessageId = (orderId: string): string =>
  `<order-${orderId}.confirmation@orderflow.local>`;
