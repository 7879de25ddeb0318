/**
 * Offset commits against the real broker: a steady trickle of small batches
 * is committed about once a second (not once per
 * batch), the trailing offset is committed by the timer without another
 * batch, and stop() commits what was applied and not committed yet.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import type { EventConsumer, KafkaClient } from '../../src/events/kafka-types.ts';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { consumerScenario, kafka, useConsumerClients, waitFor } from './support.ts';

useConsumerClients();

/** `kafka`, counting the offset commits its consumers send (from a batch or on their own). */
function countingCommits(): { kafka: KafkaClient; commits: () => number } {
  let commits = 0;
  const wrapped: KafkaClient = {
    admin: () => kafka.admin(),
    consumer(settings) {
      const c = kafka.consumer(settings);
      const counted: EventConsumer = {
        ...c,
        commitOffsets: async (offsets) => {
          commits++;
          await c.commitOffsets(offsets);
        },
        run: (run) =>
          c.run({
            ...run,
            eachBatch:
              run.eachBatch &&
              ((payload) =>
                run.eachBatch!({
                  ...payload,
                  batch: payload.batch,
                  resolveOffset: (o) => payload.resolveOffset(o),
                  heartbeat: () => payload.heartbeat(),
                  isRunning: () => payload.isRunning(),
                  isStale: () => payload.isStale(),
                  commitOffsetsIfNecessary: async (offsets) => {
                    commits++;
                    await payload.commitOffsetsIfNecessary(offsets);
                  },
                })),
          }),
      };
      return counted;
    },
  };
  return { kafka: wrapped, commits: () => commits };
}

describe('offset commits', () => {
  it('commits a trickle of one-record batches about once a second, the last one without another batch', async () => {
    const s = await consumerScenario('commits', 1);
    const counting = countingCommits();
    const runner = await s.start({
      projection: analyticsProjection,
      transaction: 'per-batch',
      kafka: counting.kafka,
      fetchWaitMs: 0,
    });
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      await s.publish([s.order()]);
      await sleep(100);
    }
    await waitFor('all 30 applied', async () => (await s.processedCount()) === 30);
    await s.waitCaughtUp('the trailing offset committed by the timer', 10_000);
    const seconds = (Date.now() - started) / 1000;
    expect(await runner.outcomes('processed')).toBe(30);
    // About 30 batches over ~3-4 s: at most one commit a second (and the timer's last one), not 30.
    expect(counting.commits()).toBeGreaterThan(0);
    expect(counting.commits()).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
  });

  it('commits on stop what it applied since its last commit', async () => {
    const s = await consumerScenario('commits-stop', 2);
    const runner = await s.start({ projection: analyticsProjection, transaction: 'per-batch' });
    await s.publish([s.order(), s.order()]);
    await s.waitCaughtUp('the first records committed');
    // Applied within the second after that commit: left to the timer, then stop() commits them.
    await s.publish([s.order(), s.order(), s.order()]);
    await waitFor('all 5 applied', async () => (await s.processedCount()) === 5, 10_000);
    await runner.stop();
    expect(await s.caughtUp()).toBe(true);
    expect(await runner.outcomes('duplicate')).toBe(0);
  });
});
