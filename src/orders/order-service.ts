/**
 * Order intake and queries: placing an order (with its pending workflow start,
 * in one statement), reading one, listing them. The use cases behind
 * POST/GET /orders and `orderflow orders list|show`.
 */
import { SpanKind } from '@opentelemetry/api';
import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../db/client.ts';
import { Prisma } from '../generated/prisma/client.ts';
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_SYSTEM,
} from '../observability/semconv.ts';
import { currentTraceContext, inSpan } from '../observability/tracing.ts';
import {
  orderTotalCents,
  type CreateOrderRequest,
  type OrderItemInput,
  type OrderStatus,
} from '../shared/orders.ts';
import { orderWorkflowId } from '../shared/task-queues.ts';
import { OrderError } from './errors.ts';
import { decodeOrderCursor, encodeOrderCursor } from './order-cursor.ts';
import {
  newOrderView,
  orderInclude,
  toView,
  type InsertedOrder,
  type OrderView,
} from './order-view.ts';
import { OUTBOX_CHANNEL, WORKFLOW_START_GRACE_MS } from './workflow-start.ts';

export interface CreateOrderResult {
  order: OrderView;
  /** False when the request replayed an earlier one with the same Idempotency-Key. */
  created: boolean;
}

/**
 * The CTE `lines` of the intake statement: inserts the order's lines, numbered
 * in their order, for the row the CTE `o` inserted (none when it inserted none).
 */
export function orderLinesCte(items: readonly OrderItemInput[]): Prisma.Sql {
  return Prisma.sql`lines AS (
    INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents)
    SELECT o.id, l.line, l.sku, l.quantity, l.unit_price_cents
    FROM o, unnest(${items.map((i) => i.sku)}::text[],
                   ${items.map((i) => i.quantity)}::int[],
                   ${items.map((i) => i.unitPriceCents)}::bigint[])
            WITH ORDINALITY AS l(sku, quantity, unit_price_cents, line)
  )`;
}

/** Fingerprint of a validated request: key order and whitespace do not matter. */
export function requestFingerprint(body: CreateOrderRequest): string {
  const canonical = JSON.stringify({
    customerEmail: body.customerEmail,
    currency: body.currency,
    items: body.items.map((i) => [i.sku, i.quantity, i.unitPriceCents]),
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/** The span of the intake transaction (order, lines, pending workflow start). */
const insertSpan = {
  kind: SpanKind.CLIENT,
  attributes: {
    [ATTR_DB_SYSTEM]: 'postgresql',
    [ATTR_DB_OPERATION_NAME]: 'INSERT',
    [ATTR_DB_COLLECTION_NAME]: 'orders',
  },
};

export interface IdempotencyKey {
  /** Whose key: a hash of the caller's API key, or "" when auth is off. */
  scope: string;
  key: string;
}

export class OrderService {
  /**
   * @param startGraceMs how long a new order's workflow start is left to the
   * API process before a relay's sweep may take it (0 when a relay process
   * does all the starting).
   */
  constructor(
    private readonly db: Db,
    private readonly startGraceMs = WORKFLOW_START_GRACE_MS,
  ) {}

  /**
   * Persists the order, its items and its pending workflow start in one
   * statement (one round trip): a CTE whose inserts commit together. The
   * answer is built from the validated input and the returned row, not read
   * back. With an Idempotency-Key, the unique index on (scope, key) decides
   * between concurrent duplicates: ON CONFLICT DO NOTHING waits for the
   * winner's commit and inserts nothing, and the loser reads the winner's order.
   */
  async createOrder(body: CreateOrderRequest, idem?: IdempotencyKey): Promise<CreateOrderResult> {
    const id = randomUUID();
    const hash = idem ? requestFingerprint(body) : null;
    const totalCents = orderTotalCents(body.items);
    // The relay starts the workflow in this request's trace (nothing is stored while tracing is off).
    const trace = currentTraceContext();
    const rows = await inSpan(
      'INSERT orders',
      insertSpan,
      () =>
        this.db.$queryRaw<InsertedOrder[]>`
        WITH o AS (
          INSERT INTO orders (id, customer_email, currency, total_cents, workflow_id,
                              idempotency_scope, idempotency_key, request_hash)
          VALUES (${id}::uuid, ${body.customerEmail}, ${body.currency}, ${totalCents}::bigint,
                  ${orderWorkflowId(id)}, ${idem?.scope ?? null}, ${idem?.key ?? null}, ${hash})
          ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
          RETURNING id, status, created_at, updated_at
        ), ${orderLinesCte(body.items)}, start AS (
          INSERT INTO workflow_starts (order_id, next_attempt_at, traceparent, tracestate)
          SELECT o.id, now() + ${this.startGraceMs}::int * interval '1 millisecond',
                 ${trace?.traceparent ?? null}, ${trace?.tracestate ?? null}
          FROM o
        ), wake AS (
          -- Wakes the relay process when this start is due at once and no other one is
          -- (relay mode): a busy relay sweeps again anyway, and NOTIFY serializes commits.
          -- The earliest pending start, not NOT EXISTS (... <= now()): see anyDue in outbox-relay.ts.
          SELECT pg_notify(${OUTBOX_CHANNEL}, '') FROM o
          WHERE ${this.startGraceMs}::int = 0 AND NOT coalesce((
            SELECT next_attempt_at FROM workflow_starts WHERE started_at IS NULL
            ORDER BY next_attempt_at LIMIT 1) <= now(), false)
        )
        SELECT status, created_at, updated_at FROM o LEFT JOIN wake ON true`,
    );
    const row = rows[0];
    if (!row) {
      // Only an Idempotency-Key conflict inserts nothing (ids are fresh UUIDs).
      if (!idem) throw new Error(`order ${id} was not inserted`);
      return { order: await this.replay(idem, hash!), created: false };
    }
    return { order: newOrderView(id, body, row), created: true };
  }

  private async replay(idem: IdempotencyKey, hash: string): Promise<OrderView> {
    const existing = await this.db.order.findUnique({
      where: {
        idempotencyScope_idempotencyKey: { idempotencyScope: idem.scope, idempotencyKey: idem.key },
      },
      include: orderInclude,
    });
    if (!existing) throw new Error('idempotency conflict without a row');
    if (existing.requestHash !== hash) {
      throw new OrderError(
        'idempotency-key-reused',
        `Idempotency-Key "${idem.key}" was first used for order ${existing.id} with a different body`,
      );
    }
    return toView(existing);
  }

  async getOrder(id: string): Promise<OrderView> {
    const row = await this.db.order.findUnique({ where: { id }, include: orderInclude });
    if (!row) throw new OrderError('not-found', `Order ${id} does not exist`);
    return toView(row);
  }

  /** Newest first; the cursor is opaque (created_at and id of the last row). */
  async listOrders(q: { status?: OrderStatus; limit: number; cursor?: string }) {
    const after = q.cursor ? decodeOrderCursor(q.cursor) : undefined;
    const rows = await this.db.order.findMany({
      where: {
        ...(q.status ? { status: q.status } : {}),
        ...(after
          ? {
              OR: [
                { createdAt: { lt: after.createdAt } },
                { createdAt: after.createdAt, id: { lt: after.id } },
              ],
            }
          : {}),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: q.limit + 1,
      include: orderInclude,
    });
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    return {
      items: page.map(toView),
      nextCursor: rows.length > q.limit && last ? encodeOrderCursor(last) : null,
    };
  }
}
