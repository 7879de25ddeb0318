// The reordering shipped without a patch: old histories must fail to replay.
import { orderWorkflowWith } from './targets-first.ts';

/** orderWorkflow with its first two activities swapped, unpatched. */
export const orderWorkflow = orderWorkflowWith(() => true);
