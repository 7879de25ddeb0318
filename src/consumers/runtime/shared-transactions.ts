/**
 * One transaction for the batches of several partitions. kafkajs hands a
 * consumer one batch per partition of each fetch, and the runner works on
 * them at once; at a trickle each batch holds an event or two, so a
 * transaction per batch (BEGIN, the processed-events insert, the projection's
 * statements, COMMIT: five round trips through an interactive transaction)
 * cost more than the events themselves. The batches that ask to be applied in
 * the same turn of the event loop (those of one fetch) share one transaction
 * instead: a projection's effect does not depend on the order of its events
 * (Projection.apply), and each partition still hands over its next batch only
 * after this one committed, so per-key order holds.
 *
 * A shared transaction that fails is not anyone's failure yet: each batch is
 * then applied in a transaction of its own, so a bad event fails only its own
 * partition's batch, which the runner retries and dead-letters as before.
 */
import type { ApplyResult, SourcedEvent } from './processed-events.ts';

export type ApplyFn = (records: readonly SourcedEvent[]) => Promise<ApplyResult>;

interface Waiting {
  records: readonly SourcedEvent[];
  resolve: (result: ApplyResult) => void;
  reject: (err: unknown) => void;
}

/**
 * Wraps `apply` (applyOnce of one group) so that calls made in the same turn
 * of the event loop run as one call; each caller gets the part of the result
 * that is about its own records.
 */
export function sharedTransactions(apply: ApplyFn): ApplyFn {
  let waiting: Waiting[] = [];

  const alone = ({ records, resolve, reject }: Waiting) => apply(records).then(resolve, reject);

  async function run(batches: Waiting[]): Promise<void> {
    if (batches.length === 1) return alone(batches[0]!);
    let result: ApplyResult;
    try {
      result = await apply(batches.flatMap((b) => b.records));
    } catch {
      await Promise.all(batches.map(alone));
      return;
    }
    const applied = new Set(result.applied);
    for (const { records, resolve } of batches) {
      // Records are the callers' own objects: split by identity.
      resolve({
        applied: records.filter((r) => applied.has(r)),
        duplicates: records.filter((r) => !applied.has(r)),
      });
    }
  }

  return (records) =>
    new Promise<ApplyResult>((resolve, reject) => {
      waiting.push({ records, resolve, reject });
      if (waiting.length > 1) return;
      // After the other partitions' batches of this fetch have asked too.
      setImmediate(() => {
        const batches = waiting;
        waiting = [];
        void run(batches);
      });
    });
}
