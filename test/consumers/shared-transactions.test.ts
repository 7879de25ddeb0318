import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { ApplyResult, SourcedEvent } from '../../src/consumers/runtime/processed-events.ts';
import { sharedTransactions } from '../../src/consumers/runtime/shared-transactions.ts';

/** A record of `partition` whose event id is `id`; only identity and ids matter here. */
const record = (partition: number, id: string): SourcedEvent =>
  ({ event: { id, source: 'test' }, topic: 't', partition, offset: '0' }) as SourcedEvent;

const ids = (records: readonly SourcedEvent[]) => records.map((r) => r.event.id);

/**
 * A fake applyOnce: records each call's event ids; events seen before are
 * duplicates; an event id starting with "bad" makes the whole call fail.
 */
function fakeApply() {
  const calls: string[][] = [];
  const seen = new Set<string>();
  const apply = async (records: readonly SourcedEvent[]): Promise<ApplyResult> => {
    calls.push(ids(records));
    await nextTurn();
    if (records.some((r) => r.event.id.startsWith('bad'))) throw new Error('bad event');
    const applied = records.filter((r) => !seen.has(r.event.id));
    for (const r of applied) seen.add(r.event.id);
    return { applied, duplicates: records.filter((r) => !applied.includes(r)) };
  };
  return { apply, calls, seen };
}

describe('shared transactions of a consumer group', () => {
  it("applies the batches asked for in one turn (one fetch's partitions) in one call, each caller getting its own part", async () => {
    const fake = fakeApply();
    fake.seen.add('b2'); // recorded before: a duplicate
    const apply = sharedTransactions(fake.apply);
    const a = [record(0, 'a1'), record(0, 'a2')];
    const b = [record(1, 'b1'), record(1, 'b2')];
    const c = [record(2, 'c1')];

    const [ra, rb, rc] = await Promise.all([apply(a), apply(b), apply(c)]);

    expect(fake.calls).toEqual([['a1', 'a2', 'b1', 'b2', 'c1']]);
    expect(ids(ra.applied)).toEqual(['a1', 'a2']);
    expect(ra.duplicates).toEqual([]);
    expect(ids(rb.applied)).toEqual(['b1']);
    expect(ids(rb.duplicates)).toEqual(['b2']);
    expect(ids(rc.applied)).toEqual(['c1']);
  });

  it('applies batches asked for in different turns in calls of their own', async () => {
    const fake = fakeApply();
    const apply = sharedTransactions(fake.apply);

    const first = await apply([record(0, 'a1')]);
    const second = await apply([record(1, 'b1')]);

    expect(fake.calls).toEqual([['a1'], ['b1']]);
    expect(ids(first.applied)).toEqual(['a1']);
    expect(ids(second.applied)).toEqual(['b1']);
  });

  it('applies each batch alone when the shared call fails: only the bad batch fails', async () => {
    const fake = fakeApply();
    const apply = sharedTransactions(fake.apply);

    const results = await Promise.allSettled([
      apply([record(0, 'a1')]),
      apply([record(1, 'bad1'), record(1, 'b2')]),
      apply([record(2, 'c1')]),
    ]);

    expect(fake.calls).toEqual([['a1', 'bad1', 'b2', 'c1'], ['a1'], ['bad1', 'b2'], ['c1']]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toEqual(new Error('bad event'));
    expect([...fake.seen]).toEqual(['a1', 'c1']);
  });

  it("passes a lone batch's failure to its caller", async () => {
    const fake = fakeApply();
    const apply = sharedTransactions(fake.apply);

    await expect(apply([record(0, 'bad1')])).rejects.toThrow('bad event');
    expect(fake.calls).toEqual([['bad1']]);
    // The next turn starts afresh.
    expect(ids((await apply([record(0, 'a1')])).applied)).toEqual(['a1']);
  });
});
