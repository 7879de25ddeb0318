/**
 * kafkajs 2.2.4's request queue, with orderflow's fix of its idle loop
 * (src/events/kafkajs-request-queue.ts): after an answer nothing is scheduled
 * while nothing waits, and what does wait (the in-flight limit, a throttle)
 * still goes out. A real RequestQueue of the installed kafkajs, driven by
 * hand: no broker.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import '../../src/events/kafka.ts';
import {
  fixRequestQueueIdleLoop,
  requestQueueClass,
  requestQueueIdleLoopFixed,
} from '../../src/events/kafkajs-request-queue.ts';

interface Queue {
  pending: unknown[];
  inflight: Map<number, unknown>;
  throttledUntil: number;
  throttleCheckTimeoutId: unknown;
  push(request: unknown): void;
  fulfillRequest(response: { correlationId: number; payload: unknown; size: number }): void;
  checkPendingRequests(): void;
  destroy(): void;
}

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function queue(maxInFlightRequests?: number): Queue {
  const RequestQueue = requestQueueClass() as unknown as new (options: object) => Queue;
  return new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: 'test',
    broker: 'localhost:1',
    logger: silent,
  });
}

/** Pushes a request that records when it was sent; `answered` settles with its answer. */
function push(q: Queue, correlationId: number, sent: number[]) {
  let resolve!: (v: unknown) => void;
  const answered = new Promise((r) => (resolve = r));
  q.push({
    entry: { correlationId, apiKey: 1, apiName: 'Fetch', apiVersion: 11, resolve, reject() {} },
    expectResponse: true,
    sendRequest: () => sent.push(correlationId),
  });
  return answered;
}

/** Counts the queue's checks of its pending requests over `ms`. */
async function checksDuring(q: Queue, ms: number): Promise<number> {
  let checks = 0;
  const check = q.checkPendingRequests.bind(q);
  q.checkPendingRequests = () => {
    checks++;
    check();
  };
  await sleep(ms);
  return checks;
}

describe("kafkajs' request queue (idle loop fixed)", () => {
  it('is patched by loading src/events/kafka.ts, once per process', () => {
    expect(requestQueueIdleLoopFixed()).toBe(true);
    expect(fixRequestQueueIdleLoop()).toBe(true);
    expect(fixRequestQueueIdleLoop()).toBe(true);
  });

  it('schedules nothing after an answer when nothing waits (unfixed: a check every millisecond)', async () => {
    const q = queue();
    const sent: number[] = [];
    const answered = push(q, 1, sent);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    await answered;
    expect(sent).toEqual([1]);
    expect(q.throttleCheckTimeoutId).toBeNull();
    expect(await checksDuring(q, 100)).toBe(0);
    q.destroy();
  });

  it('sends a request held back by the in-flight limit once the one before is answered', async () => {
    const q = queue(1);
    const sent: number[] = [];
    const first = push(q, 1, sent);
    const second = push(q, 2, sent);
    expect(sent).toEqual([1]);
    expect(q.pending).toHaveLength(1);
    q.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
    await first;
    expect(sent).toEqual([1, 2]);
    q.fulfillRequest({ correlationId: 2, payload: Buffer.alloc(0), size: 0 });
    await second;
    expect(q.pending).toHaveLength(0);
    // The check armed while the second request waited runs once, and arms no other.
    expect(await checksDuring(q, 50)).toBeLessThanOrEqual(1);
    expect(q.throttleCheckTimeoutId).toBeNull();
    expect(await checksDuring(q, 50)).toBe(0);
    q.destroy();
  });

  it('sends a request held back by a throttle when the throttle ends', async () => {
    const q = queue();
    const sent: number[] = [];
    q.throttledUntil = Date.now() + 50;
    void push(q, 1, sent);
    expect(sent).toEqual([]);
    await sleep(120);
    expect(sent).toEqual([1]);
    q.destroy();
  });
});
