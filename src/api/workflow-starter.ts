import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import {
  TypedSearchAttributes,
  defineSearchAttributeKey,
  SearchAttributeType,
} from '@temporalio/common';
import type { OrderWorkflowInput } from '../shared/orders.ts';
import type { RetryPolicies } from '../shared/steps.ts';
import {
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  TaskQueue,
  orderWorkflowId,
} from '../shared/task-queues.ts';

export type StartOutcome = 'started' | 'already-started';

const orderStatusKey = defineSearchAttributeKey(
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  SearchAttributeType.KEYWORD,
);

/**
 * Starts an order's workflow, safely repeatable from the API, its retries and
 * the relay: one workflow ID per order, USE_EXISTING while it runs, and a
 * reuse policy that refuses a second run once it has closed.
 */
export async function startOrderWorkflow(
  client: Client,
  orderId: string,
  retryPolicies?: RetryPolicies,
): Promise<StartOutcome> {
  const input: OrderWorkflowInput = { orderId, ...(retryPolicies ? { retryPolicies } : {}) };
  try {
    await client.workflow.start('orderWorkflow', {
      workflowId: orderWorkflowId(orderId),
      taskQueue: TaskQueue.orders,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      typedSearchAttributes: new TypedSearchAttributes([
        { key: orderStatusKey, value: 'Received' },
      ]),
    });
    return 'started';
  } catch (err) {
    // The run already closed (REJECT_DUPLICATE): it was started before.
    if (err instanceof WorkflowExecutionAlreadyStartedError) return 'already-started';
    throw err;
  }
}
