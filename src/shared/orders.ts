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

export const MAX_ITEMS = 100;
export const MAX_QUANTITY = 10_000;
export const MAX_UNIT_PRICE_CENTS = 1_000_000_000;
/** An order's total may not exceed this (ten billion in the currency's minor unit). */
export const MAX_TOTAL_CENTS = 1_000_000_000_000;

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

export const createOrderSchema = z
  .strictObject({
    customerEmail: z.email('must be an email address').max(254),
    items: z.array(orderItemSchema).min(1, 'must hold at least one item').max(MAX_ITEMS),
    currency: z.enum(CURRENCIES, { error: `must be one of ${CURRENCIES.join(', ')}` }),
  })
  .superRefine((order, ctx) => {
    if (orderTotalCents(order.items) > MAX_TOTAL_CENTS) {
      ctx.addIssue({
        code: 'custom',
        path: ['items'],
        message: `order total exceeds ${MAX_TOTAL_CENTS} cents`,
      });
    }
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
