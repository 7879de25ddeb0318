import { proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { OrderRecordActivities } from '../activities/order-records.ts';
import type { OrderStatus, OrderWorkflowInput } from '../shared/orders.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE, TaskQueue } from '../shared/task-queues.ts';

const records = proxyActivities<OrderRecordActivities>({
  taskQueue: TaskQueue.orders,
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

const searchValue: Record<OrderStatus, string> = {
  RECEIVED: 'Received',
  PROCESSING: 'Processing',
  PARKED: 'Parked',
  COMPLETED: 'Completed',
  CANCELLED: 'Cancelled',
};

/** Moves the order to a status, in the database and in Temporal visibility. */
async function setStatus(orderId: string, status: OrderStatus): Promise<void> {
  upsertSearchAttributes({ [ORDER_STATUS_SEARCH_ATTRIBUTE]: [searchValue[status]] });
  await records.recordOrderStatus({ orderId, status });
}

/** Processes one order, from RECEIVED to COMPLETED. */
export async function orderWorkflow({ orderId }: OrderWorkflowInput): Promise<OrderStatus> {
  await setStatus(orderId, 'PROCESSING');
  await setStatus(orderId, 'COMPLETED');
  return 'COMPLETED';
}
