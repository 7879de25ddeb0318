/**
 * Worker for task queue `webhooks`: signed webhook deliveries. The Temporal
 * server enforces WEBHOOK_RATE_PER_SECOND across all webhook workers together;
 * WEBHOOKS_WORKER_CONCURRENCY bounds the requests in flight in this process.
 */
import { createWebhookActivities } from '../activities/webhooks.ts';
import { createDb } from '../db/client.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { webhookDeliveriesCounter } from './metrics.ts';
import { runWorker } from './run-worker.ts';

runWorker({
  name: 'worker-webhooks',
  taskQueue: TaskQueue.webhooks,
  async build(config, log, registry) {
    const db = createDb(config.DATABASE_URL, Math.min(config.WEBHOOKS_WORKER_CONCURRENCY, 10));
    log.info(
      {
        ratePerSecond: config.WEBHOOK_RATE_PER_SECOND,
        allowedTargets: config.WEBHOOK_ALLOWED_TARGETS,
      },
      'webhook delivery limits',
    );
    return {
      options: {
        activities: createWebhookActivities({
          db,
          timeoutMs: config.WEBHOOK_TIMEOUT_MS,
          allowedTargets: config.WEBHOOK_ALLOWED_TARGETS,
          deliveries: webhookDeliveriesCounter(registry),
        }),
        maxConcurrentActivityTaskExecutions: config.WEBHOOKS_WORKER_CONCURRENCY,
        maxTaskQueueActivitiesPerSecond: config.WEBHOOK_RATE_PER_SECOND,
      },
      close: () => db.$disconnect(),
    };
  },
});
