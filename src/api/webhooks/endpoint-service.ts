/**
 * Webhook subscribers and their delivery log: the use cases behind the
 * /webhook-endpoints routes and GET /orders/{id}/webhook-deliveries.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Db } from '../../db/client.ts';
import type { WebhookDelivery, WebhookEndpoint } from '../../generated/prisma/client.ts';
import { ProblemError } from '../problems.ts';

export interface WebhookEndpointView {
  id: string;
  url: string;
  eventTypes: string[];
  status: 'ENABLED' | 'DISABLED';
  /** Why it was disabled (e.g. the receiver answered 410 Gone). */
  disabledReason: string | null;
  createdAt: string;
  updatedAt: string;
}

/** The creation response: the only time the signing secret is shown. */
export interface CreatedWebhookEndpoint extends WebhookEndpointView {
  secret: string;
}

export interface WebhookDeliveryView {
  webhookId: string;
  endpointId: string;
  eventType: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  updatedAt: string;
}

/** A Standard Webhooks signing secret: "whsec_" and 24 random bytes in base64. */
export const newSigningSecret = (): string => `whsec_${randomBytes(24).toString('base64')}`;

function toView(row: WebhookEndpoint): WebhookEndpointView {
  return {
    id: row.id,
    url: row.url,
    eventTypes: row.eventTypes,
    status: row.status,
    disabledReason: row.disabledReason,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

const toDeliveryView = (row: WebhookDelivery): WebhookDeliveryView => ({
  webhookId: row.webhookId,
  endpointId: row.endpointId,
  eventType: row.eventType,
  attempts: row.attempts,
  lastStatus: row.lastStatus,
  lastError: row.lastError,
  deliveredAt: row.deliveredAt?.toISOString() ?? null,
  updatedAt: row.updatedAt.toISOString(),
});

export class WebhookEndpointService {
  constructor(private readonly db: Db) {}

  /** Registers a subscriber with a fresh signing secret (returned here and never again). */
  async createEndpoint(input: {
    url: string;
    eventTypes: string[];
  }): Promise<CreatedWebhookEndpoint> {
    const row = await this.db.webhookEndpoint.create({
      data: {
        id: randomUUID(),
        url: input.url,
        eventTypes: [...new Set(input.eventTypes)],
        secret: newSigningSecret(),
      },
    });
    return { ...toView(row), secret: row.secret };
  }

  /** Oldest first. */
  async listEndpoints(): Promise<WebhookEndpointView[]> {
    const rows = await this.db.webhookEndpoint.findMany({
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
    return rows.map(toView);
  }

  async getEndpoint(id: string): Promise<WebhookEndpointView> {
    const row = await this.db.webhookEndpoint.findUnique({ where: { id } });
    if (!row) throw new ProblemError('not-found', `Webhook endpoint ${id} does not exist`);
    return toView(row);
  }

  /** Deletes the endpoint (and its delivery log); pending deliveries to it stop. */
  async deleteEndpoint(id: string): Promise<void> {
    const { count } = await this.db.webhookEndpoint.deleteMany({ where: { id } });
    if (count === 0) throw new ProblemError('not-found', `Webhook endpoint ${id} does not exist`);
  }

  /** The delivery log of one order, oldest first; 404 when the order does not exist. */
  async deliveriesOfOrder(orderId: string): Promise<WebhookDeliveryView[]> {
    const order = await this.db.order.findUnique({
      where: { id: orderId },
      select: { webhookDeliveries: { orderBy: [{ createdAt: 'asc' }, { endpointId: 'asc' }] } },
    });
    if (!order) throw new ProblemError('not-found', `Order ${orderId} does not exist`);
    return order.webhookDeliveries.map(toDeliveryView);
  }
}
