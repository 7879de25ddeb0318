/**
 * How a benchmark with a stack of its own ends when it is interrupted or runs
 * too long: SIGINT or SIGTERM stops it with exit code 130, exceeding
 * `maxMin` minutes with exit code 1, each after `cleanup` (stopping the
 * stack); `onStop` hears of it first (to keep the stack's folder, say).
 */
import { log } from './e2e-kit.ts';

export function guardRun(opts: {
  maxMin: number;
  /** The variable that set maxMin, named in the log line. */
  maxMinVariable: string;
  cleanup(): Promise<void>;
  onStop(): void;
}): { clear(): void } {
  const stop = (why: string, code: number) => {
    log(why);
    opts.onStop();
    void opts.cleanup().finally(() => process.exit(code));
  };
  const onSignal = (sig: NodeJS.Signals) => stop(`${sig}: stopping`, 130);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const watchdog = setTimeout(
    () => stop(`the run exceeded ${opts.maxMinVariable}=${opts.maxMin}: stopping`, 1),
    opts.maxMin * 60_000,
  );
  return { clear: () => clearTimeout(watchdog) };
}
