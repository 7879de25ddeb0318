/**
 * Operator actions on an order's workflow: retry a parked order (the `retry`
 * update, which the workflow refuses unless parked) and cancel. Each has a
 * deadline, and Temporal's answers are told apart by their error classes and
 * gRPC status codes, never by message text.
 */
import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  isGrpcServiceError,
  type Client,
} from '@temporalio/client';
import { cancelSignal, retryUpdate, type RetryResult } from '../shared/messages.ts';
import { orderWorkflowId } from '../shared/task-queues.ts';
import { OrderError } from './errors.ts';

/** gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html) Temporal answers with. */
export const GrpcStatus = {
  CANCELLED: 1,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNAVAILABLE: 14,
} as const;

/** The gRPC status code of a Temporal client error, or of the error it wraps. */
export function grpcStatusOf(err: unknown): number | undefined {
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    if (isGrpcServiceError(e)) return e.code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The default deadline of an action (ORDER_ACTION_TIMEOUT_MS). */
export const DEFAULT_ORDER_ACTION_TIMEOUT_MS = 10_000;

export class OrderOperations {
  constructor(
    private readonly client: () => Promise<Client>,
    private readonly timeoutMs = DEFAULT_ORDER_ACTION_TIMEOUT_MS,
  ) {}

  /** Re-runs the failed steps of a parked order; `not-parked` when it is not parked. */
  async retry(orderId: string): Promise<RetryResult> {
    const client = await this.connected();
    const handle = client.workflow.getHandle(orderWorkflowId(orderId));
    try {
      return await this.withinDeadline(client, () => handle.executeUpdate(retryUpdate));
    } catch (err) {
      // The update's handler cannot fail: only its validator refuses, for an order not parked.
      if (err instanceof WorkflowUpdateFailedError) {
        throw new OrderError('not-parked', `Order ${orderId} is not parked`);
      }
      throw await this.errorOf(client, orderId, err);
    }
  }

  /** Ends the order's workflow as CANCELLED. */
  async cancel(orderId: string, reason: string): Promise<void> {
    const client = await this.connected();
    const handle = client.workflow.getHandle(orderWorkflowId(orderId));
    try {
      await this.withinDeadline(client, () => handle.signal(cancelSignal, reason));
    } catch (err) {
      throw await this.errorOf(client, orderId, err);
    }
  }

  private withinDeadline<T>(client: Client, action: () => Promise<T>): Promise<T> {
    return client.withDeadline(Date.now() + this.timeoutMs, action);
  }

  /** What a failed update or signal means for the caller, by its gRPC status code. */
  private async errorOf(client: Client, orderId: string, err: unknown): Promise<unknown> {
    const code = grpcStatusOf(err);
    const retryAfterSeconds = Math.max(1, Math.ceil(this.timeoutMs / 1000));
    if (
      err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
      code === GrpcStatus.DEADLINE_EXCEEDED
    ) {
      return new OrderError(
        'temporal-timeout',
        `No worker answered for order ${orderId} within ${this.timeoutMs} ms`,
        { retryAfterSeconds },
      );
    }
    if (code === GrpcStatus.UNAVAILABLE || code === GrpcStatus.RESOURCE_EXHAUSTED) {
      return new OrderError('temporal-unavailable', 'Temporal is unavailable', {
        retryAfterSeconds,
      });
    }
    // The update reached a workflow whose first task has not completed (it is starting).
    if (code === GrpcStatus.FAILED_PRECONDITION) {
      return new OrderError(
        'workflow-not-ready',
        `Order ${orderId}'s workflow is still starting; try again in a moment`,
        { retryAfterSeconds: 1 },
      );
    }
    if (err instanceof WorkflowNotFoundError || code === GrpcStatus.NOT_FOUND) {
      const started = await this.hasStarted(client, orderId).catch(() => undefined);
      if (started === undefined)
        return new OrderError('temporal-unavailable', 'Temporal is unavailable', {
          retryAfterSeconds,
        });
      return started
        ? new OrderError('workflow-ended', `Order ${orderId} has no running workflow: it has ended`)
        : new OrderError(
            'workflow-not-ready',
            `Order ${orderId} has no running workflow: it has not started yet`,
            { retryAfterSeconds: 1 },
          );
    }
    return err;
  }

  /**
   * The status of the order's workflow in Temporal (RUNNING, COMPLETED,
   * TERMINATED, CANCELLED, ...), or null when it has never started.
   */
  async workflowStatus(orderId: string): Promise<string | null> {
    const client = await this.connected();
    try {
      const d = await this.withinDeadline(client, () =>
        client.workflow.getHandle(orderWorkflowId(orderId)).describe(),
      );
      return d.status.name;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || grpcStatusOf(err) === GrpcStatus.NOT_FOUND)
        return null;
      throw await this.errorOf(client, orderId, err);
    }
  }

  /** Whether the order's workflow exists (running or closed). */
  private async hasStarted(client: Client, orderId: string): Promise<boolean> {
    try {
      await this.withinDeadline(client, () =>
        client.workflow.getHandle(orderWorkflowId(orderId)).describe(),
      );
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || grpcStatusOf(err) === GrpcStatus.NOT_FOUND)
        return false;
      throw err;
    }
  }

  private async connected(): Promise<Client> {
    try {
      return await this.client();
    } catch {
      throw new OrderError('temporal-unavailable', 'Temporal is unreachable', {
        retryAfterSeconds: 5,
      });
    }
  }
}
