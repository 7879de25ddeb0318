/**
 * bench/run.ts part `priority`: live orders paced at BENCH_LIVE_RATE, POST →
 * row COMPLETED, first alone and then while `resendOrderEventsWorkflow`
 * drains a bulk backlog over seeded orders (task queue events-bulk); what is
 * left of the backlog after a bound is terminated.
 */
import { Client, Connection } from '@temporalio/client';
import type pg from 'pg';
import type { AppStack } from '../../scripts/lib/app-stack.ts';
import { TaskQueue } from '../../src/shared/task-queues.ts';
import { CompletionWatcher, delay, log } from '../lib/e2e-kit.ts';
import { openLoop } from '../lib/order-load.ts';
import { coresBetween, procSnapshot } from '../lib/proc-stats.ts';
import { fmtNum as f } from '../lib/report-format.ts';
import { round, summary, type Summary } from '../lib/stats.ts';
import type { RunSettings } from '../run-settings.ts';

export interface LiveResult {
  orders: number;
  completed: number;
  latencyMs: Summary;
  errors: number;
  otherCores: number;
}

export interface PriorityResult {
  bulkJobs: number;
  liveRate: number;
  liveS: number;
  without: LiveResult;
  during: LiveResult;
  /** Events the bulk workflow had published when the live window started and ended. */
  publishedAtLiveStart: number;
  publishedAtLiveEnd: number;
  bulkDoneS: number | null;
  bulkPublished: number;
}

/** Live orders paced at BENCH_LIVE_RATE: POST (scheduled time) → row COMPLETED. */
async function liveOrders(
  app: AppStack,
  db: pg.Pool,
  tag: string,
  settings: RunSettings,
): Promise<LiveResult> {
  const watcher = new CompletionWatcher(db, 50);
  try {
    const a = procSnapshot();
    const { sent } = await openLoop(
      app.apiUrl,
      settings.liveRate * settings.liveS,
      settings.liveS,
      (i) => `live-${tag}-${i}@bench.local`,
    );
    const ok = sent.filter((s) => s.id && s.status >= 200 && s.status < 300);
    for (const s of ok) watcher.add(s.id!);
    await watcher.drained(settings.drainS * 1000);
    const other = coresBetween(a, procSnapshot(), app.stack.procs).other ?? 0;
    return {
      orders: sent.length,
      completed: watcher.completedAt.size,
      errors: sent.length - ok.length,
      latencyMs: summary(
        ok
          .filter((s) => watcher.completedAt.has(s.id!))
          .map((s) => watcher.completedAt.get(s.id!)! - s.scheduledAt),
      ),
      otherCores: other,
    };
  } finally {
    await watcher.stop();
  }
}

export async function priority(
  app: AppStack,
  db: pg.Pool,
  settings: RunSettings,
): Promise<PriorityResult> {
  log(`priority: live orders at ${settings.liveRate}/s for ${settings.liveS} s without a backlog`);
  const without = await liveOrders(app, db, 'alone', settings);
  log(`  p50 ${Math.round(without.latencyMs.p50)} ms, p99 ${Math.round(without.latencyMs.p99)} ms`);
  // Seeded orders in a day of their own, so the resend covers exactly them.
  const since = '2001-01-01T00:00:00.000Z';
  const until = '2001-01-02T00:00:00.000Z';
  await db.query(`DELETE FROM orders WHERE created_at >= $1 AND created_at < $2`, [since, until]);
  await db.query(
    `WITH seeded AS (
       INSERT INTO orders (id, status, customer_email, currency, total_cents, workflow_id, created_at, updated_at)
       SELECT id, 'COMPLETED', 'bulk-' || g || '@bench.local', 'EUR', 2500, 'order-' || id,
              $2::timestamptz + g * interval '1 ms', now()
       FROM (SELECT gen_random_uuid() AS id, g FROM generate_series(1, $1) AS g) s
       RETURNING id)
     INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents)
     SELECT id, 1, 'BULK-1', 1, 2500 FROM seeded`,
    [settings.bulkJobs, since],
  );
  const connection = await Connection.connect({ address: app.env.TEMPORAL_ADDRESS });
  try {
    const client = new Client({ connection, namespace: app.env.TEMPORAL_NAMESPACE });
    const handle = await client.workflow.start('resendOrderEventsWorkflow', {
      workflowId: `bench-resend-${Date.now()}`,
      taskQueue: TaskQueue.orders,
      args: [{ since, until }],
    });
    const published = async () =>
      (await handle.query<{ published: number }>('progress').catch(() => ({ published: NaN })))
        .published;
    const t0 = Date.now();
    // The backlog is draining once the first events are out (bounded wait).
    for (let i = 0; i < 600 && !((await published()) > 0); i++) await delay(100);
    const publishedAtLiveStart = await published();
    log(
      `priority: ${settings.bulkJobs} bulk jobs started (${publishedAtLiveStart} published); live orders meanwhile`,
    );
    const during = await liveOrders(app, db, 'bulk', settings);
    const publishedAtLiveEnd = await published();
    log(
      `  p50 ${Math.round(during.latencyMs.p50)} ms, p99 ${Math.round(during.latencyMs.p99)} ms; bulk published ${publishedAtLiveEnd}/${settings.bulkJobs}`,
    );
    const result = await Promise.race([
      handle.result() as Promise<{ published: number }>,
      delay(settings.bulkDrainS * 1000).then(() => null),
    ]);
    // What is left of the backlog must not run into the next part.
    const bulkPublished = result?.published ?? (await published());
    if (!result) {
      log(
        `  bulk not done within ${settings.bulkDrainS} s (${bulkPublished} published): terminating it`,
      );
      await handle.terminate('bench: bound reached');
    }
    return {
      bulkJobs: settings.bulkJobs,
      liveRate: settings.liveRate,
      liveS: settings.liveS,
      without,
      during,
      publishedAtLiveStart,
      publishedAtLiveEnd,
      bulkDoneS: result ? round((Date.now() - t0) / 1000, 1) : null,
      bulkPublished,
    };
  } finally {
    await connection.close();
  }
}
export function renderPriority(p: PriorityResult, settings: RunSettings): string[] {
  const row = (name: string, x: LiveResult) =>
    `| ${name} | ${x.completed}/${x.orders} | ${f(x.latencyMs.p50)} | ${f(x.latencyMs.p90)} | ${f(x.latencyMs.p99)} | ${f(x.latencyMs.max)} | ${x.errors} | ${x.otherCores} |`;
  return [
    `## Priority: live orders while ${p.bulkJobs} bulk jobs drain`,
    '',
    `Live orders paced at ${p.liveRate}/s for ${p.liveS} s (no webhook endpoint), POST scheduled time → row COMPLETED; first alone, then right after \`resendOrderEventsWorkflow\` was started over ${p.bulkJobs} seeded orders (task queue \`${TaskQueue.eventsBulk}\`). The bulk workflow had published ${p.publishedAtLiveStart} events when the live window started and ${p.publishedAtLiveEnd} when it ended${p.publishedAtLiveEnd >= p.bulkJobs ? ' (**the backlog ran out before the live window ended**: raise BENCH_BULK_JOBS)' : ' (the backlog lasted the whole window)'}; ${p.bulkDoneS === null ? `${p.bulkPublished} published within the bound of ${settings.bulkDrainS} s, then the rest was terminated` : `all ${p.bulkPublished} published ${p.bulkDoneS} s after the start`}.`,
    '',
    '| live orders | COMPLETED | p50 ms | p90 ms | p99 ms | max ms | API errors | other cores |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
    row('without a backlog', p.without),
    row('while the bulk backlog drains', p.during),
    '',
  ];
}
