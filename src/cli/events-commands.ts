/** `events resend`: re-publish order.placed as low-priority bulk work. */
import { InvalidArgumentError, type Command } from 'commander';
import { randomUUID } from 'node:crypto';
import {
  resendProgressQuery,
  type ResendEventsInput,
  type ResendProgress,
} from '../shared/messages.ts';
import { TaskQueue } from '../shared/task-queues.ts';
import { withCtx } from './context.ts';
import { examplesHelp, printJson } from './output.ts';
import { startProgress } from './progress.ts';

export const isoArg = (v: string): string => {
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError('must be an ISO 8601 timestamp');
  return d.toISOString();
};

/** A day of polls, one a second: the bound of waiting for a resend. */
const MAX_WAIT_POLLS = 86_400;

export function addEventCommands(program: Command): void {
  const events = program
    .command('events')
    .description('Kafka events (orders.placed): re-publish')
    .addHelpText('after', examplesHelp([['events resend --since 2026-11-01T00:00:00Z']]));

  events
    .command('resend')
    .description(
      'Re-publish order.placed for orders created since a time, as low-priority bulk work',
    )
    .requiredOption('--since <time>', 'ISO 8601 timestamp (inclusive)', isoArg)
    .option('--until <time>', 'ISO 8601 timestamp (exclusive)', isoArg)
    .option('--no-wait', 'start it and return at once')
    .option('--json', 'the outcome as JSON on stdout: {workflowId, orders, published}')
    .addHelpText(
      'after',
      `
Runs as resendOrderEventsWorkflow on the ${TaskQueue.eventsBulk} task queue (its own
worker slots), so live orders never wait behind it. Events keep their ids, so
consumers skip those they processed already. Shows progress on stderr until it
finishes (or returns at once with --no-wait).
${examplesHelp([
  ['events resend --since 2026-11-01T00:00:00Z'],
  ['events resend --since 2026-11-01 --until 2026-11-02 --no-wait --json'],
])}`,
    )
    .action((opts: { since: string; until?: string; wait: boolean; json?: boolean }) =>
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
        if (!opts.wait) {
          if (opts.json) printJson({ workflowId, orders: total, published: null });
          return;
        }
        const progress = startProgress({ label: 'published', total });
        let result: ResendProgress;
        try {
          for (let i = 0; i < MAX_WAIT_POLLS; i++) {
            const described = await handle.describe();
            const running = ['RUNNING', 'CONTINUED_AS_NEW'].includes(described.status.name);
            if (!running) break;
            const p = await handle.query(resendProgressQuery).catch(() => undefined);
            if (p) progress.update(p.published);
            await new Promise((r) => setTimeout(r, 1000));
          }
          result = (await handle.result()) as ResendProgress;
          progress.update(result.published);
        } finally {
          progress.stop();
        }
        if (opts.json) printJson({ workflowId, orders: total, published: result.published });
        else console.error(`re-published ${result.published} event(s)`);
      }),
    );
}
