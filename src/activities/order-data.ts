/** The order as activities read it, and as events carry it. */
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import { Prisma } from '../generated/prisma/client.ts';
import type { OrderStatus } from '../generated/prisma/enums.ts';
import type { OrderCancelledData, OrderPlacedData } from '../shared/events.ts';
import { FailureType } from '../shared/steps.ts';

/** What the activities use of a stored order: the fields they send, and its lines in line order. */
export interface StoredOrder {
  id: string;
  status: OrderStatus;
  customerEmail: string;
  currency: string;
  totalCents: bigint;
  lastError: string | null;
  createdAt: Date;
  updatedAt: Date;
  items: { sku: string; quantity: number; unitPriceCents: bigint }[];
}

/**
 * The lines of the order aliased `o`, in line order, as SQL's JSON array of
 * [sku, quantity, unit price as text] (withLines turns them back): for every
 * statement that loads an order with its lines in one round trip.
 */
export const ORDER_LINES_JSON = Prisma.sql`coalesce((SELECT json_agg(json_build_array(i.sku, i.quantity, i.unit_price_cents::text)
                                  ORDER BY i.line)
                  FROM order_items i WHERE i.order_id = o.id), '[]')`;

/** An order's row as SQL returns it, its lines as ORDER_LINES_JSON. */
export type StoredOrderLines<T extends { items: unknown }> = Omit<T, 'items'> & {
  /** [sku, quantity, unit price as text] per line: JSON keeps no bigint. */
  items: [string, number, string][];
};

/** The order with its lines as numbers again (withLines of what the SQL returned). */
export function withLines<T extends { items: unknown }>(
  row: StoredOrderLines<T>,
): Omit<T, 'items'> & { items: StoredOrder['items'] } {
  return {
    ...row,
    items: row.items.map(([sku, quantity, unitPriceCents]) => ({
      sku,
      quantity,
      unitPriceCents: BigInt(unitPriceCents),
    })),
  };
}

/** What an activity throws for an order that does not exist (not retried). */
export function orderNotFound(orderId: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.OrderNotFound,
    message: `order ${orderId} does not exist`,
    nonRetryable: true,
  });
}

/**
 * Loads an order with its lines in one statement (Prisma's `include` takes two:
 * the row, then its lines; every order is loaded by the email and the events
 * activity); a missing order is a permanent failure (OrderNotFound).
 */
export async function loadOrder(db: Db, orderId: string): Promise<StoredOrder> {
  const [row] = await db.$queryRaw<StoredOrderLines<StoredOrder>[]>`
    SELECT o.id::text, o.status::text, o.customer_email AS "customerEmail", o.currency,
           o.total_cents AS "totalCents", o.last_error AS "lastError",
           o.created_at AS "createdAt", o.updated_at AS "updatedAt",
           ${ORDER_LINES_JSON} AS items
    FROM orders o WHERE o.id = ${orderId}::uuid`;
  if (!row) throw orderNotFound(orderId);
  return withLines(row);
}

/** The `order.placed` data, built from the stored order only, so every retry sends the same bytes. */
export function orderPlacedData(order: StoredOrder): OrderPlacedData {
  return {
    orderId: order.id,
    customerEmail: order.customerEmail,
    currency: order.currency,
    totalCents: Number(order.totalCents),
    items: order.items.map((i) => ({
      sku: i.sku,
      quantity: i.quantity,
      unitPriceCents: Number(i.unitPriceCents),
    })),
    placedAt: order.createdAt.toISOString(),
  };
}

/** The `order.cancelled` data: what was placed, and why it was cancelled. */
export function orderCancelledData(order: StoredOrder, reason: string): OrderCancelledData {
  return { ...orderPlacedData(order), reason };
}

/**
 * Refuses to send anything for a cancelled order: an attempt that reads the
 * row after the cancel wrote it stops before sending (OrderCancelled, not retried).
 */
export async function ensureNotCancelled(db: Db, orderId: string): Promise<void> {
  const row = await db.order.findUnique({ where: { id: orderId }, select: { status: true } });
  if (row?.status === 'CANCELLED') throw orderCancelled(orderId);
}

/** What an attempt throws when it finds its order cancelled before sending (not retried). */
export function orderCancelled(orderId: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: FailureType.OrderCancelled,
    message: `order ${orderId} was cancelled; nothing sent`,
    nonRetryable: true,
  });
}
