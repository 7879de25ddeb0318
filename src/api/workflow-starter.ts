import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { OrderWorkflowInput } from '../shared/orders.ts';
import type { RetryPolicies } from '../shared/steps.ts';
import {
  TaskQueue,
  cancellationAnnouncementWorkflowId,
  orderWorkflowId,
} from '../shared/task-queues.ts';

export type StartOutcome = 'started' | 'already-started';

/**
 * Starts an order's workflow, safely repeatable from the API, its retries and
 * the relay: one workflow ID per order, USE_EXISTING while it runs, and a
 * reuse policy that refuses a second run once it has closed. No search
 * attribute is set: `ExecutionStatus` says the order runs, and the workflow
 * sets `OrderStatus` once it parks.
 */
export async function startOrderWorkflow(
  client: Client,
  orderId: string,
  retryPolicies?: RetryPolicies,
): Promise<StartOutcome> {
  const input: OrderWorkflowInput = { orderId, ...(retryPolicies ? { retryPolicies } : {}) };
  return startOnce(client, 'orderWorkflow', orderWorkflowId(orderId), input);
}

/**
 * Starts the announcement of `order.cancelled` for an order whose own workflow
 * was terminated (announceCancellationWorkflow); once per order, repeatable.
 */
export async function startCancellationAnnouncement(
  client: Client,
  orderId: string,
  reason: string,
  retryPolicies?: RetryPolicies,
): Promise<StartOutcome> {
  return startOnce(
    client,
    'announceCancellationWorkflow',
    cancellationAnnouncementWorkflowId(orderId),
    {
      orderId,
      reason,
      ...(retryPolicies ? { retryPolicies } : {}),
    },
  );
}

/**
 * Starts a workflow on the `orders` queue, once per workflow ID: USE_EXISTING
 * while it runs, and a run that already closed (REJECT_DUPLICATE) was started before.
 */
async function startOnce(
  client: Client,
  workflowType: 'orderWorkflow' | 'announceCancellationWorkflow',
  workflowId: string,
  input: object,
): Promise<StartOutcome> {
  try {
    await client.workflow.start(workflowType, {
      workflowId,
      taskQueue: TaskQueue.orders,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
    return 'started';
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already-started';
    throw err;
  }
}
