import { describe, expect, it } from 'vitest';
import {
  counterTotal,
  countersPer,
  parseTemporalCounters,
} from '../../bench/lib/temporal-counters.ts';

const exposition = (n: { start: number; poll: number; create: number }) => `
# HELP service_requests service_requests counter
# TYPE service_requests counter
service_requests{namespace="default",operation="StartWorkflowExecution",service_name="frontend"} ${n.start}
service_requests{namespace="default",operation="PollWorkflowTaskQueue",service_name="frontend"} ${n.poll}
service_requests{namespace="default",operation="PollWorkflowTaskQueue",service_name="matching"} ${n.poll}
persistence_requests_total{operation="CreateTasks",service_name="matching"} ${n.create}
service_latency_bucket{operation="StartWorkflowExecution",le="0.01"} 999
persistence_requests{service_name="history"} 5
`;

describe('the Temporal server counters of the bench', () => {
  it('sums service and persistence requests per operation over the other labels', () => {
    expect(parseTemporalCounters(exposition({ start: 3, poll: 4, create: 2 }))).toEqual({
      'service_requests:StartWorkflowExecution': 3,
      'service_requests:PollWorkflowTaskQueue': 8,
      'persistence_requests:CreateTasks': 2,
    });
  });

  it('divides what moved in a window by the units completed, largest first', () => {
    const before = parseTemporalCounters(exposition({ start: 3, poll: 4, create: 2 }));
    const after = parseTemporalCounters(exposition({ start: 13, poll: 9, create: 2 }));
    expect(countersPer(before, after, 10)).toEqual([
      ['service_requests:StartWorkflowExecution', 1],
      ['service_requests:PollWorkflowTaskQueue', 1],
    ]);
    expect(countersPer(before, after, 0)).toEqual([]);
  });

  it('totals one counter over its operations', () => {
    const perUnit: [string, number][] = [
      ['service_requests:StartWorkflowExecution', 1],
      ['persistence_requests:CreateTasks', 0.5],
      ['service_requests:PollWorkflowTaskQueue', 2],
    ];
    expect(counterTotal(perUnit, 'service_requests')).toBe(3);
    expect(counterTotal(perUnit, 'persistence_requests')).toBe(0.5);
    expect(counterTotal([], 'service_requests')).toBe(0);
  });
});
