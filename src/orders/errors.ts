/**
 * The errors of the order use cases, told apart by their `code`: the API maps
 * each code to a problem document (src/api/problems.ts), the CLI to a message
 * and an exit code. Nothing here knows about HTTP.
 */
import type { z } from 'zod';

/** One invalid input field ("items[0].quantity") and what is wrong with it. */
export interface FieldError {
  field: string;
  message: string;
}

export const ORDER_ERROR_CODES = [
  /** The input breaks a rule (`fields` says which). */
  'invalid',
  /** No order has this id. */
  'not_found',
  /** Retry: the order is not parked (its workflow refused the retry). */
  'not_parked',
  /** Cancel: the order is already COMPLETED or CANCELLED. */
  'not_cancellable',
  /** Retry or cancel: the order's workflow has ended. */
  'workflow_ended',
  /** Retry or cancel: the order's workflow has not started yet, or is still starting. */
  'workflow_not_ready',
  /** The Idempotency-Key was first used for an order with a different body. */
  'idempotency_key_reused',
  /** Temporal cannot be reached or refuses work now. */
  'temporal_unavailable',
  /** Temporal or a worker did not answer within the action's deadline. */
  'temporal_timeout',
] as const;
export type OrderErrorCode = (typeof ORDER_ERROR_CODES)[number];

/** A use case said no; the message is the detail a caller sees. */
export class OrderError extends Error {
  override name = 'OrderError';
  constructor(
    readonly code: OrderErrorCode,
    message: string,
    readonly extra: {
      /** The fields at fault (code `invalid`). */
      fields?: FieldError[];
      /** When trying again may succeed, in seconds. */
      retryAfterSeconds?: number;
    } = {},
  ) {
    super(message);
  }
}

/** Zod issues as field errors ("items[0].quantity"); `prefix` names where the value came from. */
export function fieldErrors(error: z.ZodError, prefix = ''): FieldError[] {
  return error.issues.flatMap((issue) => {
    const base = issue.path.reduce<string>(
      (acc, p) =>
        typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p),
      prefix,
    );
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((k) => ({
        field: base ? `${base}.${k}` : k,
        message: 'is not a known field',
      }));
    }
    return [{ field: base || '(body)', message: issue.message }];
  });
}

/** The value `schema` accepts, or an `invalid` OrderError naming the fields at fault. */
export function validOrThrow<T extends z.ZodType>(
  schema: T,
  value: unknown,
  prefix = '',
): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success)
    throw new OrderError('invalid', 'Some fields are invalid', {
      fields: fieldErrors(r.error, prefix),
    });
  return r.data;
}
