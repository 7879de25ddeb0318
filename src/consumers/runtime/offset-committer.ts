/**
 * A consumer's offset commits, batched and in order. A finished record's
 * offset waits at most `intervalMs` and goes out with every other partition's
 * in one commit request, so a steady trickle of one-record batches costs one
 * request a second, not one per batch. What is applied but not committed yet
 * is redelivered after a crash or a rebalance and acknowledged as a duplicate
 * (processed_events).
 *
 * Commits go out one at a time, each with the newest offset of every
 * partition, so a slow or retried commit can never land after a newer one and
 * move a partition's committed offset back (which would leave records "waiting"
 * that are done, until the stall watch gives up on the process).
 */
import type { Logger } from '../../shared/logger.ts';

export interface PartitionOffset {
  partition: number;
  /** The next record to read: the offset after the last finished one. */
  offset: string;
}

/** Sends one commit request for these partitions of the topic. */
export type CommitFn = (offsets: PartitionOffset[]) => Promise<void>;

export interface OffsetCommitter {
  /** `partition`'s records before `next` are finished; it is committed within the interval. */
  finished(partition: number, next: string): void;
  /**
   * Commits everything pending now, after any commit already under way (through `via`
   * instead of the default: a batch's own client). Rejects if that commit fails; what
   * failed stays pending.
   */
  flush(via?: CommitFn): Promise<void>;
  /** The group was (re)joined with these partitions: others' pending offsets are dropped. */
  rejoined(assigned: readonly number[]): void;
  /** No more timed commits (stopping); flush() still commits. */
  close(): void;
  /** Offsets finished and not committed yet (tests, logs). */
  pending(): PartitionOffset[];
}

export function createOffsetCommitter(opts: {
  commit: CommitFn;
  intervalMs: number;
  log: Logger;
  about: Record<string, unknown>;
}): OffsetCommitter {
  const pending = new Map<number, bigint>();
  /** The newest offset this member committed per partition, in this generation of the group. */
  const committed = new Map<number, bigint>();
  let assigned: ReadonlySet<number> | undefined;
  let chain: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const list = (): PartitionOffset[] =>
    [...pending].map(([partition, offset]) => ({ partition, offset: offset.toString() }));

  async function commitPending(via: CommitFn): Promise<void> {
    if (assigned) for (const p of pending.keys()) if (!assigned.has(p)) pending.delete(p);
    const offsets = [...pending];
    if (offsets.length === 0) return;
    await via(offsets.map(([partition, offset]) => ({ partition, offset: offset.toString() })));
    for (const [partition, offset] of offsets) {
      committed.set(partition, offset);
      if (pending.get(partition) === offset) pending.delete(partition);
    }
  }

  function flush(via: CommitFn = opts.commit): Promise<void> {
    const run = chain.then(() => commitPending(via));
    chain = run.catch(() => {});
    return run;
  }

  function schedule(): void {
    if (timer || closed || pending.size === 0) return;
    timer = setTimeout(() => {
      timer = undefined;
      flush().then(schedule, (err: unknown) => {
        // Kept for the next try (a rebalance in progress, the coordinator moving).
        opts.log.warn({ err, ...opts.about, offsets: list() }, 'offset commit failed; retrying');
        schedule();
      });
    }, opts.intervalMs);
    timer.unref();
  }

  return {
    finished(partition, next) {
      const offset = BigInt(next);
      if (offset <= (pending.get(partition) ?? committed.get(partition) ?? -1n)) return;
      pending.set(partition, offset);
      schedule();
    },
    flush,
    rejoined(partitions) {
      assigned = new Set(partitions);
      // A new generation: the group's offsets may be older than ours (a commit lost with a
      // crash), so the records redelivered from there are committed again.
      committed.clear();
      for (const p of pending.keys()) if (!assigned.has(p)) pending.delete(p);
    },
    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
    },
    pending: list,
  };
}
