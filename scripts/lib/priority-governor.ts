/**
 * The background's CPU weight follows the request path (BACKGROUND_PRIORITY
 * `idle`). No fixed weight does both jobs on 2 cores: at nice 19 the API kept
 * up to 1.6x the throughput it had with the background at nice 10, but with
 * other work keeping both cores busy a nice-19 background completed no order
 * in 5 min (workflow and activity timeouts expire before a starved process
 * runs), where nice 10 completed 20 in 2 min. So the background's session
 * autogroups sit at the `quiet` niceness while the API is idle and drop to
 * the `busy` one as soon as the API works, until it has been quiet again for
 * a while.
 */
import { cpuSeconds, setAutogroupNiceness } from './process.ts';

export interface GovernorOptions {
  /** Processes of the request path (the API) whose CPU use is watched. */
  watched: () => number[];
  /** Session leaders of the background processes whose autogroups are set. */
  background: () => number[];
  /** Autogroup niceness while the request path is idle. */
  quiet: number;
  /** Autogroup niceness while it works. */
  busy: number;
  /** CPU use of the watched processes (cores) from which they count as working. */
  busyCores?: number;
  /** How long they must stay below it before the background goes back to `quiet`. */
  calmMs?: number;
  intervalMs?: number;
}

export type GovernorLevel = 'quiet' | 'busy';

export class PriorityGovernor {
  level: GovernorLevel = 'quiet';
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private lastCpu = new Map<number, number>();
  private lastAt = 0;
  private lastBusyAt = 0;

  constructor(private readonly opts: GovernorOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
    }, this.opts.intervalMs ?? 500);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** One sample: the watched processes' CPU use since the last one decides the level, applied to every background process. */
  async tick(now = Date.now()): Promise<void> {
    const cores = this.sampleCores(now);
    if (cores >= (this.opts.busyCores ?? 0.2)) {
      this.level = 'busy';
      this.lastBusyAt = now;
    } else if (this.level === 'busy' && now - this.lastBusyAt >= (this.opts.calmMs ?? 3_000)) {
      this.level = 'quiet';
    }
    const nice = this.level === 'busy' ? this.opts.busy : this.opts.quiet;
    // Every tick, so a process lowered since the last one is set too; unchanged ones cost a read.
    for (const pid of this.opts.background()) await setAutogroupNiceness(pid, nice);
  }

  private sampleCores(now: number): number {
    const elapsed = (now - this.lastAt) / 1000;
    let used = 0;
    const seen = new Map<number, number>();
    for (const pid of this.opts.watched()) {
      const cpu = cpuSeconds(pid);
      if (cpu === undefined) continue;
      seen.set(pid, cpu);
      const before = this.lastCpu.get(pid);
      if (before !== undefined) used += Math.max(cpu - before, 0);
    }
    this.lastCpu = seen;
    this.lastAt = now;
    return elapsed > 0 && elapsed < 60 ? used / elapsed : 0;
  }
}
