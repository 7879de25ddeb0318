import { PrismaPg } from '@prisma/adapter-pg';
import type { Config } from '../config/env.ts';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Db = PrismaClient;

/** DATABASE_STATEMENT_TIMEOUT_MS's default: far above any statement of a healthy service. */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

export interface DbOptions {
  /**
   * PostgreSQL cancels a statement of these connections after this long
   * (`statement_timeout`, sent when each connection opens; 0: no limit), so a
   * blocked statement fails instead of holding a pooled connection forever.
   * Migrations and the relay's LISTEN connection use connections of their own.
   */
  statementTimeoutMs?: number;
  /**
   * Names each distinct statement (up to PREPARED_STATEMENTS_MAX per process),
   * so node-postgres prepares it once per connection and PostgreSQL skips
   * parsing and planning it on every later run (the intake statement through
   * Prisma: 0.89 ms of server CPU unnamed, 0.32 ms prepared; README, Configuration).
   * Off behind a pooler that cannot carry prepared statements.
   */
  preparedStatements?: boolean;
}

/**
 * How long a pooled connection may sit idle before it is closed: a process
 * keeps what its peaks opened. node-postgres's own default, 10 s, closed the
 * connections a process uses only in bursts and opened them again at the next
 * one: 54 PostgreSQL backends forked, warmed and their statements prepared anew
 * per minute of the bench's sustained part (a diagnosis with pg_stat_statements).
 */
export const POOL_IDLE_TIMEOUT_MS = 300_000;

/**
 * Distinct statements named per process; later ones run unnamed, so the
 * statements each connection holds prepared stay bounded (orderflow's are a few
 * dozen: Prisma's and the raw statements keep their text whatever their arguments).
 */
export const PREPARED_STATEMENTS_MAX = 200;

/**
 * Names for node-postgres's per-connection statement cache: one per SQL text,
 * at most `max`; beyond them '' (unnamed: parsed and planned on every run).
 */
export function statementNames(max = PREPARED_STATEMENTS_MAX): (query: { sql: string }) => string {
  const names = new Map<string, string>();
  return ({ sql }) => {
    let name = names.get(sql);
    if (name === undefined) {
      if (names.size >= max) return '';
      name = `orderflow_${names.size}`;
      names.set(sql, name);
    }
    return name;
  };
}

/** A Prisma client over node-postgres (Prisma 7's driver adapter; no engine binary). */
export function createDb(
  databaseUrl: string,
  poolSize = 10,
  { statementTimeoutMs = DEFAULT_STATEMENT_TIMEOUT_MS, preparedStatements = true }: DbOptions = {},
): Db {
  const adapter = new PrismaPg(
    {
      connectionString: databaseUrl,
      max: poolSize,
      idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS,
      // Fail fast when PostgreSQL is unreachable instead of queueing forever.
      connectionTimeoutMillis: 3000,
      ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    },
    preparedStatements ? { statementNameGenerator: statementNames() } : {},
  );
  return new PrismaClient({ adapter });
}

/** createDb for a service process: `DATABASE_URL` and `DATABASE_STATEMENT_TIMEOUT_MS` from its configuration. */
export function createDbFromConfig(
  config: Pick<
    Config,
    'DATABASE_URL' | 'DATABASE_STATEMENT_TIMEOUT_MS' | 'DATABASE_PREPARED_STATEMENTS'
  >,
  poolSize: number,
): Db {
  return createDb(config.DATABASE_URL, poolSize, {
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
    preparedStatements: config.DATABASE_PREPARED_STATEMENTS,
  });
}
