/** The order as activities read it, and as events carry it. */
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../db/client.ts';
import { orderInclude, type OrderWithItems } from '../orders/order-view.ts';
import type { OrderCancelledData, OrderPlacedData } from '../shared/events.ts';
import { FailureType } from '../shared/steps.ts';

/** Loads an order with its lines; a missing order is a permanent failure (OrderNotFound). */
export async function loadOrder(db: Db, orderId: string): Promise<OrderWithItems> {
  const order = await db.order.findUnique({ where: { id: orderId }, include: orderInclude });
  if (!order) {
    throw ApplicationFailure.create({
      type: FailureType.OrderNotFound,
      message: `order ${orderId} does not exist`,
      nonRetryable: true,
    });
  }
  return order;
}

/** The `order.placed` data, built from the stored order only, so every retry sends the same bytes. */
export function orderPlacedData(order: OrderWithItems): OrderPlacedData {
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
export function orderCancelledData(order: OrderWithItems, reason: string): OrderCancelledData {
  return { ...orderPlacedData(order), reason };
}

/**
 * Refuses to send anything for a cancelled order: an attempt that reads the
 * row after the cancel wrote it stops before sending (OrderCancelled, not retried).
 */
export async function ensureNotCancelled(db: Db, orderId: string): Promise<void> {
  const row = await db.order.findUnique({ where: { id: orderId }, select: { status: true } });
  if (row?.status === 'CANCELLED') {
    throw ApplicationFailure.create({
      type: FailureType.OrderCancelled,
      message: `order ${orderId} was cancelled; nothing sent`,
      nonRetryable: true,
    });
  }
}
