/**
 * The closed loop of bench/run.ts's throughput parts (sustained orders, the
 * Temporal floor's no-op workflows): `inFlight` units in the system at a time,
 * a new one started whenever one completes, so the backlog stays bounded.
 * Completions are counted per second after a warm-up, and CPU (per stack
 * process, /proc) and peak RSS are measured over the counted window.
 */
import type { ManagedProcess } from '../../scripts/lib/process.ts';
import { delay, now } from './e2e-kit.ts';
import { RssSampler, coresBetween, procSnapshot } from './proc-stats.ts';
import { round, summary, type Summary } from './stats.ts';

/** What tells the loop a unit completed (CompletionWatcher is one). */
export interface Completions {
  add(id: string): void;
  stop(): Promise<void>;
}

/** A counted window, epoch ms. */
export interface Window {
  from: number;
  to: number;
}

export interface ClosedLoopResult {
  seconds: number;
  inFlight: number;
  completed: number;
  /** Completions per second of the counted window. */
  perSecond: number[];
  /** completed ÷ seconds. */
  rate: number;
  /** Start → completion seen, of the units completed in the counted window. */
  latencyMs: Summary;
  startErrors: number;
  /** Units still in flight when the window closed. */
  leftInFlight: number;
  cores: Record<string, number>;
  rssPeakKiB: Record<string, number>;
  /** The counters `opts.counters` read at the window's start and end (both empty without it). */
  counters: { before: Record<string, number>; after: Record<string, number> };
  /** The counted window, epoch ms (for the machine-speed probe's samples in it). */
  window: Window;
}

export async function closedLoop(opts: {
  inFlight: number;
  warmupS: number;
  seconds: number;
  /** The stack's processes, for CPU and RSS per process. */
  procs: () => ManagedProcess[];
  /** Starts unit number `seq`; resolves with its id once accepted. */
  start(seq: number): Promise<string>;
  /** Builds the completion source, which calls `onCompleted` once per unit. */
  completions(onCompleted: (id: string) => void): Completions;
  /** Start failures after which no new unit is started (bound). */
  maxStartErrors?: number;
  /** Counters read when the counted window opens and when it closes (e.g. the Temporal server's). */
  counters?: () => Promise<Record<string, number>>;
}): Promise<ClosedLoopResult> {
  const begin = now();
  const measureFrom = begin + opts.warmupS * 1000;
  const stopAt = measureFrom + opts.seconds * 1000;
  const perSecond = Array.from({ length: opts.seconds }, () => 0);
  const latencies: number[] = [];
  const startedAt = new Map<string, number>();
  const maxStartErrors = opts.maxStartErrors ?? 1000;
  let startErrors = 0;
  let seq = 0;
  let inFlight = 0;
  const rss = new RssSampler(opts.procs);
  const send = () => {
    if (now() >= stopAt || startErrors > maxStartErrors) return;
    inFlight++;
    const t = now();
    opts.start(++seq).then(
      (id) => {
        startedAt.set(id, t);
        source.add(id);
      },
      () => {
        startErrors++;
        inFlight--;
        setTimeout(send, 100);
      },
    );
  };
  const source = opts.completions((id) => {
    inFlight--;
    const at = now();
    if (at >= measureFrom && at < stopAt) {
      perSecond[Math.floor((at - measureFrom) / 1000)]!++;
      latencies.push(at - (startedAt.get(id) ?? at));
    }
    startedAt.delete(id);
    send();
  });
  for (let i = 0; i < opts.inFlight; i++) send();
  const readCounters = () => opts.counters?.() ?? Promise.resolve({});
  await delay(Math.max(0, measureFrom - now()));
  const windowFrom = now();
  const before = procSnapshot();
  const countersBefore = readCounters();
  rss.start();
  await delay(Math.max(0, stopAt - now()));
  const rssPeakKiB = rss.stop();
  const cores = coresBetween(before, procSnapshot(), opts.procs());
  const window = { from: Math.round(windowFrom), to: Math.round(now()) };
  const counters = { before: await countersBefore, after: await readCounters() };
  await source.stop();
  const completed = perSecond.reduce((a, b) => a + b, 0);
  return {
    seconds: opts.seconds,
    inFlight: opts.inFlight,
    completed,
    perSecond,
    rate: round(completed / opts.seconds, 1),
    latencyMs: summary(latencies),
    startErrors,
    leftInFlight: inFlight,
    cores,
    rssPeakKiB,
    counters,
    window,
  };
}
