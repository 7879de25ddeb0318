/** The order the tests and the benchmarks POST to /orders: two of SKU-1 at 12.50 USD, for `customerEmail`. */
export const sampleOrder = (customerEmail: string) => ({
  customerEmail,
  items: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }],
  currency: 'USD',
});
