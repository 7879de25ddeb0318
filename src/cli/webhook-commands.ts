/**
 * `webhooks list|add|remove|enable|disable`: subscribers, through the same
 * validation (schema and SSRF policy) and use cases as /webhook-endpoints.
 */
import type { Command } from 'commander';
import {
  WEBHOOK_EVENT_TYPES,
  parseNewWebhookEndpoint,
  validOrThrow,
  webhookEndpointIdSchema,
} from '../webhooks/endpoint-rules.ts';
import { WebhookEndpointService, type WebhookEndpointView } from '../webhooks/endpoints.ts';
import { withCtx, type Ctx } from './context.ts';
import { examplesHelp, printJson, table } from './output.ts';

const collect = (value: string, previous: string[] | undefined): string[] => [
  ...(previous ?? []),
  value,
];

/** One table row of a subscriber (never its secret: the view has none). */
const endpointRow = (e: WebhookEndpointView) => ({
  id: e.id,
  url: e.url,
  events: e.eventTypes.join(','),
  enabled: e.status === 'ENABLED' ? 'yes' : `no${e.disabledReason ? ` (${e.disabledReason})` : ''}`,
  failures: String(e.consecutiveFailures),
  created: e.createdAt,
});
const endpointColumns = ['id', 'url', 'events', 'enabled', 'failures', 'created'];

/** The service with the configured cap on endpoints per event type. */
const service = (ctx: Ctx) =>
  new WebhookEndpointService(ctx.db, ctx.config.WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE);

export function addWebhookCommands(program: Command): void {
  const webhooks = program
    .command('webhooks')
    .description('Webhook subscribers (what /webhook-endpoints manages)')
    .addHelpText(
      'after',
      examplesHelp([
        ['webhooks list'],
        ['webhooks add https://hooks.example.com/orders', 'prints the signing secret once'],
        ['webhooks remove 5c0e2b7a-91d4-4f8e-b6a3-0d2c8e4f1a77'],
        ['webhooks enable 5c0e2b7a-91d4-4f8e-b6a3-0d2c8e4f1a77', 'after the receiver is fixed'],
      ]),
    );

  webhooks
    .command('list')
    .description(
      'Subscribers, oldest first: id, URL, event types, enabled (or why not), permanent failures in a row, created (no secrets)',
    )
    .option(
      '--json',
      'a JSON array on stdout, each {id, url, eventTypes, status, disabledReason, disabledAt, consecutiveFailures, createdAt, updatedAt}',
    )
    .addHelpText('after', examplesHelp([['webhooks list'], ['webhooks list --json']]))
    .action((opts: { json?: boolean }) =>
      withCtx(async (ctx) => {
        const endpoints = await service(ctx).listEndpoints();
        if (opts.json) return printJson(endpoints);
        if (endpoints.length) console.log(table(endpoints.map(endpointRow), endpointColumns));
        console.error(`${endpoints.length} webhook endpoint(s)`);
      }),
    );

  webhooks
    .command('add <url>')
    .description(
      'Subscribe a URL to order events; prints its signing secret, the only time it is shown',
    )
    .option(
      '-e, --event <type>',
      `an event type to deliver, repeatable: ${WEBHOOK_EVENT_TYPES.join(', ')} (default: ${WEBHOOK_EVENT_TYPES[0]})`,
      collect,
    )
    .option(
      '--json',
      'the new endpoint as JSON on stdout, with its secret (the fields of POST /webhook-endpoints)',
    )
    .addHelpText(
      'after',
      `
The URL must be absolute http(s), without credentials, and every address its
host resolves to must pass the SSRF policy WEBHOOK_ALLOWED_TARGETS (the same
rules as POST /webhook-endpoints); otherwise the command exits 2 naming the
field. An event type already at WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE endpoints
exits 1. Deliveries are signed per Standard Webhooks with the secret (whsec_…):
store it now, it is never shown again.
${examplesHelp([
  ['webhooks add https://hooks.example.com/orders'],
  ['webhooks add http://127.0.0.1:9000/hook --event order.placed --json'],
])}`,
    )
    .action((url: string, opts: { event?: string[]; json?: boolean }) =>
      withCtx(async (ctx) => {
        const input = await parseNewWebhookEndpoint(
          { url, ...(opts.event ? { eventTypes: opts.event } : {}) },
          { allowedTargets: ctx.config.WEBHOOK_ALLOWED_TARGETS },
        );
        const created = await service(ctx).createEndpoint(input);
        if (opts.json) return printJson(created);
        console.log(table([endpointRow(created)], endpointColumns));
        console.log(`\nsecret  ${created.secret}`);
        console.error('Store the signing secret now: it is not shown again.');
      }),
    );

  webhooks
    .command('remove <id>')
    .description(
      'Unsubscribe (like DELETE /webhook-endpoints/{id}); deliveries still pending to it stop',
    )
    .addHelpText(
      'after',
      `
An id that is not a UUID exits 2; an unknown id exits 1.
${examplesHelp([['webhooks remove 5c0e2b7a-91d4-4f8e-b6a3-0d2c8e4f1a77']])}`,
    )
    .action((rawId: string) =>
      withCtx(async (ctx) => {
        const id = validOrThrow(webhookEndpointIdSchema, rawId, 'id');
        await service(ctx).deleteEndpoint(id);
        console.error(`webhook endpoint ${id} removed`);
      }),
    );

  for (const [name, status, description] of [
    [
      'enable',
      'ENABLED',
      'Deliver to a disabled endpoint again (like PATCH /webhook-endpoints/{id} {"status":"ENABLED"}); clears its reason and failure count',
    ],
    [
      'disable',
      'DISABLED',
      'Stop delivering to an endpoint (like PATCH /webhook-endpoints/{id} {"status":"DISABLED"}); orders skip it',
    ],
  ] as const) {
    webhooks
      .command(`${name} <id>`)
      .description(description)
      .option(
        '--json',
        'the endpoint as JSON on stdout (the fields of GET /webhook-endpoints/{id})',
      )
      .addHelpText(
        'after',
        `
Later orders deliver to an enabled endpoint and skip a disabled one; a parked
order runs its delivery again (or skips it) when it is retried (orders retry).
An id that is not a UUID exits 2; an unknown id exits 1.
${examplesHelp([[`webhooks ${name} 5c0e2b7a-91d4-4f8e-b6a3-0d2c8e4f1a77`]])}`,
      )
      .action((rawId: string, opts: { json?: boolean }) =>
        withCtx(async (ctx) => {
          const id = validOrThrow(webhookEndpointIdSchema, rawId, 'id');
          const endpoint = await service(ctx).changeEndpoint(id, { status });
          if (opts.json) return printJson(endpoint);
          console.log(table([endpointRow(endpoint)], endpointColumns));
          console.error(`webhook endpoint ${id} ${name}d`);
        }),
      );
  }
}
