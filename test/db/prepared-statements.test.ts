/**
 * DATABASE_PREPARED_STATEMENTS on the real PostgreSQL: the services' pooled
 * connections prepare each distinct statement once (named by statementNames,
 * a bounded number per process), and run unnamed when it is off.
 */
import { afterAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config/env.ts';
import { createDbFromConfig, statementNames, type Db } from '../../src/db/client.ts';

const serverUrl = inject('stack').DATABASE_URL;
const clients: Db[] = [];
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.$disconnect()));
});

/** A one-connection client, so every statement runs on the session it asks about. */
function db(env: Record<string, string> = {}): Db {
  const client = createDbFromConfig(loadConfig({ DATABASE_URL: serverUrl, ...env }), 1);
  clients.push(client);
  return client;
}

/** The statements this session holds prepared, by their text. */
async function preparedOnSession(client: Db): Promise<Map<string, string>> {
  const rows = await client.$queryRaw<{ name: string; statement: string }[]>`
    SELECT name, statement FROM pg_prepared_statements`;
  return new Map(rows.map((r) => [r.statement, r.name]));
}

describe('DATABASE_PREPARED_STATEMENTS', () => {
  it('prepares each statement once per connection by default, and gives the same answers', async () => {
    const client = db();
    const probe = (n: number) => client.$queryRaw<{ n: number }[]>`SELECT ${n}::int + 1 AS n`;
    expect(await probe(1)).toEqual([{ n: 2 }]);
    expect(await probe(41)).toEqual([{ n: 42 }]);

    const prepared = await preparedOnSession(client);
    const names = [...prepared].filter(([sql]) => sql.includes('+ 1 AS n')).map(([, n]) => n);
    // One statement for both runs (the arguments are bound, not part of the text).
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^orderflow_\d+$/);
  });

  it('prepares nothing when set to false', async () => {
    const client = db({ DATABASE_PREPARED_STATEMENTS: 'false' });
    expect(await client.$queryRaw`SELECT 2 + 2 AS n`).toEqual([{ n: 4 }]);
    expect(await preparedOnSession(client)).toEqual(new Map());
  });

  it('refuses a value that is not true or false, naming the variable', () => {
    expect(() =>
      loadConfig({ DATABASE_URL: serverUrl, DATABASE_PREPARED_STATEMENTS: 'yes' }),
    ).toThrow(/DATABASE_PREPARED_STATEMENTS/);
  });
});

describe('statementNames', () => {
  it('names each SQL text once, and leaves texts beyond its bound unnamed', () => {
    const name = statementNames(2);
    const a = name({ sql: 'SELECT 1' });
    const b = name({ sql: 'SELECT 2' });
    expect(a).not.toBe(b);
    expect(name({ sql: 'SELECT 1' })).toBe(a);
    expect(name({ sql: 'SELECT 3' })).toBe('');
    expect(name({ sql: 'SELECT 2' })).toBe(b);
  });
});
