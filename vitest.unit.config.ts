import { defineConfig } from 'vitest/config';

/**
 * `npm run test:unit`: the tier that needs no stack (no PostgreSQL, Kafka,
 * Temporal server or maildev), so it runs in seconds and on every supported
 * Node line (`.ci/run` runs it on Node 22 as well; `npm test` runs the whole
 * suite, these files included, on Node 24). The time-skipping workflow tests
 * belong here: their test server is a provisioned tool, not part of the stack.
 */
export default defineConfig({
  test: {
    include: [
      'test/cluster/temporal-config.test.ts',
      'test/config.test.ts',
      'test/consumers/offset-committer.test.ts',
      'test/consumers/shared-transactions.test.ts',
      'test/consumers/stall-detector.test.ts',
      'test/bench/cpu-accounting.test.ts',
      'test/bench/machine-speed.test.ts',
      'test/bench/report-and-settings.test.ts',
      'test/bench/stats.test.ts',
      'test/bench/temporal-counters.test.ts',
      'test/node-runtime.test.ts',
      'test/compose/compose.test.ts',
      'test/compose/dockerfile.test.ts',
      'test/cli/progress.test.ts',
      'test/docs/diagrams.test.ts',
      'test/events/kafka-boundary.test.ts',
      'test/events/kafkajs-request-queue.test.ts',
      'test/events/kafka-warning.test.ts',
      'test/layout/import-direction.test.ts',
      'test/api/access-log.test.ts',
      'test/api/relay-probe.test.ts',
      'test/api/problems-database.test.ts',
      'test/orders/order-operations.test.ts',
      'test/orders/rules.test.ts',
      'test/provisioning/priority-governor.test.ts',
      'test/provisioning/process.test.ts',
      'test/provisioning/stop-group.test.ts',
      'test/provisioning/supervisor.test.ts',
      'test/replay/replay.test.ts',
      'test/workflows/order-workflow.test.ts',
    ],
    // The provisioned tools only (the time-skipping test server), no stack.
    globalSetup: ['test/setup/global-tools.ts'],
    setupFiles: ['test/setup/temporal-runtime.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    fileParallelism: false,
  },
});
