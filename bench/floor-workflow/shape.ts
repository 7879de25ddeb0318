/**
 * The shape of the Temporal-floor workflow (bench/parts/temporal-floor.ts):
 * the Temporal work of one order, step by step, as a short string the
 * workflow receives as its input. `P` = a patch (its marker, and the
 * TemporalChangeVersion upsert the SDK writes with it), `U` = a
 * search-attribute upsert, `L` = a local activity, `(email events)` =
 * activities started together, one per named task queue. Pure code: the
 * workflow bundle imports it.
 *
 *   "P L (email events) L"
 */

export type FloorStep =
  | { kind: 'patch' }
  | { kind: 'upsert' }
  | { kind: 'local' }
  | { kind: 'activities'; queues: string[] };

/** orderflow's task queues, each served by a floor worker process of its own. */
export const FLOOR_WORKER_QUEUES = ['orders', 'email', 'webhooks', 'events'] as const;
export type FloorWorkerQueue = (typeof FLOOR_WORKER_QUEUES)[number];

/** The floor's task queue for one of orderflow's: its own name, so orderflow's workers never see it. */
export const floorQueue = (orderflowQueue: string): string => `bench-floor-${orderflowQueue}`;

export const FLOOR_WORKFLOW_TYPE = 'temporalFloorWorkflow';

/** "U L (email events)" → steps; throws on anything else. */
export function parseShape(shape: string): FloorStep[] {
  const steps: FloorStep[] = [];
  for (const token of shape.match(/\([^)]*\)|\S+/g) ?? []) {
    if (token === 'P') steps.push({ kind: 'patch' });
    else if (token === 'U') steps.push({ kind: 'upsert' });
    else if (token === 'L') steps.push({ kind: 'local' });
    else if (token.startsWith('(')) {
      const queues = token.slice(1, -1).split(/\s+/).filter(Boolean);
      if (!queues.length) throw new Error(`floor shape: empty activity group in "${shape}"`);
      steps.push({ kind: 'activities', queues });
    } else throw new Error(`floor shape: unknown step "${token}" in "${shape}"`);
  }
  return steps;
}

const TOKEN = { patch: 'P', upsert: 'U', local: 'L' } as const;

export function formatShape(steps: FloorStep[]): string {
  return steps
    .map((s) => (s.kind === 'activities' ? `(${s.queues.join(' ')})` : TOKEN[s.kind]))
    .join(' ');
}

/** Per order: patches, upserts, local activities, and activities per task queue. */
export function countShape(steps: FloorStep[]): {
  patches: number;
  upserts: number;
  localActivities: number;
  activities: Record<string, number>;
} {
  const activities: Record<string, number> = {};
  for (const s of steps)
    if (s.kind === 'activities') for (const q of s.queues) activities[q] = (activities[q] ?? 0) + 1;
  return {
    patches: steps.filter((s) => s.kind === 'patch').length,
    upserts: steps.filter((s) => s.kind === 'upsert').length,
    localActivities: steps.filter((s) => s.kind === 'local').length,
    activities,
  };
}
