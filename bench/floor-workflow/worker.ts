/**
 * A Temporal-floor worker process, one per orderflow task queue (like
 * src/workers): FLOOR_QUEUE=orders runs the floor workflows (from the bundle
 * the runner built once, FLOOR_BUNDLE_PATH) and their local activities, and
 * reports each finished workflow to the runner on FLOOR_NOTIFY_PORT (a line
 * over loopback TCP, from a sink: no call to the Temporal server); email,
 * webhooks and events serve the no-op activity on their floor queue. SDK
 * defaults otherwise. Stops (drains) on SIGINT/SIGTERM.
 */
import net from 'node:net';
import {
  NativeConnection,
  Worker,
  type InjectedSinks,
  type WorkerOptions,
} from '@temporalio/worker';
import { FLOOR_WORKER_QUEUES, floorQueue, type FloorWorkerQueue } from './shape.ts';
import type { FloorActivities, FloorSinks } from './workflows.ts';

function requireEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

const queue = requireEnv('FLOOR_QUEUE') as FloorWorkerQueue;
if (!FLOOR_WORKER_QUEUES.includes(queue))
  throw new Error(`FLOOR_QUEUE=${queue}: one of ${FLOOR_WORKER_QUEUES.join(', ')}`);

const activities: FloorActivities = { noop: async () => {} };

/** The runner's completion listener: one workflow id per line. */
function completionSinks(port: number): { sinks: InjectedSinks<FloorSinks>; close(): void } {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  socket.on('error', (err) => console.error(`floor notify socket: ${err.message}`));
  return {
    sinks: {
      floor: {
        completed: {
          fn: (info) => void socket.write(`${info.workflowId}\n`),
          callDuringReplay: false,
        },
      },
    },
    close: () => socket.end(),
  };
}

async function main(): Promise<void> {
  const connection = await NativeConnection.connect({
    address: requireEnv('TEMPORAL_ADDRESS'),
  });
  const notify =
    queue === 'orders' ? completionSinks(Number(requireEnv('FLOOR_NOTIFY_PORT'))) : undefined;
  try {
    const options: WorkerOptions = {
      connection,
      namespace: process.env.TEMPORAL_NAMESPACE || 'default',
      taskQueue: floorQueue(queue),
      activities,
      ...(notify
        ? {
            workflowBundle: { codePath: requireEnv('FLOOR_BUNDLE_PATH') },
            sinks: notify.sinks,
          }
        : {}),
    };
    const worker = await Worker.create(options);
    // The runner waits for this line (JSON, like the stack's processes).
    console.log(JSON.stringify({ msg: 'floor worker running', taskQueue: floorQueue(queue) }));
    await worker.run();
  } finally {
    notify?.close();
    await connection.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
