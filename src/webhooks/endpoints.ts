/**
 * Webhook subscribers and their delivery log: the use cases behind the
 * /webhook-endpoints routes, GET /orders/{id}/webhook-deliveries and the
 * CLI's `webhooks` commands. They say no with a WebhookEndpointError
 * (endpoint-rules.ts), which the API maps to a problem and the CLI to a message.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE_DEFAULT } from '../config/env.ts';
import type { Db } from '../db/client.ts';
import type { WebhookDelivery, WebhookEndpoint } from '../generated/prisma/client.ts';
import { WebhookEndpointError } from './endpoint-rules.ts';

export interface WebhookEndpointView {
  id: string;
  url: string;
  eventTypes: string[];
  status: 'ENABLED' | 'DISABLED';
  /** Why it was disabled: the receiver answered 410 Gone, kept failing for good, or an operator. */
  disabledReason: string | null;
  disabledAt: string | null;
  /** Permanent delivery failures since the last delivery; WEBHOOK_DISABLE_AFTER_FAILURES disables it. */
  consecutiveFailures: number;
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
    disabledAt: row.disabledAt?.toISOString() ?? null,
    consecutiveFailures: row.consecutiveFailures,
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

/** The advisory lock registrations take turns on, so the cap holds under concurrent requests. */
const REGISTRATION_LOCK = 0x0f_1e_b0_0c;

/** What an operator may set on an endpoint (PATCH /webhook-endpoints/{id}, `webhooks enable|disable`). */
export interface EndpointChange {
  status: 'ENABLED' | 'DISABLED';
}

export class WebhookEndpointService {
  constructor(
    private readonly db: Db,
    /** Endpoints one event type may have (WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE); disabled ones count. */
    private readonly maxPerEventType = WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE_DEFAULT,
  ) {}

  /**
   * Registers a subscriber with a fresh signing secret (returned here and never again);
   * `endpoint-limit-reached` when an event type already has its maximum of endpoints.
   */
  async createEndpoint(input: {
    url: string;
    eventTypes: string[];
  }): Promise<CreatedWebhookEndpoint> {
    const eventTypes = [...new Set(input.eventTypes)];
    const row = await this.db.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(${REGISTRATION_LOCK}::bigint)`;
      for (const eventType of eventTypes) {
        const existing = await tx.webhookEndpoint.count({
          where: { eventTypes: { has: eventType } },
        });
        if (existing >= this.maxPerEventType)
          throw new WebhookEndpointError(
            'endpoint-limit-reached',
            `${eventType} already has ${existing} webhook endpoints, the most allowed (WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE=${this.maxPerEventType}); delete one first`,
            {
              fields: [
                { field: 'eventTypes', message: `${eventType} has no room for another endpoint` },
              ],
            },
          );
      }
      return tx.webhookEndpoint.create({
        data: { id: randomUUID(), url: input.url, eventTypes, secret: newSigningSecret() },
      });
    });
    return { ...toView(row), secret: row.secret };
  }

  /**
   * Enables or disables an endpoint. Enabling clears the reason and the count of failures,
   * so deliveries to it start again with later orders (parked ones on their retry).
   */
  async changeEndpoint(id: string, change: EndpointChange): Promise<WebhookEndpointView> {
    const data =
      change.status === 'ENABLED'
        ? {
            status: 'ENABLED' as const,
            disabledReason: null,
            disabledAt: null,
            consecutiveFailures: 0,
          }
        : {
            status: 'DISABLED' as const,
            disabledReason: 'disabled by an operator',
            disabledAt: new Date(),
          };
    await this.db.webhookEndpoint.updateMany({
      // Disabling a disabled endpoint keeps its first reason.
      where: change.status === 'DISABLED' ? { id, status: 'ENABLED' } : { id },
      data,
    });
    // `not-found` when there is no such endpoint.
    return this.getEndpoint(id);
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
    if (!row) throw new WebhookEndpointError('not-found', `Webhook endpoint ${id} does not exist`);
    return toView(row);
  }

  /** Deletes the endpoint (and its delivery log); pending deliveries to it stop. */
  async deleteEndpoint(id: string): Promise<void> {
    const { count } = await this.db.webhookEndpoint.deleteMany({ where: { id } });
    if (count === 0)
      throw new WebhookEndpointError('not-found', `Webhook endpoint ${id} does not exist`);
  }

  /** The delivery log of one order, oldest first; `not-found` when the order does not exist. */
  async deliveriesOfOrder(orderId: string): Promise<WebhookDeliveryView[]> {
    const order = await this.db.order.findUnique({
      where: { id: orderId },
      select: { webhookDeliveries: { orderBy: [{ createdAt: 'asc' }, { endpointId: 'asc' }] } },
    });
    if (!order) throw new WebhookEndpointError('not-found', `Order ${orderId} does not exist`);
    return order.webhookDeliveries.map(toDeliveryView);
  }
}
