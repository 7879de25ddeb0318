/**
 * Worker for task queue `orders`: the order workflows, plus the bookkeeping
 * activities that keep the order's row in step with its workflow.
 */
import { createOrderRecordActivities } from '../activities/order-records.ts';
import { createWebhookActivities } from '../activities/webhooks.ts';
import { webhookTimeoutOf } from '../config/retry-budgets.ts';
import { createDbFromConfig } from '../db/client.ts';
import { tracingEnabled } from '../observability/tracing.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { runWorker } from './run-worker.ts';
import { workflowCode } from './workflow-bundle.ts';

runWorker({
  name: 'worker-orders',
  taskQueue: TaskQueue.orders,
  async build(config, log) {
    const timeoutMs = webhookTimeoutOf(config);
    const db = createDbFromConfig(config, 5);
    const webhooks = createWebhookActivities({
      db,
      timeoutMs,
      allowedTargets: config.WEBHOOK_ALLOWED_TARGETS,
    });
    return {
      options: {
        // The bundle built at setup when it matches the sources: a start in seconds, not a webpack run.
        ...workflowCode(log, { interceptors: tracingEnabled() }),
        activities: {
          ...createOrderRecordActivities({ db }),
          // Only the database read of the webhook family runs here, off the rate-limited queue.
          webhookTargets: (input: Parameters<typeof webhooks.webhookTargets>[0]) =>
            webhooks.webhookTargets(input),
        },
        maxConcurrentWorkflowTaskExecutions: Math.min(config.ORDERS_WORKER_CONCURRENCY, 100),
        maxConcurrentActivityTaskExecutions: config.ORDERS_WORKER_CONCURRENCY,
        maxCachedWorkflows: 1000,
      },
      close: () => db.$disconnect(),
    };
  },
});
