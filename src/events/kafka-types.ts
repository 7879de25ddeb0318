/**
 * orderflow's own view of a Kafka client: the records, producer, consumer and
 * admin operations the services, consumers and CLI use, and nothing more. Only
 * src/events/kafka.ts knows which library implements them (kafkajs today), so
 * the client can be swapped there without touching the rest of src/.
 */
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';

/** Header values as Kafka carries them: bytes or text, a repeated header as an array. */
export type KafkaHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

/** A record to send; the key picks the partition unless `partition` is set. */
export interface OutgoingRecord {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: KafkaHeaders;
  /** Milliseconds since the epoch, as a string. */
  timestamp?: string;
  partition?: number;
}

/** A record as read from a partition. */
export interface KafkaRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: KafkaHeaders;
  /** Milliseconds since the epoch, as a string. */
  timestamp: string;
  /** A string: Kafka offsets exceed 2^53. */
  offset: string;
}

/** Where the broker stored a sent record (per topic-partition of the request). */
export interface SentRecordMetadata {
  topicName: string;
  partition: number;
  offset?: string;
  baseOffset?: string;
}

/** Retries of one client operation: attempts after the first, and how long they may take. */
export interface RetrySettings {
  retries?: number;
  initialRetryTime?: number;
  maxRetryTime?: number;
}

/** Overrides of the client's defaults (tests shorten timeouts or route through a fault proxy). */
export interface KafkaClientSettings {
  clientId?: string;
  connectionTimeout?: number;
  requestTimeout?: number;
  retry?: RetrySettings;
  /** Opens the TCP (or TLS) connection to a broker. */
  socketFactory?: (args: {
    host: string;
    port: number;
    ssl: ConnectionOptions;
    onConnect: () => void;
  }) => Socket;
}

export interface ProducerSettings {
  retry?: RetrySettings;
}

export interface ConsumerSettings {
  groupId: string;
  allowAutoTopicCreation?: boolean;
  sessionTimeout?: number;
  heartbeatInterval?: number;
  rebalanceTimeout?: number;
  /** How long a fetch waits for records before it answers empty. */
  maxWaitTimeInMs?: number;
  /** Bytes of records a fetch waits for (up to maxWaitTimeInMs) before it answers. */
  minBytes?: number;
}

/**
 * A Kafka client: makes consumers and admin clients (each connected by its
 * user); producers come from createOrderEventsProducer, which sets what order
 * events need (acks, ordering, the partitioner).
 */
export interface KafkaClient {
  consumer(settings: ConsumerSettings): EventConsumer;
  admin(): KafkaAdmin;
}

export interface EventProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  /** Resolves once the broker acknowledged the records (`acks: -1`: all in-sync replicas). */
  send(request: {
    topic: string;
    acks?: number;
    messages: OutgoingRecord[];
  }): Promise<SentRecordMetadata[]>;
}

/**
 * Records of one partition handed to `eachBatch`, in offset order, with the
 * controls of the consumer's group membership and offsets.
 */
export interface RecordBatch {
  batch: { topic: string; partition: number; messages: KafkaRecord[] };
  /** Marks `offset` as processed (the next fetch of this partition starts after it). */
  resolveOffset(offset: string): void;
  /** Commits the given offsets (the next record to read) now, or when the consumer's commit policy says so. */
  commitOffsetsIfNecessary(offsets: {
    topics: { topic: string; partitions: { partition: number; offset: string }[] }[];
  }): Promise<void>;
  heartbeat(): Promise<void>;
  /** False once the consumer is stopping. */
  isRunning(): boolean;
  /** True once a rebalance has taken the partition away. */
  isStale(): boolean;
}

export interface ConsumerRunSettings {
  autoCommit?: boolean;
  eachBatchAutoResolve?: boolean;
  partitionsConsumedConcurrently?: number;
  eachBatch?: (batch: RecordBatch) => Promise<void>;
  eachMessage?: (payload: {
    topic: string;
    partition: number;
    message: KafkaRecord;
  }) => Promise<void>;
}

/** A consumer group's state and members as the broker describes them. */
export interface GroupDescription {
  groupId: string;
  /** Stable, PreparingRebalance, CompletingRebalance, Empty, Dead. */
  state: string;
  members: { memberId: string; clientId: string; clientHost: string }[];
}

/** Why a consumer stopped on its own; `restart` says whether the client restarts it. */
export interface ConsumerCrash {
  error: Error;
  restart: boolean;
}

/** What a member was given when it joined its group: partitions by topic. */
export interface GroupJoin {
  memberId: string;
  memberAssignment: Record<string, number[]>;
}

export interface EventConsumer {
  connect(): Promise<void>;
  /** Stops fetching, waits for the batches in hand, leaves the group. */
  disconnect(): Promise<void>;
  subscribe(subscription: { topics: string[]; fromBeginning?: boolean }): Promise<void>;
  /** Starts consuming; resolves once running. */
  run(settings: ConsumerRunSettings): Promise<void>;
  describeGroup(): Promise<GroupDescription>;
  /** Commits the offsets (the next record to read of each partition) now, as a member of the group. */
  commitOffsets(offsets: { topic: string; partition: number; offset: string }[]): Promise<void>;
  onCrash(listener: (crash: ConsumerCrash) => void): void;
  onGroupJoin(listener: (join: GroupJoin) => void): void;
}

export interface TopicSpec {
  topic: string;
  numPartitions?: number;
  configEntries?: { name: string; value: string }[];
}

/** High and low watermarks of a partition, and the offset (the high one) kafkajs reports as `offset`. */
export interface PartitionWatermarks {
  partition: number;
  offset: string;
  high: string;
  low: string;
}

export interface PartitionOffset {
  partition: number;
  offset: string;
}

/** Administration of topics and consumer groups (connected by its user). */
export interface KafkaAdmin {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  listTopics(): Promise<string[]>;
  /** True when it created the topics; fails with TOPIC_ALREADY_EXISTS when one exists. */
  createTopics(request: { topics: TopicSpec[]; waitForLeaders?: boolean }): Promise<boolean>;
  fetchTopicMetadata(request: { topics: string[] }): Promise<{
    topics: { name: string; partitions: { partitionId: number }[] }[];
  }>;
  fetchTopicOffsets(topic: string): Promise<PartitionWatermarks[]>;
  /** Per partition, the first offset at or after `timestamp` (ms), or the high watermark. */
  fetchTopicOffsetsByTimestamp(topic: string, timestamp?: number): Promise<PartitionOffset[]>;
  /** Committed offsets of a group; '-1' where it never committed. */
  fetchOffsets(request: {
    groupId: string;
    topics: string[];
  }): Promise<{ topic: string; partitions: PartitionOffset[] }[]>;
  setOffsets(request: {
    groupId: string;
    topic: string;
    partitions: PartitionOffset[];
  }): Promise<void>;
  describeGroups(groupIds: string[]): Promise<{ groups: GroupDescription[] }>;
  deleteGroups(groupIds: string[]): Promise<unknown>;
  /** Tests remove the topics they created. */
  deleteTopics(request: { topics: string[] }): Promise<void>;
}
