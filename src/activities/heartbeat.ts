/**
 * Heartbeats for the long steps (email, webhooks): a cancel reaches a running
 * attempt only through its heartbeat, so an attempt heartbeats while it works
 * and checks, before it sends, that it was not cancelled meanwhile.
 */
import { CancelledFailure, Context } from '@temporalio/activity';

/** How often a running attempt heartbeats (the SDK throttles what it sends to the server). */
const HEARTBEAT_EVERY_MS = 1000;

/** Runs `work` while heartbeating every second; the first heartbeat goes out at once. */
export async function withHeartbeats<T>(work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
  ctx.heartbeat();
  const timer = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** Throws the cancellation when the attempt was cancelled: the last point where nothing was sent. */
export function ensureNotCancelledByTemporal(): void {
  const signal = Context.current().cancellationSignal;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof CancelledFailure ? reason : new CancelledFailure('cancelled');
  }
}
