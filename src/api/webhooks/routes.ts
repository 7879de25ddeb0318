/**
 * The /webhook-endpoints routes and an order's delivery log: HTTP only. The rules
 * (src/webhooks/endpoint-rules.ts) and use cases (src/webhooks/endpoints.ts) are the
 * domain's; their errors become problems in the one error middleware (../problems.ts).
 */
import { Router } from 'express';
import { orderIdSchema } from '../../orders/rules.ts';
import {
  changeWebhookEndpointSchema,
  parseNewWebhookEndpoint,
  validOrThrow,
  webhookEndpointIdSchema,
  type TargetRules,
} from '../../webhooks/endpoint-rules.ts';
import type { WebhookEndpointService } from '../../webhooks/endpoints.ts';
import { requireJsonBody } from '../request-body.ts';

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
    const id = validOrThrow(webhookEndpointIdSchema, req.params.id, 'id');
    res.json(await endpoints.getEndpoint(id));
  });

  router.patch('/webhook-endpoints/:id', async (req, res) => {
    const id = validOrThrow(webhookEndpointIdSchema, req.params.id, 'id');
    const change = validOrThrow(changeWebhookEndpointSchema, requireJsonBody(req));
    res.json(await endpoints.changeEndpoint(id, change));
  });

  router.delete('/webhook-endpoints/:id', async (req, res) => {
    const id = validOrThrow(webhookEndpointIdSchema, req.params.id, 'id');
    await endpoints.deleteEndpoint(id);
    res.status(204).end();
  });

  router.get('/orders/:id/webhook-deliveries', async (req, res) => {
    const id = validOrThrow(orderIdSchema, req.params.id, 'id');
    res.json({ items: await endpoints.deliveriesOfOrder(id) });
  });

  return router;
}
