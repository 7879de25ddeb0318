/**
 * The offset committer's rules with a fake commit request (no broker):
 * offsets wait for the interval and go out together, one commit at a time and
 * never older than one already sent (the race that lost a consumer process in
 * the bench: a timed commit landing after a newer one), failures stay pending,
 * and a rejoin drops the partitions another member owns now.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  createOffsetCommitter,
  type PartitionOffset,
} from '../../src/consumers/runtime/offset-committer.ts';
import { createLogger } from '../../src/shared/logger.ts';

const log = createLogger('test', 'silent');

/** A commit request that records what it sends and finishes when `release()` is called. */
function slowBroker() {
  const sent: PartitionOffset[][] = [];
  const waiting: (() => void)[] = [];
  let failNext = false;
  return {
    sent,
    commit: (offsets: PartitionOffset[]) =>
      new Promise<void>((resolve, reject) => {
        sent.push(offsets);
        if (failNext) {
          failNext = false;
          reject(new Error('The coordinator is not aware of this member'));
        } else waiting.push(resolve);
      }),
    release: () => waiting.splice(0).forEach((r) => r()),
    failOnce: () => (failNext = true),
    /** The committed offset per partition, as the broker would keep it (the last one sent wins). */
    committedAt: (partition: number) =>
      sent
        .flat()
        .filter((o) => o.partition === partition)
        .at(-1)?.offset,
  };
}

const flushMicrotasks = () => vi.advanceTimersByTimeAsync(0);

/** Lets a flush reach the broker, answers it and waits for it. */
async function answered(broker: ReturnType<typeof slowBroker>, flush: Promise<void>) {
  await flushMicrotasks();
  broker.release();
  await flush;
}

describe('offset committer', () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] }));
  afterEach(() => vi.useRealTimers());

  it('sends every partition finished within the interval in one request', async () => {
    const broker = slowBroker();
    const c = createOffsetCommitter({ commit: broker.commit, intervalMs: 1000, log, about: {} });
    c.finished(0, '5');
    c.finished(1, '3');
    c.finished(0, '7');
    await vi.advanceTimersByTimeAsync(999);
    expect(broker.sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(broker.sent).toEqual([
      [
        { partition: 0, offset: '7' },
        { partition: 1, offset: '3' },
      ],
    ]);
    broker.release();
    await flushMicrotasks();
    expect(c.pending()).toEqual([]);
    // Nothing new: no more requests.
    await vi.advanceTimersByTimeAsync(5000);
    expect(broker.sent).toHaveLength(1);
  });

  it('never lets an older offset land after a newer one', async () => {
    const broker = slowBroker();
    const c = createOffsetCommitter({ commit: broker.commit, intervalMs: 1000, log, about: {} });
    c.finished(0, '10');
    await vi.advanceTimersByTimeAsync(1000); // the timed commit of 10 is under way (slow)
    c.finished(0, '12');
    const batchCommit = vi.fn(broker.commit);
    const flushed = c.flush(batchCommit); // a batch ending on a rebalance commits now
    await flushMicrotasks();
    expect(batchCommit).not.toHaveBeenCalled(); // it waits for the commit under way
    broker.release();
    await flushMicrotasks();
    expect(batchCommit).toHaveBeenCalledOnce();
    broker.release();
    await flushed;
    expect(broker.sent).toEqual([
      [{ partition: 0, offset: '10' }],
      [{ partition: 0, offset: '12' }],
    ]);
    expect(broker.committedAt(0)).toBe('12');
    // A record redelivered below what was committed does not move it back.
    c.finished(0, '11');
    await vi.advanceTimersByTimeAsync(2000);
    expect(broker.sent).toHaveLength(2);
  });

  it('keeps what a failed commit held and sends it again in the next round', async () => {
    const broker = slowBroker();
    const c = createOffsetCommitter({ commit: broker.commit, intervalMs: 1000, log, about: {} });
    broker.failOnce();
    c.finished(2, '4');
    await vi.advanceTimersByTimeAsync(1000);
    expect(broker.sent).toHaveLength(1);
    expect(c.pending()).toEqual([{ partition: 2, offset: '4' }]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(broker.sent).toHaveLength(2);
    broker.release();
    await flushMicrotasks();
    expect(c.pending()).toEqual([]);
    expect(broker.committedAt(2)).toBe('4');
    // flush() reports a failure to its caller, and the offset stays pending.
    broker.failOnce();
    c.finished(2, '6');
    await expect(c.flush()).rejects.toThrow(/not aware/);
    expect(c.pending()).toEqual([{ partition: 2, offset: '6' }]);
  });

  it('on a rejoin drops partitions assigned elsewhere and accepts offsets below its old commits', async () => {
    const broker = slowBroker();
    const c = createOffsetCommitter({ commit: broker.commit, intervalMs: 1000, log, about: {} });
    c.finished(0, '9');
    await answered(broker, c.flush());
    c.finished(0, '10');
    c.finished(1, '8');
    c.rejoined([0]); // partition 1 went to another member
    expect(c.pending()).toEqual([{ partition: 0, offset: '10' }]);
    await answered(broker, c.flush());
    // The group lost a commit (a crash): its records come again from 7 and are committed again.
    c.rejoined([0]);
    c.finished(0, '8');
    expect(c.pending()).toEqual([{ partition: 0, offset: '8' }]);
  });

  it('sends nothing on a timer once closed; flush() still commits', async () => {
    const broker = slowBroker();
    const c = createOffsetCommitter({ commit: broker.commit, intervalMs: 1000, log, about: {} });
    c.finished(0, '3');
    c.close();
    c.finished(1, '2');
    await vi.advanceTimersByTimeAsync(5000);
    expect(broker.sent).toEqual([]);
    await answered(broker, c.flush());
    expect(broker.sent).toEqual([
      [
        { partition: 0, offset: '3' },
        { partition: 1, offset: '2' },
      ],
    ]);
  });
});
