import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real stack (PostgreSQL, Temporal, Kafka, maildev) on ephemeral ports for the whole run.
    globalSetup: ['test/setup/global-stack.ts'],
    setupFiles: ['test/setup/temporal-runtime.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    // Two cores: more parallel files than that only adds contention.
    maxWorkers: 2,
  },
});
