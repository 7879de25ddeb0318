/**
 * What the end-to-end benchmarks (bench/e2e.ts, bench/run.ts and its parts)
 * share: a webhook receiver that records arrivals, order and endpoint calls on
 * the API, and a watcher that polls the database for COMPLETED orders.
 */
import { execFileSync, fork } from 'node:child_process';
import path from 'node:path';
import type pg from 'pg';
import { delay } from '../../scripts/lib/process.ts';
import { sampleOrder } from '../../scripts/lib/sample-order.ts';
import { projectRoot } from '../../scripts/lib/tools.ts';

export const log = (m: string) =>
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);
export { delay };
/** Wall-clock milliseconds with sub-millisecond resolution. */
export const now = () => performance.timeOrigin + performance.now();

/** A command's output, trimmed; '' when it fails. */
export const sh = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { cwd: projectRoot, encoding: 'utf8' }).trim();
  } catch {
    return '';
  }
};

/** The commit measured and how many paths the working tree changes: "abc1234 (working tree with 3 uncommitted paths)". */
export function codeMeasured(): string {
  const dirty = sh('git', ['status', '--porcelain']).split('\n').filter(Boolean).length;
  return `${sh('git', ['rev-parse', '--short', 'HEAD']) || 'unknown'}${dirty ? ` (working tree with ${dirty} uncommitted paths)` : ''}`;
}

// ---------------------------------------------------------------- the receiver

export interface Arrival {
  at: number;
  webhookId: string;
  path: string;
}

export interface Receiver {
  url: string;
  /** Every webhook that arrived, in arrival order (empty it to start counting afresh). */
  arrivals: Arrival[];
  close(): Promise<void>;
}

/**
 * Answers every webhook 200 at once and records when it arrived: a receiver
 * process of its own (bench/lib/receiver-process.ts), so the load the runner
 * generates does not delay the timestamps. `arrivals` fills as they come in.
 */
export async function startReceiver(): Promise<Receiver> {
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
    body: JSON.stringify(sampleOrder(customerEmail)),
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
            // One primary-key probe per pending id. `id = ANY($1)` with ~200 ids is
            // planned as a sequential scan of the whole table up to ~40,000 rows
            // (cheaper on paper than 200 probes), so every poll read every order
            // the earlier parts left behind (1.75 ms a poll at 8,800 orders, 10 polls
            // a second); OFFSET 0 keeps the lateral subquery from being flattened
            // into that plan again.
            ({ rows } = await this.db.query<{ id: string; updated_at: Date }>(
              `SELECT t.id::text, t.updated_at FROM unnest($1::uuid[]) AS p(id)
               CROSS JOIN LATERAL (SELECT id, updated_at FROM ${table}
                 WHERE id = p.id AND status = 'COMPLETED' OFFSET 0) t`,
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
