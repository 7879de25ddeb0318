import { Router } from 'express';
import { z } from 'zod';
import { ORDER_PLACED } from '../../shared/steps.ts';
import { refusalOfUrl, type TargetPolicy } from '../../webhooks/ssrf-guard.ts';
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

/**
 * A registration as the API and the CLI accept it: the schema, then the SSRF
 * policy on the URL; invalid input is a validation problem naming each field.
 */
export function parseNewWebhookEndpoint(
  input: unknown,
  allowedTargets: TargetPolicy,
): z.infer<typeof createWebhookEndpointSchema> {
  const body = parseOrThrow(createWebhookEndpointSchema, input);
  const refusal = refusalOfUrl(body.url, allowedTargets);
  if (refusal) {
    throw new ProblemError('validation-error', 'Some fields are invalid', [
      { field: 'url', message: refusal },
    ]);
  }
  return body;
}

export interface WebhookRoutesOptions {
  /** The SSRF policy for registered URLs (delivery re-checks after DNS resolution). */
  allowedTargets: TargetPolicy;
}

/** The /webhook-endpoints routes and an order's delivery log: parse, call the use case, map the result. */
export function webhookEndpointRoutes(
  endpoints: WebhookEndpointService,
  { allowedTargets }: WebhookRoutesOptions,
): Router {
  const router = Router();

  router.post('/webhook-endpoints', async (req, res) => {
    if (!req.is('application/json')) {
      throw new ProblemError(
        'unsupported-media-type',
        `Content-Type ${req.get('content-type') ?? '(none)'} is not application/json`,
      );
    }
    const body = parseNewWebhookEndpoint(req.body, allowedTargets);
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
