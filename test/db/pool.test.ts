/**
 * The services' connection pools on the real PostgreSQL: a connection opened
 * for a burst is kept through a pause longer than node-postgres's own idle
 * timeout (10 s), instead of being closed and opened (a backend forked, its
 * statements prepared) again at the next burst.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, expect, inject, it } from 'vitest';
import { createDb, type Db } from '../../src/db/client.ts';

const clients: Db[] = [];
afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.$disconnect()));
});

/** The backends that serve three statements run at once (three pooled connections). */
async function burst(db: Db): Promise<Set<number>> {
  const rows = await Promise.all(
    [1, 2, 3].map(
      () => db.$queryRaw<{ pid: number }[]>`SELECT pg_backend_pid() AS pid, pg_sleep(0.3)::text`,
    ),
  );
  return new Set(rows.map(([r]) => r!.pid));
}

it('keeps the connections of a burst through an 11 s pause', { timeout: 30_000 }, async () => {
  const db = createDb(inject('stack').DATABASE_URL, 3);
  clients.push(db);
  const first = await burst(db);
  expect(first.size).toBe(3);
  await sleep(11_000);
  expect(await burst(db)).toEqual(first);
});
