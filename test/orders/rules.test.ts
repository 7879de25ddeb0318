/**
 * The order rules the API and the CLI share, and the problem document each
 * domain error code is answered with (the HTTP answers the API tests check).
 */
import { describe, expect, it } from 'vitest';
import { problemOfDomainError } from '../../src/api/problems.ts';
import { ORDER_ERROR_CODES, OrderError } from '../../src/orders/errors.ts';
import { DEFAULT_CANCEL_REASON, assertCancellable, cancelReason } from '../../src/orders/rules.ts';

/** The error `fn` throws (it must throw an OrderError). */
function refusal(fn: () => unknown): OrderError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OrderError);
    return err as OrderError;
  }
  throw new Error('expected an OrderError, nothing was thrown');
}

const id = '00000000-0000-4000-8000-000000000000';

describe('order rules', () => {
  it('records the reason given, or the default when none is given', () => {
    expect(cancelReason('customer asked')).toBe('customer asked');
    expect(cancelReason(undefined)).toBe(DEFAULT_CANCEL_REASON);
  });

  it('refuses a cancel reason with a control character, or empty, or over 500 characters, naming reason', () => {
    for (const reason of ['two\nlines', 'nul\u0000', 'tab\there', 'del\u007f']) {
      const err = refusal(() => cancelReason(reason));
      expect([err.code, err.message, err.extra.fields]).toEqual([
        'invalid',
        'Some fields are invalid',
        [{ field: 'reason', message: 'must be text without control characters' }],
      ]);
    }
    expect(refusal(() => cancelReason('')).extra.fields?.[0]?.field).toBe('reason');
    expect(refusal(() => cancelReason('x'.repeat(501))).extra.fields?.[0]?.field).toBe('reason');
    expect(cancelReason('x'.repeat(500))).toHaveLength(500);
  });

  it('lets a cancel act on RECEIVED, PROCESSING and PARKED orders, not on COMPLETED or CANCELLED ones', () => {
    for (const status of ['RECEIVED', 'PROCESSING', 'PARKED'] as const)
      expect(() => assertCancellable(id, status)).not.toThrow();
    for (const status of ['COMPLETED', 'CANCELLED'] as const) {
      const err = refusal(() => assertCancellable(id, status));
      expect([err.code, err.message]).toEqual([
        'not-cancellable',
        `Order ${id} is already ${status}`,
      ]);
    }
  });
});

describe('problems of order errors', () => {
  const answers = {
    invalid: [400, 'validation-error'],
    'not-found': [404, 'not-found'],
    'not-parked': [409, 'not-parked'],
    'not-cancellable': [409, 'not-parked'],
    'workflow-ended': [409, 'not-parked'],
    'workflow-not-ready': [409, 'workflow-not-ready'],
    'idempotency-key-reused': [422, 'idempotency-key-reused'],
    'temporal-unavailable': [503, 'service-unavailable'],
    'temporal-timeout': [504, 'upstream-timeout'],
  } as const;

  it('answers every code with its status and problem type, the message as the detail', () => {
    expect(Object.keys(answers).sort()).toEqual([...ORDER_ERROR_CODES].sort());
    for (const code of ORDER_ERROR_CODES) {
      const p = problemOfDomainError(new OrderError(code, `detail of ${code}`));
      expect([p.status, p.kind, p.detail, p.headers], code).toEqual([
        ...answers[code],
        `detail of ${code}`,
        {},
      ]);
    }
  });

  it('carries the fields at fault and Retry-After', () => {
    const fields = [{ field: 'reason', message: 'must be text without control characters' }];
    const invalid = problemOfDomainError(
      new OrderError('invalid', 'Some fields are invalid', { fields }),
    );
    expect(invalid.errors).toEqual(fields);
    const busy = problemOfDomainError(
      new OrderError('temporal-timeout', 'late', { retryAfterSeconds: 10 }),
    );
    expect(busy.headers).toEqual({ 'Retry-After': '10' });
  });
});
