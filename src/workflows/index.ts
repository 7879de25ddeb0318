// Every workflow the `orders` worker registers.
export { orderWorkflow } from './order.ts';
