/**
 * The floor of bench/intake: `POST /orders` doing only the validated database
 * insert. Same Express 5 body parser and limit, the same zod schema and the
 * same single-statement write as the API (order + items through Prisma's
 * $queryRaw, answered from the input and the returned row), but no
 * workflow-start row, no Temporal, no helmet and no logging. Whatever the
 * API costs above this floor is what the bench measures.
 *
 *   PORT=4000 DATABASE_URL=postgresql://... node --import tsx bench/floor-server.ts
 */
import type express from 'express';
import { randomUUID } from 'node:crypto';
import { createDb } from '../src/db/client.ts';
import { orderLinesCte } from '../src/orders/order-service.ts';
import { newOrderView, type InsertedOrder } from '../src/orders/order-view.ts';
import { orderTotalCents } from '../src/shared/orders.ts';
import { orderWorkflowId } from '../src/shared/task-queues.ts';
import { orderIntakeApp } from './lib/order-intake-app.ts';

const port = Number(process.env.PORT ?? 0);
const databaseUrl = process.env.DATABASE_URL;
const poolSize = Number(process.env.DATABASE_POOL_SIZE ?? 10);
if (!databaseUrl) throw new Error('DATABASE_URL is required');
if (!Number.isInteger(poolSize) || poolSize < 1) throw new Error('bad DATABASE_POOL_SIZE');

const db = createDb(databaseUrl, poolSize);
const app = orderIntakeApp({
  jsonTypes: ['application/json', 'application/*+json'],
  ping: () => db.$queryRaw`SELECT 1`,
  place: async (body, res) => {
    const id = randomUUID();
    const totalCents = orderTotalCents(body.items);
    // The API's intake statement without its pending workflow start: order and lines, one round trip.
    const [row] = await db.$queryRaw<InsertedOrder[]>`
      WITH o AS (
        INSERT INTO orders (id, customer_email, currency, total_cents, workflow_id)
        VALUES (${id}::uuid, ${body.customerEmail}, ${body.currency}, ${totalCents}::bigint,
                ${orderWorkflowId(id)})
        RETURNING id, status, created_at, updated_at
      ), ${orderLinesCte(body.items)}
      SELECT status, created_at, updated_at FROM o`;
    // The same view the API answers with, built the same way (input and returned row).
    res
      .status(201)
      .location(`/orders/${id}`)
      .json(newOrderView(id, body, row!));
  },
});

// Express 5 forwards rejected promises here.
app.use(
  (
    err: Error & { status?: number },
    _req: express.Request,
    res: express.Response,
    _next: express.NextFunction,
  ) => {
    res.status(err.status ?? 500).json({ title: err.message });
  },
);

const server = app.listen(port, '127.0.0.1', () => {
  console.log(`floor listening on 127.0.0.1:${port}`);
});
server.keepAliveTimeout = 65_000;

const stop = () => {
  setTimeout(() => process.exit(1), 5_000).unref();
  server.close(() => {
    void db.$disconnect().finally(() => process.exit(0));
  });
  server.closeIdleConnections();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
