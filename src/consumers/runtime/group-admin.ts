/**
 * Operating a consumer group from outside its processes: its state and lag,
 * and moving its offsets to rebuild its projection from the log.
 */
import type { Db } from '../../db/client.ts';
import type { KafkaAdmin } from '../../events/kafka-types.ts';
import type { Projection } from '../projections/projection.ts';
import { groupLag, type PartitionLag } from './metrics.ts';
import { clearGroupState } from './processed-events.ts';

/** An operation that is refused as asked (group running, log truncated); the message says why. */
export class GroupOperationError extends Error {
  override name = 'GroupOperationError';
}

export interface GroupStatus {
  groupId: string;
  /** Kafka's group state: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead. */
  state: string;
  members: { memberId: string; clientId: string; host: string }[];
  partitions: PartitionLag[];
  lag: number;
}

/** The group's state, members and lag on `topic`. */
export async function groupStatus(
  admin: KafkaAdmin,
  groupId: string,
  topic: string,
): Promise<GroupStatus> {
  const [{ groups }, partitions] = await Promise.all([
    admin.describeGroups([groupId]),
    groupLag(admin, groupId, topic),
  ]);
  const group = groups.find((g) => g.groupId === groupId);
  return {
    groupId,
    state: group?.state ?? 'Dead',
    members: (group?.members ?? []).map(({ memberId, clientId, clientHost }) => ({
      memberId,
      clientId,
      host: clientHost,
    })),
    partitions,
    lag: partitions.reduce((sum, p) => sum + p.lag, 0),
  };
}

export interface ResetResult {
  groupId: string;
  /** `earliest` or the ISO time the offsets were moved to. */
  to: string;
  offsets: { partition: number; offset: string }[];
  /** processed_events rows deleted (reset to earliest only). */
  forgotten: number;
  /** Whether the projection was emptied (reset to earliest only). */
  projectionCleared: boolean;
}

/**
 * Moves the stopped group's offsets on `topic`.
 *
 * - `earliest`: the projection is rebuilt from the log. The offsets go to the
 *   start of the log, then, in one transaction, the group's processed_events
 *   rows are deleted and its projection emptied. Refused when retention has
 *   already deleted records (the rebuild would miss them) unless `force`.
 * - a time: only the offsets move, to the first record at or after it;
 *   processed_events stay, so events already applied are skipped as
 *   duplicates and only ones never applied take effect. Use it to skip ahead
 *   or to re-deliver after a gap; the projection never counts an event twice.
 *
 * Offsets move first: if the database step fails, re-running the command is
 * safe (until then the group would only see duplicates).
 */
export async function resetGroup({
  admin,
  db,
  groupId,
  projection,
  topic,
  to,
  force = false,
}: {
  admin: KafkaAdmin;
  db: Db;
  groupId: string;
  projection: Projection;
  topic: string;
  to: 'earliest' | Date;
  force?: boolean;
}): Promise<ResetResult> {
  const { state, members } = await groupStatus(admin, groupId, topic);
  if (state !== 'Empty' && state !== 'Dead') {
    throw new GroupOperationError(
      `consumer group ${groupId} is ${state} with ${members.length} member(s); stop its processes first`,
    );
  }
  let offsets: { partition: number; offset: string }[];
  if (to === 'earliest') {
    const watermarks = await admin.fetchTopicOffsets(topic);
    const truncated = watermarks.filter((w) => BigInt(w.low) > 0n);
    if (truncated.length > 0 && !force) {
      const where = truncated.map((w) => `partition ${w.partition} from ${w.low}`).join(', ');
      throw new GroupOperationError(
        `the log of ${topic} no longer starts at offset 0 (${where}): retention deleted older records, so a rebuild would miss them; --force rebuilds from what is left`,
      );
    }
    offsets = watermarks.map(({ partition, low }) => ({ partition, offset: low }));
  } else {
    offsets = await admin.fetchTopicOffsetsByTimestamp(topic, to.getTime());
  }
  offsets.sort((a, b) => a.partition - b.partition);
  await admin.setOffsets({ groupId, topic, partitions: offsets });
  if (to !== 'earliest') {
    return { groupId, to: to.toISOString(), offsets, forgotten: 0, projectionCleared: false };
  }
  const { forgotten } = await clearGroupState(db, groupId, projection);
  return { groupId, to, offsets, forgotten, projectionCleared: true };
}
