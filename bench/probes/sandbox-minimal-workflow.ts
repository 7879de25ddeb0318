/**
 * The commands of a happy-path order and nothing else, for
 * bench/probes/workflow-sandbox.ts: the patch, the bookkeeping local
 * activity, the steps together, the final local activity, with orderflow's
 * activity types, inputs and options. It replays the committed happy-path
 * history and so shows what the SDK itself creates in the sandbox for one order.
 */
import { patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { EmailActivities } from '../../src/activities/email.ts';
import type { EventActivities } from '../../src/activities/events.ts';
import type { OrderRecordActivities } from '../../src/activities/order-records.ts';
import type { WebhookActivities } from '../../src/activities/webhooks.ts';
import { ORDER_PLACED, defaultRetryPolicies as policies } from '../../src/shared/steps.ts';
import { TaskQueue } from '../../src/shared/task-queues.ts';
import type { OrderWorkflowInput } from '../../src/shared/orders.ts';
import { CANCELLATION_PATCH, bookkeepingOptions, stepOptions } from '../../src/workflows/order.ts';

const records = proxyLocalActivities<OrderRecordActivities>(bookkeepingOptions);
const email = proxyActivities<EmailActivities>(stepOptions(TaskQueue.email, policies.email));
const webhooks = proxyActivities<WebhookActivities>(
  stepOptions(TaskQueue.webhooks, policies.webhooks),
);
const events = proxyActivities<EventActivities>(stepOptions(TaskQueue.events, policies.events));

export async function orderWorkflow({ orderId }: OrderWorkflowInput): Promise<string> {
  patched(CANCELLATION_PATCH);
  const endpointIds =
    (await records.beginOrderProcessing({ orderId, eventType: ORDER_PLACED })) ?? [];
  await Promise.all([
    email.sendConfirmationEmail({ orderId }),
    ...endpointIds.map((endpointId) =>
      webhooks.deliverWebhook({ orderId, endpointId, eventType: ORDER_PLACED }),
    ),
    events.publishOrderPlaced({ orderId }),
  ]);
  await records.recordOrderStatus({
    orderId,
    status: 'COMPLETED',
    failedStep: null,
    lastError: null,
  });
  return 'COMPLETED';
}
