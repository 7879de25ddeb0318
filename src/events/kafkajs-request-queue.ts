/**
 * A fix for kafkajs 2.2.4 (the last release), applied when src/events/kafka.ts
 * is loaded: every broker connection's request queue polls every millisecond,
 * forever, once it has received its first response.
 *
 * After each response the queue checks its pending requests and then always
 * schedules the next check. With nothing pending and no throttle, the delay
 * is `throttledUntil - Date.now()` with `throttledUntil = -1`: hugely
 * negative, which Node turns into 1 ms (and, since Node 23, a
 * TimeoutNegativeWarning). So each connection of each client (a consumer, the
 * producer, an admin) runs a timer a thousand times a second while connected.
 * Measured here (a consumer process at 1 event/s): 34 ms of CPU per second per
 * consumer process, and as much in the events worker. Upstream:
 * https://github.com/tulios/kafkajs/issues/1556 and /issues/1704 (open; the
 * fix proposed there is this one).
 *
 * The fix: with nothing pending, no check is scheduled. Nothing is lost: a
 * request that cannot go out at once (in-flight limit, throttle) is pending
 * and schedules its own check when it is queued, and every response checks
 * the queue again. With requests pending the original runs unchanged.
 */
import { createRequire } from 'node:module';

interface RequestQueuePrototype {
  pending: unknown[];
  /** kafkajs' own, called with the queue as `this`. */
  scheduleCheckPendingRequests: (this: RequestQueuePrototype) => void;
}

const PATCHED = Symbol.for('orderflow.kafkajs.requestQueue.idleLoopFixed');

/** The request queue class of the kafkajs that `kafka.ts` loads. */
export function requestQueueClass(): { prototype: RequestQueuePrototype } {
  const require = createRequire(import.meta.url);
  return require('kafkajs/src/network/requestQueue/index.js') as {
    prototype: RequestQueuePrototype;
  };
}

/** Whether this process's kafkajs request queue has the fix. */
export function requestQueueIdleLoopFixed(): boolean {
  return (requestQueueClass().prototype as { [PATCHED]?: true })[PATCHED] === true;
}

/** Applies the fix once per process; returns whether the class is patched. */
export function fixRequestQueueIdleLoop(): boolean {
  const proto = requestQueueClass().prototype as RequestQueuePrototype & { [PATCHED]?: true };
  if (proto[PATCHED]) return true;
  const original = proto.scheduleCheckPendingRequests;
  if (typeof original !== 'function') return false;
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests() {
    if (this.pending.length === 0) return;
    original.call(this);
  };
  proto[PATCHED] = true;
  return true;
}
