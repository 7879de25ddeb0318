/**
 * The peer's API: `POST /orders` validates with orderflow's schema, INSERTs
 * the order (plain pg) and adds a BullMQ flow: a parent job on `peer-orders`
 * with one child per step (email, one webhook per endpoint, the Kafka event).
 * The insert and the add are two writes to two stores, as usual with a queue.
 *
 *   PORT DATABASE_URL REDIS_URL node --import tsx bench/peers/bullmq/api.ts
 */
import { FlowProducer, type FlowJob } from 'bullmq';
import type express from 'express';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { orderTotalCents } from '../../../src/shared/orders.ts';
import { orderIntakeApp } from '../../lib/order-intake-app.ts';
import {
  PEER_JOB_OPTIONS,
  PEER_QUEUES,
  PEER_SCHEMA,
  redisConnection,
  requireEnv,
} from './common.ts';

const port = Number(process.env.PORT ?? 0);
const db = new pg.Pool({
  connectionString: requireEnv('DATABASE_URL'),
  max: Number(process.env.DATABASE_POOL_SIZE ?? 10),
  // As orderflow's pools: idle connections kept, not closed and reopened at each burst.
  idleTimeoutMillis: 300_000, // POOL_IDLE_TIMEOUT_MS in src/db/client.ts
});
await db.query(PEER_SCHEMA);
const flows = new FlowProducer({ connection: redisConnection('api') });

// Subscribed endpoints, re-read every second off the request path.
let endpoints: { id: number; url: string }[] = [];
const refreshEndpoints = async () => {
  endpoints = (
    await db.query<{ id: number; url: string }>('SELECT id, url FROM peer_webhook_endpoints')
  ).rows;
};
await refreshEndpoints();
setInterval(() => void refreshEndpoints().catch(() => {}), 1000).unref();

const app = orderIntakeApp({
  ping: () => db.query('SELECT 1'),
  place: async (order, res) => {
    const id = randomUUID();
    const totalCents = orderTotalCents(order.items);
    await db.query(
      'INSERT INTO peer_orders (id, customer_email, currency, total_cents, items) VALUES ($1, $2, $3, $4, $5)',
      [id, order.customerEmail, order.currency, totalCents, JSON.stringify(order.items)],
    );
    const data = {
      orderId: id,
      customerEmail: order.customerEmail,
      currency: order.currency,
      totalCents,
    };
    const children: FlowJob[] = [
      { name: 'email', queueName: PEER_QUEUES.email, data, opts: PEER_JOB_OPTIONS.email },
      { name: 'event', queueName: PEER_QUEUES.events, data, opts: PEER_JOB_OPTIONS.events },
      ...endpoints.map((e) => ({
        name: 'webhook',
        queueName: PEER_QUEUES.webhooks,
        data: { ...data, endpointId: e.id, url: e.url },
        opts: PEER_JOB_OPTIONS.webhooks,
      })),
    ];
    try {
      await flows.add({
        name: 'complete',
        queueName: PEER_QUEUES.orders,
        data: { orderId: id },
        children,
      });
    } catch (e) {
      // The row is written but no job exists: the usual dual-write gap (no outbox here).
      res.status(503).json({ title: 'queue unavailable', detail: (e as Error).message });
      return;
    }
    res.status(201).location(`/orders/${id}`).json({ id, status: 'RECEIVED', totalCents });
  },
});

app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
  res.status(500).json({ title: 'internal error', detail: err.message });
});

const server = app.listen(port, '127.0.0.1', () => console.log(`peer api listening on ${port}`));
const stop = () => {
  server.close();
  void Promise.allSettled([flows.close(), db.end()]).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
