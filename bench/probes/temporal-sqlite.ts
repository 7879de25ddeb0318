// Probe: workflow throughput of the Temporal dev server with its default SQLite journal vs WAL +
// synchronous=normal (the setting scripts/lib/stack.ts uses). Run: node --import tsx bench/probes/temporal-sqlite.ts
import { Client, Connection } from '@temporalio/client';
import {
  NativeConnection,
  Worker,
  bundleWorkflowCode,
  DefaultLogger,
  Runtime,
} from '@temporalio/worker';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { temporalDevServerArgs } from '../../scripts/lib/stack.ts';
Runtime.install({ logger: new DefaultLogger('ERROR') });
const bin = `${process.env.HOME}/.cache/orderflow/temporal-cli/1.9.1/temporal`;
const bundle = await bundleWorkflowCode({
  workflowsPath: new URL('../../scripts/lib/smoke-workflows.ts', import.meta.url).pathname,
  logger: { log() {}, info() {}, warn() {}, error() {}, debug() {}, trace() {} },
});
for (const [label, extra] of [
  ['default', []],
  ['wal+normal', ['--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal']],
] as const) {
  const dir = fs.mkdtempSync('/tmp/sqlp-');
  const port = 17800 + Math.floor(Math.random() * 100);
  const p = spawn(
    bin,
    temporalDevServerArgs({
      port,
      httpPort: port + 200,
      metricsPort: port + 300,
      dbFile: `${dir}/t.db`,
      logLevel: 'error',
      extra: [...extra],
    }),
    { stdio: 'ignore' },
  );
  await new Promise((r) => setTimeout(r, 4000));
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` });
  const client = new Client({ connection });
  const worker = await Worker.create({
    connection: await NativeConnection.connect({ address: `127.0.0.1:${port}` }),
    taskQueue: 'q',
    workflowBundle: bundle,
    activities: { greet: async (n: string) => n },
  });
  const t0 = Date.now();
  await worker.runUntil(
    Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        client.workflow.execute('greetWorkflow', {
          taskQueue: 'q',
          workflowId: `w-${i}`,
          args: ['x'],
        }),
      ),
    ),
  );
  console.log(label, '200 workflows (1 activity each):', Date.now() - t0, 'ms');
  await connection.close();
  p.kill('SIGKILL');
}
