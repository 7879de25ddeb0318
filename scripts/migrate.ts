/** `npm run db:migrate`: applies pending migrations to DATABASE_URL (offline). */
import { loadConfig } from '../src/config/env.ts';
import { ensureDatabase, migrate } from '../src/db/migrate.ts';

const { DATABASE_URL } = loadConfig();
try {
  await ensureDatabase(DATABASE_URL);
  const { applied, skipped } = await migrate(DATABASE_URL, undefined, (m) =>
    console.error(`[migrate] ${m}`),
  );
  console.error(`[migrate] ${applied.length} applied, ${skipped.length} already up to date`);
} catch (e) {
  console.error(`[migrate] FAILED: ${(e as Error).message}`);
  process.exit(1);
}
