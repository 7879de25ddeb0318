// The same reordering behind patched(): new runs take it, old histories replay the old order.
import { patched } from '@temporalio/workflow';
import { orderWorkflowWith } from './targets-first.ts';

/** orderWorkflow with its first two activities swapped behind a patch. */
export const orderWorkflow = orderWorkflowWith(() => patched('webhook-targets-first'));
