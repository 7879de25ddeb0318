import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Db = PrismaClient;

/** A Prisma client over node-postgres (Prisma 7's driver adapter; no engine binary). */
export function createDb(databaseUrl: string, poolSize = 10): Db {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: poolSize,
    // Fail fast when PostgreSQL is unreachable instead of queueing forever.
    connectionTimeoutMillis: 3000,
  });
  return new PrismaClient({ adapter });
}
