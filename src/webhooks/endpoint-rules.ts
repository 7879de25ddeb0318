/**
 * The rules of webhook subscribers, for the API and the CLI alike: which event
 * types exist, what a webhook URL must look like and which addresses it may
 * reach (the SSRF policy), what an endpoint id and a change must be, and the
 * errors the subscriber use cases (endpoints.ts) throw. Nothing here knows about HTTP.
 */
import { z } from 'zod';
import { DomainError, validOrThrowAs } from '../shared/errors.ts';
import { ORDER_CANCELLED, ORDER_PLACED } from '../shared/steps.ts';
import { checkWebhookTarget, type Resolver, type TargetPolicy } from './ssrf-guard.ts';

/**
 * Why a subscriber use case said no. Named as the CLI has always printed them
 * (the names of the problems the API answers with, src/api/problems.ts).
 */
export const WEBHOOK_ENDPOINT_ERROR_CODES = [
  /** The input breaks a rule (`fields` says which). */
  'invalid',
  /** No endpoint (or, for its delivery log, no order) has this id. */
  'not-found',
  /** An event type already has WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE endpoints. */
  'endpoint-limit-reached',
  /** The URL's host cannot be resolved now, so its target cannot be checked; retry. */
  'service-unavailable',
] as const;
export type WebhookEndpointErrorCode = (typeof WEBHOOK_ENDPOINT_ERROR_CODES)[number];

/** A subscriber use case said no; the message is the detail a caller sees. */
export class WebhookEndpointError extends DomainError<WebhookEndpointErrorCode> {
  override name = 'WebhookEndpointError';
}

/** The value `schema` accepts, or an `invalid` WebhookEndpointError naming the fields at fault. */
export const validOrThrow = validOrThrowAs(WebhookEndpointError);

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
 * policy on every address the URL's host resolves to. Invalid input is an
 * `invalid` error naming each field; DNS that fails for now is `service-unavailable`.
 */
export async function parseNewWebhookEndpoint(
  input: unknown,
  { allowedTargets, resolve }: TargetRules,
): Promise<z.infer<typeof createWebhookEndpointSchema>> {
  const body = validOrThrow(createWebhookEndpointSchema, input);
  const refusal = await checkWebhookTarget(body.url, allowedTargets, resolve);
  if (refusal?.kind === 'lookup-failed')
    throw new WebhookEndpointError(
      'service-unavailable',
      `Cannot check the url now: ${refusal.message}`,
      { retryAfterSeconds: 5 },
    );
  if (refusal) {
    throw new WebhookEndpointError('invalid', 'Some fields are invalid', {
      fields: [{ field: 'url', message: refusal.message }],
    });
  }
  return body;
}
