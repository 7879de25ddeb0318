/** Runs the real `orders` worker in-process against a Temporal server. */
import { NativeConnection, Worker } from '@temporalio/worker';
import path from 'node:path';
import { createOrderRecordActivities } from '../../src/activities/order-records.ts';
import { createDb } from '../../src/db/client.ts';
import { TaskQueue } from '../../src/shared/task-queues.ts';

export async function startOrdersWorker(opts: { databaseUrl: string; temporalAddress: string }) {
  const db = createDb(opts.databaseUrl, 4);
  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  const worker = await Worker.create({
    connection,
    taskQueue: TaskQueue.orders,
    workflowsPath: path.resolve(import.meta.dirname, '../../src/workflows/index.ts'),
    activities: createOrderRecordActivities({ db }),
  });
  const running = worker.run();
  return {
    async stop() {
      worker.shutdown();
      await running;
      await Promise.allSettled([connection.close(), db.$disconnect()]);
    },
  };
}
