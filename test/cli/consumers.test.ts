/**
 * `orderflow consumers lag` against the stack's Kafka: the committed offset,
 * end offset and lag per partition, and the total, for a state this file
 * produced and committed itself (its own topic and group), and for the
 * consumer groups of orders.placed.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumerGroups } from '../../src/consumers/runtime/groups.ts';
import { ensureTopic } from '../../src/events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';
import type { GroupLagReport } from '../../src/cli/consumer-commands.ts';
import { admin, closeClients, config, connectClients, producer } from '../consumers/support.ts';
import { cli, parseStdout } from './run-cli.ts';

const topic = `cli-lag-${randomUUID()}`;
const groupId = `test.cli-lag.${randomUUID()}`;
/** Records produced to each partition, and the offset the group committed (none on 2 and 3). */
const produced = [5, 3, 4, 0];
const committed = [2, 3, undefined, undefined];

beforeAll(async () => {
  await connectClients();
  await admin.createTopics({
    topics: [{ topic, numPartitions: produced.length }],
    waitForLeaders: true,
  });
  for (const [partition, count] of produced.entries()) {
    if (count === 0) continue;
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: count }, (_, i) => ({
        partition,
        key: `k${partition}`,
        value: `record ${i}`,
      })),
    });
  }
  // A group with no members: its offsets are set as `kafka-consumer-groups --reset-offsets` would.
  await admin.setOffsets({
    groupId,
    topic,
    partitions: committed.flatMap((offset, partition) =>
      offset === undefined ? [] : [{ partition, offset: String(offset) }],
    ),
  });
  await ensureTopic(admin, ORDERS_PLACED_TOPIC, config.KAFKA_TOPIC_PARTITIONS);
});

afterAll(async () => {
  await admin.deleteGroups([groupId]).catch(() => undefined);
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await closeClients();
});

describe('orderflow consumers lag', () => {
  const expected = produced.map((end, partition) => {
    const c = committed[partition];
    return {
      partition,
      committed: c === undefined ? null : String(c),
      end: String(end),
      lag: end - (c ?? 0),
    };
  });

  it('reports committed offset, end offset and lag per partition, and the total, as JSON', async () => {
    const run = await cli(['consumers', 'lag', groupId, '--topic', topic, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(parseStdout(run)).toEqual([
      { name: groupId, groupId, topic, partitions: expected, totalLag: 7 },
    ]);
  });

  it('prints the same numbers as an aligned table with the total', async () => {
    const run = await cli(['consumers', 'lag', groupId, '--topic', topic]);
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe(`${groupId} (${groupId}) on ${topic}`);
    expect(lines[1]).toBe('PARTITION  COMMITTED  END  LAG');
    expect(lines.slice(2, 6)).toEqual([
      '0          2          5    3',
      '1          3          3    0',
      '2                     4    4',
      '3                     0    0',
    ]);
    expect(lines[6]).toBe('total lag 7');
  });

  it('follows the group: after it commits more, the lag shrinks by as much', async () => {
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 2, offset: '1' }] });
    const run = await cli(['consumers', 'lag', groupId, '--topic', topic, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const [report] = parseStdout<GroupLagReport[]>(run);
    expect(report!.partitions[2]).toEqual({ partition: 2, committed: '1', end: '4', lag: 3 });
    expect(report!.totalLag).toBe(6);
  });

  it(`without a group, reports every consumer group of ${ORDERS_PLACED_TOPIC}`, async () => {
    const run = await cli(['consumers', 'lag', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const reports = parseStdout<GroupLagReport[]>(run);
    const ends = await admin.fetchTopicOffsets(ORDERS_PLACED_TOPIC);
    expect(reports.map((r) => r.groupId)).toEqual(
      Object.values(consumerGroups).map((g) => g.groupId),
    );
    for (const r of reports) {
      expect(r.topic).toBe(ORDERS_PLACED_TOPIC);
      expect(r.partitions.map((p) => [p.partition, p.end])).toEqual(
        ends.map((e) => [e.partition, e.high]).sort((a, b) => Number(a[0]) - Number(b[0])),
      );
      expect(r.totalLag).toBe(r.partitions.reduce((sum, p) => sum + p.lag, 0));
    }
  });

  it('exits 1 naming the topic when it does not exist', async () => {
    const missing = `cli-lag-missing-${randomUUID()}`;
    const run = await cli(['consumers', 'lag', groupId, '--topic', missing]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`topic ${missing} does not exist`);
    expect(run.stdout).toBe('');
  });
});
