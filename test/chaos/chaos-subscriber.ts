/**
 * The chaos run's webhook subscriber: an endpoint registered through the API
 * whose receiver on 127.0.0.1 verifies every request's Standard Webhooks
 * signature with the secret the API returned, records it (webhook-id, body,
 * answer), and answers 204 after an optional delay (so deliveries overlap and
 * a killed webhooks worker dies mid-request), or 503 while an outage is on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { registerEndpoint } from '../support/api.ts';

export interface Delivery {
  webhookId: string;
  body: string;
  verified: boolean;
  verifyError?: string;
  /** The status the receiver answered (503 during an outage). */
  status: number;
  at: number;
}

export interface ChaosSubscriber {
  endpointId: string;
  readonly deliveries: Delivery[];
  /** Requests received and not answered yet. */
  readonly inFlight: number;
  /** While true, every request is answered 503 (and still recorded). */
  failing: boolean;
  close(): Promise<void>;
}

export async function startChaosSubscriber(
  apiUrl: string,
  opts: { delayMs: number },
): Promise<ChaosSubscriber> {
  const deliveries: Delivery[] = [];
  const auth: { verifier?: Webhook } = {};
  let inFlight = 0;
  const state = { failing: false };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    inFlight++;
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const status = !auth.verifier || state.failing ? 503 : 204;
      const d: Delivery = {
        webhookId: String(req.headers['webhook-id'] ?? ''),
        body,
        verified: false,
        status,
        at: Date.now(),
      };
      try {
        auth.verifier?.verify(body, req.headers as Record<string, string>);
        d.verified = auth.verifier !== undefined;
      } catch (err) {
        d.verifyError = err instanceof Error ? err.message : String(err);
      }
      deliveries.push(d);
      setTimeout(() => {
        inFlight--;
        if (!res.destroyed) res.writeHead(status).end(status === 503 ? 'chaos: receiver down' : '');
      }, opts.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const created = await registerEndpoint(apiUrl, `http://127.0.0.1:${port}/hooks`).catch(
    (e: unknown) => {
      server.close();
      throw e;
    },
  );
  auth.verifier = new Webhook(created.secret);

  return {
    endpointId: created.id,
    deliveries,
    get inFlight() {
      return inFlight;
    },
    get failing() {
      return state.failing;
    },
    set failing(v: boolean) {
      state.failing = v;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
