/**
 * The Temporal-floor workflow: orderflow's Temporal work per order with
 * nothing behind it. Every activity and local activity is a no-op; the
 * upserts write the same `OrderStatus` keyword. Deterministic like
 * src/workflows: only @temporalio/workflow and pure code.
 */
import { SearchAttributeType, defineSearchAttributeKey } from '@temporalio/common';
import {
  patched,
  proxyActivities,
  proxyLocalActivities,
  proxySinks,
  upsertSearchAttributes,
  type Sinks,
} from '@temporalio/workflow';
import { ORDER_STATUS_SEARCH_ATTRIBUTE } from '../../src/shared/task-queues.ts';
import { floorQueue, parseShape } from './shape.ts';

/** The one activity of every floor worker. */
export interface FloorActivities {
  noop(): Promise<void>;
}

/** Tells the runner a workflow finished, from the worker, with no call to the server. */
export interface FloorSinks extends Sinks {
  floor: { completed(): void };
}

const orderStatus = defineSearchAttributeKey(
  ORDER_STATUS_SEARCH_ATTRIBUTE,
  SearchAttributeType.KEYWORD,
);
const local = proxyLocalActivities<FloorActivities>({ startToCloseTimeout: '10 seconds' });
const { floor } = proxySinks<FloorSinks>();

/** Runs the steps of `shape` (see shape.ts) in order; an upsert after the last activity writes "Completed". */
export async function temporalFloorWorkflow(shape: string): Promise<void> {
  const steps = parseShape(shape);
  const lastActivities = steps.map((s) => s.kind).lastIndexOf('activities');
  for (const [i, step] of steps.entries()) {
    // A patch of its own per step: a new workflow records its marker (and the SDK's upsert).
    if (step.kind === 'patch') patched(`floor-patch-${i}`);
    else if (step.kind === 'upsert')
      upsertSearchAttributes([
        { key: orderStatus, value: i > lastActivities ? 'Completed' : 'Processing' },
      ]);
    else if (step.kind === 'local') await local.noop();
    else
      await Promise.all(
        step.queues.map((q) =>
          proxyActivities<FloorActivities>({
            taskQueue: floorQueue(q),
            startToCloseTimeout: '10 seconds',
          }).noop(),
        ),
      );
  }
  floor.completed();
}
