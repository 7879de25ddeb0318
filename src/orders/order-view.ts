/**
 * An order as callers see it (GET /orders/{id}, `orderflow orders show --json`),
 * and the one way rows are read with their lines.
 */
import type { Prisma } from '../generated/prisma/client.ts';
import { orderTotalCents, type CreateOrderRequest, type OrderStatus } from '../shared/orders.ts';
import { orderWorkflowId } from '../shared/task-queues.ts';

export interface OrderView {
  id: string;
  status: OrderStatus;
  workflowId: string;
  customerEmail: string;
  currency: string;
  totalCents: number;
  items: { sku: string; quantity: number; unitPriceCents: number }[];
  failedStep: string | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Reads an order with its lines in order (Prisma `include`). */
export const orderInclude = { items: { orderBy: { line: 'asc' } } } as const;
export type OrderWithItems = Prisma.OrderGetPayload<{ include: typeof orderInclude }>;

/** A stored order as callers see it. */
export function toView(row: OrderWithItems): OrderView {
  return {
    id: row.id,
    status: row.status,
    workflowId: row.workflowId,
    customerEmail: row.customerEmail,
    currency: row.currency,
    totalCents: Number(row.totalCents),
    items: row.items.map((i) => ({
      sku: i.sku,
      quantity: i.quantity,
      unitPriceCents: Number(i.unitPriceCents),
    })),
    failedStep: row.failedStep,
    lastError: row.lastError,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** What the intake statement returns of a new row (the rest is the validated input). */
export interface InsertedOrder {
  status: OrderStatus;
  created_at: Date;
  updated_at: Date;
}

/** A just-inserted order as callers see it, built from the validated input and the returned row (no re-read). */
export function newOrderView(id: string, body: CreateOrderRequest, row: InsertedOrder): OrderView {
  return {
    id,
    status: row.status,
    workflowId: orderWorkflowId(id),
    customerEmail: body.customerEmail,
    currency: body.currency,
    totalCents: orderTotalCents(body.items),
    items: body.items.map((i) => ({
      sku: i.sku,
      quantity: i.quantity,
      unitPriceCents: i.unitPriceCents,
    })),
    failedStep: null,
    lastError: null,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}
