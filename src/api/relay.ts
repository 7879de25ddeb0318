/**
 * The outbox relay as a process of its own (`npm run relay`): starts the
 * workflows of accepted orders, so the API (WORKFLOW_START_MODE=relay) only
 * validates and commits. Any number of relays may run: they lease rows with
 * FOR UPDATE SKIP LOCKED and together keep the orders in flight within
 * OUTBOX_MAX_IN_FLIGHT (counted in PostgreSQL). It polls every OUTBOX_POLL_MS
 * and sweeps at once when the intake statement notifies OUTBOX_CHANNEL (a
 * LISTEN connection of its own). Every WORKFLOW_RECONCILE_INTERVAL_MS it also
 * marks CANCELLED the orders whose workflow was terminated in Temporal
 * (workflow-reconciler.ts). On SIGINT/SIGTERM it finishes the starts in
 * hand (their rows are confirmed or keep their lease) and exits.
 */
import { inspect } from 'node:util';
import { loadConfig } from '../config/env.ts';
import { retryBudgetsOf } from '../config/retry-budgets.ts';
import { temporalConnectSettings } from '../config/temporal.ts';
import { createDbFromConfig } from '../db/client.ts';
import { startTracing } from '../observability/tracing.ts';
import { configForLog, createLogger, scrubUrlCredentials } from '../shared/logger.ts';
import { startMetricsServer } from '../shared/metrics-server.ts';
import { createRelayMetrics } from './metrics.ts';
import { OUTBOX_CHANNEL } from '../orders/workflow-start.ts';
import { OutboxListener } from './outbox-listener.ts';
import { OutboxRelay, defaultRelayOptions } from './outbox-relay.ts';
import { LazyTemporalClient } from './temporal-client.ts';
import { WorkflowReconciler, defaultReconcilerOptions } from './workflow-reconciler.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  // Fixed into each workflow this process starts; refused when an attempt cannot hold its timeout.
  const retryPolicies = retryBudgetsOf(config);
  // Tracing on (OTLP configured): each start runs in the trace of the request that accepted the order.
  const tracing = startTracing(config, 'orderflow-relay');
  const log = createLogger('relay', config.LOG_LEVEL, { format: config.LOG_FORMAT });
  log.info({ config: configForLog(config) }, 'configuration');
  const db = createDbFromConfig(config, 4);
  const temporal = new LazyTemporalClient(temporalConnectSettings(config));
  const relay = new OutboxRelay(
    db,
    () => temporal.get(),
    log,
    {
      ...defaultRelayOptions,
      intervalMs: config.OUTBOX_POLL_MS,
      concurrency: config.OUTBOX_START_CONCURRENCY,
      maxInFlight: config.OUTBOX_MAX_IN_FLIGHT,
      inFlightWindowMs: config.OUTBOX_IN_FLIGHT_WINDOW_MS,
      retryPolicies,
    },
    () => temporal.ping(),
  );
  // Fail fast on a wrong DATABASE_URL instead of logging sweep errors forever.
  await db.$queryRaw`SELECT 1`;
  relay.run();
  // Orders whose workflow was terminated in Temporal: marked CANCELLED (0: off).
  const reconciler = new WorkflowReconciler(db, () => temporal.get(), log, {
    ...defaultReconcilerOptions,
    retryPolicies,
    intervalMs: config.WORKFLOW_RECONCILE_INTERVAL_MS,
  });
  reconciler.run();
  const wakeups = new OutboxListener({
    connectionString: config.DATABASE_URL,
    onWake: () => relay.wake(),
    log,
  });
  wakeups.start();
  const metrics = await startMetricsServer(
    createRelayMetrics(relay).registry,
    config.HOST,
    config.RELAY_METRICS_PORT,
  );
  log.info(
    {
      pollMs: config.OUTBOX_POLL_MS,
      concurrency: config.OUTBOX_START_CONCURRENCY,
      maxInFlight: config.OUTBOX_MAX_IN_FLIGHT,
      inFlightWindowMs: config.OUTBOX_IN_FLIGHT_WINDOW_MS,
      reconcileIntervalMs: config.WORKFLOW_RECONCILE_INTERVAL_MS,
      wakeUpChannel: OUTBOX_CHANNEL,
      metricsUrl: metrics.url,
    },
    'relay running',
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'relay stopping');
    setTimeout(() => {
      log.error('relay stop timed out');
      process.exit(1);
    }, 15_000).unref();
    void wakeups
      .close()
      .then(() => Promise.all([relay.stop(), reconciler.stop()]))
      .then(() => Promise.allSettled([db.$disconnect(), temporal.close(), metrics.close()]))
      .then(() => tracing.shutdown())
      .then(() => {
        log.info(
          { started: relay.started, failed: relay.failed, reconciled: reconciler.reconciled },
          'relay stopped',
        );
        process.exit(0);
      });
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((err: unknown) => {
  // A fatal error may quote a connection string: printed without its credentials.
  console.error(scrubUrlCredentials(inspect(err)));
  process.exit(1);
});
