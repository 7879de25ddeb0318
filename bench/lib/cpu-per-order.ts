/**
 * CPU per completed order, from the cores per stack process that
 * coresBetween() measures: cores × seconds × 1000 ÷ orders, split into the
 * broker (the Temporal server's process tree / Redis), the app processes,
 * PostgreSQL and Kafka. The runner (load generator), maildev and the other
 * system's idle processes are left out.
 */

export type System = 'orderflow' | 'peer';

/** orderflow's own processes: the API, the relay, the workers and the consumers. */
export const isOrderflowApp = (name: string): boolean =>
  name === 'api' || name === 'relay' || name.startsWith('worker-') || name.startsWith('consumer-');
/** The BullMQ peer's API and workers. */
export const isPeerApp = (name: string): boolean => name.startsWith('peer-');

export const BROKER: Record<System, string> = { orderflow: 'temporal', peer: 'redis' };

export interface CpuPerOrder {
  broker: number;
  app: number;
  postgresql: number;
  kafka: number;
  /** The four above together. */
  total: number;
}

/** CPU milliseconds per unit of the processes `pick` selects; NaN without units. */
export function cpuMsPer(
  cores: Record<string, number>,
  seconds: number,
  units: number,
  pick: (name: string) => boolean,
): number {
  if (!(units > 0)) return NaN;
  const sum = Object.entries(cores)
    .filter(([k]) => pick(k))
    .reduce((a, [, v]) => a + v, 0);
  return Math.round(((sum * seconds * 1000) / units) * 100) / 100;
}

export function cpuMsPerOrder(
  system: System,
  cores: Record<string, number>,
  seconds: number,
  orders: number,
): CpuPerOrder {
  const isApp = system === 'orderflow' ? isOrderflowApp : isPeerApp;
  const per = (pick: (name: string) => boolean) => cpuMsPer(cores, seconds, orders, pick);
  return {
    broker: per((k) => k === BROKER[system]),
    app: per(isApp),
    postgresql: per((k) => k === 'postgresql'),
    kafka: per((k) => k === 'kafka'),
    total: per((k) => k === BROKER[system] || isApp(k) || k === 'postgresql' || k === 'kafka'),
  };
}

const f = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(2));

/** A markdown table: one row per measurement. */
export function cpuPerOrderTable(
  rows: { name: string; system: System; orders: number; perOrder: CpuPerOrder }[],
): string[] {
  return [
    '| run | orders | broker (Temporal / Redis) | app processes | PostgreSQL | Kafka | together |',
    '|---|--:|--:|--:|--:|--:|--:|',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.orders} | ${f(r.perOrder.broker)} | ${f(r.perOrder.app)} | ${f(r.perOrder.postgresql)} | ${f(r.perOrder.kafka)} | **${f(r.perOrder.total)}** |`,
    ),
  ];
}
