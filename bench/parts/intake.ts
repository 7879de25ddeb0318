/**
 * bench/run.ts part `intake`: bench/intake.ts as it is (its own stack), with
 * npm start's settings and short defaults, its results written to a
 * temporary folder and read back into the report.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../scripts/lib/tools.ts';
import { log } from '../lib/e2e-kit.ts';

/**
 * Short settings for bench/intake.ts, used where the caller set none: the API
 * as npm start runs it (BENCH_NPM_START=1: relay mode, npm start's
 * environment, the whole stack busy) against the insert-only floor. The
 * async and inline start modes are not how npm start runs: `npm run
 * bench:intake` (or BENCH_TARGETS here) measures them.
 */
export const INTAKE_DEFAULTS: Record<string, string> = {
  BENCH_NPM_START: '1',
  BENCH_TARGETS: 'floor,api-relay',
  BENCH_DURATION_S: '5',
  BENCH_WARMUP_S: '2',
  BENCH_RATES: '300',
  BENCH_BURST_RATES: '',
  BENCH_IDLE_WAIT_S: '20',
  BENCH_RETRIES: '0',
  BENCH_DRAIN_S: '60',
  BENCH_MAX_MIN: '15',
};

export interface IntakePart {
  exitCode: number;
  markdown: string | null;
  json: unknown;
  env: Record<string, string>;
}

let stopChild: (() => void) | undefined;

/** Interrupts a running bench/intake.ts (it stops its stack and exits). */
export function stopIntake(): void {
  stopChild?.();
}

/** Runs bench/intake.ts as it is, results into a temporary folder, and reads them back. */
export async function runIntake(): Promise<IntakePart> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-bench-intake-'));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(INTAKE_DEFAULTS)) env[k] = process.env[k] ?? v;
  log(
    `intake: bench/intake.ts with ${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`,
  );
  try {
    const exitCode = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', path.join(projectRoot, 'bench/intake.ts')],
        {
          cwd: projectRoot,
          env: { ...process.env, ...env, BENCH_RESULTS_DIR: dir, BENCH_LABEL: '' },
          stdio: ['ignore', 'inherit', 'inherit'],
        },
      );
      stopChild = () => child.kill('SIGINT');
      child.once('exit', (code) => resolve(code ?? 1));
    });
    stopChild = undefined;
    const md = fs.readdirSync(dir).find((f) => f.endsWith('.md'));
    const json = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
    return {
      exitCode,
      env,
      markdown: md ? fs.readFileSync(path.join(dir, md), 'utf8') : null,
      json: json ? JSON.parse(fs.readFileSync(path.join(dir, json), 'utf8')) : null,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function renderIntake(r: IntakePart): string[] {
  const settings = Object.entries(r.env)
    .map(([k, v]) => `${k}=${v || '""'}`)
    .join(' ');
  return [
    '## Intake vs the insert-only floor (bench/intake.ts)',
    '',
    `bench/intake.ts run as it is (its own stack), exit code ${r.exitCode}, with ${settings}. ${
      r.env.BENCH_NPM_START === '1'
        ? 'BENCH_NPM_START=1, as `npm start` runs the API: it gets only what npm start gives it (LOG_LEVEL, NODE_ENV, DATABASE_POOL_SIZE and API_KEYS unset: info, development, 10, none), api-relay runs with the relay process beside it, and the whole stack is busy (the four workers and the two consumers process every order).'
        : '**Not npm start’s settings** (BENCH_NPM_START=0: the APIs at LOG_LEVEL=warn and NODE_ENV=production, only the orders worker running).'
    } Its report, unchanged but for the heading levels:`,
    '',
    ...(r.markdown ?? '(no report written)')
      .split('\n')
      .map((l) => (l.startsWith('#') ? `##${l}` : l)),
    '',
  ];
}
