/**
 * Dead letters: a record a group could not process is copied, unchanged (key,
 * value, original headers), to `<topic>.dlq` with why and where from in
 * `x-*` headers, so the group can move on and an operator can replay it later.
 */
import type { KafkaHeaders, KafkaRecord, OutgoingRecord } from '../../events/kafka-types.ts';
import { headerStrings } from './order-placed-decoder.ts';

export const deadLetterTopicOf = (topic: string): string => `${topic}.dlq`;

/** Headers a dead letter carries besides the original ones. */
export const DeadLetterHeader = {
  error: 'x-error',
  group: 'x-group',
  originTopic: 'x-origin-topic',
  originPartition: 'x-origin-partition',
  originOffset: 'x-origin-offset',
  originTimestamp: 'x-origin-timestamp',
  attempts: 'x-attempts',
  deadLetteredAt: 'x-dead-lettered-at',
} as const;

const X_HEADERS = new Set<string>(Object.values(DeadLetterHeader));

/** Where a record was read when it failed. */
export interface Origin {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
}

/** Error text is bounded: it travels in a header. */
const MAX_ERROR_LENGTH = 2_000;

/** The dead letter of `message` (read at `origin` by `groupId`), failed with `error` after `attempts`. */
export function deadLetterOf(
  message: Pick<KafkaRecord, 'key' | 'value' | 'headers'>,
  {
    origin,
    groupId,
    error,
    attempts,
  }: { origin: Origin; groupId: string; error: string; attempts: number },
): OutgoingRecord {
  // A replayed dead letter that fails again keeps only its original headers.
  const original: KafkaHeaders = Object.fromEntries(
    Object.entries(message.headers ?? {}).filter(([name]) => !X_HEADERS.has(name)),
  );
  return {
    key: message.key,
    value: message.value,
    headers: {
      ...original,
      [DeadLetterHeader.error]: error.slice(0, MAX_ERROR_LENGTH),
      [DeadLetterHeader.group]: groupId,
      [DeadLetterHeader.originTopic]: origin.topic,
      [DeadLetterHeader.originPartition]: String(origin.partition),
      [DeadLetterHeader.originOffset]: origin.offset,
      [DeadLetterHeader.originTimestamp]: origin.timestamp,
      [DeadLetterHeader.attempts]: String(attempts),
      [DeadLetterHeader.deadLetteredAt]: new Date().toISOString(),
    },
  };
}

/** A dead letter as operators see it. */
export interface DeadLetter {
  /** Where the dead letter itself is stored. */
  partition: number;
  offset: string;
  group: string;
  error: string;
  attempts: number;
  origin: Origin;
  deadLetteredAt: string;
  key: string | null;
  eventId: string | null;
  eventType: string | null;
}

/** Reads a dead letter's headers; origin fields a foreign producer left out are empty. */
export function readDeadLetter(partition: number, message: KafkaRecord): DeadLetter {
  const h = headerStrings(message.headers);
  return {
    partition,
    offset: message.offset,
    group: h[DeadLetterHeader.group] ?? '',
    error: h[DeadLetterHeader.error] ?? '',
    attempts: Number(h[DeadLetterHeader.attempts] ?? 0),
    origin: {
      topic: h[DeadLetterHeader.originTopic] ?? '',
      partition: Number(h[DeadLetterHeader.originPartition] ?? -1),
      offset: h[DeadLetterHeader.originOffset] ?? '',
      timestamp: h[DeadLetterHeader.originTimestamp] ?? '',
    },
    deadLetteredAt: h[DeadLetterHeader.deadLetteredAt] ?? '',
    key: message.key?.toString() ?? null,
    eventId: h.ce_id ?? null,
    eventType: h.ce_type ?? null,
  };
}
