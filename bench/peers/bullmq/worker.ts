/**
 * One peer worker process per queue, like orderflow's one process per task
 * queue: PEER_QUEUE=email (nodemailer to SMTP_URL), webhooks (HTTP POST,
 * BullMQ's limiter at WEBHOOK_RATE_PER_SECOND), events (kafkajs, idempotent
 * producer, key = order id) or orders (marks the order COMPLETED once every
 * child job is done).
 */
import { Worker, type Job } from 'bullmq';
import { Kafka, logLevel } from 'kafkajs';
import nodemailer from 'nodemailer';
import SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import pg from 'pg';
import {
  PEER_QUEUES,
  PEER_TOPIC,
  peerWebhookId,
  redisConnection,
  requireEnv,
  type PeerQueue,
} from './common.ts';

interface StepData {
  orderId: string;
  customerEmail: string;
  currency: string;
  totalCents: number;
  endpointId?: number;
  url?: string;
}

const queue = requireEnv('PEER_QUEUE') as PeerQueue;
if (!(queue in PEER_QUEUES))
  throw new Error(`PEER_QUEUE=${queue}: one of ${Object.keys(PEER_QUEUES).join(', ')}`);

const closers: (() => Promise<unknown>)[] = [];

async function processorFor(name: PeerQueue): Promise<(job: Job<StepData>) => Promise<unknown>> {
  switch (name) {
    case 'email': {
      const mailer = nodemailer.createTransport(
        new SMTPPool({ url: requireEnv('SMTP_URL'), pool: true, maxConnections: 5 }),
      );
      closers.push(async () => mailer.close());
      return async (job) =>
        mailer.sendMail({
          from: 'peer <orders@peer.local>',
          to: job.data.customerEmail,
          subject: `Order ${job.data.orderId} confirmed`,
          text: `Total ${job.data.totalCents} ${job.data.currency}`,
        });
    }
    case 'webhooks':
      return async (job) => {
        const res = await fetch(job.data.url!, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'webhook-id': peerWebhookId(job.data.orderId, job.data.endpointId!),
          },
          body: JSON.stringify({ type: 'order.placed', data: job.data }),
          signal: AbortSignal.timeout(10_000),
        });
        await res.arrayBuffer();
        if (!res.ok) throw new Error(`webhook answered ${res.status}`);
      };
    case 'events': {
      const kafka = new Kafka({
        brokers: requireEnv('KAFKA_BROKERS').split(','),
        clientId: 'peer',
        logLevel: logLevel.ERROR,
      });
      const admin = kafka.admin();
      await admin.connect();
      await admin
        .createTopics({ topics: [{ topic: PEER_TOPIC, numPartitions: 6 }] })
        .catch(() => false);
      await admin.disconnect();
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      closers.push(() => producer.disconnect());
      return async (job) =>
        producer.send({
          topic: PEER_TOPIC,
          acks: -1,
          messages: [{ key: job.data.orderId, value: JSON.stringify(job.data) }],
        });
    }
    case 'orders': {
      const db = new pg.Pool({
        connectionString: requireEnv('DATABASE_URL'),
        max: 10,
        idleTimeoutMillis: 300_000, // as orderflow's pools (POOL_IDLE_TIMEOUT_MS, src/db/client.ts)
      });
      closers.push(() => db.end());
      return async (job) =>
        db.query(`UPDATE peer_orders SET status = 'COMPLETED', updated_at = now() WHERE id = $1`, [
          job.data.orderId,
        ]);
    }
  }
}

const concurrency = { email: 20, webhooks: 50, events: 50, orders: 100 }[queue];
const rate = Number(process.env.WEBHOOK_RATE_PER_SECOND ?? 20);
const worker = new Worker<StepData>(PEER_QUEUES[queue], await processorFor(queue), {
  connection: redisConnection('worker'),
  concurrency,
  ...(queue === 'webhooks' ? { limiter: { max: rate, duration: 1000 } } : {}),
  removeOnComplete: { count: 1000 },
});
worker.on('error', (e) => console.error(`peer worker ${queue}: ${e.message}`));
await worker.waitUntilReady();
console.log(`peer worker running: ${queue}, concurrency ${concurrency}`);

const stop = () => {
  void worker
    .close()
    .then(() => Promise.allSettled(closers.map((c) => c())))
    .finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
