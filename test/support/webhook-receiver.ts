/**
 * A real webhook receiver on 127.0.0.1: verifies each request with the
 * Standard Webhooks library exactly as a subscriber would, records it, and
 * answers from a script (status, headers, delay) or 204 when none is queued.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ScriptedResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** Wait this long before answering (e.g. beyond the sender's timeout). */
  delayMs?: number;
}

export interface ReceivedWebhook {
  method: string;
  /** Path and query. */
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** The signature verified with the receiver's secret (and the timestamp was fresh). */
  verified: boolean;
  verifyError?: string;
  /** The verified, parsed payload. */
  payload?: unknown;
  receivedAt: Date;
}

export interface WebhookReceiver {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  readonly requests: ReceivedWebhook[];
  /** Queues responses; each request takes the next one (default 204). */
  respondWith(...responses: ScriptedResponse[]): void;
  /** Resolves once `count` requests have arrived (bounded wait). */
  waitForRequests(count: number, timeoutMs?: number): Promise<ReceivedWebhook[]>;
  /** Forgets recorded requests and queued responses. */
  reset(): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(opts: { secret: string }): Promise<WebhookReceiver> {
  const verifier = new Webhook(opts.secret);
  const requests: ReceivedWebhook[] = [];
  let script: ScriptedResponse[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const record: ReceivedWebhook = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        verified: false,
        receivedAt: new Date(),
      };
      try {
        record.payload = verifier.verify(body, req.headers as Record<string, string>);
        record.verified = true;
      } catch (err) {
        record.verifyError = err instanceof Error ? err.message : String(err);
      }
      requests.push(record);
      const answer = script.shift() ?? { status: 204 };
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(answer.status, answer.headers).end(answer.body ?? '');
      };
      if (!answer.delayMs) return send();
      const timer = setTimeout(() => {
        timers.delete(timer);
        send();
      }, answer.delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respondWith(...responses) {
      script.push(...responses);
    },
    async waitForRequests(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        if (Date.now() > deadline)
          throw new Error(`received ${requests.length} webhook requests, expected ${count}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      return requests;
    },
    reset() {
      requests.length = 0;
      script = [];
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
