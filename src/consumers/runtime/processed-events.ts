/**
 * Exactly-once effects on top of at-least-once delivery: a group records each
 * event it processes in `processed_events` in the same transaction as the
 * effect. The primary key (group, source, id) decides; an event recorded
 * before is a duplicate and changes nothing.
 */
import type { Db } from '../../db/client.ts';
import type { Projection, Tx } from '../projections/projection.ts';
import type { OrderEvent } from './order-placed-decoder.ts';

/** An event and where the group read it. */
export interface SourcedEvent {
  event: OrderEvent;
  topic: string;
  partition: number;
  offset: string;
}

export interface ApplyResult {
  /** Events whose effect this call committed. */
  applied: SourcedEvent[];
  /** Events recorded before (or twice in the input): acknowledged without effect. */
  duplicates: SourcedEvent[];
}

const eventKey = ({ event }: SourcedEvent): string => `${event.source}\u0000${event.id}`;

/** Records the events as processed by `groupId`; returns those that were not recorded before. */
async function recordProcessed(
  tx: Tx,
  groupId: string,
  records: readonly SourcedEvent[],
): Promise<SourcedEvent[]> {
  const inserted = await tx.$queryRaw<{ event_source: string; event_id: string }[]>`
    INSERT INTO processed_events (group_id, event_source, event_id, topic, partition, "offset")
    SELECT ${groupId}, r.event_source, r.event_id, r.topic, r.partition, r."offset"
    FROM unnest(
      ${records.map((r) => r.event.source)}::text[],
      ${records.map((r) => r.event.id)}::text[],
      ${records.map((r) => r.topic)}::text[],
      ${records.map((r) => r.partition)}::int[],
      ${records.map((r) => r.offset)}::bigint[]
    ) AS r(event_source, event_id, topic, partition, "offset")
    ON CONFLICT DO NOTHING
    RETURNING event_source, event_id`;
  const fresh = new Set(inserted.map((r) => `${r.event_source}\u0000${r.event_id}`));
  return records.filter((r) => fresh.has(eventKey(r)));
}

/**
 * Applies the events' effects to `projection` once per group: one transaction
 * records them and applies the ones not processed before. Offsets may be
 * committed once this resolves.
 */
export async function applyOnce(
  db: Db,
  groupId: string,
  projection: Projection,
  records: readonly SourcedEvent[],
): Promise<ApplyResult> {
  const seen = new Set<string>();
  const unique: SourcedEvent[] = [];
  const duplicates: SourcedEvent[] = [];
  for (const record of records) {
    const key = eventKey(record);
    if (seen.has(key)) duplicates.push(record);
    else unique.push(record);
    seen.add(key);
  }
  if (unique.length === 0) return { applied: [], duplicates };
  const applied = await db.$transaction(
    async (tx) => {
      const fresh = await recordProcessed(tx, groupId, unique);
      if (fresh.length > 0)
        await projection.apply(
          tx,
          fresh.map((r) => r.event),
        );
      return fresh;
    },
    // Waiting for a pooled connection is normal when every partition is busy.
    { maxWait: 30_000, timeout: 60_000 },
  );
  const appliedSet = new Set(applied);
  duplicates.push(...unique.filter((r) => !appliedSet.has(r)));
  return { applied, duplicates };
}

/** Forgets everything `groupId` processed and empties its projection, in one transaction. */
export async function clearGroupState(
  db: Db,
  groupId: string,
  projection: Projection,
): Promise<{ forgotten: number }> {
  return db.$transaction(async (tx) => {
    const forgotten =
      await tx.$executeRaw`DELETE FROM processed_events WHERE group_id = ${groupId}`;
    await projection.clear(tx);
    return { forgotten };
  });
}
