/**
 * Attribute names of OpenTelemetry's messaging and database semantic
 * conventions (v1.28). They are still "incubating", and OpenTelemetry advises
 * copying incubating names rather than importing them, since they may change
 * between minor versions of the package.
 */
import type { Attributes } from '@opentelemetry/api';

export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
export const ATTR_MESSAGING_DESTINATION_PARTITION_ID = 'messaging.destination.partition.id';
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name';
export const ATTR_MESSAGING_MESSAGE_ID = 'messaging.message.id';
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';
export const ATTR_MESSAGING_KAFKA_MESSAGE_KEY = 'messaging.kafka.message.key';
export const ATTR_MESSAGING_KAFKA_OFFSET = 'messaging.kafka.offset';
export const ATTR_DB_SYSTEM = 'db.system';
export const ATTR_DB_OPERATION_NAME = 'db.operation.name';
export const ATTR_DB_COLLECTION_NAME = 'db.collection.name';

/** Where a Kafka span's record is and what it is; the fields not known yet are left out. */
export interface KafkaSpanRecord {
  topic: string;
  messageId: string;
  key?: string;
  partition?: number;
  offset?: string;
  /** The consumer group processing the record (process spans). */
  consumerGroup?: string;
  /** Records processed together in one transaction, when more than one. */
  batchCount?: number;
}

/** The messaging attributes of a Kafka `send` (producer) or `process` (consumer) span. */
export function kafkaSpanAttributes(
  operation: 'send' | 'process',
  record: KafkaSpanRecord,
): Attributes {
  const { topic, messageId, key, partition, offset, consumerGroup, batchCount } = record;
  return {
    [ATTR_MESSAGING_SYSTEM]: 'kafka',
    [ATTR_MESSAGING_OPERATION_TYPE]: operation,
    [ATTR_MESSAGING_OPERATION_NAME]: operation,
    [ATTR_MESSAGING_DESTINATION_NAME]: topic,
    ...(consumerGroup !== undefined ? { [ATTR_MESSAGING_CONSUMER_GROUP_NAME]: consumerGroup } : {}),
    ...(partition !== undefined
      ? { [ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(partition) }
      : {}),
    ...(offset !== undefined ? { [ATTR_MESSAGING_KAFKA_OFFSET]: Number(offset) } : {}),
    [ATTR_MESSAGING_MESSAGE_ID]: messageId,
    ...(key !== undefined ? { [ATTR_MESSAGING_KAFKA_MESSAGE_KEY]: key } : {}),
    ...(batchCount !== undefined && batchCount > 1
      ? { [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: batchCount }
      : {}),
  };
}
