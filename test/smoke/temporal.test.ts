import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  NativeConnection,
  Worker,
  bundleWorkflowCode,
  type WorkerOptions,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { greetWorkflow, sleepADayWorkflow } from '../../scripts/lib/smoke-workflows.ts';

const workflowsPath = path.join(import.meta.dirname, '../../scripts/lib/smoke-workflows.ts');
let bundle: WorkflowBundleWithSourceMap;

/** A worker of the smoke workflows (and `options`' activities) on `connection`, polling `taskQueue`. */
const smokeWorker = (
  connection: NativeConnection,
  taskQueue: string,
  options: Pick<WorkerOptions, 'activities'> = {},
) => Worker.create({ connection, taskQueue, workflowBundle: bundle, ...options });

beforeAll(async () => {
  bundle = await bundleWorkflowCode({
    workflowsPath,
    logger: { log() {}, info() {}, warn() {}, error() {}, debug() {}, trace() {} },
  });
});

describe('Temporal dev server (the stack’s)', () => {
  let connection: Connection;
  let workerConnection: NativeConnection;
  let client: Client;
  beforeAll(async () => {
    const address = inject('stack').TEMPORAL_ADDRESS;
    connection = await Connection.connect({ address });
    workerConnection = await NativeConnection.connect({ address });
    client = new Client({ connection });
  });
  afterAll(async () => {
    await workerConnection?.close();
    await connection?.close();
  });

  it('runs a workflow that calls an activity and lists it in visibility', async () => {
    const taskQueue = `smoke-${randomUUID()}`;
    const worker = await smokeWorker(workerConnection, taskQueue, {
      activities: { greet: async (name: string) => `hello, ${name}` },
    });
    const workflowId = `smoke-greet-${randomUUID()}`;
    const result = await worker.runUntil(
      client.workflow.execute(greetWorkflow, { taskQueue, workflowId, args: ['orderflow'] }),
    );
    expect(result).toBe('hello, orderflow');

    // Visibility is eventually consistent: poll, bounded.
    let listed: string[] = [];
    for (let i = 0; i < 50 && listed.length === 0; i++) {
      listed = [];
      for await (const wf of client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) {
        listed.push(`${wf.workflowId}:${wf.status.name}`);
      }
      if (!listed.length) await new Promise((r) => setTimeout(r, 100));
    }
    expect(listed).toEqual([`${workflowId}:COMPLETED`]);
  });
});

describe('Temporal test environments from the provisioned binaries', () => {
  it('skips a day of workflow time on the time-skipping server in well under real time', async () => {
    const testServer = inject('tools').testServer;
    expect(testServer, 'the time-skipping test server is provisioned').toBeTruthy();
    const env = await TestWorkflowEnvironment.createTimeSkipping({
      server: { executable: { type: 'existing-path', path: testServer! } },
    });
    try {
      const taskQueue = 'smoke-sleep';
      const worker = await smokeWorker(env.nativeConnection, taskQueue);
      const virtualBefore = await env.currentTimeMs();
      const wallBefore = performance.now();
      const result = await worker.runUntil(
        env.client.workflow.execute(sleepADayWorkflow, {
          taskQueue,
          workflowId: `sleep-${randomUUID()}`,
        }),
      );
      const wallMs = performance.now() - wallBefore;
      expect(result).toBe('woke up');
      expect((await env.currentTimeMs()) - virtualBefore).toBeGreaterThanOrEqual(24 * 3600 * 1000);
      // Without time skipping this would take a day; any real-time wait would show here.
      expect(wallMs).toBeLessThan(30_000);
      console.info(`time-skipping: 1 day of workflow time in ${wallMs.toFixed(0)} ms of wall time`);
    } finally {
      await env.teardown();
    }
  });

  it('starts a local dev server through createLocal() from the provisioned CLI', async () => {
    const env = await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path: inject('tools').temporalCli },
        ip: '127.0.0.1',
        ui: false,
      },
    });
    try {
      const taskQueue = 'smoke-local';
      const worker = await smokeWorker(env.nativeConnection, taskQueue, {
        activities: { greet: async (name: string) => `hi ${name}` },
      });
      const result = await worker.runUntil(
        env.client.workflow.execute(greetWorkflow, {
          taskQueue,
          workflowId: `local-${randomUUID()}`,
          args: ['local'],
        }),
      );
      expect(result).toBe('hi local');
    } finally {
      await env.teardown();
    }
  });
});
