/**
 * Database errors met while PostgreSQL stops or restarts become 503 problems
 * (clients retry), not 500s. The messages are the ones the chaos run's
 * PostgreSQL stop produced (test/chaos), as Prisma's driver adapter reports them.
 */
import express from 'express';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { problemMiddleware } from '../../src/api/problems.ts';

/** What PrismaClientKnownRequestError carries when PostgreSQL ends the connection mid-query. */
function prismaDatabaseError(code: string, message: string): Error {
  const err = new Error(
    `\nInvalid \`this.db.order.create()\` invocation:\n\nDatabase error. Code: \`${code}\`. Message: \`${message}\``,
  );
  err.name = 'PrismaClientKnownRequestError';
  return Object.assign(err, { code: 'P2010' });
}

const thrown: Record<string, Error> = {
  'admin-shutdown': prismaDatabaseError(
    '57P01',
    'terminating connection due to administrator command',
  ),
  'crash-shutdown': prismaDatabaseError(
    '57P02',
    'terminating connection because of crash of another server process',
  ),
  'starting-up': prismaDatabaseError('57P03', 'the database system is starting up'),
  // A connection reset (ECONNRESET) as Prisma 7 reports it: P1017 (adapter kind ConnectionClosed).
  'connection-reset': Object.assign(
    new Error('\nInvalid `db.order.create()` invocation:\n\nServer has closed the connection.'),
    { name: 'PrismaClientKnownRequestError', code: 'P1017' },
  ),
  unrelated: new Error('a bug'),
};

let url: string;
let close: () => Promise<void>;

beforeAll(async () => {
  const app = express();
  app.get('/throw/:kind', (req) => {
    throw thrown[req.params.kind]!;
  });
  app.use(problemMiddleware(pino({ level: 'silent' })));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise((r) => server.close(() => r()));
});
afterAll(() => close?.());

describe('database errors during a PostgreSQL stop or restart', () => {
  it.each(['admin-shutdown', 'crash-shutdown', 'starting-up', 'connection-reset'])(
    'answers 503 service-unavailable with Retry-After for %s',
    async (kind) => {
      const res = await fetch(`${url}/throw/${kind}`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(((await res.json()) as { type: string }).type).toBe(
        'urn:orderflow:problem:service-unavailable',
      );
    },
  );

  it('still answers 500 for an error that is not about the database', async () => {
    const res = await fetch(`${url}/throw/unrelated`);
    expect(res.status).toBe(500);
  });
});
