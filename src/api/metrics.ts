/**
 * Prometheus metrics of the API process (prom-client): request latency by
 * route and status, the outbox backlog, and Node.js process metrics.
 */
import type { RequestHandler } from 'express';
import client from 'prom-client';
import type { OutboxRelay } from './outbox-relay.ts';

export function createApiMetrics(relay: OutboxRelay) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const httpDuration = new client.Histogram({
    name: 'orderflow_http_request_duration_seconds',
    help: 'HTTP request latency by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new client.Gauge({
    name: 'orderflow_outbox_pending',
    help: 'Accepted orders whose workflow start is not confirmed yet',
    registers: [registry],
    async collect() {
      this.set((await relay.backlog()).pending);
    },
  });
  new client.Gauge({
    name: 'orderflow_outbox_oldest_age_seconds',
    help: 'Age of the oldest unconfirmed workflow start',
    registers: [registry],
    async collect() {
      this.set((await relay.backlog()).oldestAgeSeconds);
    },
  });
  new client.Gauge({
    name: 'orderflow_temporal_reachable',
    help: '1 when the last probe reached the Temporal frontend',
    registers: [registry],
    collect() {
      this.set(relay.temporalReachable ? 1 : 0);
    },
  });

  /** Times each request; the route label is the matched pattern, never the raw path. */
  const middleware: RequestHandler = (req, res, next) => {
    const end = httpDuration.startTimer();
    res.once('finish', () => {
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };

  const handler: RequestHandler = async (_req, res) => {
    res.type(registry.contentType).send(await registry.metrics());
  };

  return { registry, middleware, handler };
}
