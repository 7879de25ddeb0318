/**
 * `consumers lag|status|reset` and `dlq list|replay`: operating the Kafka
 * consumer groups of orders.placed and their dead letters.
 */
import { InvalidArgumentError, type Command } from 'commander';
import {
  listDeadLetters,
  replayDeadLetters,
  type ReplayResult,
} from '../consumers/runtime/dead-letter-replay.ts';
import { deadLetterTopicOf } from '../consumers/runtime/dead-letters.ts';
import { groupStatus, resetGroup } from '../consumers/runtime/group-admin.ts';
import {
  consumerGroups,
  findConsumerGroup,
  type ConsumerGroupDefinition,
} from '../consumers/runtime/groups.ts';
import { groupLag } from '../consumers/runtime/metrics.ts';
import { createOrderEventsProducer } from '../events/kafka.ts';
import type { KafkaAdmin } from '../events/kafka-types.ts';
import { ORDERS_PLACED_TOPIC } from '../shared/events.ts';
import { withCtx, withKafka } from './context.ts';
import { ExitCode, examplesHelp, printJson, table } from './output.ts';
import { startProgress, type Progress } from './progress.ts';

const topic = ORDERS_PLACED_TOPIC;
const groupNames = Object.keys(consumerGroups).join(', ');

const groupArg = (v: string): ConsumerGroupDefinition => {
  const group = findConsumerGroup(v);
  if (!group) throw new InvalidArgumentError(`must be one of ${groupNames}`);
  return group;
};

const resetTarget = (v: string): 'earliest' | Date => {
  if (v === 'earliest') return v;
  const d = new Date(v);
  if (Number.isNaN(d.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(v)) {
    throw new InvalidArgumentError('must be "earliest" or an ISO 8601 timestamp');
  }
  return d;
};

/** One group's lag on a topic, as `consumers lag --json` prints it. */
export interface GroupLagReport {
  /** Short name (analytics) or, for another group, its Kafka group id. */
  name: string;
  groupId: string;
  topic: string;
  partitions: {
    partition: number;
    /** Next offset the group reads; null when it committed none (it starts at the log's start). */
    committed: string | null;
    /** The partition's end (high watermark): the offset the next record gets. */
    end: string;
    /** Records between the committed offset (or the log's start) and the end. */
    lag: number;
  }[];
  totalLag: number;
}

async function lagReport(
  admin: KafkaAdmin,
  name: string,
  groupId: string,
  onTopic: string,
): Promise<GroupLagReport> {
  const partitions = (await groupLag(admin, groupId, onTopic)).map((p) => ({
    partition: p.partition,
    committed: BigInt(p.committed) >= 0n ? p.committed : null,
    end: p.high,
    lag: p.lag,
  }));
  return {
    name,
    groupId,
    topic: onTopic,
    partitions,
    totalLag: partitions.reduce((sum, p) => sum + p.lag, 0),
  };
}

/** Fails with a clear message when `name` is not a topic (kafkajs would say "does not host this topic-partition"). */
async function requireTopic(admin: KafkaAdmin, name: string): Promise<void> {
  if (!(await admin.listTopics()).includes(name)) {
    throw new Error(
      name === topic
        ? `topic ${name} does not exist yet (the events worker creates it when it starts)`
        : `topic ${name} does not exist`,
    );
  }
}

export function addConsumerCommands(program: Command): void {
  const consumers = program
    .command('consumers')
    .description(`Kafka consumer groups of ${topic}: lag, status, reset`)
    .addHelpText(
      'after',
      examplesHelp([
        ['consumers lag'],
        ['consumers reset analytics --to earliest', 'group stopped: rebuild its projection'],
      ]),
    );

  consumers
    .command('lag [group]')
    .description(
      'Per group and partition: committed offset, end offset and lag, with the total per group',
    )
    .option('-t, --topic <topic>', 'the topic to measure against', topic)
    .option(
      '--json',
      'a JSON array on stdout, each {name, groupId, topic, partitions: [{partition, committed, end, lag}], totalLag}',
    )
    .addHelpText(
      'after',
      `
[group] is ${groupNames} (or its Kafka group id), or any other Kafka group id,
e.g. orderflow.analytics.dlq-replay with --topic ${deadLetterTopicOf(topic)} (dead letters
not replayed yet). Without it: every group of ${topic}. A partition without a
committed offset shows an empty COMMITTED (null in JSON); its lag counts from the
start of the log. Offsets are strings in JSON (Kafka offsets are 64-bit).
${examplesHelp([
  ['consumers lag'],
  ['consumers lag analytics --json'],
  [`consumers lag orderflow.analytics.dlq-replay --topic ${deadLetterTopicOf(topic)}`],
])}`,
    )
    .action((group: string | undefined, opts: { topic: string; json?: boolean }) =>
      withCtx(({ config }) =>
        withKafka(config, async (_kafka, admin) => {
          await requireTopic(admin, opts.topic);
          const known = group ? findConsumerGroup(group) : undefined;
          const targets = !group
            ? Object.values(consumerGroups).map((g) => ({ name: g.name, groupId: g.groupId }))
            : [
                known
                  ? { name: known.name, groupId: known.groupId }
                  : { name: group, groupId: group },
              ];
          const reports: GroupLagReport[] = [];
          for (const t of targets)
            reports.push(await lagReport(admin, t.name, t.groupId, opts.topic));
          if (opts.json) return printJson(reports);
          reports.forEach((r, i) => {
            console.log(`${i ? '\n' : ''}${r.name} (${r.groupId}) on ${r.topic}`);
            console.log(table(r.partitions, ['partition', 'committed', 'end', 'lag']));
            console.log(`total lag ${r.totalLag}`);
          });
        }),
      ),
    );

  consumers
    .command('status')
    .description('State, members and lag per partition of each consumer group')
    .option(
      '--json',
      'a JSON array on stdout, each {name, groupId, state, members, partitions: [{partition, high, committed, lag}], lag}',
    )
    .addHelpText('after', examplesHelp([['consumers status'], ['consumers status --json']]))
    .action((opts: { json?: boolean }) =>
      withCtx(({ config }) =>
        withKafka(config, async (_kafka, admin) => {
          await requireTopic(admin, topic);
          const statuses = [];
          for (const group of Object.values(consumerGroups)) {
            statuses.push({
              name: group.name,
              ...(await groupStatus(admin, group.groupId, topic)),
            });
          }
          if (opts.json) return printJson(statuses);
          console.log(
            table(
              statuses.map((s) => ({ ...s, members: s.members.length })),
              ['name', 'groupId', 'state', 'members', 'lag'],
            ),
          );
          for (const s of statuses) {
            console.log(`\n${s.name} (${s.groupId})`);
            console.log(table(s.partitions, ['partition', 'committed', 'high', 'lag']));
          }
        }),
      ),
    );

  consumers
    .command('reset <group>')
    .description(`Move a stopped group's offsets on ${topic} (rebuild or skip)`)
    .addHelpText(
      'after',
      `
--to earliest   Rebuilds the projection from the log: the offsets go to the start
                of the log, then the group's processed_events rows are deleted and
                its projection is emptied (one transaction); the group rebuilds it
                when it starts. Refused when retention already deleted records
                (the rebuild would miss them) unless --force.
--to <time>     Only the offsets move, to the first record at or after that time.
                processed_events are kept: events already applied are skipped as
                duplicates, only events never applied take effect, and the
                projection is not emptied. Use it to skip ahead or re-deliver.

Refused while the group has members (exit code 1): stop its processes first.
<group> is ${groupNames}.
${examplesHelp([
  ['consumers reset analytics --to earliest'],
  ['consumers reset inventory --to 2026-11-01T00:00:00Z --json'],
])}`,
    )
    .requiredOption('--to <earliest|time>', '"earliest" or an ISO 8601 timestamp', resetTarget)
    .option('--force', 'with --to earliest: rebuild even though the log was truncated')
    .option(
      '--json',
      'the outcome as JSON on stdout: {groupId, to, offsets, forgotten, projectionCleared}',
    )
    .action((groupName: string, opts: { to: 'earliest' | Date; force?: boolean; json?: boolean }) =>
      withCtx(async ({ config, db }) => {
        const group = findConsumerGroup(groupName);
        if (!group) {
          console.error(`error: unknown group ${groupName}; one of ${groupNames}`);
          return ExitCode.usage;
        }
        const result = await withKafka(config, (_kafka, admin) =>
          resetGroup({
            admin,
            db,
            groupId: group.groupId,
            projection: group.projection,
            topic,
            to: opts.to,
            force: opts.force,
          }),
        );
        if (opts.json) return printJson(result);
        console.log(table(result.offsets, ['partition', 'offset']));
        console.error(
          result.projectionCleared
            ? `${group.groupId}: offsets at the start of ${topic}; ${result.forgotten} processed event(s) forgotten and ${group.projection.tables.join(', ')} emptied: the projection is rebuilt when the group starts`
            : `${group.groupId}: offsets moved to ${result.to}; processed events kept (already applied events are skipped)`,
        );
      }),
    );

  addDeadLetterCommands(program);
}

function addDeadLetterCommands(program: Command): void {
  const dlq = program
    .command('dlq')
    .description(`Dead letters of the consumer groups (${deadLetterTopicOf(topic)})`)
    .addHelpText(
      'after',
      examplesHelp([['dlq list --pending'], ['dlq replay --group analytics', 'after a fix']]),
    );

  dlq
    .command('list')
    .description(
      'Dead letters, oldest first, with the error, where they came from and whether replayed',
    )
    .option('-g, --group <group>', `only this group's: ${groupNames}`, groupArg)
    .option('--pending', 'only those not replayed yet')
    .option(
      '--json',
      'a JSON array on stdout, each {partition, offset, group, eventId, key, origin: {topic, partition, offset}, error, attempts, deadLetteredAt, replayed}',
    )
    .addHelpText(
      'after',
      examplesHelp([['dlq list'], ['dlq list --group analytics --pending --json']]),
    )
    .action((opts: { group?: ConsumerGroupDefinition; pending?: boolean; json?: boolean }) =>
      withCtx(({ config }) =>
        withKafka(config, async (kafka, admin) => {
          const letters = (
            await listDeadLetters({ kafka, admin, topic, groupId: opts.group?.groupId })
          ).filter((l) => !opts.pending || !l.replayed);
          if (opts.json) return printJson(letters);
          const rows = letters.map((l) => ({
            ...l,
            at: `${l.partition}:${l.offset}`,
            origin: `${l.origin.topic}/${l.origin.partition}@${l.origin.offset}`,
            status: l.replayed ? 'replayed' : 'pending',
          }));
          if (rows.length) {
            console.log(
              table(rows, [
                'at',
                'group',
                'status',
                'eventId',
                'key',
                'origin',
                'deadLetteredAt',
                'error',
              ]),
            );
          }
          console.error(
            `${letters.length} dead letter(s), ${letters.filter((l) => !l.replayed).length} pending`,
          );
        }),
      ),
    );

  dlq
    .command('replay')
    .description("Re-process pending dead letters through their group's current code, after a fix")
    .addHelpText(
      'after',
      `
Each dead letter goes back to the group that failed it only (not to ${topic}),
through the same deduplication: an event the group applied already is skipped.
Progress is the committed offset of consumer group <groupId>.dlq-replay on
${deadLetterTopicOf(topic)}, so a replay runs each dead letter once. One that
fails again is dead-lettered anew, with the new error, and the exit code is 3.
Replayed events take effect after newer events of the same order; the
projections are sums, so the result is the same.
${examplesHelp([['dlq replay'], ['dlq replay --group analytics --json']])}`,
    )
    .option(
      '-g, --group <group>',
      `only this group's (default: every group): ${groupNames}`,
      groupArg,
    )
    .option(
      '--json',
      'a JSON array on stdout, each {groupId, replayed, duplicates, failed, skipped}',
    )
    .action((opts: { group?: ConsumerGroupDefinition; json?: boolean }) =>
      withCtx(({ config, db }) =>
        withKafka(config, async (kafka, admin, log) => {
          const producer = createOrderEventsProducer(kafka);
          await producer.connect();
          const results: ReplayResult[] = [];
          try {
            for (const group of opts.group ? [opts.group] : Object.values(consumerGroups)) {
              let progress: Progress | undefined;
              try {
                results.push(
                  await replayDeadLetters({
                    kafka,
                    admin,
                    db,
                    producer,
                    groupId: group.groupId,
                    projection: group.projection,
                    topic,
                    log,
                    onProgress: ({ done, total, failed }) => {
                      progress ??= startProgress({ label: `${group.name}: dead letters`, total });
                      progress.update(done, failed);
                    },
                  }),
                );
              } finally {
                progress?.stop();
              }
            }
          } finally {
            await producer.disconnect();
          }
          if (opts.json) printJson(results);
          else
            console.log(
              table(
                results.map((r) => ({ ...r })),
                ['groupId', 'replayed', 'duplicates', 'failed', 'skipped'],
              ),
            );
          // Failed again = dead-lettered anew: the replay itself ran, some items did not.
          return results.some((r) => r.failed > 0) ? ExitCode.partial : ExitCode.ok;
        }),
      ),
    );
}
