/** Reading a topic back whole, as the benchmarks and the chaos run audit what reached Kafka. */
import { Kafka, logLevel } from 'kafkajs';
import { fixRequestQueueIdleLoop } from '../../src/events/kafkajs-request-queue.ts';

// kafkajs' idle loop, fixed as in every orderflow process (src/events/kafkajs-request-queue.ts).
fixRequestQueueIdleLoop();

/**
 * A quiet client for `brokers` (comma-separated) and the high watermark of
 * each partition of `topic` as it is now: where a read from the beginning ends.
 */
export async function topicEnds(
  brokers: string,
  clientId: string,
  topic: string,
): Promise<{ kafka: Kafka; ends: Map<number, number> }> {
  const kafka = new Kafka({ brokers: brokers.split(','), clientId, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return { kafka, ends: new Map(offsets.map((o) => [o.partition, Number(o.high)])) };
  } finally {
    await admin.disconnect();
  }
}
