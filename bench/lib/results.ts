/** Where the benchmarks write their results: BENCH_RESULTS_DIR, else bench/results. */
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../scripts/lib/tools.ts';

export function resultsDir(): string {
  const dir = process.env.BENCH_RESULTS_DIR || path.join(projectRoot, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/**
 * `<kind>-<date>[-<label>]` in `dir`, or with -2, -3, … when a file of that
 * name with one of `exts` is there already: the path without its extension.
 */
export function freeResultBase(
  dir: string,
  kind: string,
  date: string,
  label: string,
  exts: string[],
): string {
  const base = `${kind}-${date}${label ? `-${label}` : ''}`;
  for (let i = 1; i < 1000; i++) {
    const name = i === 1 ? base : `${base}-${i}`;
    if (!exts.some((e) => fs.existsSync(path.join(dir, `${name}.${e}`))))
      return path.join(dir, name);
  }
  throw new Error('too many result files for one day');
}
