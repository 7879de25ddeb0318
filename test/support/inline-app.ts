/**
 * What a file that parks orders runs on the test stack: the API with inline
 * starts and no relay sweep, so that the file starts exactly the workflows it
 * creates, and the orders worker; and the order row's status, polled.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RelayOptions } from '../../src/api/outbox-relay.ts';
import type { OrderStatus } from '../../src/shared/orders.ts';
import { startApi, type TestApi } from './api.ts';
import { startOrdersWorker } from './orders-worker.ts';

/** Starts the API (inline starts, the relay not running) and the orders worker. */
export async function startInlineApp(
  stack: { DATABASE_URL: string; TEMPORAL_ADDRESS: string },
  relay: Partial<RelayOptions> = {},
): Promise<{ api: TestApi; worker: Awaited<ReturnType<typeof startOrdersWorker>> }> {
  const api = await startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
    workflowStartMode: 'inline',
    relay: { ...relay, run: false },
  });
  const worker = await startOrdersWorker({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
  });
  return { api, worker };
}

/** Polls (bounded) until the order's row has one of the statuses; returns the one it has. */
export async function waitForRowStatus(
  api: TestApi,
  orderId: string,
  statuses: OrderStatus[],
  timeoutMs: number,
): Promise<OrderStatus> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const row = await api.db.order.findUniqueOrThrow({ where: { id: orderId } });
    last = row.failedStep ? `${row.status} (${row.failedStep}: ${row.lastError})` : row.status;
    if ((statuses as string[]).includes(row.status)) return row.status;
    await sleep(100);
  }
  throw new Error(`order ${orderId} stayed ${last}, expected ${statuses.join(' or ')}`);
}
