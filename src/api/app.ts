import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Db } from '../db/client.ts';
import { httpServerSpans } from '../observability/http-tracing.ts';
import { tracingEnabled } from '../observability/tracing.ts';
import type { Logger } from '../shared/logger.ts';
import { accessLog } from './access-log.ts';
import { requireApiKey } from './auth.ts';
import { createApiMetrics, type ApiMetrics } from './metrics.ts';
import { buildOpenApiDocument, type DocumentAccess } from './openapi.ts';
import { OrderCancellation } from '../orders/order-cancellation.ts';
import { OrderOperations } from '../orders/order-operations.ts';
import { OrderService } from '../orders/order-service.ts';
import type { WorkflowStartMode } from '../orders/workflow-start.ts';
import { orderRoutes } from './orders/routes.ts';
import type { OutboxRelay } from './outbox-relay.ts';
import { ProblemError, problemMiddleware } from './problems.ts';
import { JSON_MEDIA_TYPES } from './request-body.ts';
import type { LazyTemporalClient } from './temporal-client.ts';
import { WebhookEndpointService } from '../webhooks/endpoints.ts';
import { webhookEndpointRoutes } from './webhooks/routes.ts';
import type { Resolver, TargetPolicy } from '../webhooks/ssrf-guard.ts';

export interface AppDeps {
  db: Db;
  temporal: LazyTemporalClient;
  relay: OutboxRelay;
  log: Logger;
  /** Bearer keys; none: every route is open (server.ts refuses that where it is not safe). */
  apiKeys?: readonly string[];
  /** Where /metrics is served: open on this app (default), behind a key, or elsewhere (not here). */
  metricsAccess?: DocumentAccess['metrics'];
  /** The metrics to serve; made here when not given (server.ts shares them with a metrics listener). */
  metrics?: ApiMetrics;
  /** Deadline of retry and cancel (ORDER_ACTION_TIMEOUT_MS). */
  orderActionTimeoutMs?: number;
  workflowStartMode?: WorkflowStartMode;
  /** SSRF policy for registered webhook URLs (WEBHOOK_ALLOWED_TARGETS); default 'public'. */
  webhookAllowedTargets?: TargetPolicy;
  /** WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE (default 20). */
  webhookMaxEndpointsPerEventType?: number;
  /** DNS for registered webhook hosts (default: the system's; tests answer for made-up names). */
  webhookResolver?: Resolver;
}

/** The Express application: thin routes over use cases, one error middleware. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (tracingEnabled()) app.use(httpServerSpans());
  app.use(helmet());
  app.use(
    accessLog(deps.log, {
      ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics',
    }),
  );
  const metrics = deps.metrics ?? createApiMetrics(deps.relay, deps.db);
  const apiKeys = deps.apiKeys ?? [];
  const requireKey = apiKeys.length ? requireApiKey(apiKeys) : undefined;
  const metricsAccess = deps.metricsAccess ?? 'open';
  if (metricsAccess === 'key' && !requireKey) throw new Error('metrics behind a key need API keys');
  app.use(metrics.middleware);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const [database, temporal] = await Promise.all([
      deps.db.$queryRaw`SELECT 1`.then(
        () => 'ok',
        () => 'unreachable',
      ),
      deps.temporal.ping().then((ok) => (ok ? 'ok' : 'unreachable')),
    ]);
    const ready = database === 'ok' && temporal === 'ok';
    res
      .status(ready ? 200 : 503)
      .json({ status: ready ? 'ready' : 'not ready', checks: { database, temporal } });
  });

  if (metricsAccess === 'open') app.get('/metrics', metrics.handler);
  else if (metricsAccess === 'key' && requireKey) app.get('/metrics', requireKey, metrics.handler);

  const openapi = buildOpenApiDocument({
    apiKeys: requireKey !== undefined,
    metrics: metricsAccess,
  });
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  // Keys are checked before any body is read: a caller without one gets 401, never a parse.
  if (requireKey) app.use(requireKey);
  app.use(express.json({ limit: '64kb', type: JSON_MEDIA_TYPES }));
  const operations = new OrderOperations(() => deps.temporal.get(), deps.orderActionTimeoutMs);
  app.use(
    orderRoutes(
      new OrderService(deps.db, deps.workflowStartMode === 'relay' ? 0 : deps.relay.opts.graceMs),
      deps.relay,
      operations,
      new OrderCancellation(deps.db, operations),
      deps.workflowStartMode,
    ),
  );
  app.use(
    webhookEndpointRoutes(
      new WebhookEndpointService(deps.db, deps.webhookMaxEndpointsPerEventType),
      { allowedTargets: deps.webhookAllowedTargets ?? 'public', resolve: deps.webhookResolver },
    ),
  );

  app.use((req, _res, next) =>
    next(new ProblemError('not-found', `No route for ${req.method} ${req.path}`)),
  );
  app.use(problemMiddleware(deps.log));
  return app;
}
