/** `orders list|show|retry|cancel`: inspect orders and operate their workflows. */
import type { Client } from '@temporalio/client';
import { InvalidArgumentError, type Command } from 'commander';
import { OrderCancellation } from '../orders/order-cancellation.ts';
import { OrderOperations } from '../orders/order-operations.ts';
import { OrderService } from '../orders/order-service.ts';
import { DEFAULT_CANCEL_REASON, orderIdSchema } from '../orders/rules.ts';
import { ORDER_STATUSES, type OrderStatus } from '../shared/orders.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE } from '../shared/task-queues.ts';
import { withCtx } from './context.ts';
import { ExitCode, bulkExitCode, examplesHelp, printJson, table } from './output.ts';
import { startProgress } from './progress.ts';

const statusArg = (v: string): OrderStatus => {
  const s = v.toUpperCase();
  if (!(ORDER_STATUSES as readonly string[]).includes(s)) {
    throw new InvalidArgumentError(`must be one of ${ORDER_STATUSES.join(', ')}`);
  }
  return s as OrderStatus;
};

export const positiveIntArg = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

const orderIdArg = (v: string): string => {
  if (!orderIdSchema.safeParse(v).success) throw new InvalidArgumentError('must be a UUID');
  return v;
};
const orderIdsArg = (v: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  orderIdArg(v),
];

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

interface RetryOutcome {
  id: string;
  ok: boolean;
  /** The steps that run again, or why the retry was refused. */
  detail: string;
}

export function addOrderCommands(program: Command): void {
  const orders = program
    .command('orders')
    .description('Inspect orders, retry parked ones, cancel')
    .addHelpText(
      'after',
      examplesHelp([
        ['orders list --status PARKED', 'parked orders with the failed step and why'],
        ['orders retry --all-parked', 'after fixing the cause'],
      ]),
    );

  orders
    .command('list')
    .description('List orders, newest first')
    .option('-s, --status <status>', `only this status: ${ORDER_STATUSES.join(', ')}`, statusArg)
    .option('-n, --limit <n>', 'at most this many', positiveIntArg, 50)
    .option('--json', 'a JSON array of orders (the fields of GET /orders/{id}) on stdout')
    .addHelpText(
      'after',
      examplesHelp([
        ['orders list --status PARKED'],
        ['orders list --status PARKED --json', 'for scripts (e.g. | jq -r ".[].id")'],
      ]),
    )
    .action((opts: { status?: OrderStatus; limit: number; json?: boolean }) =>
      withCtx(async ({ db }) => {
        const { items } = await new OrderService(db).listOrders({
          status: opts.status,
          limit: opts.limit,
        });
        if (opts.json) return printJson(items);
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
    .command('show')
    .argument('<id>', 'order id (UUID)', orderIdArg)
    .description('One order with its lines, status and, when parked, the failed step and why')
    .option('--json', 'the order as JSON (the fields of GET /orders/{id}) on stdout')
    .addHelpText(
      'after',
      examplesHelp([
        ['orders show 3f2c9a4e-8d1b-4c6e-9f0a-5b7d2e1c8a90'],
        ['orders show 3f2c9a4e-8d1b-4c6e-9f0a-5b7d2e1c8a90 --json'],
      ]),
    )
    .action((id: string, opts: { json?: boolean }) =>
      withCtx(async ({ db }) => {
        const order = await new OrderService(db).getOrder(id);
        if (opts.json) return printJson(order);
        for (const [k, v] of Object.entries(order)) {
          if (k !== 'items') console.log(`${k.padEnd(14)} ${v ?? ''}`);
        }
        console.log(`\n${table(order.items, ['sku', 'quantity', 'unitPriceCents'])}`);
      }),
    );

  orders
    .command('retry')
    .argument('[ids...]', 'order ids (UUIDs)', orderIdsArg)
    .description(
      'Re-run the failed steps of parked orders: the ones named, or all of them with --all-parked',
    )
    .option('--all-parked', 'every order Temporal lists as OrderStatus="Parked"')
    .option('-n, --limit <n>', 'with --all-parked: at most this many', positiveIntArg, 10_000)
    .option(
      '--json',
      'the outcome as JSON on stdout: {results: [{id, ok, detail}], retried, failed}',
    )
    .addHelpText(
      'after',
      `
Only the failed steps run again; completed ones (the email, a delivered webhook)
are not repeated. Several orders (or --all-parked) show progress on stderr and
end with a summary: exit code 0 when all were retried, 3 when some failed, 1
when all failed.
${examplesHelp([
  ['orders retry 3f2c9a4e-8d1b-4c6e-9f0a-5b7d2e1c8a90'],
  ['orders retry 3f2c9a4e-8d1b-4c6e-9f0a-5b7d2e1c8a90 a81d7c52-0e4f-4b39-8c2d-6e9f1b3a7d04'],
  ['orders retry --all-parked', 'finds them with the visibility query OrderStatus="Parked"'],
  ['orders retry --all-parked --limit 100 --json'],
])}`,
    )
    .action(
      (ids: string[] | undefined, opts: { allParked?: boolean; limit: number; json?: boolean }) =>
        withCtx(async (ctx) => {
          const named = ids !== undefined && ids.length > 0;
          if (named === Boolean(opts.allParked)) {
            console.error(
              named
                ? 'error: give order ids or --all-parked, not both'
                : 'error: give an order id, or --all-parked',
            );
            return ExitCode.usage;
          }
          const ops = new OrderOperations(() => ctx.temporal());
          const targets = named ? ids : await parkedInTemporal(await ctx.temporal(), opts.limit);
          const single = named && ids.length === 1;
          const progress = single
            ? undefined
            : startProgress({ label: 'retried', total: targets.length });
          const results: RetryOutcome[] = [];
          let failed = 0;
          try {
            for (const orderId of targets) {
              try {
                const { retrying } = await ops.retry(orderId);
                results.push({ id: orderId, ok: true, detail: `retrying ${retrying.join(', ')}` });
              } catch (err) {
                failed += 1;
                results.push({ id: orderId, ok: false, detail: (err as Error).message });
              }
              progress?.update(results.length, failed);
            }
          } finally {
            progress?.stop();
          }
          if (opts.json) printJson({ results, retried: results.length - failed, failed });
          else if (single) {
            const r = results[0]!;
            console.error(r.ok ? `order ${r.id}: ${r.detail}` : `error: ${r.detail}`);
          } else {
            if (results.length) console.log(table(results, ['id', 'ok', 'detail']));
            console.error(
              `${results.length - failed} retried, ${failed} failed` +
                (opts.allParked ? `, ${targets.length} parked found` : ''),
            );
          }
          return bulkExitCode(failed, results.length);
        }),
    );

  orders
    .command('cancel')
    .argument('<id>', 'order id (UUID)', orderIdArg)
    .description(
      'End an order as CANCELLED: at once when its workflow has not begun, otherwise its workflow gets the cancel signal',
    )
    .option(
      '-r, --reason <text>',
      'why (recorded on the order; text without control characters, at most 500 characters)',
      DEFAULT_CANCEL_REASON,
    )
    .addHelpText(
      'after',
      examplesHelp([
        ['orders cancel 3f2c9a4e-8d1b-4c6e-9f0a-5b7d2e1c8a90 --reason "customer asked"'],
      ]),
    )
    .action((id: string, opts: { reason: string }) =>
      withCtx(async (ctx) => {
        const ops = new OrderOperations(() => ctx.temporal());
        const outcome = await new OrderCancellation(ctx.db, ops).cancel(id, opts.reason);
        console.error(
          outcome.kind === 'cancelled'
            ? `order ${id} is CANCELLED`
            : `cancel sent to order ${id}; its workflow ends it CANCELLED`,
        );
      }),
    );
}
