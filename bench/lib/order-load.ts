/**
 * Order load on an API over loopback, for bench/run.ts and its parts: an
 * open loop (paced POSTs, latency from each one's scheduled time), a closed
 * loop at saturation (autocannon), the statistics of what they sent, and a
 * bounded wait until a system has no unfinished order.
 */
import autocannon from 'autocannon';
import http from 'node:http';
import type pg from 'pg';
import { sampleOrder } from '../../scripts/lib/sample-order.ts';
import type { System } from './cpu-per-order.ts';
import { delay, log, now } from './e2e-kit.ts';
import { round, summary, type Summary } from './stats.ts';

/** The order every load generator here POSTs, for `email`. */
export const orderBody = (email: string) => JSON.stringify(sampleOrder(email));

/** Each system's order table (id, status, customer_email, updated_at). */
export const TABLE = { orderflow: 'orders', peer: 'peer_orders' } as const;

export interface Sent {
  scheduledAt: number;
  answeredAt: number;
  status: number;
  id?: string;
  error?: string;
}

/**
 * Open loop: `count` POSTs paced evenly over `durationS`, each sent at its
 * time whatever the previous ones are doing (keep-alive agent, at most 256
 * sockets; a request waiting for a socket counts in its latency, measured
 * from its scheduled time). Bounded: responses are awaited at most 30 s.
 */
export async function openLoop(
  apiUrl: string,
  count: number,
  durationS: number,
  email: (i: number) => string,
): Promise<{ sent: Sent[]; t0: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const url = new URL('/orders', apiUrl);
  const interval = (durationS * 1000) / count;
  const sent: Promise<Sent>[] = [];
  const t0 = now();
  const one = (i: number, scheduledAt: number) =>
    new Promise<Sent>((resolve) => {
      const body = orderBody(email(i));
      const req = http.request(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let id: string | undefined;
            try {
              id = (JSON.parse(Buffer.concat(chunks).toString()) as { id?: string }).id;
            } catch {
              /* not JSON */
            }
            resolve({ scheduledAt, answeredAt: now(), status, id });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) =>
        resolve({ scheduledAt, answeredAt: now(), status: 0, error: e.message }),
      );
      req.end(body);
    });
  for (let i = 0; i < count; i++) {
    const at = t0 + i * interval;
    const wait = at - now();
    if (wait > 1) await delay(wait);
    sent.push(one(i, at));
  }
  const all = await Promise.all(sent);
  agent.destroy();
  return { sent: all, t0 };
}

export interface IntakeStats {
  sent: number;
  ok: number;
  errors: number;
  statusCodes: Record<string, number>;
  throughput: number;
  latencyMs: Summary;
}

/** Counts by status, accepted and refused, req/s accepted over `seconds`, latency of the accepted. */
export function intakeStats(sent: Sent[], seconds: number): IntakeStats {
  const statusCodes: Record<string, number> = {};
  for (const s of sent) {
    const k = s.status === 0 ? `socket: ${s.error}` : String(s.status);
    statusCodes[k] = (statusCodes[k] ?? 0) + 1;
  }
  const ok = sent.filter((s) => s.status >= 200 && s.status < 300);
  return {
    sent: sent.length,
    ok: ok.length,
    errors: sent.length - ok.length,
    statusCodes,
    throughput: round(ok.length / seconds, 1),
    latencyMs: summary(ok.map((s) => s.answeredAt - s.scheduledAt)),
  };
}

/** Closed loop at saturation: autocannon, `connections` POSTs in flight for `durationS`. */
export function saturate(
  apiUrl: string,
  durationS: number,
  connections: number,
): Promise<IntakeStats> {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${apiUrl}/orders`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: orderBody('sat-[<id>]@bench.local'),
        idReplacement: true,
        connections,
        duration: durationS,
        timeout: 10,
      },
      (err, r) => {
        if (err) return reject(err);
        const ok = r['2xx'];
        resolve({
          sent: ok + r.non2xx + r.errors + r.timeouts,
          ok,
          errors: r.non2xx + r.errors + r.timeouts,
          statusCodes: { '2xx': ok, non2xx: r.non2xx, socket: r.errors, timeout: r.timeouts },
          throughput: round(ok / durationS, 1),
          latencyMs: {
            n: ok,
            p50: r.latency.p50,
            p90: r.latency.p90,
            p99: r.latency.p99,
            max: r.latency.max,
            min: r.latency.min,
          },
        });
      },
    );
  });
}

/** Waits (bounded) until no order of the system is unfinished; returns how long it took or null. */
export async function drain(db: pg.Pool, sys: System, boundS: number): Promise<number | null> {
  const t0 = Date.now();
  const where =
    sys === 'orderflow'
      ? `status NOT IN ('COMPLETED', 'CANCELLED', 'PARKED')`
      : `status <> 'COMPLETED'`;
  for (let i = 0; Date.now() - t0 < boundS * 1000 && i < 100_000; i++) {
    const { rows } = await db.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${TABLE[sys]} WHERE ${where}`,
    );
    if (Number(rows[0]!.n) === 0) return Date.now() - t0;
    if (i % 40 === 39) log(`  ${sys}: ${rows[0]!.n} orders unfinished`);
    await delay(500);
  }
  log(`  ${sys}: backlog not drained within ${boundS} s`);
  return null;
}
