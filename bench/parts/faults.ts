/**
 * bench/run.ts part `faults`, orderflow and then the peer: orders at a paced
 * rate, each with one webhook endpoint; at 20% of the load a kill -9 of the
 * email worker mid-job (started again 2 s later), at 55% a kill -9 and restart
 * of the broker (Temporal / Redis). Then every accepted order must complete
 * (bounded), and the SMTP sink, the webhook receiver and the Kafka topic are
 * counted per order: what each system lost or duplicated.
 */
import { Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import type pg from 'pg';
import type { AppStack } from '../../scripts/lib/app-stack.ts';
import { topicEnds } from '../../scripts/lib/kafka-audit.ts';
import { ManagedProcess, signalGroup, waitUntilReady } from '../../scripts/lib/process.ts';
import {
  ORDERS_PLACED_TOPIC,
  orderPlacedEventId,
  webhookMessageId,
} from '../../src/shared/events.ts';
import type { System } from '../lib/cpu-per-order.ts';
import { createEndpoint, deleteEndpoint, delay, log, type Receiver } from '../lib/e2e-kit.ts';
import { TABLE, intakeStats, openLoop } from '../lib/order-load.ts';
import { round } from '../lib/stats.ts';
import { PEER_QUEUES, PEER_TOPIC, peerWebhookId } from '../peers/bullmq/common.ts';
import { redisReady, type Peer } from '../peers/bullmq/start.ts';
import type { RunSettings } from '../run-settings.ts';

/** kill -9 of a stack process's group, then the same command again, ready by `ready`. */
async function crashAndRestart(
  app: AppStack,
  old: ManagedProcess,
  ready: () => Promise<boolean>,
): Promise<{ proc: ManagedProcess; downMs: number }> {
  const t0 = Date.now();
  if (old.pid !== undefined) signalGroup(old.pid, 'SIGKILL');
  await Promise.race([old.exited, delay(10_000)]);
  if (old.running) throw new Error(`${old.name} survived SIGKILL`);
  const fresh = new ManagedProcess(old.spec);
  app.stack.procs[app.stack.procs.indexOf(old)] = fresh;
  await waitUntilReady(fresh, old.name, ready, 180_000);
  return { proc: fresh, downMs: Date.now() - t0 };
}

async function temporalReady(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    await connection.workflowService.describeNamespace({ namespace: 'default' });
    return true;
  } finally {
    await connection.close();
  }
}

export interface FaultResult {
  system: System;
  brokerRestarted: string;
  sent: number;
  accepted: number;
  apiErrors: number;
  statusCodes: Record<string, number>;
  /** Rows written although the API answered an error (a dual write that half happened); not in notCompleted. */
  persistedDespiteError: number;
  /** Accepted orders with no row. */
  acceptedWithoutRow: number;
  completed: number;
  notCompleted: number;
  missing: { email: number; webhook: number; event: number };
  duplicated: { email: number; webhook: number; event: number };
  /** Duplicated emails that carry a Message-ID of their own (a receiver cannot tell them apart). */
  emailDuplicatesWithNewMessageId: number;
  workerKill: string;
  brokerRestart: string;
  drainS: number | null;
}

/** Mails in the SMTP sink per recipient: how many, and their distinct Message-IDs. */
async function mailsByRecipient(
  mailApi: string,
): Promise<Map<string, { count: number; messageIds: Set<string> }>> {
  const res = await fetch(`${mailApi}/email`, { signal: AbortSignal.timeout(60_000) });
  if (!res.ok) throw new Error(`maildev GET /email: ${res.status}`);
  const out = new Map<string, { count: number; messageIds: Set<string> }>();
  for (const m of (await res.json()) as { to?: { address: string }[]; messageId?: string }[])
    for (const t of m.to ?? []) {
      const e = out.get(t.address) ?? { count: 0, messageIds: new Set<string>() };
      e.count++;
      e.messageIds.add(m.messageId ?? '');
      out.set(t.address, e);
    }
  return out;
}

/** Records per key on a topic, read from the beginning up to the end offsets at the call (bounded). */
async function kafkaKeyCounts(
  brokers: string,
  topic: string,
  boundMs: number,
): Promise<Map<string, number>> {
  const { kafka, ends } = await topicEnds(brokers, 'bench-count', topic);
  const counts = new Map<string, number>();
  const reached = new Map<number, number>();
  const done = () =>
    [...ends].every(([p, high]) => high === 0 || (reached.get(p) ?? -1) >= high - 1);
  const consumer = kafka.consumer({ groupId: `bench-count-${Date.now()}-${Math.random()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const k = m.key?.toString() ?? '';
        counts.set(k, (counts.get(k) ?? 0) + 1);
        reached.set(batch.partition, Number(m.offset));
      }
    },
  });
  const t0 = Date.now();
  while (!done() && Date.now() - t0 < boundMs) await delay(200);
  await consumer.disconnect();
  if (!done()) throw new Error(`${topic}: not read to its end within ${boundMs / 1000} s`);
  return counts;
}

export async function faultRun(
  app: AppStack,
  peer: Peer,
  db: pg.Pool,
  sys: System,
  receiver: Receiver,
  settings: RunSettings,
): Promise<FaultResult> {
  const apiUrl = sys === 'orderflow' ? app.apiUrl : peer.apiUrl;
  const prefix = `fault-${sys}-`;
  const hookUrl = `${receiver.url}/fault-${sys}`;
  let endpointId: string | number;
  if (sys === 'orderflow') endpointId = await createEndpoint(app.apiUrl, hookUrl);
  else {
    endpointId = (
      await db.query<{ id: number }>(
        'INSERT INTO peer_webhook_endpoints (url) VALUES ($1) RETURNING id',
        [hookUrl],
      )
    ).rows[0]!.id;
    await delay(1500); // the peer API re-reads its endpoints every second
  }
  await fetch(`${app.env.MAIL_API_URL}/email/all`, { method: 'DELETE' });
  const durationS = settings.faultOrders / settings.faultRate;
  log(
    `faults: ${sys}: ${settings.faultOrders} orders at ${settings.faultRate}/s; kill -9 of the email worker at 20%, of ${sys === 'orderflow' ? 'Temporal' : 'Redis'} at 55%`,
  );
  let workerKill = '';
  let brokerRestart = '';
  // Emails being sent right now: orderflow's delivery rows not yet marked sent, the peer's active jobs.
  const emailsInFlight = async (): Promise<number> => {
    if (sys === 'orderflow')
      return Number(
        (
          await db.query<{ n: string }>(
            `SELECT count(*) AS n FROM email_deliveries WHERE sent_at IS NULL AND last_error IS NULL`,
          )
        ).rows[0]!.n,
      );
    const r = new Redis(peer.redisUrl, { maxRetriesPerRequest: 1 });
    try {
      return await r.llen(`bull:${PEER_QUEUES.email}:active`);
    } finally {
      r.disconnect();
    }
  };
  const loadStart = Date.now();
  const faults = (async () => {
    await delay(durationS * 200);
    // Mid-job: wait (≤ 15 s) until an email is being sent, then kill.
    let inFlight = 0;
    for (let i = 0; i < 750 && (inFlight = await emailsInFlight()) === 0; i++) await delay(20);
    const t = Date.now();
    if (sys === 'orderflow') {
      await app.kill('worker-email');
      await delay(2000);
      await app.restart('worker-email');
    } else {
      const old = peer.procs.get('peer-worker-email')!;
      if (old.pid !== undefined) signalGroup(old.pid, 'SIGKILL');
      await Promise.race([old.exited, delay(10_000)]);
      await delay(2000);
      await peer.startWorker('email');
    }
    workerKill = `${sys === 'orderflow' ? 'worker-email' : 'peer-worker-email'} killed (SIGKILL) with ${inFlight} email(s) in flight, started again 2 s later, ready after ${round((Date.now() - t) / 1000, 1)} s`;
    // The broker at 55% of the load (or right after the worker, if that took longer).
    await delay(Math.max(0, loadStart + durationS * 550 - Date.now()));
    if (sys === 'orderflow') {
      const old = app.stack.procs.find((p) => p.name === 'temporal' && p.running)!;
      const { downMs } = await crashAndRestart(app, old, () =>
        temporalReady(app.env.TEMPORAL_ADDRESS),
      );
      brokerRestart = `Temporal dev server killed (SIGKILL) and started again on its SQLite file, serving after ${round(downMs / 1000, 1)} s`;
    } else {
      const { proc, downMs } = await crashAndRestart(app, peer.redis, () =>
        redisReady(peer.redisUrl),
      );
      peer.redis = proc;
      brokerRestart = `Redis killed (SIGKILL) and started again (${settings.redisAof ? 'AOF, appendfsync everysec' : 'no persistence'}), serving after ${round(downMs / 1000, 1)} s`;
    }
  })();
  const { sent } = await openLoop(
    apiUrl,
    settings.faultOrders,
    durationS,
    (i) => `${prefix}${i}@bench.local`,
  );
  await faults;
  const stats = intakeStats(sent, durationS);
  const acceptedEmails = new Set(
    sent.flatMap((s, i) =>
      s.status >= 200 && s.status < 300 ? [`${prefix}${i}@bench.local`] : [],
    ),
  );
  // Every accepted order must complete (bounded); a row written under an error answer may never.
  const t0 = Date.now();
  const unfinished = async () =>
    Number(
      (
        await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${TABLE[sys]} WHERE customer_email = ANY($1) AND status <> 'COMPLETED'`,
          [[...acceptedEmails]],
        )
      ).rows[0]!.n,
    );
  let left = await unfinished();
  for (let i = 0; left > 0 && Date.now() - t0 < settings.faultDrainS * 1000 && i < 100_000; i++) {
    await delay(1000);
    left = await unfinished();
    if (i % 20 === 19) log(`  ${sys}: ${left} fault orders not COMPLETED yet`);
  }
  const drainS = left === 0 ? round((Date.now() - t0) / 1000, 1) : null;
  await delay(3000); // late duplicates (a redelivered job) still count
  const rows = (
    await db.query<{ id: string; email: string; status: string }>(
      `SELECT id::text, customer_email AS email, status FROM ${TABLE[sys]} WHERE customer_email LIKE $1`,
      [`${prefix}%`],
    )
  ).rows;
  const mails = await mailsByRecipient(app.env.MAIL_API_URL);
  const keys = await kafkaKeyCounts(
    app.env.KAFKA_BROKERS,
    sys === 'orderflow' ? ORDERS_PLACED_TOPIC : PEER_TOPIC,
    120_000,
  );
  const hooks = new Map<string, number>();
  for (const x of receiver.arrivals)
    if (x.path === `/fault-${sys}`) hooks.set(x.webhookId, (hooks.get(x.webhookId) ?? 0) + 1);
  const hookId = (orderId: string) =>
    sys === 'orderflow'
      ? webhookMessageId(orderPlacedEventId(orderId), endpointId as string)
      : peerWebhookId(orderId, endpointId as number);
  const rowEmails = new Set(rows.map((r) => r.email));
  const missing = { email: 0, webhook: 0, event: 0 };
  const duplicated = { email: 0, webhook: 0, event: 0 };
  let emailDuplicatesWithNewMessageId = 0;
  const tally = (kind: keyof typeof missing, n: number) => {
    if (n === 0) missing[kind]++;
    else duplicated[kind] += n - 1;
  };
  // Every accepted order and every row written counts; an accepted order without a row misses everything.
  for (const email of new Set([...acceptedEmails, ...rowEmails])) {
    const row = rows.find((r) => r.email === email);
    const mail = mails.get(email);
    tally('email', mail?.count ?? 0);
    if (mail) emailDuplicatesWithNewMessageId += mail.messageIds.size - 1;
    tally('webhook', row ? (hooks.get(hookId(row.id)) ?? 0) : 0);
    tally('event', row ? (keys.get(row.id) ?? 0) : 0);
  }
  if (sys === 'orderflow') await deleteEndpoint(app.apiUrl, endpointId as string);
  else await db.query('DELETE FROM peer_webhook_endpoints');
  const r: FaultResult = {
    system: sys,
    brokerRestarted: sys === 'orderflow' ? 'Temporal' : 'Redis',
    sent: stats.sent,
    accepted: stats.ok,
    apiErrors: stats.errors,
    statusCodes: stats.statusCodes,
    persistedDespiteError: [...rowEmails].filter((e) => !acceptedEmails.has(e)).length,
    acceptedWithoutRow: [...acceptedEmails].filter((e) => !rowEmails.has(e)).length,
    completed: rows.filter((x) => x.status === 'COMPLETED').length,
    notCompleted: rows.filter((x) => acceptedEmails.has(x.email) && x.status !== 'COMPLETED')
      .length,
    missing,
    duplicated,
    emailDuplicatesWithNewMessageId,
    workerKill,
    brokerRestart,
    drainS,
  };
  log(
    `  ${sys}: ${r.accepted}/${r.sent} accepted, ${r.apiErrors} API errors, ${r.notCompleted} not COMPLETED; missing ${JSON.stringify(missing)}; duplicated ${JSON.stringify(duplicated)}`,
  );
  return r;
}

/** Its rows of the orderflow-vs-peer table. */
export function faultComparison(list: FaultResult[], settings: RunSettings): string[] {
  const fr = (sys: System) => list.find((x) => x.system === sys);
  const lost = (x?: FaultResult) =>
    x ? `${x.missing.email} / ${x.missing.webhook} / ${x.missing.event}` : '–';
  const dup = (x?: FaultResult) =>
    x
      ? `${x.duplicated.email} (${x.emailDuplicatesWithNewMessageId} with a new Message-ID) / ${x.duplicated.webhook} / ${x.duplicated.event}`
      : '–';
  return [
    `| faults (kill -9 email worker, kill -9 + restart of Temporal / Redis): API errors of ${settings.faultOrders} | ${fr('orderflow')?.apiErrors ?? '–'} | ${fr('peer')?.apiErrors ?? '–'} |`,
    `| faults: orders not COMPLETED after ${settings.faultDrainS} s | ${fr('orderflow')?.notCompleted ?? '–'} (+${fr('orderflow')?.acceptedWithoutRow ?? '–'} accepted without a row) | ${fr('peer')?.notCompleted ?? '–'} (+${fr('peer')?.acceptedWithoutRow ?? '–'} accepted without a row) |`,
    `| faults: lost email / webhook / Kafka event | ${lost(fr('orderflow'))} | ${lost(fr('peer'))} |`,
    `| faults: duplicated email / webhook / Kafka event | ${dup(fr('orderflow'))} | ${dup(fr('peer'))} |`,
    `| faults: rows written although the API answered an error | ${fr('orderflow')?.persistedDespiteError ?? '–'} | ${fr('peer')?.persistedDespiteError ?? '–'} |`,
  ];
}

export function renderFaults(list: FaultResult[], settings: RunSettings): string[] {
  return [
    '## Faults',
    '',
    `${settings.faultOrders} orders at ${settings.faultRate}/s per system, each with one webhook endpoint. At 20% of the load the email worker is killed (kill -9 of its process group, mid-job) and started again 2 s later; at 55% the broker (Temporal dev server / Redis) is killed (kill -9) and started again on its data. Then every accepted order must reach COMPLETED (bounded); the SMTP sink, the webhook receiver and the Kafka topic are counted per order. Missing = accepted order (or written row) without that effect; duplicated = deliveries beyond the first.`,
    '',
    '| system | accepted / sent | API errors | rows despite an error | accepted without a row | not COMPLETED | missing email / webhook / event | duplicated email / webhook / event | drained in |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|',
    ...list.map(
      (x) =>
        `| ${x.system} | ${x.accepted} / ${x.sent} | ${x.apiErrors} | ${x.persistedDespiteError} | ${x.acceptedWithoutRow} | ${x.notCompleted} | ${x.missing.email} / ${x.missing.webhook} / ${x.missing.event} | ${x.duplicated.email} (${x.emailDuplicatesWithNewMessageId} new Message-ID) / ${x.duplicated.webhook} / ${x.duplicated.event} | ${x.drainS === null ? `> ${settings.faultDrainS} s` : `${x.drainS} s`} |`,
    ),
    '',
    ...list.map(
      (x) =>
        `- ${x.system}: ${x.workerKill}; ${x.brokerRestart}; API answers ${JSON.stringify(x.statusCodes)}`,
    ),
    '',
  ];
}
