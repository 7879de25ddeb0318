/**
 * orderflow's consumer groups: each reads `orders.placed` on its own offsets
 * and keeps its own projection.
 */
import { analyticsProjection } from '../projections/analytics.ts';
import { inventoryProjection } from '../projections/inventory.ts';
import type { Projection } from '../projections/projection.ts';

export interface ConsumerGroupDefinition {
  /** Short name: process name, CLI argument. */
  name: string;
  /** Kafka consumer group id; also the group's key in processed_events. */
  groupId: string;
  description: string;
  projection: Projection;
}

export const consumerGroups = {
  analytics: {
    name: 'analytics',
    groupId: 'orderflow.analytics',
    description: 'orders and revenue per day and currency (analytics_daily)',
    projection: analyticsProjection,
  },
  inventory: {
    name: 'inventory',
    groupId: 'orderflow.inventory',
    description: 'stock reserved per SKU, released by order.cancelled (stock_reservations)',
    projection: inventoryProjection,
  },
} as const satisfies Record<string, ConsumerGroupDefinition>;

export type ConsumerGroupName = keyof typeof consumerGroups;

/** A group by name (`analytics`) or Kafka group id (`orderflow.analytics`). */
export function findConsumerGroup(nameOrId: string): ConsumerGroupDefinition | undefined {
  return Object.values(consumerGroups).find((g) => g.name === nameOrId || g.groupId === nameOrId);
}
