/**
 * The machine-speed probe (bench/probes/machine-speed.ts) run beside the
 * bench, and its samples summarised per measured window: on a shared machine
 * whose speed drifts, a window's rate is read beside how fast the machine was
 * then. Lower milliseconds: a faster machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { projectRoot } from '../../scripts/lib/tools.ts';
import type { Window } from './closed-loop.ts';
import { median, round } from './stats.ts';

export interface SpeedSample {
  /** Epoch ms. */
  at: number;
  /** CPU ms of the arithmetic loop (in the L1 cache). */
  aluMs: number;
  /** CPU ms of the random walk over 64 MiB (misses the caches). */
  memMs: number;
}

/** Medians of the samples within a window; null without any. */
export interface MachineSpeed {
  samples: number;
  aluMs: number;
  memMs: number;
}

export function speedIn(samples: readonly SpeedSample[], w: Window): MachineSpeed | null {
  const inside = samples.filter((s) => s.at >= w.from && s.at <= w.to);
  if (inside.length === 0) return null;
  return {
    samples: inside.length,
    aluMs: round(median(inside.map((s) => s.aluMs))!, 1),
    memMs: round(median(inside.map((s) => s.memMs))!, 1),
  };
}

export interface SpeedProbe {
  readonly samples: readonly SpeedSample[];
  stop(): void;
}

/** Starts the probe as a child process for at most `maxS` seconds. */
export function startSpeedProbe(maxS: number): SpeedProbe {
  const samples: SpeedSample[] = [];
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(projectRoot, 'bench/probes/machine-speed.ts'), String(maxS)],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      samples.push(JSON.parse(line) as SpeedSample);
    } catch {
      /* not a sample */
    }
  });
  child.on('error', () => {}); // no probe: windows report no speed
  return {
    samples,
    stop: () => void child.kill('SIGTERM'),
  };
}
