/**
 * Worker for task queue `orders`: the order workflows, plus the small
 * bookkeeping activities that write the order's row.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { createRequire } from 'node:module';
import { createOrderRecordActivities } from '../activities/order-records.ts';
import { loadConfig } from '../config/env.ts';
import { createDb } from '../db/client.ts';
import { createLogger } from '../shared/logger.ts';
import { TaskQueue } from '../shared/task-queues.ts';

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger('worker-orders', config.LOG_LEVEL);
  const db = createDb(config.DATABASE_URL, 5);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: TaskQueue.orders,
    workflowsPath: createRequire(import.meta.url).resolve('../workflows/index.ts'),
    activities: createOrderRecordActivities({ db }),
  });
  log.info({ taskQueue: TaskQueue.orders }, 'worker running');
  // Worker.run() drains and returns on SIGINT/SIGTERM.
  await worker.run();
  await Promise.allSettled([connection.close(), db.$disconnect()]);
  log.info('worker stopped');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
