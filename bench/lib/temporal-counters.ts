/**
 * What the Temporal server did, from its own Prometheus counters: requests per
 * API operation (`service_requests`) and persistence calls per operation
 * (`persistence_requests`), summed over every other label. Read before and
 * after a counted window, their difference divided by the completed workflows
 * is the server's work per order: what a CPU figure alone cannot say.
 */

/** `<metric>:<operation>` → the counter's value, summed over the other labels. */
export type TemporalCounters = Record<string, number>;

const COUNTED = new Set(['service_requests', 'persistence_requests']);

/** Parses a Prometheus text exposition into the counters above (other series are ignored). */
export function parseTemporalCounters(text: string): TemporalCounters {
  const out: TemporalCounters = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+?)(?:_total)?\{([^}]*)\}\s+([0-9.eE+-]+)/.exec(line);
    if (!m || !COUNTED.has(m[1]!)) continue;
    const operation = /(?:^|,)operation="([^"]*)"/.exec(m[2]!)?.[1];
    if (!operation) continue;
    const key = `${m[1]}:${operation}`;
    out[key] = (out[key] ?? 0) + Number(m[3]);
  }
  return out;
}

/** The server's counters now; empty when its metrics endpoint does not answer within 2 s. */
export async function readTemporalCounters(metricsPort: number): Promise<TemporalCounters> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, {
      signal: AbortSignal.timeout(2000),
    });
    return res.ok ? parseTemporalCounters(await res.text()) : {};
  } catch {
    return {};
  }
}

/** Per unit of work: (after − before) ÷ units, for every counter that moved, largest first. */
export function countersPer(
  before: TemporalCounters,
  after: TemporalCounters,
  units: number,
): [string, number][] {
  if (units <= 0) return [];
  return Object.entries(after)
    .map(([k, v]): [string, number] => [k, (v - (before[k] ?? 0)) / units])
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
}

/** The sum over every operation of one counter (`service_requests` or `persistence_requests`) in a per-unit list. */
export function counterTotal(
  perUnit: readonly [string, number][],
  kind: 'service_requests' | 'persistence_requests',
): number {
  return perUnit.filter(([k]) => k.startsWith(`${kind}:`)).reduce((a, [, v]) => a + v, 0);
}
