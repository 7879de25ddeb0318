/**
 * The rules of operating on an order, for the API and the CLI alike: what an
 * order id and a cancel reason must look like, and which orders a cancel may
 * still act on. Retry has one rule, "only a parked order", which the order's
 * workflow enforces itself (its `retry` update's validator).
 */
import { z } from 'zod';
import type { OrderStatus } from '../shared/orders.ts';
import { OrderError, validOrThrow } from './errors.ts';

export const orderIdSchema = z.uuid('must be a UUID');

/**
 * Why an order was cancelled: stored on the order and shown by the CLI, so text without control
 * characters (PostgreSQL refuses NUL). Written as \u escapes, which the OpenAPI pattern carries
 * to every regex dialect.
 */
export const cancelReasonSchema = z
  .string()
  .min(1)
  .max(500)
  // eslint-disable-next-line no-control-regex -- matching control characters is the rule
  .regex(/^[^\u0000-\u001f\u007f]*$/, 'must be text without control characters');

/** The reason recorded when a cancel gives none. */
export const DEFAULT_CANCEL_REASON = 'cancelled by operator';

/** The reason a cancel records: the one given, checked, or the default. */
export function cancelReason(given: string | undefined): string {
  return given === undefined
    ? DEFAULT_CANCEL_REASON
    : validOrThrow(cancelReasonSchema, given, 'reason');
}

/** Statuses a cancel can still act on. */
export const CANCELLABLE_STATUSES: readonly OrderStatus[] = ['RECEIVED', 'PROCESSING', 'PARKED'];

/** Refuses to cancel an order that already ended (COMPLETED or CANCELLED). */
export function assertCancellable(orderId: string, status: OrderStatus): void {
  if (!CANCELLABLE_STATUSES.includes(status))
    throw new OrderError('not-cancellable', `Order ${orderId} is already ${status}`);
}

/** Temporal execution statuses (describe().status.name) that end an order's workflow without its code ending the row. */
export const ABANDONED_WORKFLOW_STATUSES = ['TERMINATED', 'CANCELLED', 'TIMED_OUT'] as const;

/** The row's last_error (and order.cancelled's reason) for an order whose workflow ended that way. */
export const abandonedReason = (workflowStatus: string): string =>
  `workflow ${workflowStatus.toLowerCase()} in Temporal`;
