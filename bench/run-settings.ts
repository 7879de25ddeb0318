/**
 * The settings of `npm run bench` (bench/run.ts), read once from the
 * environment; the variables are listed at the top of bench/run.ts.
 */
import { parseCpuPriority } from '../scripts/lib/process.ts';
import { intEnv } from '../scripts/lib/env-settings.ts';
import { labelEnv } from './lib/settings.ts';

export const PARTS = [
  'intake',
  'peer-intake',
  'sustained',
  'temporal-floor',
  'priority',
  'backlog',
  'spike',
  'faults',
] as const;
export type Part = (typeof PARTS)[number];

type Env = Record<string, string | undefined>;

/** Every setting of the run, checked: an unknown part or an out-of-range number throws. */
export function runSettings(env: Env = process.env) {
  const int = (name: string, def: number, min: number, max: number) =>
    intEnv(name, def, min, max, env);
  return {
    parts: (env.BENCH_PARTS || PARTS.join(',')).split(',').map((p) => {
      const part = p.trim() as Part;
      if (!PARTS.includes(part))
        throw new Error(`BENCH_PARTS: unknown part ${p} (${PARTS.join(', ')})`);
      return part;
    }),
    spikeOrders: int('BENCH_SPIKE_ORDERS', 5000, 1, 100_000),
    spikeS: int('BENCH_SPIKE_S', 10, 1, 600),
    spikeDrainS: int('BENCH_SPIKE_DRAIN_S', 600, 10, 3600),
    webhookRate: int('BENCH_WEBHOOK_RATE', 20, 1, 10_000),
    sustainedS: int('BENCH_SUSTAINED_S', 60, 1, 3600),
    sustainedWarmupS: int('BENCH_SUSTAINED_WARMUP_S', 5, 0, 600),
    sustainedInFlight: int('BENCH_SUSTAINED_IN_FLIGHT', 200, 1, 5000),
    backlogOrders: int('BENCH_BACKLOG_ORDERS', 5000, 1, 100_000),
    backlogWindowS: int('BENCH_BACKLOG_WINDOW_S', 60, 1, 3600),
    backlogConnections: int('BENCH_BACKLOG_CONNECTIONS', 64, 1, 1000),
    consumers: env.BENCH_CONSUMERS !== '0',
    /** With sustained and temporal-floor: orderflow, floor, floor, orderflow (ABBA), ratio of the means. */
    floorPaired: env.BENCH_FLOOR_PAIRED !== '0',
    /** With the paired windows: the machine-speed probe beside them (bench/lib/machine-speed.ts). */
    speedProbe: env.BENCH_SPEED_PROBE !== '0',
    bulkJobs: int('BENCH_BULK_JOBS', 10_000, 1, 1_000_000),
    liveRate: int('BENCH_LIVE_RATE', 5, 1, 1000),
    liveS: int('BENCH_LIVE_S', 20, 1, 600),
    bulkDrainS: int('BENCH_BULK_DRAIN_S', 60, 10, 3600),
    peerRate: int('BENCH_PEER_RATE', 300, 1, 100_000),
    peerS: int('BENCH_PEER_S', 5, 1, 600),
    peerWarmupS: int('BENCH_PEER_WARMUP_S', 3, 0, 600),
    peerSatConnections: int('BENCH_PEER_SAT_CONNECTIONS', 64, 1, 1000),
    faultOrders: int('BENCH_FAULT_ORDERS', 300, 10, 100_000),
    faultRate: int('BENCH_FAULT_RATE', 20, 1, 1000),
    faultDrainS: int('BENCH_FAULT_DRAIN_S', 240, 10, 3600),
    redisAof: env.BENCH_REDIS_AOF !== '0',
    drainS: int('BENCH_DRAIN_S', 900, 10, 3600),
    maxMin: int('BENCH_RUN_MAX_MIN', 60, 1, 480),
    label: labelEnv(env),
    backgroundPriority: parseCpuPriority(
      env.BENCH_BACKGROUND_PRIORITY ?? 'idle',
      'BENCH_BACKGROUND_PRIORITY',
    ),
  };
}
export type RunSettings = ReturnType<typeof runSettings>;

/** Goals of issue 12: sustained ÷ the Temporal floor, backlog completion rate ÷ the steady rate. */
export const GOALS = { floorRatio: 0.85, backlogRatio: 0.9 };
