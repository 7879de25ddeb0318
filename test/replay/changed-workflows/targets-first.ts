/**
 * orderWorkflow as a careless refactoring might leave it: subscribers are
 * looked up before PROCESSING is recorded. Only the happy path is kept; that
 * is all the replay tests run it against.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { EmailActivities } from '../../../src/activities/email.ts';
import type { EventActivities } from '../../../src/activities/events.ts';
import type { OrderRecordActivities } from '../../../src/activities/order-records.ts';
import type { WebhookActivities } from '../../../src/activities/webhooks.ts';
import type { OrderStatus, OrderWorkflowInput } from '../../../src/shared/orders.ts';
import { ORDER_PLACED } from '../../../src/shared/steps.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE, TaskQueue } from '../../../src/shared/task-queues.ts';

const orderStatusKey = defineSearchAttributeKey(
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  SearchAttributeType.KEYWORD,
);
const options = (taskQueue: string) => ({ taskQueue, startToCloseTimeout: '30 seconds' });
const records = proxyActivities<OrderRecordActivities & Pick<WebhookActivities, 'webhookTargets'>>(
  options(TaskQueue.orders),
);
const email = proxyActivities<EmailActivities>(options(TaskQueue.email));
const webhooks = proxyActivities<WebhookActivities>(options(TaskQueue.webhooks));
const events = proxyActivities<EventActivities>(options(TaskQueue.events));

/** The happy path of orderWorkflow; `targetsFirst()` says whether to look up subscribers first. */
export function orderWorkflowWith(targetsFirst: () => boolean) {
  return async function orderWorkflow({ orderId }: OrderWorkflowInput): Promise<OrderStatus> {
    const setStatus = async (status: OrderStatus, value: string) => {
      upsertSearchAttributes([{ key: orderStatusKey, value }]);
      await records.recordOrderStatus({ orderId, status, failedStep: null, lastError: null });
    };
    const lookUpTargets = () => records.webhookTargets({ orderId, eventType: ORDER_PLACED });

    let endpointIds: string[];
    if (targetsFirst()) {
      endpointIds = await lookUpTargets();
      await setStatus('PROCESSING', 'Processing');
    } else {
      await setStatus('PROCESSING', 'Processing');
      endpointIds = await lookUpTargets();
    }
    await Promise.all([
      email.sendConfirmationEmail({ orderId }),
      ...endpointIds.map((endpointId) =>
        webhooks.deliverWebhook({ orderId, endpointId, eventType: ORDER_PLACED }),
      ),
      events.publishOrderPlaced({ orderId }),
    ]);
    await setStatus('COMPLETED', 'Completed');
    return 'COMPLETED';
  };
}
