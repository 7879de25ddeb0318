/**
 * Operator actions on an order's workflow: retry a parked order (the `retry`
 * update, which the workflow refuses unless parked) and cancel.
 */
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { NOT_PARKED, cancelSignal, retryUpdate, type RetryResult } from '../../shared/messages.ts';
import { orderWorkflowId } from '../../shared/task-queues.ts';
import { ProblemError } from '../problems.ts';

export class OrderOperations {
  constructor(private readonly client: () => Promise<Client>) {}

  /** Re-runs the failed steps of a parked order; 409 when it is not parked. */
  async retry(orderId: string): Promise<RetryResult> {
    const client = await this.connected();
    try {
      return await client.workflow.getHandle(orderWorkflowId(orderId)).executeUpdate(retryUpdate);
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError && err.cause?.message === NOT_PARKED) {
        throw new ProblemError('not-parked', `Order ${orderId} is not parked`);
      }
      // Closed or never started: nothing is parked either.
      if (err instanceof WorkflowNotFoundError || isClosed(err)) {
        throw new ProblemError('not-parked', `Order ${orderId} has no running workflow`);
      }
      throw err;
    }
  }

  /** Ends the order's workflow as CANCELLED. */
  async cancel(orderId: string, reason: string): Promise<void> {
    const client = await this.connected();
    try {
      await client.workflow.getHandle(orderWorkflowId(orderId)).signal(cancelSignal, reason);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new ProblemError('not-parked', `Order ${orderId} has no running workflow`);
      }
      throw err;
    }
  }

  private async connected(): Promise<Client> {
    try {
      return await this.client();
    } catch {
      throw new ProblemError('service-unavailable', 'Temporal is unreachable', undefined, {
        'Retry-After': '5',
      });
    }
  }
}

const isClosed = (err: unknown): boolean =>
  /workflow execution already completed|already completed/i.test((err as Error)?.message ?? '');
