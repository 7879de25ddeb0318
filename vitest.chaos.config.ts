import { defineConfig } from 'vitest/config';

/**
 * `npm run test:chaos` (test/chaos/full.chaos.ts) and `npm run test:cluster`
 * (test/chaos/cluster.chaos.ts): the full chaos runs, each on a stack
 * of its own; not part of `npm test`, which runs the short variants
 * (test/chaos/short.test.ts); `npm run test:cluster:short` is the cluster's short run. Durations and faults: CHAOS_* (test/chaos/chaos-run.ts).
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    setupFiles: ['test/setup/temporal-runtime.ts'],
    testTimeout: 60 * 60_000,
    hookTimeout: 300_000,
    teardownTimeout: 120_000,
  },
});
