/**
 * How retry and cancel classify Temporal's answers: by error class and gRPC
 * status code, never by message text, into the domain's error codes, and the
 * problem the API answers each with. A unit test faked at the Temporal client
 * boundary (the errors have the shape @temporalio/client gives them); the
 * real-stack cases are in test/api/client-faults.test.ts.
 */
import { ApplicationFailure } from '@temporalio/common';
import {
  ServiceError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
  type Client,
} from '@temporalio/client';
import { describe, expect, it } from 'vitest';
import { problemOfDomainError, type ProblemError } from '../../src/api/problems.ts';
import { OrderError } from '../../src/orders/errors.ts';
import { GrpcStatus, OrderOperations, grpcStatusOf } from '../../src/orders/order-operations.ts';

/** A gRPC error as @grpc/grpc-js raises it (code, details, metadata). */
const grpcError = (code: number, details: string) =>
  Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });

/** A client whose update, signal and describe fail (or not) as told. */
function fakeClient(fail: { update?: Error; signal?: Error; describe?: Error }): Client {
  const handle = {
    executeUpdate: () =>
      fail.update ? Promise.reject(fail.update) : Promise.resolve({ retrying: [] }),
    signal: () => (fail.signal ? Promise.reject(fail.signal) : Promise.resolve()),
    describe: () => (fail.describe ? Promise.reject(fail.describe) : Promise.resolve({})),
  };
  return {
    workflow: { getHandle: () => handle },
    withDeadline: <T>(_deadline: number, fn: () => Promise<T>) => fn(),
  } as unknown as Client;
}

/** The domain error an action failed with, and the problem the API answers it with. */
async function problemOf(action: Promise<unknown>): Promise<ProblemError & { code: string }> {
  const err: unknown = await action.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(OrderError);
  return Object.assign(problemOfDomainError(err as OrderError), { code: (err as OrderError).code });
}

const ops = (fail: Parameters<typeof fakeClient>[0]) =>
  new OrderOperations(() => Promise.resolve(fakeClient(fail)), 3000);
const id = '00000000-0000-4000-8000-000000000000';

describe('OrderOperations', () => {
  it('answers FAILED_PRECONDITION (the update right after acceptance) with 409 workflow-not-ready', async () => {
    const update = new ServiceError('Workflow Update failed', {
      cause: grpcError(
        GrpcStatus.FAILED_PRECONDITION,
        'Unable to perform workflow execution update due to unexpected workflow task failure.',
      ),
    });
    const p = await problemOf(ops({ update }).retry(id));
    expect([p.code, p.status, p.kind, p.headers['Retry-After']]).toEqual([
      'workflow-not-ready',
      409,
      'workflow-not-ready',
      '1',
    ]);
  });

  it('answers a deadline with 504 and Retry-After, Temporal unavailable with 503', async () => {
    const timeout = new WorkflowUpdateRPCTimeoutOrCancelledError('timeout', {
      cause: grpcError(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded'),
    });
    const late = await problemOf(ops({ update: timeout }).retry(id));
    expect([late.code, late.status, late.headers['Retry-After']]).toEqual([
      'temporal-timeout',
      504,
      '3',
    ]);
    const signalLate = await problemOf(
      ops({ signal: grpcError(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded') }).cancel(id, 'x'),
    );
    expect(signalLate.status).toBe(504);
    const down = new ServiceError('Workflow Update failed', {
      cause: grpcError(GrpcStatus.UNAVAILABLE, 'No connection established'),
    });
    const unavailable = await problemOf(ops({ update: down }).retry(id));
    expect([unavailable.code, unavailable.status]).toEqual(['temporal-unavailable', 503]);
  });

  it('tells a workflow that never started (409 workflow-not-ready) from one that ended (409 not-parked)', async () => {
    const notFound = new WorkflowNotFoundError('workflow not found', `order-${id}`, undefined);
    const never = await problemOf(ops({ update: notFound, describe: notFound }).retry(id));
    expect([never.code, never.kind]).toEqual(['workflow-not-ready', 'workflow-not-ready']);
    const ended = await problemOf(ops({ update: notFound }).retry(id));
    expect([ended.code, ended.kind, ended.status]).toEqual(['workflow-ended', 'not-parked', 409]);
    expect(ended.detail).toBe(`Order ${id} has no running workflow: it has ended`);
    const cancelNever = await problemOf(
      ops({ signal: notFound, describe: notFound }).cancel(id, 'x'),
    );
    expect(cancelNever.kind).toBe('workflow-not-ready');
  });

  it('answers the retry update refused by its validator (whatever its message) with 409 not-parked', async () => {
    const refused = new WorkflowUpdateFailedError(
      'Workflow Update failed',
      ApplicationFailure.create({ type: 'Error', message: 'any wording at all' }),
    );
    const p = await problemOf(ops({ update: refused }).retry(id));
    expect([p.code, p.status, p.kind, p.detail]).toEqual([
      'not-parked',
      409,
      'not-parked',
      `Order ${id} is not parked`,
    ]);
  });

  it('answers an unreachable Temporal with 503 and Retry-After 5', async () => {
    const unreachable = new OrderOperations(() =>
      Promise.reject(new Error('connect ECONNREFUSED')),
    );
    const p = await problemOf(unreachable.retry(id));
    expect([p.code, p.status, p.detail, p.headers['Retry-After']]).toEqual([
      'temporal-unavailable',
      503,
      'Temporal is unreachable',
      '5',
    ]);
  });

  it('does not read codes out of message text', () => {
    expect(
      grpcStatusOf(new Error('9 FAILED_PRECONDITION: workflow execution already completed')),
    ).toBeUndefined();
    expect(grpcStatusOf(new ServiceError('x', { cause: grpcError(5, 'not found') }))).toBe(5);
  });

  it('passes an error it does not know through (a 500 at the error middleware)', async () => {
    const odd = new Error('something else');
    const err: unknown = await ops({ update: odd })
      .retry(id)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBe(odd);
  });
});
