/**
 * The opaque cursor of GET /orders: base64url of "<createdAt ISO>|<id>" of the
 * last order of a page. A cursor is checked whole before it reaches the
 * database: a forged one is a 400, never a database error.
 */
import { z } from 'zod';
import { OrderError } from './errors.ts';

/** The base64url alphabet, as the document states it. */
export const ORDER_CURSOR_PATTERN = /^[A-Za-z0-9_-]{1,200}$/;

/** Years PostgreSQL's timestamptz and JavaScript's Date both hold, with room for any real order. */
const EARLIEST = Date.UTC(2000, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const cursorSchema = z.tuple([
  z.iso
    .datetime({ precision: 3 })
    .transform((s) => new Date(s))
    .refine((d) => d.getTime() >= EARLIEST && d.getTime() <= LATEST),
  z.uuid(),
]);

export interface OrderCursor {
  createdAt: Date;
  id: string;
}

export function encodeOrderCursor({ createdAt, id }: OrderCursor): string {
  return Buffer.from(`${createdAt.toISOString()}|${id}`).toString('base64url');
}

export function decodeOrderCursor(cursor: string): OrderCursor {
  const parts = ORDER_CURSOR_PATTERN.test(cursor)
    ? Buffer.from(cursor, 'base64url').toString('utf8').split('|')
    : [];
  const parsed = cursorSchema.safeParse(parts);
  if (!parsed.success) {
    throw new OrderError('invalid', 'The cursor is invalid', {
      fields: [{ field: 'cursor', message: 'is not a cursor returned by this API' }],
    });
  }
  const [createdAt, id] = parsed.data;
  return { createdAt, id };
}
