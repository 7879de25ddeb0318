/**
 * The API's access log (src/api/access-log.ts) on a bare Express app: the
 * request id it answers with and binds, and which requests write a line, at
 * which level and in which shape, with the default `info` level.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { Writable } from 'node:stream';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessLog } from '../../src/api/access-log.ts';
import { createLogger, REDACTED, type Logger } from '../../src/shared/logger.ts';

let text = '';
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    text += chunk.toString();
    done();
  },
});
/** An access log line, as far as these tests read it. */
interface Line {
  requestId?: string;
  level: number;
  msg: string;
  req: { id: string; method: string; url: string; headers: Record<string, string> };
  res: { statusCode: number };
  responseTime: unknown;
  err: { message: string };
}
const lines = () =>
  text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

let server: Server;
let base: string;

beforeAll(async () => {
  const log = createLogger('api', 'info', { format: 'json', destination: sink });
  const app = express();
  app.use(accessLog(log, { ignore: (req) => req.url === '/healthz' }));
  app.get('/ok', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/healthz', (_req, res) => {
    res.status(500).end();
  });
  app.get('/missing', (_req, res) => {
    res.status(404).json({ title: 'Not Found' });
  });
  app.get('/boom', (req, res) => {
    (req as unknown as { log: Logger }).log.warn('about to fail');
    res.status(503).end();
  });
  app.get('/hang', (_req, res) => {
    res.write('partial');
  });
  await new Promise<void>((resolve) => {
    server = app.listen(0, '127.0.0.1', () => resolve());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** The lines of one request, found by the request id it was sent with. */
const linesOf = (requestId: string) => lines().filter((l) => l.requestId === requestId);

describe('accessLog', () => {
  it('answers with the caller’s sane X-Request-Id, or a fresh one instead of an unusable one', async () => {
    const kept = await fetch(`${base}/ok`, { headers: { 'x-request-id': 'abc-123' } });
    expect(kept.headers.get('x-request-id')).toBe('abc-123');
    const replaced = await fetch(`${base}/ok`, { headers: { 'x-request-id': 'a b\u00e9' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('writes no line for a 2xx answer at info, nor for an ignored path', async () => {
    await fetch(`${base}/ok`, { headers: { 'x-request-id': 'quiet-1' } });
    await fetch(`${base}/healthz`, { headers: { 'x-request-id': 'quiet-2' } });
    await new Promise((r) => setTimeout(r, 50));
    expect(linesOf('quiet-1')).toEqual([]);
    expect(linesOf('quiet-2')).toEqual([]);
  });

  it('writes a 4xx at info with the request (headers redacted) and the response', async () => {
    await fetch(`${base}/missing`, {
      headers: { 'x-request-id': 'four-oh-four', authorization: 'Bearer sekrit' },
    });
    await new Promise((r) => setTimeout(r, 50));
    const [line] = linesOf('four-oh-four');
    expect(line).toMatchObject({
      level: 30,
      msg: 'request completed',
      req: { id: 'four-oh-four', method: 'GET', url: '/missing' },
      res: { statusCode: 404 },
    });
    expect(line!.req.headers.authorization).toBe(REDACTED);
    expect(typeof line!.responseTime).toBe('number');
    expect(text).not.toContain('sekrit');
  });

  it('writes a 5xx at error with an err, and req.log lines carry the request id', async () => {
    await fetch(`${base}/boom`, { headers: { 'x-request-id': 'five-oh-three' } });
    await new Promise((r) => setTimeout(r, 50));
    const got = linesOf('five-oh-three');
    expect(got.map((l) => [l.level, l.msg])).toEqual([
      [40, 'about to fail'],
      [50, 'request errored'],
    ]);
    expect(got[1]!.err.message).toBe('failed with status code 503');
  });

  it('writes a request whose connection closed before the answer at warn', async () => {
    const controller = new AbortController();
    const res = await fetch(`${base}/hang`, {
      headers: { 'x-request-id': 'cut-short' },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    controller.abort();
    const deadline = Date.now() + 2000;
    while (linesOf('cut-short').length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(linesOf('cut-short')).toMatchObject([{ level: 40, msg: 'request aborted' }]);
  });
});
