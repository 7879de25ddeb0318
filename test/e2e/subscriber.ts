/**
 * A registered webhook subscriber for end-to-end tests: a webhook endpoint
 * created through the API whose deliveries reach test/support/webhook-receiver.ts,
 * verifying the Standard Webhooks signature with the secret the API returned.
 *
 * The receiver needs the secret when it starts, but the API only hands the
 * secret out when the endpoint's URL is registered. So the URL registered is a
 * small front on 127.0.0.1 that passes each request through unchanged (body,
 * webhook-* headers) to the receiver once the receiver is bound, and passes the
 * receiver's answer (status, Retry-After, body) back.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Db } from '../../src/db/client.ts';
import { orderPlacedEventId, webhookMessageId } from '../../src/shared/events.ts';
import { registerEndpoint } from '../support/api.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver.ts';

export interface Subscriber {
  endpointId: string;
  secret: string;
  receiver: WebhookReceiver;
  /** The stable Standard Webhooks `webhook-id` of an order's `order.placed` to this endpoint. */
  webhookIdOf(orderId: string): string;
  /** Deletes the endpoint (no more deliveries), then closes the front and the receiver. */
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(['host', 'connection', 'content-length', 'transfer-encoding']);

export async function subscribe(apiUrl: string): Promise<Subscriber> {
  /** Where the front passes requests to: the receiver, once it runs. */
  const route: { target?: string } = {};
  const front = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!route.target) {
        res.writeHead(503).end('receiver not bound yet');
        return;
      }
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === 'string' && !HOP_BY_HOP.has(k)) headers[k] = v;
      fetch(`${route.target}${req.url ?? '/'}`, {
        method: req.method,
        headers,
        body: chunks.length ? Buffer.concat(chunks) : undefined,
        signal: AbortSignal.timeout(30_000),
      })
        .then(async (answer) => {
          const body = await answer.text();
          const retryAfter = answer.headers.get('retry-after');
          res.writeHead(answer.status, retryAfter ? { 'retry-after': retryAfter } : {}).end(body);
        })
        .catch((err: unknown) => {
          if (!res.headersSent) res.writeHead(502).end(String(err));
        });
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  const { port } = front.address() as AddressInfo;
  const closeFront = async () => {
    front.closeAllConnections();
    await new Promise<void>((resolve) => front.close(() => resolve()));
  };

  let created: { id: string; secret: string };
  try {
    created = await registerEndpoint(apiUrl, `http://127.0.0.1:${port}/hooks`);
  } catch (e) {
    await closeFront();
    throw e;
  }
  const receiver = await startWebhookReceiver({ secret: created.secret });
  route.target = receiver.url;

  return {
    endpointId: created.id,
    secret: created.secret,
    receiver,
    webhookIdOf: (orderId) => webhookMessageId(orderPlacedEventId(orderId), created.id),
    async close() {
      await fetch(`${apiUrl}/webhook-endpoints/${created.id}`, { method: 'DELETE' }).catch(
        () => {},
      );
      await closeFront();
      await receiver.close();
    },
  };
}

/**
 * subscribe, refused while another endpoint is enabled: a subscriber another
 * file forgot would receive these orders too (and keep them from parking).
 */
export async function subscribeAlone(api: { url: string; db: Db }): Promise<Subscriber> {
  const others = await api.db.webhookEndpoint.findMany({ where: { status: 'ENABLED' } });
  if (others.length)
    throw new Error(
      `enabled webhook endpoints left by other tests: ${others.map((e) => e.url).join(', ')}`,
    );
  return subscribe(api.url);
}
