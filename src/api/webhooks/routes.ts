import { Router } from 'express';
import { z } from 'zod';
import { ORDER_CANCELLED, ORDER_PLACED } from '../../shared/steps.ts';
import { checkWebhookTarget, type Resolver, type TargetPolicy } from '../../webhooks/ssrf-guard.ts';
import { orderIdSchema } from '../../orders/rules.ts';
import { parseOrThrow } from '../orders/routes.ts';
import { ProblemError } from '../problems.ts';
import { requireJsonBody } from '../request-body.ts';
import type { WebhookEndpointService } from './endpoint-service.ts';

/** Event types a subscriber can ask for. */
export const WEBHOOK_EVENT_TYPES = [ORDER_PLACED, ORDER_CANCELLED] as const;

export const MAX_WEBHOOK_URL_LENGTH = 2048;

const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const OCTET = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const PORT =
  '(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})';
const HOST = [
  `(?:${LABEL}\\.)*[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?`, // a DNS name (its last label starts with a letter)
  `(?:${OCTET}\\.){3}${OCTET}`, // an IPv4 address
  '\\[[0-9A-Fa-f:.]{2,45}\\]', // an IPv6 address
].join('|');
// RFC 3986 path and query characters: unreserved, sub-delims, ":", "@", percent-escapes.
const PCHAR = "(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})";

/**
 * What a webhook URL must look like, in the API and in the OpenAPI document alike:
 * http or https, a host name or an IP address, an optional port, no credentials and
 * no fragment. Which addresses it may reach is the target policy's say (WEBHOOK_ALLOWED_TARGETS).
 */
export const WEBHOOK_URL_PATTERN = new RegExp(
  `^https?://(?:${HOST})(?::${PORT})?(?:/(?:${PCHAR}|/)*)?(?:\\?(?:${PCHAR}|[/?])*)?$`,
);

/** Why a URL does not match WEBHOOK_URL_PATTERN, in words. */
function webhookUrlProblem(input: unknown): string {
  const text = typeof input === 'string' ? input : '';
  if (!/^https?:\/\//.test(text)) return 'must be an absolute http:// or https:// URL';
  if (/^https?:\/\/[^/?#]*@/.test(text)) return 'must not contain credentials';
  if (text.includes('#')) return 'must not have a fragment (#...)';
  return 'must be http(s)://host[:port][/path][?query] with a host name or IP address, and URL-safe characters';
}

export const createWebhookEndpointSchema = z.strictObject({
  url: z
    .string()
    .max(MAX_WEBHOOK_URL_LENGTH)
    .regex(WEBHOOK_URL_PATTERN, { error: (issue) => webhookUrlProblem(issue.input) })
    // Stored as the WHATWG URL serializer writes it (lower-case host, "/" path).
    .transform((url, ctx) => {
      try {
        return new URL(url).href;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'is not a valid URL' });
        return z.NEVER;
      }
    }),
  eventTypes: z
    .array(
      z.enum(WEBHOOK_EVENT_TYPES, {
        error: `must be one of ${WEBHOOK_EVENT_TYPES.join(', ')}`,
      }),
    )
    .min(1, 'must name at least one event type')
    .max(WEBHOOK_EVENT_TYPES.length * 4)
    .default([ORDER_PLACED]),
});
export const webhookEndpointIdSchema = z.uuid('must be a UUID');

/** PATCH /webhook-endpoints/{id}: what an operator may change (enable after a fix, or disable). */
export const changeWebhookEndpointSchema = z.strictObject({
  status: z.enum(['ENABLED', 'DISABLED'], { error: 'must be ENABLED or DISABLED' }),
});

/** How registrations check a URL's target (the API's and the CLI's configuration). */
export interface TargetRules {
  /** WEBHOOK_ALLOWED_TARGETS; delivery checks again after its own DNS resolution. */
  allowedTargets: TargetPolicy;
  /** DNS for the host check (default: the system's). */
  resolve?: Resolver;
}

/**
 * A registration as the API and the CLI accept it: the schema, then the SSRF
 * policy on every address the URL's host resolves to. Invalid input is a
 * validation problem naming each field; DNS that fails for now is a 503.
 */
export async function parseNewWebhookEndpoint(
  input: unknown,
  { allowedTargets, resolve }: TargetRules,
): Promise<z.infer<typeof createWebhookEndpointSchema>> {
  const body = parseOrThrow(createWebhookEndpointSchema, input);
  const refusal = await checkWebhookTarget(body.url, allowedTargets, resolve);
  if (refusal?.kind === 'lookup-failed')
    throw new ProblemError(
      'service-unavailable',
      `Cannot check the url now: ${refusal.message}`,
      undefined,
      { 'Retry-After': '5' },
    );
  if (refusal) {
    throw new ProblemError('validation-error', 'Some fields are invalid', [
      { field: 'url', message: refusal.message },
    ]);
  }
  return body;
}

export type WebhookRoutesOptions = TargetRules;

/** The /webhook-endpoints routes and an order's delivery log: parse, call the use case, map the result. */
export function webhookEndpointRoutes(
  endpoints: WebhookEndpointService,
  targets: WebhookRoutesOptions,
): Router {
  const router = Router();

  router.post('/webhook-endpoints', async (req, res) => {
    const body = await parseNewWebhookEndpoint(requireJsonBody(req), targets);
    const created = await endpoints.createEndpoint(body);
    res.status(201).location(`/webhook-endpoints/${created.id}`).json(created);
  });

  router.get('/webhook-endpoints', async (_req, res) => {
    res.json({ items: await endpoints.listEndpoints() });
  });

  router.get('/webhook-endpoints/:id', async (req, res) => {
    const id = parseOrThrow(webhookEndpointIdSchema, req.params.id, 'id');
    res.json(await endpoints.getEndpoint(id));
  });

  router.patch('/webhook-endpoints/:id', async (req, res) => {
    const id = parseOrThrow(webhookEndpointIdSchema, req.params.id, 'id');
    const change = parseOrThrow(changeWebhookEndpointSchema, requireJsonBody(req));
    res.json(await endpoints.changeEndpoint(id, change));
  });

  router.delete('/webhook-endpoints/:id', async (req, res) => {
    const id = parseOrThrow(webhookEndpointIdSchema, req.params.id, 'id');
    await endpoints.deleteEndpoint(id);
    res.status(204).end();
  });

  router.get('/orders/:id/webhook-deliveries', async (req, res) => {
    const id = parseOrThrow(orderIdSchema, req.params.id, 'id');
    res.json({ items: await endpoints.deliveriesOfOrder(id) });
  });

  return router;
}
