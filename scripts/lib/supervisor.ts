/**
 * Supervision of `npm start`'s processes once the stack is up: a process that
 * dies is named with its exit code or signal and started again after a
 * backoff, while the others keep serving; only a crash loop (more than
 * `maxRestarts` deaths of one process within `windowMs`) gives up, with a
 * message that names the process and why.
 */
import { delay, type ManagedProcess } from './process.ts';

export interface SupervisorOptions {
  /** Deaths of one process tolerated within `windowMs`; one more is a crash loop. */
  maxRestarts: number;
  windowMs: number;
  /** Wait before the first restart; doubles per recent death, up to maxBackoffMs. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Spawns a new process in place of a dead one (same command, log and priority). */
  respawn(dead: ManagedProcess): ManagedProcess;
  /** Resolves once the new process is ready (and has taken its run priority); rejects otherwise. */
  ready(proc: ManagedProcess): Promise<void>;
  /** A process was restarted and is ready. */
  onRestarted?(proc: ManagedProcess): void;
  /** A crash loop: the message names the process, its last exit and the tail of its log. */
  onCrashLoop(message: string): void;
  log(msg: string): void;
}

/** Supervision of `npm start` (scripts/stack.ts): five deaths in a minute is a crash loop. */
export const STACK_SUPERVISION = {
  maxRestarts: 5,
  windowMs: 60_000,
  initialBackoffMs: 500,
  maxBackoffMs: 15_000,
} as const;

/** "exited with code 1", "was killed by SIGKILL". */
export function describeExit(proc: Pick<ManagedProcess, 'exitCode' | 'exitSignal'>): string {
  if (proc.exitSignal) return `was killed by ${proc.exitSignal}`;
  return `exited with code ${proc.exitCode ?? 'unknown'}`;
}

/** The wait before restarting after the `deaths`-th death within the window. */
export function restartBackoffMs(
  deaths: number,
  opts: Pick<SupervisorOptions, 'initialBackoffMs' | 'maxBackoffMs'>,
): number {
  return Math.min(
    opts.initialBackoffMs * 2 ** Math.max(0, Math.min(deaths - 1, 20)),
    opts.maxBackoffMs,
  );
}

export class Supervisor {
  private readonly deaths = new Map<string, number[]>();
  private stopped = false;

  constructor(private readonly opts: SupervisorOptions) {}

  /** Watches `proc`: when it exits on its own, it is restarted (or the crash loop reported). */
  watch(proc: ManagedProcess): void {
    void proc.exited.then(() => {
      if (this.stopped || proc.isStopping) return;
      void this.died(proc, describeExit(proc));
    });
  }

  /**
   * No more restarts (the stack is stopping). A restart under way gives up:
   * the stack's stop ends its process, and its wait for readiness with it.
   */
  stop(): void {
    this.stopped = true;
  }

  private async died(proc: ManagedProcess, how: string): Promise<void> {
    const { name } = proc;
    const now = Date.now();
    const recent = [
      ...(this.deaths.get(name) ?? []).filter((t) => now - t < this.opts.windowMs),
      now,
    ];
    this.deaths.set(name, recent);
    const windowS = Math.round(this.opts.windowMs / 1000);
    if (recent.length > this.opts.maxRestarts) {
      this.opts.onCrashLoop(
        `${name} is in a crash loop: it ${how}, and died ${recent.length} times within ${windowS} s ` +
          `(at most ${this.opts.maxRestarts} restarts allowed). Last lines of ${proc.spec.logFile}:\n${proc.tail()}`,
      );
      return;
    }
    const backoff = restartBackoffMs(recent.length, this.opts);
    this.opts.log(
      `${name} (pid ${proc.pid ?? '?'}) ${how}; restarting it in ${backoff} ms ` +
        `(death ${recent.length} of at most ${this.opts.maxRestarts} within ${windowS} s). Last lines of ${proc.spec.logFile}:\n${proc.tail(10)}`,
    );
    await delay(backoff);
    if (this.stopped) return;
    const started = Date.now();
    let next: ManagedProcess;
    try {
      next = this.opts.respawn(proc);
    } catch (e) {
      if (!this.stopped)
        this.opts.onCrashLoop(`${name} could not be started again: ${(e as Error).message}`);
      return;
    }
    try {
      await this.opts.ready(next);
    } catch (e) {
      if (this.stopped) return;
      // Not ready in time (or it died while starting): that is one more death.
      if (next.running) await next.stop(2_000);
      return this.died(next, `did not start again (${firstLine((e as Error).message)})`);
    }
    if (this.stopped) return;
    this.opts.onRestarted?.(next);
    this.opts.log(
      `${name} restarted (pid ${next.pid ?? '?'}), ready in ${((Date.now() - started) / 1000).toFixed(1)} s${next.priorityNote}`,
    );
    this.watch(next);
  }
}

const firstLine = (text: string): string => text.split('\n')[0] ?? text;
