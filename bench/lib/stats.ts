/** Arithmetic the benchmarks share: rounding, percentiles, medians, counts per time window. */

export const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The arithmetic mean; NaN for none. */
export const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The `p`th percentile (0-100, nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Count, p50, p90, p99, max and min of `values` (any order). */
export function summary(values: number[]) {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s.at(-1) ?? NaN,
    min: s[0] ?? NaN,
  };
}
export type Summary = ReturnType<typeof summary>;

/** The median of `xs` (the mean of the middle two for an even count); undefined when empty. */
export function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1]! + s[m]!) / 2;
}

/** Most timestamps (ms) in any half-open window [t, t + widthMs), and where it starts. */
export function maxInWindow(sorted: number[], widthMs: number): { count: number; start: number } {
  let best = { count: 0, start: sorted[0] ?? 0 };
  for (let i = 0, j = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! - sorted[i]! < widthMs) j++;
    if (j - i > best.count) best = { count: j - i, start: sorted[i]! };
  }
  return best;
}

/**
 * How many timestamps (ms) fall in each whole second since `t0`, up to the
 * last one; a timestamp before `t0` counts in the first second.
 */
export function perSecond(times: number[], t0: number): number[] {
  const out: number[] = [];
  for (const t of times) {
    const k = Math.max(0, Math.floor((t - t0) / 1000));
    while (out.length <= k) out.push(0);
    out[k]!++;
  }
  return out;
}

/** The sum of the values whose key `pick` selects (cores or RSS of a group of processes). */
export function sumWhere(values: Record<string, number>, pick: (name: string) => boolean): number {
  return Object.entries(values)
    .filter(([k]) => pick(k))
    .reduce((a, [, v]) => a + v, 0);
}
