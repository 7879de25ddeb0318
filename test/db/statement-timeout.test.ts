/**
 * DATABASE_STATEMENT_TIMEOUT_MS on the real PostgreSQL: the services' pooled
 * connections carry a statement_timeout (30 s by default), so a statement
 * blocked behind a lock or a slow server fails instead of holding a
 * connection forever; migrations, which wait for their advisory lock and may
 * run long, are not cut off by a timeout set on the database.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/env.ts';
import { createDb, createDbFromConfig, type Db } from '../../src/db/client.ts';
import { isTransientDatabaseError } from '../../src/db/errors.ts';
import { migrate } from '../../src/db/migrate.ts';
import { databaseUrl, withPgClient } from '../support/pg.ts';
import { rejectionOf } from '../support/rejection.ts';

const serverUrl = inject('stack').DATABASE_URL;
const clients: Db[] = [];
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.$disconnect()));
});

const urlFor = (database: string) => databaseUrl(serverUrl, database);

function db(statementTimeoutMs?: number): Db {
  const client =
    statementTimeoutMs === undefined
      ? createDbFromConfig(loadConfig({ DATABASE_URL: serverUrl }), 1)
      : createDb(serverUrl, 1, { statementTimeoutMs });
  clients.push(client);
  return client;
}

/** PostgreSQL's SQLSTATE inside a Prisma error (driver adapter error). */
const sqlStateOf = (err: unknown): unknown =>
  (err as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } }).meta
    ?.driverAdapterError?.cause?.originalCode;

describe('DATABASE_STATEMENT_TIMEOUT_MS', () => {
  it('gives the services connections a 30 s statement_timeout by default', async () => {
    expect(loadConfig({}).DATABASE_STATEMENT_TIMEOUT_MS).toBe(30_000);
    const [row] = await db().$queryRaw<{ statement_timeout: string }[]>`SHOW statement_timeout`;
    expect(row?.statement_timeout).toBe('30s');
  });

  it('cancels a statement that runs longer (57014, not a transient failure) and keeps the connection usable', async () => {
    const client = db(300);
    const started = Date.now();
    const err = await rejectionOf(client.$queryRaw`SELECT pg_sleep(3)`);
    expect(Date.now() - started).toBeLessThan(2_500);
    expect(sqlStateOf(err)).toBe('57014');
    // A statement that keeps taking too long is not waited out like an outage.
    expect(isTransientDatabaseError(err)).toBe(false);
    expect(await client.$queryRaw`SELECT 1 AS one`).toEqual([{ one: 1 }]);
  });

  it('cancels a statement blocked behind a lock', async () => {
    const table = `st_lock_${randomUUID().replace(/-/g, '')}`;
    await withPgClient(serverUrl, (c) => c.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`));
    const holder = new pg.Client({ connectionString: serverUrl });
    await holder.connect();
    try {
      await holder.query(`BEGIN; LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
      const err = await rejectionOf(db(300).$executeRawUnsafe(`INSERT INTO ${table} VALUES (1)`));
      expect(sqlStateOf(err)).toBe('57014');
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
      await withPgClient(serverUrl, (c) => c.query(`DROP TABLE IF EXISTS ${table}`));
    }
  });

  it('is refused when it is not a number of milliseconds, naming the variable', () => {
    expect(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '30s' })).toThrow(
      /DATABASE_STATEMENT_TIMEOUT_MS/,
    );
    expect(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '-1' })).toThrow(
      /DATABASE_STATEMENT_TIMEOUT_MS/,
    );
    expect(loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '0' }).DATABASE_STATEMENT_TIMEOUT_MS).toBe(
      0,
    );
  });
});

describe('migrations under a statement timeout', () => {
  it('wait for the migration lock and apply every migration although the database cancels statements after 100 ms', async () => {
    const name = `orderflow_st_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
    await withPgClient(urlFor('postgres'), (c) => c.query(`CREATE DATABASE ${name}`));
    try {
      // What an operator sets for the services; it applies to every new session, migrations' too.
      await withPgClient(urlFor('postgres'), (c) =>
        c.query(`ALTER DATABASE ${name} SET statement_timeout = '100ms'`),
      );
      // Another migrator holds Prisma Migrate's advisory lock for longer than that.
      const other = new pg.Client({ connectionString: urlFor(name) });
      await other.connect();
      await other.query('SELECT pg_advisory_lock(72707369)');
      const release = new Promise<void>((resolve) =>
        setTimeout(() => {
          void other
            .query('SELECT pg_advisory_unlock(72707369)')
            .finally(() => other.end())
            .then(() => resolve());
        }, 600),
      );
      const result = await migrate(urlFor(name));
      await release;
      expect(result.applied.length).toBeGreaterThan(0);
      expect(result.skipped).toEqual([]);
    } finally {
      await withPgClient(urlFor('postgres'), (c) =>
        c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
      );
    }
  });
});
