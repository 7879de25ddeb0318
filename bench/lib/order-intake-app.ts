/**
 * The Express app the insert-only floor (bench/floor-server.ts) and the
 * BullMQ peer's API (bench/peers/bullmq/api.ts) share with each other: no
 * x-powered-by, no ETag, a 64 kB JSON body, GET /healthz after a database
 * ping, and POST /orders validated with orderflow's schema (400 with the
 * issues) before `place` writes the order and answers. Error handlers are
 * each server's own.
 */
import express from 'express';
import { createOrderSchema, type CreateOrderRequest } from '../../src/shared/orders.ts';

export function orderIntakeApp(opts: {
  /** Content types the JSON body parser accepts (Express's default: application/json). */
  jsonTypes?: string[];
  /** Rejects when the database cannot be reached. */
  ping(): Promise<unknown>;
  place(order: CreateOrderRequest, res: express.Response): Promise<void>;
}): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(express.json({ limit: '64kb', ...(opts.jsonTypes ? { type: opts.jsonTypes } : {}) }));
  app.get('/healthz', async (_req, res) => {
    await opts.ping();
    res.json({ status: 'ok' });
  });
  app.post('/orders', async (req, res) => {
    const parsed = createOrderSchema.safeParse(req.body);
    if (!parsed.success) {
      res.status(400).json({ title: 'Some fields are invalid', issues: parsed.error.issues });
      return;
    }
    await opts.place(parsed.data, res);
  });
  return app;
}
