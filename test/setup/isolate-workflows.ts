/**
 * Test files share the stack's Temporal server and task queues. A workflow a
 * file leaves running (an order accepted without a worker, a parked one) would
 * be executed by the next file's workers and hit that file's receivers. So
 * every file ends by terminating what is still running.
 */
import { Client, Connection } from '@temporalio/client';
import { afterAll, inject } from 'vitest';

afterAll(async () => {
  const connection = await Connection.connect({ address: inject('stack').TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection });
    const running: string[] = [];
    for await (const wf of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
      running.push(wf.workflowId);
      if (running.length >= 5000) break;
    }
    await Promise.allSettled(
      running.map((id) => client.workflow.getHandle(id).terminate('test file finished')),
    );
  } finally {
    await connection.close();
  }
});
