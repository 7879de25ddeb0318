/**
 * A consumer that is alive but no longer consumes: kafkajs can hang in a
 * fetch or stop handing a partition's batches over after a broker failover
 * (tulios/kafkajs#659, open upstream), with no error and no crash event, so
 * nothing else notices. Seen here once in the cluster fault run: after a broker
 * was killed, one group stopped at 114 of 158 events with both of its
 * processes running.
 *
 * The watch compares the group's committed offsets (read by the lag monitor)
 * with what this process does. A partition is stalled when all of this holds
 * for `stallMs`:
 * - records wait on it (lag > 0) and its committed offset has not moved;
 * - this process owns it (its latest group join assigned it), or the process
 *   is in no group at all (crashed and not back);
 * - this process made no progress on it: no batch begun or ended, no attempt,
 *   no tick of a wait. A batch in hand counts as activity for
 *   IN_HAND_GRACE_MS (2 min) after its latest progress, longer than any one
 *   wait of the runner (a transaction, a broker request), so a slow
 *   transaction or an outage being waited out (it heartbeats every second) is
 *   not a stall, and a batch hung in the client is one.
 * A stalled consumer cannot be trusted to recover in place (stopping it waits
 * for the hung fetch), so the process exits non-zero and its supervisor
 * (`npm start`, the cluster runner, an orchestrator) starts a fresh one; the
 * uncommitted records are read again and deduplicated by processed_events.
 */
import type { PartitionLag } from './metrics.ts';

export interface ConsumerActivity {
  /** Partitions of the latest group join; undefined while in no group (not yet joined, or crashed). */
  assigned(): readonly number[] | undefined;
  /** When this process last made progress on `partition`, joined or crashed (Date.now() ms); a batch in hand adds a grace. */
  lastActivityAt(partition: number): number;
}

export interface Stall {
  partition: number;
  committed: string;
  lag: number;
  /** How long the committed offset has not moved (ms). */
  stuckForMs: number;
  /** How long since this process last did anything with the partition (ms). */
  idleForMs: number;
}

export interface StallDetector {
  /** Takes one reading of the group's lag; returns the partitions stalled (empty: none). */
  observe(lags: readonly PartitionLag[]): Stall[];
}

export function createStallDetector({
  stallMs,
  activity,
  now = Date.now,
}: {
  stallMs: number;
  activity: ConsumerActivity;
  now?: () => number;
}): StallDetector {
  /** Per partition: the committed offset last read and since when it has been that. */
  const since = new Map<number, { committed: string; at: number }>();
  return {
    observe(lags) {
      const at = now();
      const assigned = activity.assigned();
      const mine = (partition: number) => assigned === undefined || assigned.includes(partition);
      const stalls: Stall[] = [];
      for (const { partition, committed, lag } of lags) {
        const seen = since.get(partition);
        if (!seen || seen.committed !== committed || lag === 0) {
          since.set(partition, { committed, at });
          continue;
        }
        const stuckForMs = at - seen.at;
        const idleForMs = at - activity.lastActivityAt(partition);
        if (mine(partition) && stuckForMs >= stallMs && idleForMs >= stallMs)
          stalls.push({ partition, committed, lag, stuckForMs, idleForMs });
      }
      return stalls;
    },
  };
}
