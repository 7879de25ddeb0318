/**
 * Runs the operator CLI as operators run it (`node --import tsx
 * src/cli/orderflow.ts ...`, a child process) with the test stack's
 * configuration.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { inject } from 'vitest';

const projectRoot = path.resolve(import.meta.dirname, '../..');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI (bounded: 90 s); `env` adds to or overrides the stack's configuration. */
export function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const stack = inject('stack');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/orderflow.ts', ...args],
      {
        cwd: projectRoot,
        timeout: 90_000,
        env: {
          ...process.env,
          DATABASE_URL: stack.DATABASE_URL,
          TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
          TEMPORAL_NAMESPACE: 'default',
          KAFKA_BROKERS: stack.KAFKA_BROKERS,
          LOG_LEVEL: 'warn',
          // As the services under the tests: webhooks may target loopback.
          WEBHOOK_ALLOWED_TARGETS: 'loopback',
          ...env,
        },
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Parses stdout as the one JSON document it must be; the error shows what was printed. */
export function parseStdout<T = unknown>(run: CliRun): T {
  try {
    return JSON.parse(run.stdout) as T;
  } catch {
    throw new Error(
      `stdout is not one JSON document (exit ${run.code}):\n${run.stdout}\nstderr:\n${run.stderr}`,
    );
  }
}
