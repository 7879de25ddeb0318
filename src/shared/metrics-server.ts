/**
 * The small HTTP server that workers and consumers use for Prometheus:
 * GET /metrics (the registry's text, plus any appended exposition text such
 * as the Temporal runtime's) and GET /healthz. The API serves the same from
 * Express instead.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type client from 'prom-client';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/** Serves GET /metrics (and /healthz) on `host:port`; port 0 picks a free one. */
export async function startMetricsServer(
  registry: client.Registry,
  host: string,
  port: number,
  /** More exposition text appended to the registry's (another exporter's, scraped at request time). */
  append?: () => Promise<string>,
): Promise<MetricsServer> {
  const render = async () => {
    const [own, more] = await Promise.all([registry.metrics(), append?.() ?? '']);
    return more ? `${own.endsWith('\n') ? own : `${own}\n`}${more}` : own;
  };
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics') {
      render().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const { port: actual } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
