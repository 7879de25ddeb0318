/**
 * Messages an order's workflow accepts: `retry` as a signal (the Temporal Web
 * UI and `temporal workflow signal` send it) and as an update (the API and CLI
 * use it, and learn at once whether the order was parked), `cancel`, and the
 * `status` query.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { OrderStatus } from './orders.ts';
import type { StepName } from './steps.ts';

/** Where a paged scan over orders stands (created_at, id). */
export interface OrderCursor {
  createdAt: string;
  id: string;
}

export interface OrderProgress {
  status: OrderStatus;
  /** Steps that exhausted their retries or failed permanently, when parked. */
  failedSteps: StepName[];
  lastError: string | null;
  /** Steps that completed and will not run again. */
  completedSteps: StepName[];
  /** How many times the order was parked. */
  parkedCount: number;
  /**
   * Tasks that went out ("email", "webhooks:<endpoint id>", "events"); after a
   * cancel, what was sent before it (the cancel waits for running attempts).
   */
  sent?: string[];
}

export interface RetryResult {
  /** The steps that will run again. */
  retrying: StepName[];
}

export const retrySignal = defineSignal('retry');
export const retryUpdate = defineUpdate<RetryResult>('retry');
export const cancelSignal = defineSignal<[reason?: string]>('cancel');
export const progressQuery = defineQuery<OrderProgress>('progress');

/** The update's validator rejects with this message when the order is not parked. */
export const NOT_PARKED = 'order is not parked';

export interface ResendEventsInput {
  /** ISO timestamps: orders created in [since, until). */
  since: string;
  until?: string;
  /** Orders per page (and per run, before continue-as-new keeps history small). */
  pageSize?: number;
  /** Publications in flight at once. */
  concurrency?: number;
  /** Carried across continue-as-new. */
  after?: OrderCursor | null;
  published?: number;
}

export interface ResendProgress {
  published: number;
  done: boolean;
}

export const resendProgressQuery = defineQuery<ResendProgress>('progress');
