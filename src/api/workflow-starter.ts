import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import {
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  TaskQueue,
  orderWorkflowId,
} from '../shared/task-queues.ts';
import type { OrderWorkflowInput } from '../shared/orders.ts';

export type StartOutcome = 'started' | 'already-started';

/**
 * Starts an order's workflow, safely repeatable from the API, its retries and
 * the relay: one workflow ID per order, USE_EXISTING while it runs, and a
 * reuse policy that refuses a second run once it has closed.
 */
export async function startOrderWorkflow(client: Client, orderId: string): Promise<StartOutcome> {
  const input: OrderWorkflowInput = { orderId };
  try {
    await client.workflow.start('orderWorkflow', {
      workflowId: orderWorkflowId(orderId),
      taskQueue: TaskQueue.orders,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: undefined,
      searchAttributes: { [ORDER_STATUS_SEARCH_ATTRIBUTE]: ['Received'] },
    });
    return 'started';
  } catch (err) {
    // The run already closed (REJECT_DUPLICATE): it was started before.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already-started';
    throw err;
  }
}
