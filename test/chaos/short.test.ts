/**
 * The short chaos run, part of `npm test`: under steady load on real
 * processes, the orders (workflow) worker is killed with SIGKILL mid-flight,
 * the webhook receiver answers 503 long enough for orders to park, and
 * PostgreSQL stops for a few seconds; then every accepted order must be
 * completed (parked ones after a retry through the API), consumed once per
 * group, mailed, delivered and published. The full run is `npm run test:chaos`.
 */
import { expect, inject, it } from 'vitest';
import { runChaos, violations, type ChaosSettings } from './chaos-run.ts';

const settings: ChaosSettings = {
  faults: ['kill:worker-orders', 'fail:webhook-receiver', 'stop:postgres'],
  rate: 4,
  warmupS: 8,
  gapS: 8,
  temporalDownS: 0,
  kafkaDownS: 0,
  smtpDownS: 0,
  receiverDownS: 10,
  postgresDownS: 4,
  drainS: 150,
  maxOrders: 1000,
  webhookDelayMs: 100,
  attemptTimeout: '10s',
  keepData: process.env.KEEP_TEST_STACK === '1',
};

it('loses no accepted order through a workflow-worker SIGKILL, a webhook receiver outage that parks orders, and a PostgreSQL stop', async () => {
  const result = await runChaos(settings, inject('tools'));
  console.info(result.report);
  expect(violations(result)).toEqual([]);
  expect(result.parked.length).toBeGreaterThan(0);
}, 600_000);
