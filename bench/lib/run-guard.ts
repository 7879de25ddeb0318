/** A benchmark's own stack, and how the run ends when it is interrupted or runs too long. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from '../../scripts/lib/process.ts';
import { Stack, ephemeralPorts, type StackOptions } from '../../scripts/lib/stack.ts';
import { provisionAll } from '../../scripts/lib/tools.ts';
import { log } from './e2e-kit.ts';

/**
 * How a benchmark with a stack of its own ends when it is interrupted or runs
 * too long: SIGINT or SIGTERM stops it with exit code 130, exceeding
 * `maxMin` minutes with exit code 1, each after `cleanup` (stopping the
 * stack); `onStop` hears of it first (to keep the stack's folder, say).
 */
function guardRun(opts: {
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

/** A Stack of a benchmark's own, in a fresh folder, with the guardRun that ends it. */
export interface GuardedStack {
  stack: Stack;
  dataDir: string;
  /** Runs once however often it is called: `before`, then the stack stops and its folder goes. */
  cleanup(): Promise<void>;
  /** The run failed: cleanup keeps the stack's folder to look at. */
  fail(): void;
  /** Clears the watchdog once the run is over. */
  clear(): void;
  /** Cleanup has begun. */
  readonly stopping: boolean;
}

/**
 * A durable (fsync on) Stack on free ports in a new folder under the system's
 * temporary one (`name` its prefix), guarded by guardRun (BENCH_MAX_MIN). Its
 * cleanup runs `before` (what the bench started on the stack), stops the
 * stack and removes its folder unless `keepData` or the run failed.
 */
export async function guardedStack(opts: {
  name: string;
  keepData: boolean;
  maxMin: number;
  stack?: Pick<StackOptions, 'priorityOf' | 'external'>;
  before?(): Promise<void>;
}): Promise<GuardedStack> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), opts.name));
  const tools = provisionAll((m) => log(`provision: ${m}`));
  const ports = await ephemeralPorts(freePorts);
  const stack = new Stack({ dataDir, ports, tools, ephemeral: false, log, ...opts.stack });
  let failed = false;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await opts.before?.();
      log('stopping the stack');
      await stack.stop();
      if (opts.keepData || failed) log(`stack folder kept: ${dataDir}`);
      else fs.rmSync(dataDir, { recursive: true, force: true });
    })());
  const fail = () => {
    failed = true;
  };
  const guard = guardRun({
    maxMin: opts.maxMin,
    maxMinVariable: 'BENCH_MAX_MIN',
    cleanup,
    onStop: fail,
  });
  return {
    stack,
    dataDir,
    cleanup,
    fail,
    clear: () => guard.clear(),
    get stopping() {
      return cleaning !== undefined;
    },
  };
}
