import { continueAsNew, proxyActivities, setHandler } from '@temporalio/workflow';
import type { EventActivities } from '../activities/events.ts';
import type { OrderRecordActivities } from '../activities/order-records.ts';
import {
  resendProgressQuery,
  type ResendEventsInput,
  type ResendProgress,
} from '../shared/messages.ts';
import { TaskQueue } from '../shared/task-queues.ts';

const records = proxyActivities<OrderRecordActivities>({
  taskQueue: TaskQueue.orders,
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

// Bulk work has its own task queue (and worker slots): live orders never queue behind it.
const bulkEvents = proxyActivities<EventActivities>({
  taskQueue: TaskQueue.eventsBulk,
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '1 hour',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** Re-publishes `order.placed` for every order in a time range (same event ids: consumers deduplicate). */
export async function resendOrderEventsWorkflow(input: ResendEventsInput): Promise<ResendProgress> {
  const pageSize = input.pageSize ?? 500;
  const concurrency = input.concurrency ?? 20;
  const progress: ResendProgress = { published: input.published ?? 0, done: false };
  setHandler(resendProgressQuery, () => progress);

  const page = await records.listOrderIdsPage({
    since: input.since,
    until: input.until,
    after: input.after ?? null,
    limit: pageSize,
  });
  for (let i = 0; i < page.ids.length; i += concurrency) {
    await Promise.all(
      page.ids.slice(i, i + concurrency).map(async (orderId) => {
        await bulkEvents.publishOrderPlaced({ orderId });
        progress.published++;
      }),
    );
  }
  if (page.next) {
    return await continueAsNew<typeof resendOrderEventsWorkflow>({
      ...input,
      after: page.next,
      published: progress.published,
    });
  }
  progress.done = true;
  return progress;
}
