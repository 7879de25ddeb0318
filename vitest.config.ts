import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real stack (PostgreSQL, Temporal, Kafka, maildev) on ephemeral ports for the whole run.
    globalSetup: ['test/setup/global-stack.ts'],
    setupFiles: ['test/setup/temporal-runtime.ts', 'test/setup/isolate-workflows.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // Files share one stack (database, task queues); run them one at a time so
    // counts and listings in one file are not disturbed by another.
    fileParallelism: false,
    // The API and relay processes some files spawn would otherwise reconcile (cancel, announce)
    // the orders whose workflows earlier files terminated (isolate-workflows.ts); tests of the
    // reconciler run it themselves.
    env: { WORKFLOW_RECONCILE_INTERVAL_MS: '0' },
  },
});
