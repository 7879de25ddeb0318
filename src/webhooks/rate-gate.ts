/**
 * The webhook rate limit, exact across every webhook worker: sends are spaced
 * evenly by reserving the next free send time in one PostgreSQL row (one
 * UPDATE per send, on the database's clock), so no one-second window, wherever
 * it starts, holds more sends than the limit.
 *
 * How it holds although a process may be late: each send must happen within
 * LATE_TOLERANCE_MS of its reserved time (checked on waking, and by `onTime`
 * once the connection is up, right before the request is written), else the
 * time is given up, nothing is sent and a new one is reserved; reserved times
 * are (1 s + LATE_TOLERANCE_MS + the margin) / rate apart. So any rate + 1
 * consecutive sends span at least rate * spacing - tolerance = 1 s + the
 * margin: a worker starved of CPU (the background runs at a low priority under
 * `npm start`) cannot wake up and send a burst, and what happens after the
 * last check has the margin to spare. The margin (WEBHOOK_RATE_MARGIN_MS,
 * DEFAULT_MARGIN_MS by default) is for delays no check can see: the sending
 * process descheduled between the check and the write, the network, the
 * receiver reading the request late. With 25 ms, the cluster fault run (29
 * processes on 2 cores) saw 4 arrivals within 957 ms at 3/s (68 ms lost after
 * the check); 100 ms covers that with room. The price is (25 ms + the margin)
 * of every second: 11% of the rate by default (17.8/s at 20/s).
 *
 * The Temporal server's task-queue limit (maxTaskQueueActivitiesPerSecond)
 * still paces how fast deliveries are handed to workers, so few of them wait
 * here, and not for long; the gate removes the bursts its token bucket lets
 * through (measured before the gate: 23 sends in one second at a limit of 20).
 * Every reservation belongs to a running attempt, so the queue of reserved
 * times is never longer than the webhook workers' concurrency.
 */
import type { Db } from '../db/client.ts';

/** How late after its reserved time a send may still go out. */
export const LATE_TOLERANCE_MS = 25;
/**
 * Room left by default for what happens after the last check: the sender
 * descheduled before the write, the network and the receiver's own
 * scheduling, which can bring two arrivals closer than their sends.
 */
export const DEFAULT_MARGIN_MS = 100;
/** Reservations one acquire may make before it gives up (each late wake-up costs one). */
const MAX_RESERVATIONS = 20;

export type Reservation =
  /** The send time: `waitMs` after the answer (0: now); `atMs` on the database's clock (Unix ms). */
  | { kind: 'reserved'; waitMs: number; atMs: number }
  /** The next free time is further away than allowed: nothing was reserved. */
  | { kind: 'busy'; busyForMs: number };

export type Acquired =
  | {
      kind: 'acquired';
      waitedMs: number;
      late: number;
      /** Whether it is still within LATE_TOLERANCE_MS of the send time (asked again right before writing). */
      onTime: () => boolean;
    }
  /** No send time within `maxWaitMs`: try again after `busyForMs`. */
  | { kind: 'busy'; busyForMs: number };

export interface RateGate {
  readonly ratePerSecond: number;
  /** Time between two reserved send times. */
  readonly spacingMs: number;
  /** Reserves the next free send time if it is at most `maxWaitMs` away. */
  reserve(maxWaitMs: number): Promise<Reservation>;
  /**
   * Waits for a send time and returns when it is now (within the tolerance):
   * send at once. Reserves again after a late wake-up, within `maxWaitMs`.
   */
  acquire(opts: { maxWaitMs: number; sleep: (ms: number) => Promise<void> }): Promise<Acquired>;
}

/** Time between two reserved send times at `ratePerSecond`, leaving `marginMs` in every second. */
export function gateSpacingMs(ratePerSecond: number, marginMs = DEFAULT_MARGIN_MS): number {
  return (1000 + LATE_TOLERANCE_MS + marginMs) / ratePerSecond;
}

const clock = () => performance.now();

/** A rate gate kept in the `webhook_rate_gates` row `name`, shared by every process that uses the same name. */
export function createRateGate(
  db: Db,
  ratePerSecond: number,
  name = 'deliveries',
  { marginMs = DEFAULT_MARGIN_MS }: { marginMs?: number } = {},
): RateGate {
  if (!(ratePerSecond > 0)) throw new RangeError(`rate must be positive, got ${ratePerSecond}`);
  if (!(marginMs >= 0)) throw new RangeError(`margin must be 0 or more, got ${marginMs}`);
  const spacingMs = gateSpacingMs(ratePerSecond, marginMs);

  const tryReserve = async (maxWaitMs: number) =>
    db.$queryRaw<{ wait_ms: number; at_ms: number }[]>`
      UPDATE webhook_rate_gates
         SET next_at = GREATEST(next_at, clock_timestamp()) + make_interval(secs => ${spacingMs / 1000}::float8)
       WHERE name = ${name}
         AND next_at <= clock_timestamp() + make_interval(secs => ${maxWaitMs / 1000}::float8)
      RETURNING
        -- From now: how long to wait after the answer arrives.
        GREATEST(0, EXTRACT(EPOCH FROM (next_at - clock_timestamp())) * 1000
                    - ${spacingMs}::float8)::float8 AS wait_ms,
        -- The reserved time on the database's wall clock (Unix ms).
        (EXTRACT(EPOCH FROM next_at) * 1000 - ${spacingMs}::float8)::float8 AS at_ms`;

  // The gate's row, once per gate (the migration creates 'deliveries'; tests use names of their own).
  let created: Promise<unknown> | undefined;
  const reserve = async (maxWaitMs: number): Promise<Reservation> => {
    await (created ??= db.$executeRaw`
      INSERT INTO webhook_rate_gates (name, next_at) VALUES (${name}, clock_timestamp())
      ON CONFLICT (name) DO NOTHING`.catch((e: unknown) => {
      created = undefined; // a database outage: try again on the next send
      throw e;
    }));
    const [reserved] = await tryReserve(maxWaitMs);
    if (reserved)
      return {
        kind: 'reserved',
        waitMs: Math.max(0, Number(reserved.wait_ms)),
        atMs: Number(reserved.at_ms),
      };
    const [row] = await db.$queryRaw<{ busy_ms: number }[]>`
      SELECT GREATEST(0, EXTRACT(EPOCH FROM (next_at - clock_timestamp())) * 1000)::float8 AS busy_ms
        FROM webhook_rate_gates WHERE name = ${name}`;
    return { kind: 'busy', busyForMs: Math.ceil(Number(row?.busy_ms ?? 0)) };
  };

  return {
    ratePerSecond,
    spacingMs,
    reserve,
    async acquire({ maxWaitMs, sleep }) {
      const start = clock();
      for (let lateWakeUps = 0; lateWakeUps < MAX_RESERVATIONS; lateWakeUps++) {
        const left = maxWaitMs - (clock() - start);
        // Waiting from the answer never sends early. Lateness is judged twice: from the
        // answer (misses only a delay of the answer itself) and on the wall clock against the
        // database's (catches that too, up to the clocks' skew: NTP keeps it to milliseconds,
        // and on one machine it is none). Late by either: the time is given up.
        const turn = await reserve(Math.max(0, left));
        const answered = clock();
        if (turn.kind === 'busy') return turn;
        if (turn.waitMs > 0) await sleep(Math.ceil(turn.waitMs));
        const onTime = () =>
          Math.max(clock() - (answered + turn.waitMs), Date.now() - turn.atMs) <= LATE_TOLERANCE_MS;
        if (onTime())
          return { kind: 'acquired', waitedMs: clock() - start, late: lateWakeUps, onTime };
      }
      return { kind: 'busy', busyForMs: Math.ceil(spacingMs) };
    },
  };
}
