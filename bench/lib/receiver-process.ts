/**
 * The benchmark's webhook receiver, in a process of its own (started by
 * startReceiver in e2e-kit.ts): it answers every webhook 200 at once and
 * reports when each arrived, stamped here, over IPC. Kept out of the runner,
 * whose event loop is busy sending load: there a request could wait tens of
 * milliseconds for its timestamp and two arrivals look closer than they were.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const now = () => performance.timeOrigin + performance.now();
const send = (m: unknown) => process.send?.(m);

const server = http.createServer((req, res) => {
  const at = now();
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    send({ at, webhookId: String(req.headers['webhook-id'] ?? ''), path: req.url ?? '' });
  });
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => send({ port: (server.address() as AddressInfo).port }));
// The runner going away (also by SIGKILL) ends the receiver: the IPC channel closes.
process.on('disconnect', () => process.exit(0));
