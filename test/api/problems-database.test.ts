/**
 * Database errors met while PostgreSQL stops or restarts become 503 problems
 * (clients retry), not 500s; told apart by their codes, as Prisma 7's driver
 * adapter, pg and Node report them (the SQLSTATEs are the ones the chaos run's
 * PostgreSQL stop produced, test/chaos), never by the words of a message.
 */
import express from 'express';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isDatabaseUnavailable, problemMiddleware } from '../../src/api/problems.ts';

/**
 * What PrismaClientKnownRequestError carries when PostgreSQL ends the connection
 * mid-query: P2010 (raw query) or P2039 (model query), and the adapter's error.
 */
function prismaDatabaseError(prismaCode: string, sqlState: string, message: string): Error {
  const err = new Error(
    `\nInvalid \`this.db.order.create()\` invocation:\n\nDatabase error. Code: \`${sqlState}\`. Message: \`${message}\``,
  );
  err.name = 'PrismaClientKnownRequestError';
  return Object.assign(err, {
    code: prismaCode,
    meta: {
      driverAdapterError: {
        name: 'DriverAdapterError',
        cause: {
          kind: 'postgres',
          code: sqlState,
          originalCode: sqlState,
          originalMessage: message,
        },
      },
    },
  });
}

const thrown: Record<string, Error> = {
  'admin-shutdown': prismaDatabaseError(
    'P2039',
    '57P01',
    'terminating connection due to administrator command',
  ),
  'crash-shutdown': prismaDatabaseError(
    'P2010',
    '57P02',
    'terminating connection because of crash of another server process',
  ),
  'starting-up': prismaDatabaseError('P2039', '57P03', 'the database system is starting up'),
  // A connection reset (ECONNRESET) as Prisma 7 reports it: P1017 (adapter kind ConnectionClosed).
  'connection-reset': Object.assign(
    new Error('\nInvalid `db.order.create()` invocation:\n\nServer has closed the connection.'),
    { name: 'PrismaClientKnownRequestError', code: 'P1017' },
  ),
  // pg's own errors, passed through by the adapter: a socket error and a code-less one.
  refused: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
    code: 'ECONNREFUSED',
    syscall: 'connect',
    errno: -111,
  }),
  terminated: new Error('Connection terminated unexpectedly'),
  'pool-timeout': new Error('timeout exceeded when trying to connect'),
  unrelated: new Error('a bug'),
  // Words alone are not a code: these stay 500s.
  'words-only': new Error('a bug that mentions ECONNREFUSED, 57P01 and P1001'),
  'unique-violation': Object.assign(new Error('Unique constraint failed'), {
    name: 'PrismaClientKnownRequestError',
    code: 'P2002',
  }),
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
  it.each([
    'admin-shutdown',
    'crash-shutdown',
    'starting-up',
    'connection-reset',
    'refused',
    'terminated',
    'pool-timeout',
  ])('answers 503 service-unavailable with Retry-After for %s', async (kind) => {
    const res = await fetch(`${url}/throw/${kind}`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { type: string }).type).toBe(
      'urn:orderflow:problem:service-unavailable',
    );
  });

  it.each(['unrelated', 'words-only', 'unique-violation'])(
    'still answers 500 for an error whose codes are not about reaching the database (%s)',
    async (kind) => {
      const res = await fetch(`${url}/throw/${kind}`);
      expect(res.status).toBe(500);
    },
  );

  it('follows the cause chain, and reads a SQLSTATE only from a code field', () => {
    expect(isDatabaseUnavailable(new Error('wrapped', { cause: thrown.refused }))).toBe(true);
    expect(
      isDatabaseUnavailable(Object.assign(new Error('x'), { code: '08006', severity: 'FATAL' })),
    ).toBe(true);
    expect(
      isDatabaseUnavailable(Object.assign(new Error('x'), { code: '42601', severity: 'ERROR' })),
    ).toBe(false);
    expect(
      isDatabaseUnavailable(new Error('terminating connection due to administrator command')),
    ).toBe(false);
  });
});
