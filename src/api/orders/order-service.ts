/**
 * Order intake and queries: the use cases behind the /orders routes.
 */
import { SpanKind } from '@opentelemetry/api';
import { createHash, randomUUID } from 'node:crypto';
import type { Db } from '../../db/client.ts';
import { Prisma } from '../../generated/prisma/client.ts';
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_SYSTEM,
} from '../../observability/semconv.ts';
import { currentTraceContext, inSpan } from '../../observability/tracing.ts';
import { orderTotalCents, type CreateOrderRequest, type OrderStatus } from '../../shared/orders.ts';
import { orderWorkflowId } from '../../shared/task-queues.ts';
import { ProblemError } from '../problems.ts';

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

export interface CreateOrderResult {
  order: OrderView;
  /** False when the request replayed an earlier one with the same Idempotency-Key. */
  created: boolean;
}

const orderInclude = { items: { orderBy: { line: 'asc' } } } as const;
type OrderRow = Prisma.OrderGetPayload<{ include: typeof orderInclude }>;

function toView(row: OrderRow): OrderView {
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
    private readonly startGraceMs = 3000,
  ) {}

  /**
   * Persists the order, its items and its pending workflow start in one
   * transaction. With an Idempotency-Key, the unique index on (scope, key)
   * decides between concurrent duplicates: the losers read the winner's order.
   */
  async createOrder(body: CreateOrderRequest, idem?: IdempotencyKey): Promise<CreateOrderResult> {
    const id = randomUUID();
    const hash = idem ? requestFingerprint(body) : null;
    // The relay starts the workflow in this request's trace (nothing is stored while tracing is off).
    const traceContext = currentTraceContext();
    try {
      const row = await inSpan('INSERT orders', insertSpan, () =>
        this.db.order.create({
          data: {
            id,
            customerEmail: body.customerEmail,
            currency: body.currency,
            totalCents: BigInt(orderTotalCents(body.items)),
            workflowId: orderWorkflowId(id),
            idempotencyScope: idem?.scope ?? null,
            idempotencyKey: idem?.key ?? null,
            requestHash: hash,
            items: {
              createMany: {
                data: body.items.map((i, n) => ({
                  line: n + 1,
                  sku: i.sku,
                  quantity: i.quantity,
                  unitPriceCents: BigInt(i.unitPriceCents),
                })),
              },
            },
            workflowStart: {
              create: { nextAttemptAt: new Date(Date.now() + this.startGraceMs), ...traceContext },
            },
          },
          include: orderInclude,
        }),
      );
      return { order: toView(row), created: true };
    } catch (err) {
      if (idem && err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002') {
        return { order: await this.replay(idem, hash!), created: false };
      }
      throw err;
    }
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
      throw new ProblemError(
        'idempotency-key-reused',
        `Idempotency-Key "${idem.key}" was first used for order ${existing.id} with a different body`,
      );
    }
    return toView(existing);
  }

  async getOrder(id: string): Promise<OrderView> {
    const row = await this.db.order.findUnique({ where: { id }, include: orderInclude });
    if (!row) throw new ProblemError('not-found', `Order ${id} does not exist`);
    return toView(row);
  }

  /** Newest first; the cursor is opaque (created_at and id of the last row). */
  async listOrders(q: { status?: OrderStatus; limit: number; cursor?: string }) {
    const after = q.cursor ? decodeCursor(q.cursor) : undefined;
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
      nextCursor: rows.length > q.limit && last ? encodeCursor(last.createdAt, last.id) : null,
    };
  }
}

function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.toISOString()}|${id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [ts, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(ts ?? '');
  if (!id || Number.isNaN(createdAt.getTime()) || !/^[0-9a-f-]{36}$/.test(id)) {
    throw new ProblemError('validation-error', 'The cursor is invalid', [
      { field: 'cursor', message: 'is not a cursor returned by this API' },
    ]);
  }
  return { createdAt, id };
}
