/**
 * The relay's wake-up: a dedicated PostgreSQL connection (node-postgres, not
 * Prisma's pool) that LISTENs on OUTBOX_CHANNEL, which the intake statement
 * notifies when it commits a start due at once. A notification only makes the
 * relay sweep sooner; polling stays the fallback, so a dropped connection or a
 * lost notification delays a start by one poll interval at most. The
 * connection is re-established with bounded exponential backoff, and every
 * (re)connection wakes the relay once for what was committed while it was down.
 */
import pg from 'pg';
import { OUTBOX_CHANNEL } from '../orders/workflow-start.ts';
import type { Logger } from '../shared/logger.ts';

/** application_name of the listening connection (visible in pg_stat_activity). */
export const OUTBOX_LISTENER_APPLICATION = 'orderflow-outbox-listener';

export interface OutboxListenerOptions {
  connectionString: string;
  /** Called on each notification and after each (re)connection. */
  onWake: () => void;
  log: Logger;
  channel?: string;
  /** Reconnect delay: doubles from minMs up to maxMs, reset by a successful LISTEN. */
  backoff?: { minMs: number; maxMs: number };
}

export class OutboxListener {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private delayMs: number;
  private readonly channel: string;
  private readonly backoff: { minMs: number; maxMs: number };
  /** True while the LISTEN connection is up. */
  listening = false;
  /** Successful LISTENs after the first one. */
  reconnects = 0;
  private connectedOnce = false;

  constructor(private readonly opts: OutboxListenerOptions) {
    this.channel = opts.channel ?? OUTBOX_CHANNEL;
    this.backoff = opts.backoff ?? { minMs: 100, maxMs: 5000 };
    this.delayMs = this.backoff.minMs;
  }

  /** Connects and listens in the background; failures are retried, never thrown. */
  start(): void {
    void this.connect();
  }

  private async connect(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    const client = new pg.Client({
      connectionString: this.opts.connectionString,
      application_name: OUTBOX_LISTENER_APPLICATION,
      connectionTimeoutMillis: 3000,
      // A peer that vanished without closing the socket is noticed by TCP, not only by the poll.
      keepAlive: true,
    });
    this.client = client;
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      this.dropped(client, err);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (n) => {
      if (n.channel === this.channel) this.opts.onWake();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${client.escapeIdentifier(this.channel)}`);
    } catch (err) {
      onLost(err as Error);
      return;
    }
    if (lost || this.closed) return;
    this.listening = true;
    this.delayMs = this.backoff.minMs;
    if (this.connectedOnce) {
      this.reconnects++;
      this.opts.log.info({ channel: this.channel }, 'outbox wake-ups: listening again');
    } else {
      this.connectedOnce = true;
      this.opts.log.info({ channel: this.channel }, 'outbox wake-ups: listening');
    }
    // Whatever was committed while nobody listened is swept now, not at the next poll.
    this.opts.onWake();
  }

  private dropped(client: pg.Client, err?: Error): void {
    if (this.client === client) this.client = undefined;
    this.listening = false;
    client.end().catch(() => {});
    if (this.closed) return;
    const delayMs = this.delayMs;
    this.delayMs = Math.min(this.backoff.maxMs, this.delayMs * 2);
    this.opts.log.warn(
      { err: err?.message ?? 'connection ended', retryInMs: delayMs },
      'outbox wake-ups: LISTEN connection lost; polling until it is back',
    );
    this.timer = setTimeout(() => void this.connect(), delayMs);
  }

  /** Stops listening and reconnecting. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.listening = false;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
}
