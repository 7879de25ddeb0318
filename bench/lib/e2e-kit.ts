/**
 * What the end-to-end benchmarks (bench/e2e.ts, bench/run.ts) share: CPU and
 * resident memory per stack process from /proc, a webhook receiver that
 * records arrivals, order and endpoint calls on the API, and a watcher that
 * polls the database for COMPLETED orders.
 */
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import type { ManagedProcess } from '../../scripts/lib/process.ts';
import { projectRoot } from '../../scripts/lib/tools.ts';

/** An integer from the environment within [min, max], or `def` when unset. */
export function intEnv(name: string, def: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name}=${raw}: expected an integer in [${min}, ${max}]`);
  return n;
}

export const log = (m: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);
export const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Wall-clock milliseconds with sub-millisecond resolution. */
export const now = () => performance.timeOrigin + performance.now();
export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s.at(-1) ?? NaN,
    min: s[0] ?? NaN,
  };
}
export type Summary = ReturnType<typeof summary>;

export const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { cwd: projectRoot, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

// ---------------------------------------------------------------- /proc: memory and CPU

export const CLK_TCK = Number(sh('getconf', ['CLK_TCK'])) || 100;

export interface ProcInfo {
  ppid: number;
  pgrp: number;
  /** utime + stime + cutime + cstime */
  ticks: number;
  rssKiB: number;
}

export function procSnapshot(withRss: boolean): {
  at: number;
  busy: number;
  procs: Map<number, ProcInfo>;
} {
  const procs = new Map<number, ProcInfo>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command (which may hold spaces): state ppid pgrp ... utime(14) stime cutime cstime.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      let rssKiB = 0;
      if (withRss) {
        const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'));
        rssKiB = m ? Number(m[1]) : 0;
      }
      procs.set(Number(entry), {
        ppid: Number(f[1]),
        pgrp: Number(f[2]),
        ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
        rssKiB,
      });
    } catch {
      /* exited meanwhile */
    }
  }
  const v = fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { at: Date.now(), busy: total - (v[3] ?? 0) - (v[4] ?? 0), procs };
}
export type Snapshot = ReturnType<typeof procSnapshot>;

/**
 * Which stack process each pid belongs to: the process group of a stack
 * process or its descendants (PostgreSQL backends leave the group, not the
 * tree); this runner is "runner".
 */
export function owners(snap: Snapshot, procs: ManagedProcess[]): Map<number, string> {
  const roots = new Map<number, string>([[process.pid, 'runner']]);
  for (const p of procs) if (p.pid !== undefined && p.running) roots.set(p.pid, p.name);
  const out = new Map<number, string>();
  for (const [pid, info] of snap.procs) {
    let name = roots.get(info.pgrp);
    for (let cur: number | undefined = pid, i = 0; !name && cur && cur > 1 && i < 32; i++) {
      name = roots.get(cur);
      cur = snap.procs.get(cur)?.ppid;
    }
    if (name) out.set(pid, name);
  }
  return out;
}

export function rssByOwner(snap: Snapshot, procs: ManagedProcess[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pid, name] of owners(snap, procs))
    out[name] = (out[name] ?? 0) + (snap.procs.get(pid)?.rssKiB ?? 0);
  return out;
}

/** Cores used per stack process, by this runner, by the whole machine and by everything else. */
export function coresBetween(
  a: Snapshot,
  b: Snapshot,
  procs: ManagedProcess[],
): Record<string, number> {
  const seconds = (b.at - a.at) / 1000;
  const ticks: Record<string, number> = {};
  let ours = 0;
  for (const [pid, name] of owners(b, procs)) {
    const d = b.procs.get(pid)!.ticks - (a.procs.get(pid)?.ticks ?? 0);
    ticks[name] = (ticks[name] ?? 0) + d;
    ours += d;
  }
  const cores = (t: number) => round(t / CLK_TCK / seconds, 2);
  const out: Record<string, number> = {};
  for (const [name, t] of Object.entries(ticks)) out[name] = cores(t);
  out.machine = cores(b.busy - a.busy);
  out.other = cores(Math.max(0, b.busy - a.busy - ours));
  return out;
}

/**
 * Waits (bounded) until the machine outside this bench is quiet: processes
 * that are not the stack's nor this runner's use at most BENCH_E2E_OTHER_MAX_CORES
 * over 3 s. Returns what they used in the last window and how long it waited.
 */
export async function waitForQuiet(
  procs: () => ManagedProcess[],
  phase: string,
  limits: { otherMaxCores: number; quietWaitS: number },
  log: (msg: string) => void,
): Promise<{ otherCores: number; waitedS: number }> {
  const t0 = Date.now();
  for (let i = 0; ; i++) {
    const a = procSnapshot(false);
    await delay(3000);
    const other = coresBetween(a, procSnapshot(false), procs()).other ?? 0;
    const waitedS = Math.round((Date.now() - t0) / 1000);
    if (other <= limits.otherMaxCores) return { otherCores: other, waitedS };
    if (waitedS >= limits.quietWaitS) {
      log(
        `${phase}: other processes still use ${other} cores after ${waitedS} s; measuring anyway`,
      );
      return { otherCores: other, waitedS };
    }
    if (i % 10 === 0)
      log(`${phase}: waiting for the machine to be quiet (other processes use ${other} cores)`);
  }
}

/** Samples RSS every 250 ms and keeps each process's peak for the current phase. */
export class RssSampler {
  private peaks: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly procs: () => ManagedProcess[]) {}
  start(): void {
    this.peaks = {};
    const sample = () => {
      const rss = rssByOwner(procSnapshot(true), this.procs());
      for (const [k, v] of Object.entries(rss)) this.peaks[k] = Math.max(this.peaks[k] ?? 0, v);
    };
    sample();
    this.timer = setInterval(sample, 250);
  }
  stop(): Record<string, number> {
    clearInterval(this.timer);
    return { ...this.peaks };
  }
}

/** RSS averaged over a few samples a second apart (an idle process still breathes a little). */
export async function idleRss(
  procs: () => ManagedProcess[],
  samples = 4,
): Promise<Record<string, number>> {
  const sum: Record<string, number> = {};
  for (let i = 0; i < samples; i++) {
    for (const [k, v] of Object.entries(rssByOwner(procSnapshot(true), procs())))
      sum[k] = (sum[k] ?? 0) + v;
    if (i < samples - 1) await delay(1000);
  }
  return Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, Math.round(v / samples)]));
}

// ---------------------------------------------------------------- the receiver

export interface Arrival {
  at: number;
  webhookId: string;
  path: string;
}

/**
 * Answers every webhook 200 at once and records when it arrived: a receiver
 * process of its own (bench/lib/receiver-process.ts), so the load the runner
 * generates does not delay the timestamps. `arrivals` fills as they come in.
 */
export async function startReceiver() {
  const arrivals: Arrival[] = [];
  const child = fork(path.join(import.meta.dirname, 'receiver-process.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('webhook receiver did not start in 30 s')),
      30_000,
    );
    child.once('exit', (code) => reject(new Error(`webhook receiver exited with ${code}`)));
    child.on('message', (m: { port?: number } & Partial<Arrival>) => {
      if (m.port !== undefined) {
        clearTimeout(timer);
        resolve(m.port);
      } else arrivals.push({ at: m.at!, webhookId: m.webhookId!, path: m.path! });
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    arrivals,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await Promise.race([exited, delay(5000)]);
    },
  };
}

// ---------------------------------------------------------------- API calls

export async function createEndpoint(apiUrl: string, url: string): Promise<string> {
  const res = await fetch(`${apiUrl}/webhook-endpoints`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url, eventTypes: ['order.placed'] }),
  });
  if (res.status !== 201)
    throw new Error(`POST /webhook-endpoints: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export async function deleteEndpoint(apiUrl: string, id: string): Promise<void> {
  const res = await fetch(`${apiUrl}/webhook-endpoints/${id}`, { method: 'DELETE' });
  if (res.status !== 204) throw new Error(`DELETE /webhook-endpoints/${id}: ${res.status}`);
}

let orderSeq = 0;
/** POSTs one order (for `customerEmail`, by default a fresh one); the id and when the request was sent and answered. */
export async function postOrder(
  apiUrl: string,
  customerEmail = `bench-${++orderSeq}@example.com`,
): Promise<{ id: string; sentAt: number; answeredAt: number }> {
  const sentAt = now();
  const res = await fetch(`${apiUrl}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      customerEmail,
      items: [{ sku: 'SKU-1', quantity: 2, unitPriceCents: 1250 }],
      currency: 'USD',
    }),
    signal: AbortSignal.timeout(30_000),
  });
  const answeredAt = now();
  const text = await res.text();
  if (res.status !== 201 && res.status !== 202)
    throw new Error(`POST /orders answered ${res.status}: ${text.slice(0, 300)}`);
  return { id: (JSON.parse(text) as { id: string }).id, sentAt, answeredAt };
}

/**
 * Watches the database every `everyMs` until every id is COMPLETED or the
 * deadline passes: when the runner saw it, and the row's updated_at. `table`
 * is orderflow's `orders` or a peer's table of the same shape (id, status,
 * updated_at); `onCompleted` hears of each order once.
 */
export class CompletionWatcher {
  readonly observedAt = new Map<string, number>();
  readonly completedAt = new Map<string, number>();
  private readonly pending = new Set<string>();
  private running = true;
  private failure: Error | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly db: pg.Pool,
    everyMs: number,
    table: 'orders' | 'peer_orders' = 'orders',
    onCompleted?: (id: string) => void,
  ) {
    this.loop = (async () => {
      while (this.running) {
        if (this.pending.size) {
          let rows: { id: string; updated_at: Date }[];
          try {
            ({ rows } = await this.db.query<{ id: string; updated_at: Date }>(
              `SELECT id::text, updated_at FROM ${table} WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'`,
              [[...this.pending]],
            ));
          } catch (e) {
            // Kept for drained() to report, rather than an unhandled rejection.
            this.failure = e as Error;
            return;
          }
          const seen = now();
          for (const r of rows) {
            this.pending.delete(r.id);
            this.observedAt.set(r.id, seen);
            this.completedAt.set(r.id, r.updated_at.getTime());
            onCompleted?.(r.id);
          }
        }
        await delay(everyMs);
      }
    })();
  }

  add(id: string): void {
    this.pending.add(id);
  }

  /** Resolves true when nothing is pending, false at the deadline. */
  async drained(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size && Date.now() < deadline && !this.failure) await delay(50);
    if (this.failure)
      throw new Error(`watching for COMPLETED orders failed: ${this.failure.message}`);
    return this.pending.size === 0;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** Most timestamps (ms) in any half-open window [t, t + widthMs), and where it starts. */
export function maxInWindow(sorted: number[], widthMs: number): { count: number; start: number } {
  let best = { count: 0, start: sorted[0] ?? 0 };
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! - sorted[i]! < widthMs) j++;
    if (j - i > best.count) best = { count: j - i, start: sorted[i]! };
  }
  return best;
}
