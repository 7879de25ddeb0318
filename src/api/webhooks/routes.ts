import { Router } from 'express';
import { z } from 'zod';
import { ORDER_PLACED } from '../../shared/steps.ts';
import { checkWebhookTarget, type Resolver, type TargetPolicy } from '../../webhooks/ssrf-guard.ts';
import { orderIdSchema, parseOrThrow } from '../orders/routes.ts';
import { ProblemError } from '../problems.ts';
import type { WebhookEndpointService } from './endpoint-service.ts';

/** Event types a subscriber can ask for. */
export const WEBHOOK_EVENT_TYPES = [ORDER_PLACED] as const;

export const MAX_WEBHOOK_URL_LENGTH = 2048;

function hasNoCredentials(url: string): boolean {
  try {
    const u = new URL(url);
    return !u.username && !u.password;
  } catch {
    return true; // the url format check reports it
  }
}

export const createWebhookEndpointSchema = z.strictObject({
  url: z
    .url({
      protocol: /^https?$/,
      normalize: true,
      error: 'must be an absolute http:// or https:// URL',
    })
    .max(MAX_WEBHOOK_URL_LENGTH)
    .refine(hasNoCredentials, 'must not contain credentials'),
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
    if (!req.is('application/json')) {
      throw new ProblemError(
        'unsupported-media-type',
        `Content-Type ${req.get('content-type') ?? '(none)'} is not application/json`,
      );
    }
    const body = await parseNewWebhookEndpoint(req.body, targets);
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
    if (!req.is(['application/json', 'application/merge-patch+json'])) {
      throw new ProblemError(
        'unsupported-media-type',
        `Content-Type ${req.get('content-type') ?? '(none)'} is not application/json`,
      );
    }
    const change = parseOrThrow(changeWebhookEndpointSchema, req.body);
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
