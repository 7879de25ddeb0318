/**
 * Settings from the environment (the benchmarks' BENCH_*, the chaos run's
 * CHAOS_*): checked once at start, a bad value stops the run.
 */

export type Env = Record<string, string | undefined>;

/** An integer from the environment within [min, max], or `def` when unset or empty. */
export function intEnv(
  name: string,
  def: number,
  min: number,
  max: number,
  env: Env = process.env,
): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name}=${raw}: expected an integer in [${min}, ${max}]`);
  return n;
}

/** A comma-separated list of `allowed` values (all of them when unset or empty). */
export function listEnv<T extends string>(
  name: string,
  allowed: readonly T[],
  env: Env = process.env,
): T[] {
  const raw = env[name] || allowed.join(',');
  return raw.split(',').map((v) => {
    const t = v.trim() as T;
    if (!allowed.includes(t)) throw new Error(`${name}: unknown value ${v}`);
    return t;
  });
}
