import express, { type Express } from 'express';
import helmet from 'helmet';
import { randomUUID } from 'node:crypto';
import { pinoHttp } from 'pino-http';
import type { Db } from '../db/client.ts';
import { httpServerSpans } from '../observability/http-tracing.ts';
import { tracingEnabled } from '../observability/tracing.ts';
import type { Logger } from '../shared/logger.ts';
import { requireApiKey } from './auth.ts';
import { createApiMetrics } from './metrics.ts';
import { buildOpenApiDocument } from './openapi.ts';
import { OrderOperations } from './orders/order-operations.ts';
import { OrderService } from './orders/order-service.ts';
import { orderRoutes, type WorkflowStartMode } from './orders/routes.ts';
import type { OutboxRelay } from './outbox-relay.ts';
import { ProblemError, problemMiddleware } from './problems.ts';
import type { LazyTemporalClient } from './temporal-client.ts';
import { WebhookEndpointService } from './webhooks/endpoint-service.ts';
import { webhookEndpointRoutes } from './webhooks/routes.ts';
import type { Resolver, TargetPolicy } from '../webhooks/ssrf-guard.ts';

export interface AppDeps {
  db: Db;
  temporal: LazyTemporalClient;
  relay: OutboxRelay;
  log: Logger;
  apiKeys?: readonly string[];
  workflowStartMode?: WorkflowStartMode;
  /** SSRF policy for registered webhook URLs (WEBHOOK_ALLOWED_TARGETS); default 'public'. */
  webhookAllowedTargets?: TargetPolicy;
  /** WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE (default 20). */
  webhookMaxEndpointsPerEventType?: number;
  /** DNS for registered webhook hosts (default: the system's; tests answer for made-up names). */
  webhookResolver?: Resolver;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The Express application: thin routes over use cases, one error middleware. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  if (tracingEnabled()) app.use(httpServerSpans());
  app.use(helmet());
  app.use(
    pinoHttp({
      logger: deps.log,
      // A caller's request id is kept when sane; otherwise one is made.
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      customAttributeKeys: { reqId: 'requestId' },
      // Binds requestId on req.log and on the completion line (pino-http only
      // writes the reqId key with this; otherwise it is buried in req.id).
      quietReqLogger: true,
      autoLogging: {
        ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics',
      },
      // A response that never finished (the connection closed first) is a warning,
      // whatever status it was about to have.
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500
          ? 'error'
          : !res.writableEnded
            ? 'warn'
            : res.statusCode >= 400
              ? 'info'
              : 'debug',
    }),
  );
  const metrics = createApiMetrics(deps.relay, deps.db);
  app.use(metrics.middleware);
  app.use(express.json({ limit: '64kb', type: ['application/json', 'application/*+json'] }));

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

  app.get('/metrics', metrics.handler);

  const openapi = buildOpenApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  if (deps.apiKeys?.length) app.use(requireApiKey(deps.apiKeys));
  app.use(
    orderRoutes(
      new OrderService(deps.db, deps.workflowStartMode === 'relay' ? 0 : deps.relay.opts.graceMs),
      deps.relay,
      new OrderOperations(() => deps.temporal.get()),
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
