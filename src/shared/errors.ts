/**
 * The mechanism of the domain errors (src/orders/errors.ts, src/webhooks/endpoint-rules.ts):
 * a use case that says no throws one, told apart by its `code`; the API maps each
 * code to a problem document (src/api/problems.ts), the CLI to a message and an
 * exit code. Nothing here knows about HTTP.
 */
import type { z } from 'zod';

/** One invalid input field ("items[0].quantity") and what is wrong with it. */
export interface FieldError {
  field: string;
  message: string;
}

/** A use case said no; the message is the detail a caller sees. */
export class DomainError<C extends string = string> extends Error {
  override name = 'DomainError';
  constructor(
    readonly code: C,
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

/** A domain's error class, as validOrThrow makes its `invalid` errors. */
export type InvalidErrorClass = new (
  code: 'invalid',
  message: string,
  extra: { fields: FieldError[] },
) => DomainError;

/**
 * A domain's validOrThrow: the value `schema` accepts, or an `invalid` error of
 * class `Err` naming the fields at fault (`prefix` names where the value came from).
 */
export const validOrThrowAs =
  (Err: InvalidErrorClass) =>
  <T extends z.ZodType>(schema: T, value: unknown, prefix = ''): z.infer<T> => {
    const r = schema.safeParse(value);
    if (!r.success)
      throw new Err('invalid', 'Some fields are invalid', { fields: fieldErrors(r.error, prefix) });
    return r.data;
  };
