import { describe, expect, it } from 'vitest';
import {
  maxInWindow,
  median,
  percentile,
  perSecond,
  round,
  sumWhere,
  summary,
} from '../../bench/lib/stats.ts';

describe('bench statistics', () => {
  it('takes the nearest-rank percentile of sorted values, NaN when there are none', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile(xs, 0)).toBe(1);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
  });

  it('summarises unsorted values without reordering them', () => {
    const values = [5, 1, 4, 2, 3];
    expect(summary(values)).toEqual({ n: 5, p50: 3, p90: 5, p99: 5, max: 5, min: 1 });
    expect(values).toEqual([5, 1, 4, 2, 3]);
    const empty = summary([]);
    expect(empty.n).toBe(0);
    expect(empty.p50).toBeNaN();
    expect(empty.max).toBeNaN();
  });

  it('gives the median of odd and even counts, undefined for none', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeUndefined();
  });

  it('rounds to the given digits, one by default', () => {
    expect(round(1.26)).toBe(1.3);
    expect(round(1.234, 2)).toBe(1.23);
    expect(round(1234.5, 0)).toBe(1235);
  });

  it('finds the busiest half-open window and where it starts', () => {
    // 1000 ms after 0 is outside [0, 1000): the busiest second starts at 500.
    expect(maxInWindow([0, 500, 900, 1000, 1400], 1000)).toEqual({ count: 4, start: 500 });
    expect(maxInWindow([], 1000)).toEqual({ count: 0, start: 0 });
  });

  it('counts timestamps per whole second since t0, early ones in the first', () => {
    expect(perSecond([900, 1000, 1999, 2000, 4500], 1000)).toEqual([3, 1, 0, 1]);
    expect(perSecond([], 0)).toEqual([]);
  });

  it('sums the values of the keys it is told to pick', () => {
    const cores = { api: 0.5, 'worker-orders': 0.25, temporal: 1 };
    expect(sumWhere(cores, (k) => k === 'api' || k.startsWith('worker-'))).toBe(0.75);
    expect(sumWhere(cores, () => false)).toBe(0);
  });
});
