/**
 * Worker for task queue `email`: the confirmation email activity, over a
 * pooled SMTP transport. Activities only; the workflows run on `orders`.
 */
import nodemailer from 'nodemailer';
import SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import { createEmailActivities } from '../activities/email.ts';
import { createDbFromConfig } from '../db/client.ts';
import { scrubUrlCredentials } from '../shared/logger.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { runWorker } from './run-worker.ts';

runWorker({
  name: 'worker-email',
  taskQueue: TaskQueue.email,
  async build(config, log) {
    const db = createDbFromConfig(config, Math.min(config.EMAIL_WORKER_CONCURRENCY, 10));
    // A pool built explicitly: createTransport({ url, pool: true, ... }) would keep only the URL's
    // settings and silently drop the pool and the timeouts.
    const pool = new SMTPPool({
      url: config.SMTP_URL,
      pool: true,
      maxConnections: Math.min(config.EMAIL_WORKER_CONCURRENCY, 5),
      // Each stage gives up well inside the activity's attempt timeout (30 s by default),
      // so a hung relay becomes a retryable failure rather than a timed-out attempt.
      connectionTimeout: 10_000,
      greetingTimeout: 10_000,
      socketTimeout: 20_000,
    });
    const mailer = nodemailer.createTransport(pool);
    log.info({ smtp: scrubUrlCredentials(config.SMTP_URL) }, 'SMTP transport ready');
    return {
      options: {
        activities: createEmailActivities({ db, mailer, from: config.MAIL_FROM }),
        maxConcurrentActivityTaskExecutions: config.EMAIL_WORKER_CONCURRENCY,
      },
      close: async () => {
        mailer.close();
        await db.$disconnect();
      },
    };
  },
});
