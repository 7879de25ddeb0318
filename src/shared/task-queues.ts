/** Task queue names; each is served by its own worker process (src/workers). */
export const TaskQueue = {
  orders: 'orders',
  email: 'email',
  webhooks: 'webhooks',
  events: 'events',
  /** Bulk re-publication (backfills): its own queue and worker slots, so live orders never wait behind it. */
  eventsBulk: 'events-bulk',
} as const;

export type TaskQueueName = (typeof TaskQueue)[keyof typeof TaskQueue];

/** Workflow ID of an order's workflow: one per order, so starts deduplicate. */
export const orderWorkflowId = (orderId: string): string => `order-${orderId}`;

/** Workflow ID of the order.cancelled announcement of an order whose workflow was terminated. */
export const cancellationAnnouncementWorkflowId = (orderId: string): string =>
  `order-cancelled-${orderId}`;

/** Search attribute holding an order's status in Temporal visibility. */
export const ORDER_STATUS_SEARCH_ATTRIBUTE = 'OrderStatus';
