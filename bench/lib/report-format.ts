/** Number formatting shared by the markdown reports of bench/run.ts and its parts. */

/** `x` with `d` decimals; "–" when missing or not finite. */
export const fmtNum = (x: number | null | undefined, d = 0): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(d);

/** Cores per process, busiest first, those below 0.01 left out: "temporal 0.93, api 0.2". */
export function coreLine(c: Record<string, number>): string {
  return Object.entries(c)
    .filter(([, v]) => v >= 0.01)
    .sort(([, x], [, y]) => y - x)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** "19.8 ÷ 32.5 = **61%**"; the percentage is "–" when it cannot be computed. */
export function ratioCell(numerator: number, denominator: number): string {
  const ratio = numerator / denominator;
  const pct = Number.isFinite(ratio) && denominator > 0 ? `**${(ratio * 100).toFixed(0)}%**` : '–';
  return `${fmtNum(numerator, 1)} ÷ ${fmtNum(denominator, 1)} = ${pct}`;
}

/** KiB as whole MiB; `missing` when there is no value. */
export const mib = (kib: number | undefined, missing = '–'): string =>
  kib === undefined ? missing : (kib / 1024).toFixed(0);
