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
}

/** A Prisma client over node-postgres (Prisma 7's driver adapter; no engine binary). */
export function createDb(
  databaseUrl: string,
  poolSize = 10,
  { statementTimeoutMs = DEFAULT_STATEMENT_TIMEOUT_MS }: DbOptions = {},
): Db {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: poolSize,
    // Fail fast when PostgreSQL is unreachable instead of queueing forever.
    connectionTimeoutMillis: 3000,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
  });
  return new PrismaClient({ adapter });
}

/** createDb for a service process: `DATABASE_URL` and `DATABASE_STATEMENT_TIMEOUT_MS` from its configuration. */
export function createDbFromConfig(
  config: Pick<Config, 'DATABASE_URL' | 'DATABASE_STATEMENT_TIMEOUT_MS'>,
  poolSize: number,
): Db {
  return createDb(config.DATABASE_URL, poolSize, {
    statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS,
  });
}
