import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createDb } from '../../src/db/client.ts';

describe('PostgreSQL through the Prisma client (the stack’s)', () => {
  const db = createDb(inject('stack').DATABASE_URL, 2);
  afterAll(async () => {
    await db.$disconnect();
  });

  it('round-trips an order with its items', async () => {
    const id = randomUUID();
    await db.order.create({
      data: {
        id,
        customerEmail: 'a@example.com',
        currency: 'USD',
        totalCents: 2500n,
        workflowId: `order-${id}`,
        items: { create: [{ line: 1, sku: 'SKU-1', quantity: 2, unitPriceCents: 1250n }] },
      },
    });
    const row = await db.order.findUniqueOrThrow({ where: { id }, include: { items: true } });
    expect(row).toMatchObject({
      id,
      status: 'RECEIVED',
      customerEmail: 'a@example.com',
      currency: 'USD',
      totalCents: 2500n,
      items: [{ orderId: id, line: 1, sku: 'SKU-1', quantity: 2, unitPriceCents: 1250n }],
    });
    await db.order.delete({ where: { id } });
    expect(await db.orderItem.count({ where: { orderId: id } })).toBe(0);
  });
});
