/**
 * The shape every worker bootstrap shares: connect, create the worker(s),
 * log that they run, drain on SIGINT/SIGTERM (Worker.run() returns), close
 * what was built, exit non-zero on a fatal error.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { loadConfig, type Config } from '../config/env.ts';
import { temporalConnectSettings } from '../config/temporal.ts';
import { createLogger, type Logger } from '../shared/logger.ts';

type QueueOptions = Omit<WorkerOptions, 'connection' | 'taskQueue' | 'namespace'>;

export interface WorkerSpec {
  name: string;
  taskQueue: string;
  /** Builds the worker's options (activities, concurrency) and what must be closed after it stops. */
  build(
    config: Config,
    log: Logger,
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
    const log = createLogger(spec.name, config.LOG_LEVEL);
    const temporal = temporalConnectSettings(config);
    const { options, also = [], close } = await spec.build(config, log);
    let connection: NativeConnection | undefined;
    try {
      connection = await NativeConnection.connect(temporal.connectionOptions);
      const queues = [{ taskQueue: spec.taskQueue, options }, ...also];
      const workers = await Promise.all(
        queues.map((q) =>
          Worker.create({
            ...q.options,
            connection: connection!,
            namespace: temporal.namespace,
            taskQueue: q.taskQueue,
          }),
        ),
      );
      log.info({ taskQueues: queues.map((q) => q.taskQueue) }, 'worker running');
      await Promise.all(workers.map((w) => w.run()));
    } finally {
      await Promise.allSettled([connection?.close(), close?.()]);
    }
    log.info('worker stopped');
  };
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
