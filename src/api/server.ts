/**
 * The API process: builds its dependencies, serves HTTP on PORT, runs the
 * outbox relay (or, with WORKFLOW_START_MODE=relay, only its Temporal probe:
 * the relay process starts the workflows), and on SIGINT/SIGTERM stops
 * accepting, finishes in-flight requests, then closes its connections.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiAccessOf, loadConfig } from '../config/env.ts';
import { retryBudgetsOf } from '../config/retry-budgets.ts';
import { temporalConnectSettings } from '../config/temporal.ts';
import { createDbFromConfig } from '../db/client.ts';
import { startTracing } from '../observability/tracing.ts';
import { configForLog, createLogger, scrubUrlCredentials } from '../shared/logger.ts';
import { createApp } from './app.ts';
import { OutboxRelay, defaultRelayOptions } from './outbox-relay.ts';
import { WorkflowReconciler, defaultReconcilerOptions } from './workflow-reconciler.ts';
import { createApiMetrics } from './metrics.ts';
import { startMetricsServer } from '../shared/metrics-server.ts';
import { LazyTemporalClient } from './temporal-client.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  // Refused before anything starts: keys are required in production and off loopback.
  const access = apiAccessOf(config);
  // Fixed into each workflow this process starts; refused when an attempt cannot hold its timeout.
  const retryPolicies = retryBudgetsOf(config);
  // Before the app is built: its server spans and the Temporal client's interceptor depend on it.
  const tracing = startTracing(config, 'orderflow-api');
  const log = createLogger('api', config.LOG_LEVEL, { format: config.LOG_FORMAT });
  log.info({ config: configForLog(config) }, 'configuration');
  if (access.anonymous)
    log.warn(
      config.API_ALLOW_ANONYMOUS
        ? 'API_ALLOW_ANONYMOUS=true: every route is open to anyone who can reach it'
        : 'API_KEYS is not set: every route is open (to this machine only: HOST is loopback)',
    );
  const db = createDbFromConfig(config, config.DATABASE_POOL_SIZE);
  const temporal = new LazyTemporalClient(temporalConnectSettings(config));
  const relay = new OutboxRelay(
    db,
    () => temporal.get(),
    log.child({ component: 'outbox-relay' }),
    {
      ...defaultRelayOptions,
      concurrency: config.OUTBOX_START_CONCURRENCY,
      // async: kicks and sweeps keep within it; inline starts in the request, unbounded.
      maxInFlight: config.OUTBOX_MAX_IN_FLIGHT,
      inFlightWindowMs: config.OUTBOX_IN_FLIGHT_WINDOW_MS,
      retryPolicies,
      sweep: config.WORKFLOW_START_MODE !== 'relay',
    },
    () => temporal.ping(),
  );
  relay.run();
  // Where the API sweeps the outbox itself, it also reconciles terminated workflows (relay.ts otherwise).
  const reconciler = new WorkflowReconciler(
    db,
    () => temporal.get(),
    log.child({ component: 'workflow-reconciler' }),
    {
      ...defaultReconcilerOptions,
      retryPolicies,
      intervalMs:
        config.WORKFLOW_START_MODE === 'relay' ? 0 : config.WORKFLOW_RECONCILE_INTERVAL_MS,
    },
  );
  reconciler.run();
  const metrics = createApiMetrics(relay, db);
  const metricsServer =
    config.API_METRICS_PORT === undefined
      ? undefined
      : await startMetricsServer(
          metrics.registry,
          config.API_METRICS_HOST,
          config.API_METRICS_PORT,
        );
  if (metricsServer) log.info({ url: metricsServer.url }, 'metrics listening');
  const app = createApp({
    db,
    temporal,
    relay,
    log,
    apiKeys: access.apiKeys,
    metricsAccess: access.metrics,
    metrics,
    orderActionTimeoutMs: config.ORDER_ACTION_TIMEOUT_MS,
    workflowStartMode: config.WORKFLOW_START_MODE,
    webhookAllowedTargets: config.WEBHOOK_ALLOWED_TARGETS,
    webhookMaxEndpointsPerEventType: config.WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE,
  });
  // Express 5 hands a listen error (EADDRINUSE, EACCES) to this callback: it ends main() with it.
  const server = await new Promise<ReturnType<typeof app.listen>>((resolve, reject) => {
    const s = app.listen(config.PORT, config.HOST, (err?: Error) =>
      err
        ? reject(new Error(`cannot listen on ${config.HOST}:${config.PORT}: ${err.message}`))
        : resolve(s),
    );
  });
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  log.info({ url: `http://${host}:${port}`, apiKeys: access.apiKeys.length }, 'api listening');
  server.keepAliveTimeout = 65_000;

  let closing = false;
  // Keep-alive connections would hold server.close() open for keepAliveTimeout
  // after their last response: while draining, every response that has not
  // started yet says `Connection: close`, so its socket ends with it.
  const unsent = new Set<ServerResponse>();
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    if (closing) res.setHeader('Connection', 'close');
    unsent.add(res);
    res.once('close', () => unsent.delete(res));
  });
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    log.info({ signal }, 'draining in-flight requests');
    for (const res of unsent) if (!res.headersSent) res.setHeader('Connection', 'close');
    setTimeout(() => {
      log.error('drain timed out');
      process.exit(1);
    }, 15_000).unref();
    server.close(() => {
      void Promise.all([relay.stop(), reconciler.stop()])
        .then(() =>
          Promise.allSettled([db.$disconnect(), temporal.close(), metricsServer?.close()]),
        )
        .then(() => tracing.shutdown())
        .then(() => {
          log.info('stopped');
          process.exit(0);
        });
    });
    server.closeIdleConnections();
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  console.error(scrubUrlCredentials(err instanceof Error ? err.message : String(err)));
  process.exit(1);
});
