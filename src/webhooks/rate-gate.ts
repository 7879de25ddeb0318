/**
 * The webhook rate limit, exact across every webhook worker: sends are spaced
 * evenly, at least 1/WEBHOOK_RATE_PER_SECOND apart (plus a margin for network
 * jitter), by reserving the next free send time in one PostgreSQL row: one
 * UPDATE per send, on the database's clock. So no one-second window, wherever
 * it starts, holds more sends than the limit.
 *
 * The Temporal server's task-queue limit (maxTaskQueueActivitiesPerSecond)
 * still paces how fast deliveries are handed to workers, so few of them wait
 * here, and not for long; the gate removes the bursts its token bucket lets
 * through (measured before the gate: 23 sends in one second at a limit of 20).
 * Every reservation belongs to a running attempt, so the queue of reserved
 * times is never longer than the webhook workers' concurrency.
 */
import type { Db } from '../db/client.ts';

/** Spacing added to 1/rate, so that receivers' clocks and network jitter do not see a 21st send in a second. */
export const RATE_GATE_MARGIN = 0.02;

export type Reservation =
  /** Send after waiting this long (0: at once). */
  | { kind: 'reserved'; waitMs: number }
  /** The next free time is further away than allowed: nothing was reserved. */
  | { kind: 'busy'; busyForMs: number };

export interface RateGate {
  readonly ratePerSecond: number;
  /** Reserves the next free send time if it is at most `maxWaitMs` away. */
  reserve(maxWaitMs: number): Promise<Reservation>;
}

/** A rate gate kept in the `webhook_rate_gates` row `name`, shared by every process that uses the same name. */
export function createRateGate(db: Db, ratePerSecond: number, name = 'deliveries'): RateGate {
  if (!(ratePerSecond > 0)) throw new RangeError(`rate must be positive, got ${ratePerSecond}`);
  const spacingS = (1 / ratePerSecond) * (1 + RATE_GATE_MARGIN);

  const tryReserve = async (maxWaitMs: number) =>
    db.$queryRaw<{ wait_ms: number }[]>`
      UPDATE webhook_rate_gates
         SET next_at = GREATEST(next_at, clock_timestamp()) + make_interval(secs => ${spacingS}::float8)
       WHERE name = ${name}
         AND next_at <= clock_timestamp() + make_interval(secs => ${maxWaitMs / 1000}::float8)
      RETURNING GREATEST(0, EXTRACT(EPOCH FROM (next_at - clock_timestamp())) * 1000
                            - ${spacingS * 1000}::float8)::float8 AS wait_ms`;

  return {
    ratePerSecond,
    async reserve(maxWaitMs) {
      let rows = await tryReserve(maxWaitMs);
      if (rows.length === 0) {
        // The row of a new gate name (the migration creates 'deliveries'); then, or still busy.
        await db.$executeRaw`
          INSERT INTO webhook_rate_gates (name, next_at) VALUES (${name}, clock_timestamp())
          ON CONFLICT (name) DO NOTHING`;
        rows = await tryReserve(maxWaitMs);
      }
      const reserved = rows[0];
      if (reserved) return { kind: 'reserved', waitMs: Math.ceil(Number(reserved.wait_ms)) };
      const [row] = await db.$queryRaw<{ busy_ms: number }[]>`
        SELECT GREATEST(0, EXTRACT(EPOCH FROM (next_at - clock_timestamp())) * 1000)::float8 AS busy_ms
          FROM webhook_rate_gates WHERE name = ${name}`;
      return { kind: 'busy', busyForMs: Math.ceil(Number(row?.busy_ms ?? 0)) };
    },
  };
}
