/**
 * The real consumer process (`npm run consumer:analytics`) and the operator
 * CLI against the stack: readiness line, /metrics, graceful SIGTERM (the
 * record in hand is finished and committed, the group is left), dead letters
 * listed and replayed, and a rebuild with `consumers reset --to earliest`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumerGroups } from '../../src/consumers/runtime/groups.ts';
import { ensureTopic } from '../../src/events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';
import {
  admin,
  analyticsRows,
  caughtUp,
  closeClients,
  config,
  connectClients,
  db,
  orderPlaced,
  produce,
  recentDay,
  recordOf,
  stack,
  uniqueCurrency,
  waitFor,
} from './support.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const topic = ORDERS_PLACED_TOPIC;
const { groupId } = consumerGroups.analytics;
const env = {
  ...process.env,
  DATABASE_URL: stack.DATABASE_URL,
  KAFKA_BROKERS: stack.KAFKA_BROKERS,
  TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
  CONSUMER_METRICS_PORT: '0',
  CONSUMER_LAG_INTERVAL: '300ms',
  LOG_LEVEL: 'info',
};

interface ConsumerProcess {
  child: ChildProcess;
  metricsUrl: string;
  lines: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: string | null }>;
}

const children = new Set<ChildProcess>();

/** Starts `src/consumers/<name>.ts` and waits for its readiness line. */
async function startConsumerProcess(
  name: string,
  extraEnv: Record<string, string> = {},
): Promise<ConsumerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/consumers/${name}.ts`], {
    cwd: root,
    env: { ...env, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const line of parts)
      if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(([code, signal]) => {
    children.delete(child);
    return { code: code as number | null, signal: signal as string | null };
  });
  await Promise.race([
    waitFor('"consumer running"', () => lines.some((l) => l.msg === 'consumer running'), 90_000),
    exited.then(({ code }) => {
      throw new Error(`consumer exited with ${code}: ${stderr}`);
    }),
  ]);
  const running = lines.find((l) => l.msg === 'consumer running')!;
  return { child, metricsUrl: running.metricsUrl as string, lines, exited };
}

/** Runs the operator CLI; stdout parsed as JSON when it is. */
async function cli(...args: string[]): Promise<{ code: number | null; out: unknown; err: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(root, 'src/cli/orderflow.ts'), ...args],
    {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  let parsed: unknown = out;
  try {
    parsed = JSON.parse(out);
  } catch {
    /* text output */
  }
  return { code, out: parsed, err };
}

/** Offsets committed by the group, per partition. */
async function committedOffsets(): Promise<Map<number, bigint>> {
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((offsets?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
}

async function highWatermarks(): Promise<Map<number, bigint>> {
  return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
}

beforeAll(async () => {
  await connectClients();
  await ensureTopic(admin, topic, config.KAFKA_TOPIC_PARTITIONS);
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await closeClients();
});

const currency = await uniqueCurrency();

describe('the analytics consumer process', () => {
  const orders = Array.from({ length: 4000 }, () => orderPlaced({ currency, day: recentDay() }));

  it('serves lag on /metrics, and on SIGTERM finishes the record in hand, commits it, leaves the group and exits 0', async () => {
    // Whatever earlier test files published is consumed first; then only this test writes to the topic.
    let consumer = await startConsumerProcess('analytics', { CONSUMER_TRANSACTION: 'per-event' });
    await waitFor(
      'the group caught up with the existing log',
      () => caughtUp(groupId, topic),
      60_000,
    );
    const start = await highWatermarks();
    const baseline = await db.processedEvent.count({ where: { groupId } });

    await produce(
      topic,
      orders.map((o) => recordOf(o)),
    );
    await waitFor(
      'part of the backlog processed',
      async () => (await db.processedEvent.count({ where: { groupId } })) > baseline + 200,
    );
    const metrics = await (await fetch(consumer.metricsUrl)).text();
    for (let p = 0; p < config.KAFKA_TOPIC_PARTITIONS; p++) {
      expect(metrics).toMatch(
        new RegExp(
          `orderflow_consumer_lag\\{group="${groupId}",topic="${topic}",partition="${p}"\\} \\d+`,
        ),
      );
    }

    consumer.child.kill('SIGTERM');
    expect(await consumer.exited).toEqual({ code: 0, signal: null });
    expect(consumer.lines.map((l) => l.msg)).toContain('consumer stopped');

    // It left the group (no member waits for a session timeout) ...
    const { groups } = await admin.describeGroups([groupId]);
    expect(groups[0]?.state).toBe('Empty');
    // ... and committed exactly what is in the database: per partition, the
    // records [start, committed) are applied once and none after them.
    const committed = await committedOffsets();
    const high = await highWatermarks();
    const left = [...high].reduce((n, [p, h]) => n + (h - (committed.get(p) ?? 0n)), 0n);
    expect(left).toBeGreaterThan(0n); // it really stopped mid-backlog
    for (const [partition, from] of start) {
      const upTo = committed.get(partition) ?? -1n;
      const applied = await db.processedEvent.count({
        where: { groupId, topic, partition, offset: { gte: from } },
      });
      expect({ partition, applied }).toEqual({ partition, applied: Number(upTo - from) });
    }

    // A new process resumes where the first stopped; every order counted once.
    consumer = await startConsumerProcess('analytics');
    await waitFor('the group caught up', () => caughtUp(groupId, topic), 60_000);
    const total = await analyticsRows([currency]);
    expect(total.reduce((n, r) => n + r.orderCount, 0)).toBe(orders.length);
    consumer.child.kill('SIGTERM');
    expect(await consumer.exited).toEqual({ code: 0, signal: null });
  }, 180_000);

  it('lists a dead letter with the CLI, and replay dead-letters it anew while it still fails (exit 3)', async () => {
    const consumer = await startConsumerProcess('analytics');
    const poison = {
      ...recordOf(orderPlaced({ currency, day: recentDay() })),
      value: '{"broken":',
    };
    await produce(topic, [poison]);
    await waitFor('the group caught up', () => caughtUp(groupId, topic), 60_000);
    consumer.child.kill('SIGTERM');
    await consumer.exited;

    const listed = await cli('dlq', 'list', '--group', 'analytics', '--pending', '--json');
    expect(listed.code).toBe(0);
    expect(listed.out).toEqual([
      expect.objectContaining({
        group: groupId,
        key: String(poison.key),
        replayed: false,
        origin: expect.objectContaining({ topic }),
        error: expect.stringMatching(/not a valid CloudEvent/),
      }),
    ]);

    const replay = await cli('dlq', 'replay', '--group', 'analytics', '--json');
    expect(replay.code).toBe(3);
    expect(replay.out).toEqual([{ groupId, replayed: 0, duplicates: 0, failed: 1, skipped: 0 }]);
    const after = await cli('dlq', 'list', '--group', 'analytics', '--json');
    expect((after.out as { replayed: boolean }[]).map((l) => l.replayed)).toEqual([true, false]);
  }, 120_000);

  it('rebuilds the projection with `consumers reset analytics --to earliest`, refused while the group runs', async () => {
    const before = await analyticsRows([currency]);
    const consumer = await startConsumerProcess('analytics');

    const refused = await cli('consumers', 'reset', 'analytics', '--to', 'earliest');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/stop its processes first/);
    const status = await cli('consumers', 'status', '--json');
    expect(status.out).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'analytics', state: 'Stable', lag: 0 }),
      ]),
    );
    consumer.child.kill('SIGTERM');
    await consumer.exited;

    const reset = await cli('consumers', 'reset', 'analytics', '--to', 'earliest', '--json');
    expect({ code: reset.code, err: reset.err }).toEqual({ code: 0, err: '' });
    expect(reset.out).toMatchObject({ groupId, to: 'earliest', projectionCleared: true });
    expect(await analyticsRows([currency])).toEqual([]);

    const rebuilt = await startConsumerProcess('analytics');
    await waitFor('the rebuild caught up', () => caughtUp(groupId, topic), 90_000);
    expect(await analyticsRows([currency])).toEqual(before);
    rebuilt.child.kill('SIGTERM');
    expect(await rebuilt.exited).toEqual({ code: 0, signal: null });
  }, 180_000);
});
