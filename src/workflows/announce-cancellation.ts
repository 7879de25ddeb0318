/**
 * Announces `order.cancelled` for an order whose own workflow can no longer
 * do it: it was terminated (or timed out) in Temporal, and the row was set
 * CANCELLED afterwards (the relay's reconciler, or a cancel through the API
 * or CLI). The same activities as the order workflow's own announcement: the
 * Kafka CloudEvent (same topic and key, so the inventory projection releases
 * what the order reserved) and a webhook to each subscriber of
 * `order.cancelled`. One per order (workflow ID `order-cancelled-{orderId}`).
 */
import { log, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { EventActivities } from '../activities/events.ts';
import type { WebhookActivities } from '../activities/webhooks.ts';
import { defaultRetryPolicies, type RetryPolicies } from '../shared/steps.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { bookkeepingOptions, sendOrderCancelled, stepOptions } from './order.ts';

export interface AnnounceCancellationInput {
  orderId: string;
  /** The reason the event carries (the row's last_error). */
  reason: string;
  retryPolicies?: RetryPolicies;
}

export interface AnnounceCancellationResult {
  published: boolean;
  /** Subscribers of order.cancelled that got it. */
  webhooks: number;
  /** Subscribers that did not (their retries ran out). */
  webhookFailures: number;
}

/** The webhook subscribers, as the order workflow reads them (a local activity). */
const records = proxyLocalActivities<Pick<WebhookActivities, 'webhookTargets'>>(bookkeepingOptions);

export async function announceCancellationWorkflow(
  input: AnnounceCancellationInput,
): Promise<AnnounceCancellationResult> {
  const { orderId, reason } = input;
  const policies = input.retryPolicies ?? defaultRetryPolicies;
  const events = proxyActivities<EventActivities>(stepOptions(TaskQueue.events, policies.events));
  const webhooks = proxyActivities<WebhookActivities>(
    stepOptions(TaskQueue.webhooks, policies.webhooks),
  );
  const [published, delivered] = await sendOrderCancelled(
    { events, webhooks, records },
    orderId,
    reason,
    (deliveries) => Promise.allSettled(deliveries),
  );
  const sent = delivered.status === 'fulfilled' ? delivered.value : [];
  const result = {
    published: published.status === 'fulfilled',
    webhooks: sent.filter((r) => r.status === 'fulfilled').length,
    webhookFailures: sent.filter((r) => r.status === 'rejected').length,
  };
  if (!result.published || result.webhookFailures > 0 || delivered.status === 'rejected')
    log.warn('order.cancelled not announced everywhere', { orderId, ...result });
  return result;
}
