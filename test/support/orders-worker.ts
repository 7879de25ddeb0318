/**
 * Runs the real workers of every task queue in-process (orders with its
 * workflows; email, webhooks and events with their real activities) against
 * the test stack's Temporal, PostgreSQL, SMTP sink and Kafka.
 */
import { NativeConnection, Worker, type WorkerPlugin } from '@temporalio/worker';
import nodemailer from 'nodemailer';
import path from 'node:path';
import { inject } from 'vitest';
import { createEmailActivities } from '../../src/activities/email.ts';
import { createEventActivities } from '../../src/activities/events.ts';
import { createOrderRecordActivities } from '../../src/activities/order-records.ts';
import { createWebhookActivities } from '../../src/activities/webhooks.ts';
import { createDb } from '../../src/db/client.ts';
import { createKafka, createOrderEventsProducer, ensureTopic } from '../../src/events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';
import { TaskQueue } from '../../src/shared/task-queues.ts';
import type { RateGate } from '../../src/webhooks/rate-gate.ts';

export interface WorkerEnv {
  databaseUrl: string;
  temporalAddress: string;
  smtpUrl?: string;
  kafkaBrokers?: string;
  webhookRatePerSecond?: number;
  /** The webhook activities' send-rate gate (WEBHOOK_RATE_PER_SECOND in the real worker); none by default. */
  webhookRateGate?: RateGate;
  /** Worker plugins of every queue (e.g. the tracing interceptors of temporalWorkerPlugins). */
  plugins?: WorkerPlugin[];
}

export async function startOrdersWorker(opts: WorkerEnv) {
  const db = createDb(opts.databaseUrl, 8);
  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  const stack = inject('stack');
  const mailer = nodemailer.createTransport(opts.smtpUrl ?? stack.SMTP_URL);
  const kafka = createKafka({
    KAFKA_BROKERS: (opts.kafkaBrokers ?? stack.KAFKA_BROKERS).split(','),
    KAFKA_CLIENT_ID: 'test-workers',
  });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopic(admin, ORDERS_PLACED_TOPIC, 6);
  await admin.disconnect();
  const producer = createOrderEventsProducer(kafka);
  await producer.connect();
  const webhooks = createWebhookActivities({
    db,
    timeoutMs: 5000,
    allowedTargets: 'loopback',
    ...(opts.webhookRateGate ? { rateGate: opts.webhookRateGate } : {}),
  });

  const make = (taskQueue: string, options: Partial<Parameters<typeof Worker.create>[0]>) =>
    Worker.create({ connection, taskQueue, plugins: opts.plugins, ...options });
  const workers = await Promise.all([
    make(TaskQueue.orders, {
      workflowsPath: path.resolve(import.meta.dirname, '../../src/workflows/index.ts'),
      activities: {
        ...createOrderRecordActivities({ db }),
        webhookTargets: (input: Parameters<typeof webhooks.webhookTargets>[0]) =>
          webhooks.webhookTargets(input),
      },
    }),
    make(TaskQueue.email, {
      activities: createEmailActivities({ db, mailer, from: 'orders@orderflow.test' }),
    }),
    make(TaskQueue.webhooks, {
      activities: webhooks,
      ...(opts.webhookRatePerSecond
        ? { maxTaskQueueActivitiesPerSecond: opts.webhookRatePerSecond }
        : {}),
    }),
    make(TaskQueue.events, { activities: createEventActivities({ db, producer }) }),
  ]);
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.allSettled(running);
      mailer.close();
      await Promise.allSettled([connection.close(), db.$disconnect(), producer.disconnect()]);
    },
  };
}
