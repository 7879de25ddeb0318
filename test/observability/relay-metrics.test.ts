/**
 * The relay process (`npm run relay`, a real child process) serves /metrics:
 * the workflow starts it made and the outbox backlog, after an order
 * accepted by an API in relay mode.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { postOrder, startStackApi, validOrder, type TestApi } from '../support/api.ts';
import { sample, scrapeUntil, stackEnvOf, startAppProcess, type AppProcess } from './processes.ts';

const stack = inject('stack');
let api: TestApi;
let relay: AppProcess;
let metricsUrl: string;

beforeAll(async () => {
  api = await startStackApi({
    workflowStartMode: 'relay',
    relay: { sweep: false, intervalMs: 200 },
  });
  relay = startAppProcess('relay', 'src/api/relay.ts', {
    ...stackEnvOf(stack),
    OUTBOX_POLL_MS: '50',
    RELAY_METRICS_PORT: '0',
    LOG_LEVEL: 'info',
  });
  const running = await relay.waitForLine('"relay running"', (l) => l.msg === 'relay running');
  metricsUrl = String(running.metricsUrl);
}, 180_000);
afterAll(async () => {
  await relay?.stop();
  await api?.close();
}, 60_000);

describe('relay /metrics', () => {
  it('counts the workflow starts it made and reports the outbox backlog', async () => {
    const created = await postOrder(api.url, validOrder());
    expect(created.status).toBe(201);
    const text = await scrapeUntil(
      metricsUrl,
      "a started workflow in the relay's metrics",
      (t) => (sample(t, 'orderflow_workflow_starts_total', { outcome: 'started' }) ?? 0) >= 1,
    );
    expect(sample(text, 'orderflow_outbox_pending')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'orderflow_outbox_oldest_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'orderflow_temporal_reachable')).toBe(1);
    expect(text).toContain('process_resident_memory_bytes');
    expect(relay.lines.find((l) => l.msg === 'configuration')).toBeDefined();
  });
});
