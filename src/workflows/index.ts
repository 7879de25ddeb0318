// Every workflow the `orders` worker registers.
export { orderWorkflow } from './order.ts';
export { resendOrderEventsWorkflow } from './resend-events.ts';
export { announceCancellationWorkflow } from './announce-cancellation.ts';
