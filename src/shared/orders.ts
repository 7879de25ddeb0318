/**
 * The order contract shared by the API, the workflow and the tests: the
 * request schema (also the source of the OpenAPI document), statuses and the
 * workflow's input.
 */
import { z } from 'zod';
import type { RetryPolicies } from './steps.ts';

/** ISO 4217 currencies orderflow accepts. */
export const CURRENCIES = [
  'USD',
  'EUR',
  'GBP',
  'JPY',
  'CHF',
  'CAD',
  'AUD',
  'SEK',
  'NOK',
  'DKK',
  'PLN',
] as const;

export const ORDER_STATUSES = [
  'RECEIVED',
  'PROCESSING',
  'PARKED',
  'COMPLETED',
  'CANCELLED',
] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/**
 * The statuses an order may be in when a write moves it to each status: status
 * writes never go backwards (a late PROCESSING after COMPLETED, anything after
 * CANCELLED), and repeating a write is harmless. The database update applies
 * the write only from these (see recordOrderStatus).
 */
export const STATUS_PREDECESSORS: Record<OrderStatus, readonly OrderStatus[]> = {
  RECEIVED: ['RECEIVED'],
  PROCESSING: ['RECEIVED', 'PROCESSING', 'PARKED'],
  PARKED: ['RECEIVED', 'PROCESSING', 'PARKED'],
  COMPLETED: ['PROCESSING', 'COMPLETED'],
  CANCELLED: ['RECEIVED', 'PROCESSING', 'PARKED', 'CANCELLED'],
};

export const MAX_ITEMS = 100;
export const MAX_QUANTITY = 10_000;
export const MAX_UNIT_PRICE_CENTS = 1_000_000_000;
/**
 * The largest total an order can have, which the item limits imply (10^15 minor units, below
 * 2^53, so every total is an exact integer). Being implied, it is a rule the OpenAPI document
 * states as it is checked: a request the document calls valid is never refused for its total.
 */
export const MAX_TOTAL_CENTS = MAX_ITEMS * MAX_QUANTITY * MAX_UNIT_PRICE_CENTS;

/**
 * An email address as orderflow accepts it: a local part of 1-64 RFC 5322 atom characters and
 * dots (RFC 5321), not starting or ending with a dot; a domain of DNS labels with a top-level
 * label of letters; 254 characters in all. The OpenAPI document carries this very pattern (no
 * lookahead, so fuzzers can generate from it), so the document and the API agree.
 */
export const EMAIL_PATTERN =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-](?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{0,62}[A-Za-z0-9!#$%&'*+/=?^_`{|}~-])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;
export const MAX_EMAIL_LENGTH = 254;

export const customerEmailSchema = z
  .string()
  .max(MAX_EMAIL_LENGTH)
  .regex(EMAIL_PATTERN, 'must be an email address (local-part@domain.tld)');

export const orderItemSchema = z.strictObject({
  sku: z
    .string()
    .regex(
      /^[A-Z0-9][A-Z0-9._-]{0,63}$/,
      'must be 1-64 characters of A-Z, 0-9, ".", "_" or "-", starting with a letter or digit',
    ),
  quantity: z.number().int('must be an integer').min(1).max(MAX_QUANTITY),
  unitPriceCents: z.number().int('must be an integer').min(0).max(MAX_UNIT_PRICE_CENTS),
});

export const createOrderSchema = z.strictObject({
  customerEmail: customerEmailSchema,
  items: z.array(orderItemSchema).min(1, 'must hold at least one item').max(MAX_ITEMS),
  currency: z.enum(CURRENCIES, { error: `must be one of ${CURRENCIES.join(', ')}` }),
});

export type CreateOrderRequest = z.infer<typeof createOrderSchema>;
export type OrderItemInput = z.infer<typeof orderItemSchema>;

/** The total in minor units; exact, since every term is a bounded integer. */
export function orderTotalCents(items: readonly OrderItemInput[]): number {
  return items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0);
}

/** Input of `orderWorkflow`: the order is read from the database by activities. */
export interface OrderWorkflowInput {
  orderId: string;
  /** Retry budgets fixed at start (from the starter's configuration); defaults when absent. */
  retryPolicies?: RetryPolicies;
}
