/**
 * The errors of the order use cases, told apart by their `code`: the API maps
 * each code to a problem document (src/api/problems.ts), the CLI to a message
 * and an exit code. Nothing here knows about HTTP; the mechanism is the shared
 * DomainError (src/shared/errors.ts).
 */
import { DomainError, validOrThrowAs } from '../shared/errors.ts';

export { fieldErrors, type FieldError } from '../shared/errors.ts';

export const ORDER_ERROR_CODES = [
  /** The input breaks a rule (`fields` says which). */
  'invalid',
  /** No order has this id. */
  'not-found',
  /** Retry: the order is not parked (its workflow refused the retry). */
  'not-parked',
  /** Cancel: the order is already COMPLETED or CANCELLED. */
  'not-cancellable',
  /** Retry or cancel: the order's workflow has ended. */
  'workflow-ended',
  /** Retry or cancel: the order's workflow has not started yet, or is still starting. */
  'workflow-not-ready',
  /** The Idempotency-Key was first used for an order with a different body. */
  'idempotency-key-reused',
  /** Temporal cannot be reached or refuses work now. */
  'temporal-unavailable',
  /** Temporal or a worker did not answer within the action's deadline. */
  'temporal-timeout',
] as const;
export type OrderErrorCode = (typeof ORDER_ERROR_CODES)[number];

/** An order use case said no; the message is the detail a caller sees. */
export class OrderError extends DomainError<OrderErrorCode> {
  override name = 'OrderError';
}

/** The value `schema` accepts, or an `invalid` OrderError naming the fields at fault. */
export const validOrThrow = validOrThrowAs(OrderError);
