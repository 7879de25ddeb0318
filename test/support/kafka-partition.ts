/** Where Kafka puts a keyed record, computed the way the producers do it. */
import { Partitioners } from 'kafkajs';

/** The partition the Java client (and kafkajs' DefaultPartitioner) maps `key` to on a topic of `partitions`. */
export function partitionOf(topic: string, key: string, partitions: number): number {
  return Partitioners.DefaultPartitioner()({
    topic,
    partitionMetadata: Array.from({ length: partitions }, (_, i) => ({
      partitionId: i,
      leader: 1,
      replicas: [1],
      isr: [1],
      partitionErrorCode: 0,
      offlineReplicas: [],
    })),
    message: { key, value: '' },
  });
}
