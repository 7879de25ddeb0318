/**
 * The operator CLI: `npm run orderflow -- <command>`. Talks to PostgreSQL and
 * Temporal directly (the same configuration as the services), so it works
 * while the API is down. Exit codes: 0 success, 1 failure, 2 usage, 3 partial.
 */
import { Client, Connection } from '@temporalio/client';
import { Command, InvalidArgumentError } from 'commander';
import type { Admin, Kafka } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { OrderOperations } from '../api/orders/order-operations.ts';
import { OrderService } from '../api/orders/order-service.ts';
import { ProblemError } from '../api/problems.ts';
import { loadConfig, type Config } from '../config/env.ts';
import { temporalConnectSettings } from '../config/temporal.ts';
import { createDb, type Db } from '../db/client.ts';
import { ORDER_STATUSES, type OrderStatus } from '../shared/orders.ts';
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
import { createKafka, createOrderEventsProducer } from '../events/kafka.ts';
import { ORDERS_PLACED_TOPIC } from '../shared/events.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE, TaskQueue } from '../shared/task-queues.ts';
import {
  resendProgressQuery,
  type ResendEventsInput,
  type ResendProgress,
} from '../shared/messages.ts';

interface Ctx {
  config: Config;
  db: Db;
  temporal: () => Promise<Client>;
  close(): Promise<void>;
}

function context(): Ctx {
  const config = loadConfig();
  const db = createDb(config.DATABASE_URL, 4);
  let connection: Connection | undefined;
  let client: Client | undefined;
  return {
    config,
    db,
    async temporal() {
      const { connectionOptions, namespace } = temporalConnectSettings(config);
      const { address, tls, apiKey, metadata } = connectionOptions;
      connection ??= await Connection.connect({
        address,
        tls,
        apiKey,
        metadata,
        connectTimeout: 5000,
      });
      client ??= new Client({ connection, namespace });
      return client;
    },
    async close() {
      await Promise.allSettled([db.$disconnect(), connection?.close()]);
    },
  };
}

const json = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
};

/** Prints rows as an aligned text table. */
export function table(rows: Record<string, unknown>[], columns: string[]): string {
  const text = (v: unknown): string => {
    if (v === null || v === undefined) return '';
    if (typeof v === 'string') return v;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint')
      return v.toString();
    return JSON.stringify(v);
  };
  const cells = rows.map((r) => columns.map((c) => text(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}

function progress(done: number, total: number, label: string): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const filled = total ? Math.round((done / total) * width) : width;
  process.stderr.write(
    `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label}`,
  );
  if (done === total) process.stderr.write('\n');
}

const statusArg = (v: string): OrderStatus => {
  const s = v.toUpperCase();
  if (!(ORDER_STATUSES as readonly string[]).includes(s)) {
    throw new InvalidArgumentError(`must be one of ${ORDER_STATUSES.join(', ')}`);
  }
  return s as OrderStatus;
};
const intArg = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

async function withCtx(fn: (ctx: Ctx) => Promise<number | void>): Promise<void> {
  const ctx = context();
  try {
    process.exitCode = (await fn(ctx)) ?? 0;
  } catch (err) {
    const msg =
      err instanceof ProblemError ? `${err.message} (${err.kind})` : (err as Error).message;
    console.error(`error: ${msg}`);
    process.exitCode = 1;
  } finally {
    await ctx.close();
  }
}

/** Ids of parked orders according to Temporal visibility (OrderStatus="Parked"). */
async function parkedInTemporal(client: Client, limit: number): Promise<string[]> {
  const ids: string[] = [];
  const query = `${ORDER_STATUS_SEARCH_ATTRIBUTE}="Parked" AND ExecutionStatus="Running"`;
  for await (const wf of client.workflow.list({ query })) {
    if (wf.workflowId.startsWith('order-')) ids.push(wf.workflowId.slice('order-'.length));
    if (ids.length >= limit) break;
  }
  return ids;
}

export function buildCli(): Command {
  const program = new Command('orderflow')
    .description('Operate orderflow: inspect orders, retry parked ones, cancel.')
    .showHelpAfterError()
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : 2);
    });

  const orders = program.command('orders').description('Inspect and operate orders');

  orders
    .command('list')
    .description('List orders, newest first')
    .option('-s, --status <status>', `one of ${ORDER_STATUSES.join(', ')}`, statusArg)
    .option('-n, --limit <n>', 'at most this many', intArg, 50)
    .option('--json', 'machine-readable output')
    .action((opts: { status?: OrderStatus; limit: number; json?: boolean }) =>
      withCtx(async ({ db }) => {
        const { items } = await new OrderService(db).listOrders({
          status: opts.status,
          limit: opts.limit,
        });
        if (opts.json) return json(items);
        const rows = items.map((o) => ({
          ...o,
          total: `${(o.totalCents / 100).toFixed(2)} ${o.currency}`,
        }));
        console.log(
          table(rows, [
            'id',
            'status',
            'createdAt',
            'customerEmail',
            'total',
            'failedStep',
            'lastError',
          ]),
        );
        console.error(`${items.length} order(s)`);
      }),
    );

  orders
    .command('show <id>')
    .description('One order with its status and, when parked, why')
    .option('--json', 'machine-readable output')
    .action((id: string, opts: { json?: boolean }) =>
      withCtx(async ({ db }) => {
        const order = await new OrderService(db).getOrder(id);
        if (opts.json) return json(order);
        for (const [k, v] of Object.entries(order)) {
          if (k !== 'items') console.log(`${k.padEnd(14)} ${v ?? ''}`);
        }
        console.log(table(order.items, ['sku', 'quantity', 'unitPriceCents']));
      }),
    );

  orders
    .command('retry [id]')
    .description('Re-run the failed steps of a parked order (or of all, with --all-parked)')
    .option('--all-parked', 'every order Temporal lists as OrderStatus="Parked"')
    .option('-n, --limit <n>', 'with --all-parked: at most this many', intArg, 10_000)
    .option('--json', 'machine-readable output')
    .action(
      (id: string | undefined, opts: { allParked?: boolean; limit: number; json?: boolean }) =>
        withCtx(async (ctx) => {
          if (!id === !opts.allParked) {
            console.error(
              id
                ? 'error: give an order id or --all-parked, not both'
                : 'error: give an order id, or --all-parked',
            );
            return 2;
          }
          const ops = new OrderOperations(() => ctx.temporal());
          const ids = id ? [id] : await parkedInTemporal(await ctx.temporal(), opts.limit);
          const results: { id: string; ok: boolean; detail: string }[] = [];
          for (const [i, orderId] of ids.entries()) {
            try {
              const { retrying } = await ops.retry(orderId);
              results.push({ id: orderId, ok: true, detail: `retrying ${retrying.join(', ')}` });
            } catch (err) {
              results.push({ id: orderId, ok: false, detail: (err as Error).message });
            }
            progress(i + 1, ids.length, 'retried');
          }
          const failed = results.filter((r) => !r.ok).length;
          if (opts.json) json({ results, retried: results.length - failed, failed });
          else if (id) {
            const r = results[0]!;
            console.error(r.ok ? `order ${id}: ${r.detail}` : `error: ${r.detail}`);
          } else {
            if (results.length) console.log(table(results, ['id', 'ok', 'detail']));
            console.error(
              `${results.length - failed} retried, ${failed} failed, ${ids.length} parked found`,
            );
          }
          return failed === 0 ? 0 : failed === results.length ? 1 : 3;
        }),
    );

  orders
    .command('cancel <id>')
    .description('End an order as CANCELLED')
    .option('-r, --reason <text>', 'why', 'cancelled by operator')
    .action((id: string, opts: { reason: string }) =>
      withCtx(async (ctx) => {
        await new OrderOperations(() => ctx.temporal()).cancel(id, opts.reason);
        console.error(`cancel sent to order ${id}`);
      }),
    );

  const events = program.command('events').description('Kafka events');
  events
    .command('resend')
    .description(
      'Re-publish order.placed for orders created since a time, as low-priority bulk work',
    )
    .requiredOption('--since <time>', 'ISO 8601 timestamp', isoArg)
    .option('--until <time>', 'ISO 8601 timestamp (exclusive)', isoArg)
    .option('--no-wait', 'start it and return at once')
    .action((opts: { since: string; until?: string; wait: boolean }) =>
      withCtx(async (ctx) => {
        const total = await ctx.db.order.count({
          where: {
            createdAt: {
              gte: new Date(opts.since),
              ...(opts.until ? { lt: new Date(opts.until) } : {}),
            },
            status: { not: 'CANCELLED' },
          },
        });
        const client = await ctx.temporal();
        const workflowId = `resend-events-${randomUUID()}`;
        const input: ResendEventsInput = {
          since: opts.since,
          ...(opts.until ? { until: opts.until } : {}),
        };
        const handle = await client.workflow.start('resendOrderEventsWorkflow', {
          workflowId,
          taskQueue: TaskQueue.orders,
          args: [input],
        });
        console.error(
          `started ${workflowId}: ${total} order(s) to re-publish on task queue ${TaskQueue.eventsBulk}`,
        );
        if (!opts.wait) return;
        // Bounded: one poll a second for at most a day.
        for (let i = 0; i < 86_400; i++) {
          const described = await handle.describe();
          if (described.status.name !== 'RUNNING' && described.status.name !== 'CONTINUED_AS_NEW')
            break;
          const p = await handle.query(resendProgressQuery).catch(() => undefined);
          if (p) progress(Math.min(p.published, total), total, 'published');
          await new Promise((r) => setTimeout(r, 1000));
        }
        const result = (await handle.result()) as ResendProgress;
        progress(total, total, 'published');
        console.error(`re-published ${result.published} event(s)`);
      }),
    );

  addConsumerCommands(program);
  return program;
}

const isoArg = (v: string): string => {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('must be an ISO 8601 timestamp');
  return d.toISOString();
};

/** Kafka clients for one command; kafkajs' own logs go to stderr (stdout stays parseable). */
async function withKafka<T>(
  config: Config,
  fn: (kafka: Kafka, admin: Admin, log: Logger) => Promise<T>,
): Promise<T> {
  const log = pino({ name: 'orderflow-cli', level: 'error' }, pino.destination(2));
  const kafka = createKafka(config, { logger: log });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(kafka, admin, log);
  } finally {
    await admin.disconnect();
  }
}

const groupArg = (v: string): ConsumerGroupDefinition => {
  const group = findConsumerGroup(v);
  if (!group) {
    throw new InvalidArgumentError(`must be one of ${Object.keys(consumerGroups).join(', ')}`);
  }
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

/** `consumers` (status, reset) and `dlq` (list, replay): operating the Kafka consumer groups. */
function addConsumerCommands(program: Command): void {
  const topic = ORDERS_PLACED_TOPIC;
  const consumers = program
    .command('consumers')
    .description(`Kafka consumer groups of ${topic}: status, reset`);

  consumers
    .command('status')
    .description('State, members and lag per partition of each consumer group')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }) =>
      withCtx(({ config }) =>
        withKafka(config, async (_kafka, admin) => {
          const statuses = [];
          for (const group of Object.values(consumerGroups)) {
            statuses.push({
              name: group.name,
              ...(await groupStatus(admin, group.groupId, topic)),
            });
          }
          if (opts.json) return json(statuses);
          console.log(
            table(
              statuses.map((s) => ({ ...s, members: s.members.length })),
              ['name', 'groupId', 'state', 'members', 'lag'],
            ),
          );
          for (const s of statuses) {
            console.log(`\n${s.name} (${s.groupId})`);
            console.log(
              table(
                s.partitions.map((p) => ({ ...p })),
                ['partition', 'committed', 'high', 'lag'],
              ),
            );
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

Refused while the group has members: stop its processes first.`,
    )
    .requiredOption('--to <earliest|time>', '"earliest" or an ISO 8601 timestamp', resetTarget)
    .option('--force', 'with --to earliest: rebuild even though the log was truncated')
    .option('--json', 'machine-readable output')
    .action((groupName: string, opts: { to: 'earliest' | Date; force?: boolean; json?: boolean }) =>
      withCtx(async ({ config, db }) => {
        const group = findConsumerGroup(groupName);
        if (!group) {
          console.error(
            `error: unknown group ${groupName}; one of ${Object.keys(consumerGroups).join(', ')}`,
          );
          return 2;
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
        if (opts.json) return json(result);
        console.log(table(result.offsets, ['partition', 'offset']));
        console.error(
          result.projectionCleared
            ? `${group.groupId}: offsets at the start of ${topic}; ${result.forgotten} processed event(s) forgotten and ${group.projection.tables.join(', ')} emptied: the projection is rebuilt when the group starts`
            : `${group.groupId}: offsets moved to ${result.to}; processed events kept (already applied events are skipped)`,
        );
      }),
    );

  const dlq = program
    .command('dlq')
    .description(`Dead letters of the consumer groups (${deadLetterTopicOf(topic)})`);

  dlq
    .command('list')
    .description(
      'Dead letters, oldest first, with the error, where they came from and whether replayed',
    )
    .option('-g, --group <group>', 'only this group’s', groupArg)
    .option('--pending', 'only those not replayed yet')
    .option('--json', 'machine-readable output')
    .action((opts: { group?: ConsumerGroupDefinition; pending?: boolean; json?: boolean }) =>
      withCtx(({ config }) =>
        withKafka(config, async (kafka, admin) => {
          const letters = (
            await listDeadLetters({ kafka, admin, topic, groupId: opts.group?.groupId })
          ).filter((l) => !opts.pending || !l.replayed);
          if (opts.json) return json(letters);
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
fails again is dead-lettered anew, with the new error (exit code 3). Replayed
events take effect after newer events of the same order; the projections are
sums, so the result is the same.`,
    )
    .option('-g, --group <group>', 'only this group’s (default: every group)', groupArg)
    .option('--json', 'machine-readable output')
    .action((opts: { group?: ConsumerGroupDefinition; json?: boolean }) =>
      withCtx(({ config, db }) =>
        withKafka(config, async (kafka, admin, log) => {
          const producer = createOrderEventsProducer(kafka);
          await producer.connect();
          const results: ReplayResult[] = [];
          try {
            for (const group of opts.group ? [opts.group] : Object.values(consumerGroups)) {
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
                }),
              );
            }
          } finally {
            await producer.disconnect();
          }
          if (opts.json) json(results);
          else
            console.log(
              table(
                results.map((r) => ({ ...r })),
                ['groupId', 'replayed', 'duplicates', 'failed', 'skipped'],
              ),
            );
          return results.some((r) => r.failed > 0) ? 3 : 0;
        }),
      ),
    );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildCli().parseAsync(process.argv);
}
