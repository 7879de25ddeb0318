/**
 * Heartbeats for the long steps (email, webhooks): a cancel reaches a running
 * attempt only through its heartbeat, so an attempt heartbeats while it works
 * and checks, before it sends, that it was not cancelled meanwhile.
 */
import { CancelledFailure, Context } from '@temporalio/activity';

/** How often a running attempt heartbeats (the SDK throttles what it sends to the server). */
const HEARTBEAT_EVERY_MS = 1000;

/**
 * Runs `work` while heartbeating every second. The first heartbeat goes out
 * after a second, not at once: the SDK sends a first heartbeat to the server
 * unthrottled, and the server writes each one to the workflow's state, which
 * for an attempt that ends within the second (most: an SMTP send) was a
 * Temporal server write per order for nothing. An attempt that ends sooner
 * cannot send after a cancel anyway: the workflow writes CANCELLED before it
 * stops the attempts, and the attempt reads the row right before it sends.
 */
export async function withHeartbeats<T>(work: () => Promise<T>): Promise<T> {
  const ctx = Context.current();
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
