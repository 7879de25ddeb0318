/**
 * The chaos subscriber's receiver, in a process of its own (forked by
 * startChaosSubscriber): it stamps each request when it arrives, verifies its
 * Standard Webhooks signature once the parent sent the secret, answers 204
 * after `delayMs` (503 while the parent says the receiver is failing), and
 * reports every request over IPC. Kept out of the test runner, whose event
 * loop also sends the load and polls the database: there an arrival could
 * wait tens of milliseconds for its timestamp, and the rate check reads the
 * spacing of arrivals.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

const delayMs = Number(process.argv[2] ?? 0);
const state: { verifier?: Webhook; failing: boolean } = { failing: false };
const send = (m: unknown) => process.send?.(m);

process.on('message', (m: { secret?: string; failing?: boolean }) => {
  if (m.secret !== undefined) state.verifier = new Webhook(m.secret);
  if (m.failing !== undefined) state.failing = m.failing;
});

const server = http.createServer((req, res) => {
  const at = Date.now();
  const chunks: Buffer[] = [];
  send({ kind: 'arrived' });
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const status = !state.verifier || state.failing ? 503 : 204;
    let verified = false;
    let verifyError: string | undefined;
    try {
      state.verifier?.verify(body, req.headers as Record<string, string>);
      verified = state.verifier !== undefined;
    } catch (err) {
      verifyError = err instanceof Error ? err.message : String(err);
    }
    send({
      kind: 'delivery',
      delivery: {
        webhookId: String(req.headers['webhook-id'] ?? ''),
        body,
        verified,
        ...(verifyError ? { verifyError } : {}),
        status,
        at,
      },
    });
    setTimeout(() => {
      send({ kind: 'answered' });
      if (!res.destroyed) res.writeHead(status).end(status === 503 ? 'chaos: receiver down' : '');
    }, delayMs);
  });
});
server.listen(0, '127.0.0.1', () =>
  send({ kind: 'listening', port: (server.address() as AddressInfo).port }),
);
// The runner going away (also by SIGKILL) ends the receiver: the IPC channel closes.
process.on('disconnect', () => process.exit(0));
