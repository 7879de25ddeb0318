import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { partitionOf } from '../support/kafka-partition.ts';

describe('Kafka broker (the stack’s)', () => {
  const kafka = new Kafka({
    brokers: inject('stack').KAFKA_BROKERS.split(','),
    clientId: 'smoke',
    logLevel: logLevel.WARN,
  });
  const admin = kafka.admin();
  const topic = `smoke-${randomUUID()}`;
  const partitions = 6;

  beforeAll(async () => {
    await admin.connect();
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions }],
      waitForLeaders: true,
    });
  });
  afterAll(async () => {
    await admin.disconnect();
  });

  it('delivers a keyed message from an idempotent producer to a consumer group, on its key’s partition', async () => {
    const producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    const groupId = `smoke-group-${randomUUID()}`;
    const consumer = kafka.consumer({ groupId });
    const key = `order-${randomUUID()}`;
    const expectedPartition = partitionOf(topic, key, partitions);

    await producer.connect();
    await consumer.connect();
    try {
      const [meta] = await producer.send({
        topic,
        acks: -1,
        messages: [{ key, value: JSON.stringify({ hello: 'kafka' }), headers: { ce_id: key } }],
      });
      expect(meta?.partition).toBe(expectedPartition);

      await consumer.subscribe({ topic, fromBeginning: true });
      const received = await new Promise<{
        partition: number;
        key: string;
        value: string;
        ceId: string;
      }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 30 s')), 30_000);
        void consumer.run({
          eachMessage: async ({ partition, message }) => {
            clearTimeout(timer);
            resolve({
              partition,
              key: message.key!.toString(),
              value: message.value!.toString(),
              ceId: message.headers?.ce_id?.toString() ?? '',
            });
          },
        });
      });
      expect(received).toEqual({
        partition: expectedPartition,
        key,
        value: '{"hello":"kafka"}',
        ceId: key,
      });
      // The group committed its position past the message: the broker reports it.
      await consumer.stop();
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      const position = committed?.partitions.find((p) => p.partition === expectedPartition);
      expect(position?.offset).toBe('1');
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
    }
  });
});
