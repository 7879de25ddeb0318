/**
 * The BullMQ peer of bench/run.ts: orderflow's pipeline built the usual way
 * (an Express API that inserts the order and adds a BullMQ flow to Redis;
 * workers for email, webhooks and the Kafka event; a parent job that marks the
 * order COMPLETED once its children are done). Benchmark material only:
 * nothing under src/ imports it.
 */
import { Redis } from 'ioredis';

export const PEER_QUEUES = {
  orders: 'peer-orders',
  email: 'peer-email',
  webhooks: 'peer-webhooks',
  events: 'peer-events',
} as const;
export type PeerQueue = keyof typeof PEER_QUEUES;

export const PEER_TOPIC = 'peer.orders.placed';

/** The peer's own tables, in the same database as orderflow's (same shape as `orders` for the watcher). */
export const PEER_SCHEMA = `
  CREATE TABLE IF NOT EXISTS peer_orders (
    id UUID PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'RECEIVED',
    customer_email TEXT NOT NULL,
    currency CHAR(3) NOT NULL,
    total_cents BIGINT NOT NULL,
    items JSONB NOT NULL,
    created_at TIMESTAMPTZ(3) NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ(3) NOT NULL DEFAULT now()
  );
  CREATE TABLE IF NOT EXISTS peer_webhook_endpoints (
    id SERIAL PRIMARY KEY,
    url TEXT NOT NULL
  );`;

/** Retries per step, like orderflow's budgets (exponential backoff, bounded attempts). */
export const PEER_JOB_OPTIONS = {
  email: { attempts: 12, backoff: { type: 'exponential', delay: 2000 } },
  webhooks: { attempts: 20, backoff: { type: 'exponential', delay: 5000 } },
  events: { attempts: 20, backoff: { type: 'exponential', delay: 1000 } },
} as const;

/** Webhook id of one delivery: stable per (order, endpoint), so the receiver can count duplicates. */
export const peerWebhookId = (orderId: string, endpointId: number): string =>
  `peer_${orderId}_${endpointId}`;

export function requireEnv(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required`);
  return v;
}

/**
 * A Redis connection. Workers wait through an outage (BullMQ needs
 * maxRetriesPerRequest null); the API fails fast instead of queueing commands
 * (enableOfflineQueue false), as BullMQ's docs advise for producers.
 */
export function redisConnection(role: 'api' | 'worker'): Redis {
  return new Redis(requireEnv('REDIS_URL'), {
    maxRetriesPerRequest: role === 'worker' ? null : 1,
    enableOfflineQueue: role === 'worker',
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}
