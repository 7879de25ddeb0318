import { defineConfig } from 'vitest/config';

/**
 * `npm run test:chaos`: the full chaos run (test/chaos/*.chaos.ts) on a stack
 * of its own; not part of `npm test`, which runs the short variant
 * (test/chaos/short.test.ts). Durations and faults: CHAOS_* (test/chaos/chaos-run.ts).
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
