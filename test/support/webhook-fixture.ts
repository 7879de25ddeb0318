/**
 * What tests of webhook delivery against PostgreSQL share: a database client,
 * a real receiver that verifies with the fixture's signing secret, helpers
 * that create orders and endpoints, and a cleanup that removes exactly those
 * rows (other files' order workflows would deliver to leftover subscribers).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { newSigningSecret } from '../../src/webhooks/endpoints.ts';
import { createDb, type Db } from '../../src/db/client.ts';
import { ORDER_PLACED } from '../../src/shared/steps.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { startWebhookReceiver, type WebhookReceiver } from './webhook-receiver.ts';

export interface WebhookFixtureOrder {
  customerEmail: string;
  totalCents: bigint;
  items: { line: number; sku: string; quantity: number; unitPriceCents: bigint }[];
}

export interface WebhookFixtureEndpoint {
  /** Default: `${receiver.url}/hooks/<endpoint id>`. */
  url?: string;
  status?: 'ENABLED' | 'DISABLED';
  /** Default: [ORDER_PLACED]. */
  eventTypes?: string[];
}

export interface WebhookFixture {
  readonly secret: string;
  /** Set in beforeAll. */
  readonly db: Db;
  /** Set in beforeAll; signs with `secret`. */
  readonly receiver: WebhookReceiver;
  /** An order (removed after all tests). */
  createOrder: (order: WebhookFixtureOrder) => ReturnType<Db['order']['create']>;
  /** An endpoint signing with `secret` (removed after all tests). */
  createEndpoint: (opts?: WebhookFixtureEndpoint) => ReturnType<Db['webhookEndpoint']['create']>;
}

/** Registers the beforeAll/afterAll hooks of the calling test file. */
export function useWebhookFixture(databaseUrl: string): WebhookFixture {
  const secret = newSigningSecret();
  const orders: string[] = [];
  const endpoints: string[] = [];
  let db: Db | undefined;
  let receiver: WebhookReceiver | undefined;

  beforeAll(async () => {
    db = createDb(databaseUrl, 4);
    receiver = await startWebhookReceiver({ secret });
  });
  afterAll(async () => {
    await db?.webhookEndpoint.deleteMany({ where: { id: { in: endpoints } } });
    await db?.order.deleteMany({ where: { id: { in: orders } } });
    await receiver?.close();
    await db?.$disconnect();
  });

  const fixture: WebhookFixture = {
    secret,
    get db() {
      if (!db) throw new Error('webhook fixture: db is set in beforeAll');
      return db;
    },
    get receiver() {
      if (!receiver) throw new Error('webhook fixture: receiver is set in beforeAll');
      return receiver;
    },
    createOrder: ({ customerEmail, totalCents, items }) => {
      const id = randomUUID();
      orders.push(id);
      return fixture.db.order.create({
        data: {
          id,
          customerEmail,
          currency: 'EUR',
          totalCents,
          workflowId: orderWorkflowId(id),
          items: { createMany: { data: items } },
        },
      });
    },
    createEndpoint: (opts = {}) => {
      const id = randomUUID();
      endpoints.push(id);
      return fixture.db.webhookEndpoint.create({
        data: {
          id,
          url: opts.url ?? `${fixture.receiver.url}/hooks/${id}`,
          eventTypes: opts.eventTypes ?? [ORDER_PLACED],
          status: opts.status ?? 'ENABLED',
          secret,
        },
      });
    },
  };
  return fixture;
}
