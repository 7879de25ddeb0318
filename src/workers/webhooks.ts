/**
 * Worker for task queue `webhooks`: signed webhook deliveries, at most
 * WEBHOOK_RATE_PER_SECOND across all webhook workers together: the Temporal
 * server hands out deliveries at that rate (its task-queue limit), and a rate
 * gate in PostgreSQL spaces the sends themselves evenly, so the bursts the
 * server's token bucket allows never reach the subscribers.
 * WEBHOOKS_WORKER_CONCURRENCY bounds the requests in flight in this process.
 */
import { createWebhookActivities } from '../activities/webhooks.ts';
import { webhookTimeoutOf } from '../config/retry-budgets.ts';
import { createDbFromConfig } from '../db/client.ts';
import { createRateGate } from '../webhooks/rate-gate.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { webhookDeliveriesCounter } from './metrics.ts';
import { runWorker } from './run-worker.ts';

runWorker({
  name: 'worker-webhooks',
  taskQueue: TaskQueue.webhooks,
  async build(config, log, registry) {
    // Refused before anything is built when an attempt of RETRY_WEBHOOKS cannot hold the request.
    const timeoutMs = webhookTimeoutOf(config);
    const db = createDbFromConfig(config, Math.min(config.WEBHOOKS_WORKER_CONCURRENCY, 10));
    log.info(
      {
        ratePerSecond: config.WEBHOOK_RATE_PER_SECOND,
        allowedTargets: config.WEBHOOK_ALLOWED_TARGETS,
        disableAfterFailures: config.WEBHOOK_DISABLE_AFTER_FAILURES,
      },
      'webhook delivery limits',
    );
    return {
      options: {
        activities: createWebhookActivities({
          db,
          timeoutMs,
          allowedTargets: config.WEBHOOK_ALLOWED_TARGETS,
          disableAfterFailures: config.WEBHOOK_DISABLE_AFTER_FAILURES,
          rateGate: createRateGate(db, config.WEBHOOK_RATE_PER_SECOND, 'deliveries', {
            marginMs: config.WEBHOOK_RATE_MARGIN_MS,
          }),
          deliveries: webhookDeliveriesCounter(registry),
        }),
        maxConcurrentActivityTaskExecutions: config.WEBHOOKS_WORKER_CONCURRENCY,
        maxTaskQueueActivitiesPerSecond: config.WEBHOOK_RATE_PER_SECOND,
      },
      close: () => db.$disconnect(),
    };
  },
});
