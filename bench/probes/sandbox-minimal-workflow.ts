/**
 * The commands of a happy-path order and nothing else, for
 * bench/probes/workflow-sandbox.ts: the patch, the bookkeeping local
 * activity, the steps together, the final local activity. It replays the
 * committed happy-path history (same activity types and queues) and so shows
 * what the SDK itself creates in the sandbox for one order.
 */
import { patched, proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import { CANCELLATION_PATCH } from '../../src/workflows/order.ts';
import { TaskQueue } from '../../src/shared/task-queues.ts';

interface Steps {
  beginOrderProcessing(input: { orderId: string }): Promise<string[]>;
  recordOrderStatus(input: { orderId: string; status: string }): Promise<unknown>;
  sendConfirmationEmail(input: { orderId: string }): Promise<unknown>;
  deliverWebhook(input: { orderId: string; endpointId: string }): Promise<unknown>;
  publishOrderPlaced(input: { orderId: string }): Promise<unknown>;
}

const timeouts = { startToCloseTimeout: '10 seconds' } as const;
const local = proxyLocalActivities<Steps>(timeouts);
const email = proxyActivities<Steps>({ ...timeouts, taskQueue: TaskQueue.email });
const webhooks = proxyActivities<Steps>({ ...timeouts, taskQueue: TaskQueue.webhooks });
const events = proxyActivities<Steps>({ ...timeouts, taskQueue: TaskQueue.events });

export async function orderWorkflow({ orderId }: { orderId: string }): Promise<string> {
  patched(CANCELLATION_PATCH);
  const endpointIds = await local.beginOrderProcessing({ orderId });
  await Promise.all([
    email.sendConfirmationEmail({ orderId }),
    ...endpointIds.map((endpointId) => webhooks.deliverWebhook({ orderId, endpointId })),
    events.publishOrderPlaced({ orderId }),
  ]);
  await local.recordOrderStatus({ orderId, status: 'COMPLETED' });
  return 'COMPLETED';
}
