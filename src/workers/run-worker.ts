/**
 * The shape every worker bootstrap shares: log the configuration (secrets
 * redacted), install the Temporal runtime (logs to pino, core metrics),
 * connect, create the worker(s), serve /metrics, log that they run, drain on
 * SIGINT/SIGTERM (Worker.run() returns), close what was built, exit non-zero
 * on a fatal error.
 */
import { inspect } from 'node:util';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import client from 'prom-client';
import { loadConfig, type Config } from '../config/env.ts';
import { temporalConnectSettings } from '../config/temporal.ts';
import { temporalWorkerPlugins } from '../observability/temporal-tracing.ts';
import { startTracing } from '../observability/tracing.ts';
import { configForLog, createLogger, scrubUrlCredentials, type Logger } from '../shared/logger.ts';
import { startMetricsServer, type MetricsServer } from '../shared/metrics-server.ts';
import { installTemporalRuntime } from './temporal-runtime.ts';

type QueueOptions = Omit<WorkerOptions, 'connection' | 'taskQueue' | 'namespace'>;

export interface WorkerSpec {
  name: string;
  taskQueue: string;
  /** Builds the worker's options (activities, concurrency) and what must be closed after it stops. */
  build(
    config: Config,
    log: Logger,
    /** The process's Prometheus registry, for the worker's own series. */
    registry: client.Registry,
  ): Promise<{
    options: QueueOptions;
    /** More task queues served by this process with the same dependencies (e.g. a bulk queue). */
    also?: { taskQueue: string; options: QueueOptions }[];
    close?: () => Promise<void>;
  }>;
}

export function runWorker(spec: WorkerSpec): void {
  const main = async () => {
    const config = loadConfig();
    // Tracing on (OTLP configured): the workflow and activity interceptors join each order's trace.
    const tracing = startTracing(config, `orderflow-${spec.name}`);
    const log = createLogger(spec.name, config.LOG_LEVEL, { format: config.LOG_FORMAT });
    log.info({ config: configForLog(config) }, 'configuration');
    const runtime = await installTemporalRuntime(log);
    const registry = new client.Registry();
    client.collectDefaultMetrics({ register: registry });
    const temporal = temporalConnectSettings(config);
    const { options, also = [], close } = await spec.build(config, log, registry);
    let connection: NativeConnection | undefined;
    let metrics: MetricsServer | undefined;
    try {
      metrics = await startMetricsServer(registry, config.HOST, config.WORKER_METRICS_PORT, () =>
        runtime.scrape(),
      );
      connection = await NativeConnection.connect(temporal.connectionOptions);
      const queues = [{ taskQueue: spec.taskQueue, options }, ...also];
      const workers = await Promise.all(
        queues.map((q) =>
          Worker.create({
            ...q.options,
            plugins: temporalWorkerPlugins(tracing),
            connection: connection!,
            namespace: temporal.namespace,
            taskQueue: q.taskQueue,
          }),
        ),
      );
      log.info(
        { taskQueues: queues.map((q) => q.taskQueue), metricsUrl: metrics.url },
        'worker running',
      );
      await Promise.all(workers.map((w) => w.run()));
    } finally {
      await Promise.allSettled([connection?.close(), close?.(), metrics?.close()]);
      await tracing.shutdown();
    }
    log.info('worker stopped');
  };
  main().catch((err: unknown) => {
    // A fatal error may quote a connection string: printed without its credentials.
    console.error(scrubUrlCredentials(inspect(err)));
    process.exit(1);
  });
}
