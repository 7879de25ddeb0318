/**
 * `webhooks list|add|remove`: subscribers, through the same validation (schema
 * and SSRF policy) and use cases as /webhook-endpoints.
 */
import type { Command } from 'commander';
import {
  WebhookEndpointService,
  type WebhookEndpointView,
} from '../api/webhooks/endpoint-service.ts';
import {
  WEBHOOK_EVENT_TYPES,
  parseNewWebhookEndpoint,
  webhookEndpointIdSchema,
} from '../api/webhooks/routes.ts';
import { parseOrThrow } from '../api/orders/routes.ts';
import { withCtx } from './context.ts';
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
  created: e.createdAt,
});
const endpointColumns = ['id', 'url', 'events', 'enabled', 'created'];

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
      ]),
    );

  webhooks
    .command('list')
    .description('Subscribers, oldest first: id, URL, event types, enabled, created (no secrets)')
    .option(
      '--json',
      'a JSON array on stdout, each {id, url, eventTypes, status, disabledReason, createdAt, updatedAt}',
    )
    .addHelpText('after', examplesHelp([['webhooks list'], ['webhooks list --json']]))
    .action((opts: { json?: boolean }) =>
      withCtx(async ({ db }) => {
        const endpoints = await new WebhookEndpointService(db).listEndpoints();
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
The URL must be absolute http(s), without credentials, and pass the SSRF policy
WEBHOOK_ALLOWED_TARGETS (the same rules as POST /webhook-endpoints); otherwise
the command exits 2 naming the field. Deliveries are signed per Standard
Webhooks with the secret (whsec_…): store it now, it is never shown again.
${examplesHelp([
  ['webhooks add https://hooks.example.com/orders'],
  ['webhooks add http://127.0.0.1:9000/hook --event order.placed --json'],
])}`,
    )
    .action((url: string, opts: { event?: string[]; json?: boolean }) =>
      withCtx(async ({ config, db }) => {
        const input = parseNewWebhookEndpoint(
          { url, ...(opts.event ? { eventTypes: opts.event } : {}) },
          config.WEBHOOK_ALLOWED_TARGETS,
        );
        const created = await new WebhookEndpointService(db).createEndpoint(input);
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
      withCtx(async ({ db }) => {
        const id = parseOrThrow(webhookEndpointIdSchema, rawId, 'id');
        await new WebhookEndpointService(db).deleteEndpoint(id);
        console.error(`webhook endpoint ${id} removed`);
      }),
    );
}
