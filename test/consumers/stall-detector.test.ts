/**
 * The stall detector's rule on readings of the group's lag (no broker: the
 * readings and this process's activity are given): a partition is reported
 * only when records wait on it, its committed offset has not moved for the
 * timeout, this process owns it (or is in no group) and had no batch of it in
 * hand for as long.
 */
import { describe, expect, it } from 'vitest';
import type { PartitionLag } from '../../src/consumers/runtime/metrics.ts';
import { createStallDetector } from '../../src/consumers/runtime/stall-watch.ts';

const STALL_MS = 60_000;

function scenario({
  assigned = [0, 1] as readonly number[] | undefined,
  lastActivityAt = 0,
}: {
  assigned?: readonly number[] | undefined;
  lastActivityAt?: number;
} = {}) {
  let now = 0;
  let activityAt = lastActivityAt;
  const detector = createStallDetector({
    stallMs: STALL_MS,
    now: () => now,
    activity: { assigned: () => assigned, lastActivityAt: () => activityAt },
  });
  return {
    at(ms: number, lags: PartitionLag[]) {
      now = ms;
      return detector.observe(lags);
    },
    setActivity(ms: number) {
      activityAt = ms;
    },
  };
}

const lag = (partition: number, committed: string, waiting: number): PartitionLag => ({
  partition,
  committed,
  high: String(BigInt(committed) + BigInt(waiting)),
  lag: waiting,
});

describe('the stall detector', () => {
  it('reports a partition with records waiting, its offset still, owned and idle for the timeout, with the numbers', () => {
    const s = scenario();
    expect(s.at(0, [lag(0, '5', 3)])).toEqual([]);
    expect(s.at(STALL_MS - 1, [lag(0, '5', 3)])).toEqual([]);
    expect(s.at(STALL_MS + 5_000, [lag(0, '5', 4), lag(1, '9', 0)])).toEqual([
      {
        partition: 0,
        committed: '5',
        lag: 4,
        stuckForMs: STALL_MS + 5_000,
        idleForMs: STALL_MS + 5_000,
      },
    ]);
  });

  it('does not report a partition whose committed offset moves, or that has nothing waiting', () => {
    const s = scenario();
    for (let i = 0; i <= 5; i++) {
      const t = i * STALL_MS;
      expect(s.at(t, [lag(0, String(10 + i), 2), lag(1, '7', 0)])).toEqual([]);
    }
  });

  it('counts the still time from the reading where the offset last moved', () => {
    const s = scenario();
    s.at(0, [lag(0, '1', 2)]);
    s.at(STALL_MS / 2, [lag(0, '2', 2)]);
    expect(s.at(STALL_MS + 1, [lag(0, '2', 2)])).toEqual([]);
    expect(s.at(STALL_MS * 1.5, [lag(0, '2', 2)]).map((x) => x.stuckForMs)).toEqual([STALL_MS]);
  });

  it('does not report a partition another member owns', () => {
    const s = scenario({ assigned: [1] });
    s.at(0, [lag(0, '5', 3)]);
    expect(s.at(STALL_MS * 2, [lag(0, '5', 3)])).toEqual([]);
  });

  it('reports when this process is in no group (crashed, not back) and the partition stands still', () => {
    const s = scenario({ assigned: undefined });
    s.at(0, [lag(0, '5', 3)]);
    expect(s.at(STALL_MS * 2, [lag(0, '5', 3)]).map((x) => x.partition)).toEqual([0]);
  });

  it('does not report while this process works on the partition (a batch in hand, however long)', () => {
    const s = scenario();
    s.at(0, [lag(0, '5', 3)]);
    s.setActivity(STALL_MS * 2 - 10);
    expect(s.at(STALL_MS * 2, [lag(0, '5', 3)])).toEqual([]);
    // Idle from then on: reported once the idle time, too, reaches the timeout.
    expect(s.at(STALL_MS * 3 - 11, [lag(0, '5', 3)])).toEqual([]);
    expect(s.at(STALL_MS * 3, [lag(0, '5', 3)]).map((x) => x.idleForMs)).toEqual([STALL_MS + 10]);
  });
});
