/**
 * WORKFLOW_START_MODE=relay, as `npm start` and docker-compose.yml run it: the
 * API only commits; the relay process (src/api/relay.ts, a real child
 * process here) starts every workflow, and stops cleanly on SIGTERM.
 */
import { Client, Connection } from '@temporalio/client';
import path from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ManagedProcess, waitUntilReady } from '../../scripts/lib/process.ts';
import { tmpStackDir } from '../../scripts/lib/stack.ts';
import { projectRoot } from '../../scripts/lib/tools.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { postOrder, startApi, validOrder } from '../support/api.ts';

const stack = inject('stack');
let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
  cleanups = [];
});

function relayProcess(logDir: string): ManagedProcess {
  return new ManagedProcess({
    name: 'relay',
    command: process.execPath,
    args: ['--import', 'tsx', path.join(projectRoot, 'src/api/relay.ts')],
    cwd: projectRoot,
    env: {
      ...process.env,
      DATABASE_URL: stack.DATABASE_URL,
      TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
      OUTBOX_POLL_MS: '50',
      LOG_LEVEL: 'info',
    },
    logFile: path.join(logDir, 'relay.log'),
  });
}

describe('relay mode', () => {
  it('answers at the commit and leaves every start to the relay process', async () => {
    const api = await startApi({
      databaseUrl: stack.DATABASE_URL,
      temporalAddress: stack.TEMPORAL_ADDRESS,
      workflowStartMode: 'relay',
      relay: { sweep: false, intervalMs: 200 },
    });
    cleanups.push(() => api.close());

    // Accepted before any relay runs: committed, due at once, not started.
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => postOrder(api.url, validOrder())),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(30).fill(201));
    const ids = answers.map((a) => a.body.id as string);
    const pending = await api.db.workflowStart.findMany({ where: { orderId: { in: ids } } });
    expect(pending).toHaveLength(30);
    for (const row of pending) {
      expect(row.startedAt).toBeNull();
      expect(row.nextAttemptAt.getTime()).toBeLessThanOrEqual(Date.now());
    }

    const relay = relayProcess(tmpStackDir());
    cleanups.push(() => relay.stop(5000));
    await waitUntilReady(
      relay,
      'relay',
      async () => /"msg":"relay running"/.test(relay.tail()),
      30_000,
    );

    const deadline = Date.now() + 30_000;
    let left = ids.length;
    while (left > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      left = await api.db.workflowStart.count({
        where: { orderId: { in: ids }, startedAt: null },
      });
    }
    expect(left).toBe(0);
    // The API's own relay only probes Temporal in this mode.
    expect(api.relay.started).toBe(0);

    const connection = await Connection.connect({ address: stack.TEMPORAL_ADDRESS });
    cleanups.push(() => connection.close());
    const client = new Client({ connection });
    for (const id of ids) {
      const d = await client.workflow.getHandle(orderWorkflowId(id)).describe();
      expect(d.type).toBe('orderWorkflow');
    }

    // SIGTERM: the relay finishes what it holds and exits 0.
    await relay.stop(10_000);
    expect(relay.exitCode).toBe(0);
    expect(relay.tail()).toMatch(/"msg":"relay stopped"/);
  }, 120_000);
});
