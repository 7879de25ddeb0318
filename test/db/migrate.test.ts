import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { ensureDatabase, migrate, migrationsDir } from '../../src/db/migrate.ts';
import { databaseUrl, withPgClient } from '../support/pg.ts';

const serverUrl = inject('stack').DATABASE_URL;

const urlFor = (database: string) => databaseUrl(serverUrl, database);

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

const onServer = <T>(fn: (c: pg.Client) => Promise<T>) => withPgClient(urlFor('postgres'), fn);

async function dropDatabase(name: string): Promise<void> {
  await onServer((c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}

async function databaseOid(name: string): Promise<string[]> {
  const { rows } = await onServer((c) =>
    c.query<{ oid: string }>('SELECT oid::text FROM pg_database WHERE datname = $1', [name]),
  );
  return rows.map((r) => r.oid);
}

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

const shippedMigrations = fs
  .readdirSync(migrationsDir, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

interface MigrationRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  logs: string | null;
  applied_steps_count: number;
}

describe('migrate() against a fresh database on the stack’s PostgreSQL', () => {
  let dbName: string;
  let url: string;
  let scratch: string;

  const query = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) =>
    (await withPgClient(url, (c) => c.query<R>(sql, params))).rows;
  const migrationRows = () =>
    query<MigrationRow>(
      `SELECT migration_name, checksum, finished_at, rolled_back_at, logs, applied_steps_count
         FROM "_prisma_migrations" ORDER BY migration_name`,
    );
  const tableExists = async (table: string) =>
    (await query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]))[0]?.t !==
    null;

  /** A writable copy of prisma/migrations, plus any extra migrations. */
  const migrationsCopy = (extra: Record<string, string> = {}) => {
    const dir = path.join(scratch, `migrations-${randomUUID()}`);
    fs.cpSync(migrationsDir, dir, { recursive: true });
    for (const [name, sql] of Object.entries(extra)) {
      fs.mkdirSync(path.join(dir, name));
      fs.writeFileSync(path.join(dir, name, 'migration.sql'), sql);
    }
    return dir;
  };

  beforeAll(() => {
    expect(shippedMigrations.length).toBeGreaterThan(0);
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-migrate-test-'));
  });
  afterAll(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  beforeEach(async () => {
    dbName = `migrate_test_${randomUUID().replace(/-/g, '')}`;
    url = urlFor(dbName);
    await onServer((c) => c.query(`CREATE DATABASE ${quoteIdent(dbName)}`));
  });
  afterEach(async () => {
    await dropDatabase(dbName);
  });

  it('applies every migration and records it exactly as prisma migrate deploy does', async () => {
    const logs: string[] = [];
    const result = await migrate(url, undefined, (m) => logs.push(m));

    expect(result).toEqual({ applied: shippedMigrations, skipped: [] });
    expect(logs).toEqual(shippedMigrations.map((m) => `applying migration ${m}`));
    const rows = await migrationRows();
    expect(rows.map((r) => r.migration_name)).toEqual(shippedMigrations);
    for (const row of rows) {
      expect(row.checksum).toBe(
        sha256(path.join(migrationsDir, row.migration_name, 'migration.sql')),
      );
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
      expect(row.applied_steps_count).toBe(1);
    }
    for (const table of ['orders', 'order_items', 'workflow_starts']) {
      expect(await tableExists(`public.${table}`), table).toBe(true);
    }
  });

  it('applies nothing the second time and reports every migration as skipped', async () => {
    await migrate(url);
    const before = await migrationRows();
    const logs: string[] = [];

    const result = await migrate(url, undefined, (m) => logs.push(m));

    expect(result).toEqual({ applied: [], skipped: shippedMigrations });
    expect(logs).toEqual([]);
    expect(await migrationRows()).toEqual(before);
  });

  it('serialises concurrent runs: one applies, the other skips', async () => {
    const results = await Promise.all([migrate(url), migrate(url)]);

    const appliers = results.filter((r) => r.applied.length > 0);
    expect(appliers).toEqual([{ applied: shippedMigrations, skipped: [] }]);
    expect(results).toContainEqual({ applied: [], skipped: shippedMigrations });
    expect((await migrationRows()).map((r) => r.migration_name)).toEqual(shippedMigrations);
  });

  it('refuses a migration that was modified after it was applied', async () => {
    const dir = migrationsCopy();
    await migrate(url, dir);
    const before = await migrationRows();
    const edited = shippedMigrations.at(-1)!;
    fs.appendFileSync(path.join(dir, edited, 'migration.sql'), '\n-- edited afterwards\n');

    await expect(migrate(url, dir)).rejects.toThrow(
      `migration ${edited} was modified after it was applied`,
    );
    expect(await migrationRows()).toEqual(before);
  });

  it('leaves nothing half-applied when a migration fails, and applies it once fixed', async () => {
    const broken = '29991231000000_broken';
    const dir = migrationsCopy({
      [broken]: 'CREATE TABLE ok_part (id int);\nSELECT * FROM no_such_table;\n',
    });

    const err = await migrate(url, dir).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toContain(`migration ${broken} failed`);
    expect(err?.message).toContain('no_such_table');

    expect(await tableExists('public.ok_part')).toBe(false);
    const rows = await migrationRows();
    expect(rows.map((r) => r.migration_name)).toEqual(shippedMigrations);
    expect(rows.every((r) => r.finished_at !== null)).toBe(true);

    // Nothing of the failed attempt blocks the next run.
    fs.writeFileSync(path.join(dir, broken, 'migration.sql'), 'CREATE TABLE ok_part (id int);\n');
    expect(await migrate(url, dir)).toEqual({ applied: [broken], skipped: shippedMigrations });
    expect(await tableExists('public.ok_part')).toBe(true);
  });

  // Prisma accepts an applied migration whose file only differs in line endings (CRLF <-> LF,
  // e.g. a Windows checkout with core.autocrlf; script_matches_checksum in prisma-engines):
  // a database Prisma is happy with must be accepted by our migrator too.
  it('accepts a migration whose line endings changed, as Prisma does', async () => {
    const dir = migrationsCopy();
    const files = shippedMigrations.map((m) => path.join(dir, m, 'migration.sql'));
    const lf = files.map((f) => fs.readFileSync(f, 'utf8'));
    files.forEach((f, i) => fs.writeFileSync(f, lf[i]!.replace(/\n/g, '\r\n')));
    await migrate(url, dir);
    files.forEach((f, i) => fs.writeFileSync(f, lf[i]!));

    expect(await migrate(url, dir)).toEqual({ applied: [], skipped: shippedMigrations });
  });
});

describe('ensureDatabase()', () => {
  const created: string[] = [];
  afterAll(async () => {
    for (const name of created) await dropDatabase(name);
  });

  it('creates a missing database, then leaves the existing one alone', async () => {
    // Mixed case, a dash and a quote: the name must be quoted, not folded or split.
    const name = `Ensure-"Db"_${randomUUID().slice(0, 8)}`;
    created.push(name);
    expect(await databaseOid(name)).toEqual([]);

    await ensureDatabase(urlFor(name));
    const oid = await databaseOid(name);
    expect(oid).toHaveLength(1);
    await withPgClient(urlFor(name), (c) => c.query('CREATE TABLE marker (id int)'));

    await ensureDatabase(urlFor(name));
    expect(await databaseOid(name)).toEqual(oid);
    const { rows } = await withPgClient(urlFor(name), (c) =>
      c.query<{ t: string | null }>(`SELECT to_regclass('public.marker')::text AS t`),
    );
    expect(rows[0]?.t).toBe('marker');
  });

  it('rejects a URL that names no database', async () => {
    const u = new URL(serverUrl);
    u.pathname = '/';
    await expect(ensureDatabase(u.toString())).rejects.toThrow('names no database');
  });
});
