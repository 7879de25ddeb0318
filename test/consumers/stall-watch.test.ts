/**
 * The stall watch on the real broker and database: a client that stops
 * handing a partition's batches over (what kafkajs does when it hangs after a
 * broker failover, tulios/kafkajs#659) is reported from the lag monitor's
 * readings once the timeout passes, while a partition whose batch is in hand
 * for longer than the timeout (a slow transaction) is not. The hang is made at
 * the client boundary: the consumer's eachBatch for that partition is held
 * and never reaches the runner, as with the real hang. A batch that hangs in
 * hand is reported once the in-hand grace is over too.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { analyticsProjection } from '../../src/consumers/projections/analytics.ts';
import { startLagMonitor, createConsumerMetrics } from '../../src/consumers/runtime/metrics.ts';
import { createStallDetector, type Stall } from '../../src/consumers/runtime/stall-watch.ts';
import type { KafkaClient } from '../../src/events/kafka-types.ts';
import {
  admin,
  consumerScenario,
  kafka,
  logger,
  recordOf,
  useConsumerClients,
  waitFor,
  type TestRunner,
} from './support.ts';

useConsumerClients();

const STALL_MS = 1_500;
const SLOW_TRANSACTION_MS = 4_000;

/** The lag monitor and a stall detector over `runner`, as the consumer process wires them; every reading kept. */
function watch(s: { groupId: string; topic: string }, runner: TestRunner) {
  const readings: { at: number; stalls: Stall[] }[] = [];
  const detector = createStallDetector({ stallMs: STALL_MS, activity: runner.activity });
  const lag = startLagMonitor({
    admin,
    groupId: s.groupId,
    topic: s.topic,
    intervalMs: 200,
    metrics: createConsumerMetrics(),
    log: logger,
    onLag: (lags) => readings.push({ at: Date.now(), stalls: detector.observe(lags) }),
  });
  return { readings, lag };
}

it('reports a partition the client stops handing over, not one whose batch is in hand longer than the timeout', async () => {
  const s = await consumerScenario('analytics', 2);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held = false;
  // Partition 0's batches are held at the client: the runner never sees them.
  const hangingKafka: KafkaClient = {
    admin: () => kafka.admin(),
    consumer(settings) {
      const inner = kafka.consumer(settings);
      return {
        ...inner,
        run: (run) =>
          inner.run({
            ...run,
            eachBatch: async (payload) => {
              if (payload.batch.partition !== 0) return run.eachBatch!(payload);
              held = true;
              await released;
            },
          }),
      };
    },
  };
  const [stuck, slow] = [s.order(), s.order()];
  await s.produce([
    { ...recordOf(stuck), partition: 0 },
    { ...recordOf(slow), partition: 1 },
  ]);

  // Partition 1's only record takes longer than the timeout in its transaction.
  let slowSpan: { from: number; to: number } | undefined;
  const runner = await s.start({
    kafka: hangingKafka,
    projection: analyticsProjection,
    afterTransaction: async () => {
      const from = Date.now();
      await sleep(SLOW_TRANSACTION_MS);
      slowSpan = { from, to: Date.now() };
    },
  });

  const { readings, lag } = watch(s, runner);
  try {
    await waitFor(
      'partition 0 reported stalled and partition 1 done',
      () => readings.some((r) => r.stalls.length > 0) && slowSpan !== undefined,
      30_000,
    );
    await lag.refresh();
  } finally {
    lag.stop();
    release();
    await runner.stop();
  }

  expect(held).toBe(true);
  const reported = readings.flatMap((r) => r.stalls);
  expect(new Set(reported.map((x) => x.partition))).toEqual(new Set([0]));
  expect(reported[0]).toMatchObject({ partition: 0, committed: '-1', lag: 1 });
  expect(reported[0]!.stuckForMs).toBeGreaterThanOrEqual(STALL_MS);
  // The slow batch was in hand longer than the timeout while the watch read the lag, and done.
  expect(slowSpan!.to - slowSpan!.from).toBeGreaterThanOrEqual(SLOW_TRANSACTION_MS);
  expect(
    readings.filter((r) => r.at > slowSpan!.from + STALL_MS && r.at < slowSpan!.to).length,
  ).toBeGreaterThan(0);
  expect(await s.processedCount()).toBe(1);
}, 60_000);

it('reports a batch that hangs in hand once the in-hand grace after its latest progress is over', async () => {
  const s = await consumerScenario('analytics', 1);
  const GRACE_MS = 2_000;
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let hungAt: number | undefined;
  await s.publish([s.order()]);
  const runner = await s.start({
    projection: analyticsProjection,
    inHandGraceMs: GRACE_MS,
    afterTransaction: async () => {
      hungAt ??= Date.now();
      await released;
    },
  });
  const { readings, lag } = watch(s, runner);
  try {
    await waitFor(
      'the hung batch reported',
      () => readings.some((r) => r.stalls.length > 0),
      30_000,
    );
  } finally {
    lag.stop();
    release();
    await runner.stop();
  }
  const first = readings.find((r) => r.stalls.length > 0)!;
  expect(first.stalls).toMatchObject([{ partition: 0, lag: 1 }]);
  // Not before the grace and the timeout had both passed since the batch's latest progress.
  expect(first.at - hungAt!).toBeGreaterThanOrEqual(GRACE_MS + STALL_MS);
  expect(first.stalls[0]!.idleForMs).toBeGreaterThanOrEqual(STALL_MS);
  await s.waitCaughtUp('the released batch committed', 30_000);
}, 60_000);
