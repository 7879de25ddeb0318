/**
 * bench/run.ts part `spike`: many orders in a few seconds (open loop, paced),
 * each with one webhook endpoint: API errors and latency, the time until all
 * are COMPLETED, and webhook deliveries per one-second window against
 * WEBHOOK_RATE_PER_SECOND.
 */
import type pg from 'pg';
import type { AppStack } from '../../scripts/lib/app-stack.ts';
import { orderPlacedEventId, webhookMessageId } from '../../src/shared/events.ts';
import { gateSpacingMs } from '../../src/webhooks/rate-gate.ts';
import {
  CompletionWatcher,
  createEndpoint,
  deleteEndpoint,
  delay,
  log,
  type Receiver,
} from '../lib/e2e-kit.ts';
import { intakeStats, openLoop, type IntakeStats } from '../lib/order-load.ts';
import { coresBetween, procSnapshot } from '../lib/proc-stats.ts';
import { coreLine, fmtNum as f } from '../lib/report-format.ts';
import { maxInWindow, perSecond, round } from '../lib/stats.ts';
import type { RunSettings } from '../run-settings.ts';

export interface SpikeResult {
  orders: number;
  seconds: number;
  intake: IntakeStats;
  /** Scheduled send of the first order → last order COMPLETED; null when not within the bound. */
  drainS: number | null;
  completed: number;
  webhookRate: number;
  webhooks: number;
  webhooksPerSecond: number[];
  completedPerSecond: number[];
  acceptedPerSecond: number[];
  maxWebhooksInWindow: number;
  maxWebhooksSliding: number;
  cores: Record<string, number>;
}

export async function spike(
  app: AppStack,
  db: pg.Pool,
  receiver: Receiver,
  settings: RunSettings,
): Promise<SpikeResult> {
  const endpointId = await createEndpoint(app.apiUrl, `${receiver.url}/spike`);
  const watcher = new CompletionWatcher(db, 250);
  try {
    receiver.arrivals.length = 0;
    log(`spike: ${settings.spikeOrders} orders in ${settings.spikeS} s, one webhook endpoint each`);
    const a = procSnapshot();
    const { sent, t0 } = await openLoop(
      app.apiUrl,
      settings.spikeOrders,
      settings.spikeS,
      (i) => `spike-${i}@bench.local`,
    );
    const intake = intakeStats(sent, settings.spikeS);
    log(
      `  API: ${intake.ok} accepted, ${intake.errors} errors, p50 ${Math.round(intake.latencyMs.p50)} ms, p99 ${Math.round(intake.latencyMs.p99)} ms`,
    );
    const ok = sent.filter((s) => s.id && s.status >= 200 && s.status < 300);
    for (const s of ok) watcher.add(s.id!);
    const deadline = Date.now() + settings.spikeDrainS * 1000;
    for (let i = 0; watcher.pendingCount > 0 && Date.now() < deadline && i < 100_000; i++) {
      await delay(1000);
      if (i % 15 === 14)
        log(
          `  ${watcher.pendingCount} orders not COMPLETED yet, ${receiver.arrivals.length} webhooks`,
        );
    }
    // The last deliveries may land just after the last COMPLETED row is seen.
    for (let i = 0; receiver.arrivals.length < ok.length && i < 50; i++) await delay(100);
    const cores = coresBetween(a, procSnapshot(), app.stack.procs);
    const expectedIds = new Set(
      ok.map((s) => webhookMessageId(orderPlacedEventId(s.id!), endpointId)),
    );
    const times = receiver.arrivals
      .filter((x) => expectedIds.has(x.webhookId))
      .map((x) => x.at)
      .sort((x, y) => x - y);
    const buckets = (ts: number[]) => perSecond(ts, t0);
    const completedTimes = [...watcher.completedAt.values()].sort((x, y) => x - y);
    const webhooksPerSecond = buckets(times);
    const r: SpikeResult = {
      orders: settings.spikeOrders,
      seconds: settings.spikeS,
      intake,
      drainS:
        watcher.pendingCount === 0 ? round(((completedTimes.at(-1) ?? t0) - t0) / 1000, 1) : null,
      completed: watcher.completedAt.size,
      webhookRate: settings.webhookRate,
      webhooks: times.length,
      webhooksPerSecond,
      completedPerSecond: buckets(completedTimes),
      acceptedPerSecond: buckets(ok.map((s) => s.answeredAt)),
      maxWebhooksInWindow: Math.max(0, ...webhooksPerSecond),
      maxWebhooksSliding: maxInWindow(times, 1000).count,
      cores,
    };
    log(
      `  drained in ${r.drainS ?? `> ${settings.spikeDrainS}`} s; webhooks ${r.webhooks}, max ${r.maxWebhooksInWindow} in a one-second window (rate ${settings.webhookRate}/s)`,
    );
    return r;
  } finally {
    await watcher.stop();
    await deleteEndpoint(app.apiUrl, endpointId);
  }
}

export function renderSpike(s: SpikeResult, settings: RunSettings, svgName: string): string[] {
  const over = s.webhooksPerSecond.filter((n) => n > s.webhookRate).length;
  return [
    `## Spike: ${s.orders} orders in ${s.seconds} s`,
    '',
    `Open loop, arrivals paced evenly (${round(s.orders / s.seconds)} /s), each order with one webhook endpoint subscribed (a local receiver), WEBHOOK_RATE_PER_SECOND=${s.webhookRate}. Latency from each request's scheduled send time.`,
    '',
    '| measure | value | goal |',
    '|---|--:|---|',
    `| API errors | ${s.intake.errors} of ${s.intake.sent} (${JSON.stringify(s.intake.statusCodes)}) | 0 |`,
    `| POST latency p50 / p99 / max during the spike | ${f(s.intake.latencyMs.p50, 1)} / ${f(s.intake.latencyMs.p99, 1)} / ${f(s.intake.latencyMs.max, 1)} ms | |`,
    `| backlog drained (first scheduled POST → last order COMPLETED, DB polled every 250 ms) | ${s.drainS === null ? `not within ${settings.spikeDrainS} s (${s.completed}/${s.intake.ok} COMPLETED)` : `${s.drainS} s`} | ≈ ${Math.ceil((s.orders * gateSpacingMs(s.webhookRate)) / 1000)} s at the rate gate's spacing |`,
    `| webhooks delivered | ${s.webhooks} of ${s.intake.ok} | |`,
    `| most webhooks in one one-second window (from the first POST) | **${s.maxWebhooksInWindow}** (windows above ${s.webhookRate}: ${over} of ${s.webhooksPerSecond.length}) | ≤ ${s.webhookRate} |`,
    `| most webhooks in any sliding second | ${s.maxWebhooksSliding} | |`,
    '',
    `![spike and sustained throughput](${svgName})`,
    '',
    `Webhook deliveries per one-second window: ${s.webhooksPerSecond.join(' ')}`,
    '',
    `CPU cores during the spike and its drain: ${coreLine(s.cores)}.`,
    '',
  ];
}
