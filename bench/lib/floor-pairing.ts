/**
 * The Temporal-floor ratio: orderflow's sustained rate ÷ the floor's, where
 * each side is the mean of its windows. With orderflow's windows run around
 * the floor's (orderflow, floor, floor, orderflow: bench/run.ts,
 * BENCH_FLOOR_PAIRED), a drift of the machine's speed over the sequence weighs
 * on both sides alike; with none, there is no ratio.
 */
import { mean, round } from './stats.ts';

export interface FloorRatio {
  /** The mean of the floor windows' workflows/s. */
  workflowsPerS: number;
  orderflowRate: number | null;
  orderflowWindowRates?: number[];
  ratio: number | null;
}

export function pairWithOrderflow<T extends FloorRatio>(floor: T, orderflowRates: number[]): T {
  if (orderflowRates.length === 0) return floor;
  const orderflowRate = round(mean(orderflowRates), 2);
  return {
    ...floor,
    orderflowWindowRates: orderflowRates,
    orderflowRate,
    ratio: floor.workflowsPerS > 0 ? round(orderflowRate / floor.workflowsPerS, 3) : null,
  };
}
