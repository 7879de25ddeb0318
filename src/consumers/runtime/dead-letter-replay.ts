/**
 * Listing and replaying dead letters. A replay re-delivers a group's dead
 * letters to that group only: each goes through the group's current decoder
 * and projection (after the fix was deployed) with the same processed-events
 * deduplication, so a replay that is interrupted or run twice has no second
 * effect. Progress is the committed offset of the consumer group
 * `<group>.dlq-replay` on the dead-letter topic; a dead letter that fails
 * again is dead-lettered anew (with the new error) and the replay moves on.
 * Replayed events take effect after newer events of the same order; both
 * projections are sums, so the result is the same.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../db/client.ts';
import type {
  EventProducer,
  KafkaAdmin,
  KafkaClient,
  KafkaRecord,
} from '../../events/kafka-types.ts';
import type { Logger } from '../../shared/logger.ts';
import { projectionHandles, type Projection } from '../projections/projection.ts';
import {
  deadLetterOf,
  deadLetterTopicOf,
  readDeadLetter,
  type DeadLetter,
} from './dead-letters.ts';
import { decodeOrderPlaced, PoisonMessageError } from './order-placed-decoder.ts';
import { applyOnce } from './processed-events.ts';

/** The consumer group whose offsets record how far `groupId`'s dead letters were replayed. */
export const replayGroupOf = (groupId: string): string => `${groupId}.dlq-replay`;

/** A read stalls when no record arrives for this long although the high watermark was not reached. */
const READ_IDLE_TIMEOUT_MS = 30_000;

/**
 * Reads `topic` with consumer group `groupId` from its committed offsets (or
 * the start) up to the high watermarks as they were when called; offsets are
 * committed after each record when `commit`.
 */
async function readToHighWatermarks({
  kafka,
  admin,
  groupId,
  topic,
  commit,
  handle,
  onProgress,
}: {
  kafka: KafkaClient;
  admin: KafkaAdmin;
  groupId: string;
  topic: string;
  commit: boolean;
  handle: (partition: number, message: KafkaRecord) => Promise<void>;
  /** Called with the records read so far of those this read will read. */
  onProgress?: (done: number, total: number) => void;
}): Promise<void> {
  const [watermarks, offsets] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  const committed = new Map(
    (offsets.find((t) => t.topic === topic)?.partitions ?? []).map((p) => [
      p.partition,
      BigInt(p.offset),
    ]),
  );
  const ends = new Map<number, bigint>();
  let total = 0n;
  for (const { partition, low, high } of watermarks) {
    const start = committed.get(partition) ?? -1n;
    const from = start >= 0n ? start : BigInt(low);
    if (from < BigInt(high)) {
      ends.set(partition, BigInt(high));
      total += BigInt(high) - from;
    }
  }
  let done = 0;
  onProgress?.(done, Number(total));
  if (ends.size === 0) return;

  // Short fetch waits: the read ends (and disconnects) soon after the last record.
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 500 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolvePromise, rejectPromise) => {
      let idle: NodeJS.Timeout | undefined;
      const resolve = () => {
        clearTimeout(idle);
        resolvePromise();
      };
      const reject = (err: unknown) => {
        clearTimeout(idle);
        rejectPromise(err instanceof Error ? err : new Error(String(err)));
      };
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(
          () => reject(new Error(`reading ${topic} stalled before its high watermark`)),
          READ_IDLE_TIMEOUT_MS,
        );
      };
      touch();
      consumer.onCrash(({ error, restart }) => {
        if (!restart) reject(error);
      });
      consumer
        .run({
          autoCommit: false,
          eachBatchAutoResolve: false,
          eachBatch: async (payload) => {
            const { partition, messages } = payload.batch;
            const end = ends.get(partition);
            for (const message of messages) {
              if (end === undefined || BigInt(message.offset) >= end || !payload.isRunning()) break;
              touch();
              await handle(partition, message);
              onProgress?.(++done, Number(total));
              payload.resolveOffset(message.offset);
              const next = (BigInt(message.offset) + 1n).toString();
              if (commit) {
                await payload.commitOffsetsIfNecessary({
                  topics: [{ topic, partitions: [{ partition, offset: next }] }],
                });
              }
              if (BigInt(next) >= end) {
                ends.delete(partition);
                if (ends.size === 0) resolve();
              }
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}

export interface ListedDeadLetter extends DeadLetter {
  /** Whether a replay of its group has passed it. */
  replayed: boolean;
}

/** Every dead letter of `topic` (all groups, or `groupId`'s), oldest first. */
export async function listDeadLetters({
  kafka,
  admin,
  topic,
  groupId,
}: {
  kafka: KafkaClient;
  admin: KafkaAdmin;
  topic: string;
  groupId?: string;
}): Promise<ListedDeadLetter[]> {
  const dlq = deadLetterTopicOf(topic);
  const letters: DeadLetter[] = [];
  // A throwaway group (kafkajs reads only through groups), deleted afterwards.
  const reader = `orderflow.dlq-list.${randomUUID()}`;
  try {
    await readToHighWatermarks({
      kafka,
      admin,
      groupId: reader,
      topic: dlq,
      commit: false,
      handle: async (partition, message) => {
        const letter = readDeadLetter(partition, message);
        if (!groupId || letter.group === groupId) letters.push(letter);
      },
    });
  } finally {
    await admin.deleteGroups([reader]).catch(() => {});
  }
  const replayedUpTo = new Map<string, Map<number, bigint>>();
  for (const group of new Set(letters.map((l) => l.group))) {
    const [offsets] = await admin.fetchOffsets({ groupId: replayGroupOf(group), topics: [dlq] });
    replayedUpTo.set(
      group,
      new Map((offsets?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)])),
    );
  }
  return letters
    .map((l) => ({
      ...l,
      replayed: BigInt(l.offset) < (replayedUpTo.get(l.group)?.get(l.partition) ?? -1n),
    }))
    .sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

export interface ReplayResult {
  groupId: string;
  /** Dead letters whose effect was applied now. */
  replayed: number;
  /** Dead letters whose event the group had processed already. */
  duplicates: number;
  /** Dead letters that failed again and were dead-lettered anew. */
  failed: number;
  /** Dead letters of other groups, or of event types the group ignores. */
  skipped: number;
}

/** Replays `groupId`'s dead letters not replayed before, up to the end of the dead-letter topic as it is now. */
export async function replayDeadLetters({
  kafka,
  admin,
  db,
  producer,
  groupId,
  projection,
  topic,
  log,
  onProgress,
}: {
  kafka: KafkaClient;
  admin: KafkaAdmin;
  db: Db;
  /** Connected; re-dead-letters records that fail again. */
  producer: EventProducer;
  groupId: string;
  projection: Projection;
  topic: string;
  log: Logger;
  /** Dead-letter records read so far (of every group: others' are skipped), of those this replay reads. */
  onProgress?: (progress: { done: number; total: number; failed: number }) => void;
}): Promise<ReplayResult> {
  const dlq = deadLetterTopicOf(topic);
  const result: ReplayResult = { groupId, replayed: 0, duplicates: 0, failed: 0, skipped: 0 };
  const failAgain = async (message: KafkaRecord, letter: DeadLetter, error: string) => {
    await producer.send({
      topic: dlq,
      acks: -1,
      messages: [
        deadLetterOf(message, {
          origin: letter.origin,
          groupId,
          error,
          attempts: letter.attempts + 1,
        }),
      ],
    });
    result.failed += 1;
    log.warn({ groupId, eventId: letter.eventId, error }, 'dead letter failed again');
  };
  await readToHighWatermarks({
    kafka,
    admin,
    groupId: replayGroupOf(groupId),
    topic: dlq,
    commit: true,
    onProgress: (done, total) => onProgress?.({ done, total, failed: result.failed }),
    handle: async (partition, message) => {
      const letter = readDeadLetter(partition, message);
      if (letter.group !== groupId) {
        result.skipped += 1;
        return;
      }
      let decoded;
      try {
        decoded = decodeOrderPlaced(message);
      } catch (err) {
        if (!(err instanceof PoisonMessageError)) throw err;
        return failAgain(message, letter, err.message);
      }
      if (decoded.kind === 'other' || !projectionHandles(projection, decoded.kind)) {
        result.skipped += 1;
        return;
      }
      const { origin } = letter;
      const record = {
        event: decoded.event,
        topic: origin.topic,
        partition: origin.partition,
        offset: /^\d+$/.test(origin.offset) ? origin.offset : '-1',
      };
      try {
        const { applied } = await applyOnce(db, groupId, projection, [record]);
        if (applied.length > 0) result.replayed += 1;
        else result.duplicates += 1;
      } catch (err) {
        // Without the database nothing can be replayed: stop here, the next replay resumes.
        await db.$queryRaw`SELECT 1`;
        return failAgain(message, letter, err instanceof Error ? err.message : String(err));
      }
    },
  });
  return result;
}
