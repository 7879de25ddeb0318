/** Benchmark settings from the environment besides scripts/lib/env-settings.ts. */
import type { Env } from '../../scripts/lib/env-settings.ts';

/** BENCH_LABEL as a file-name suffix: letters, digits, '_', '.' and '-' only. */
export const labelEnv = (env: Env = process.env): string =>
  (env.BENCH_LABEL ?? '').replace(/[^\w.-]/g, '');
