/**
 * `npm run build`: what the production image holds (Dockerfile), built the
 * same way here and by test/e2e/compiled.test.ts:
 *
 *   dist/src/**, dist/scripts/migrate.js   compiled JavaScript (tsc, tsconfig.build.json),
 *                                          the generated Prisma client included
 *   dist/prisma/migrations/                the SQL that dist/src/db/migrate.js applies
 *   dist/workflow-bundle.js (+ .tracing)   the orders worker's workflow code, bundled once
 *
 * Run it after setup (or `npm run db:generate`): the Prisma client must exist.
 * Processes then run as `node dist/src/api/server.js`, without tsx, webpack or sources.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeBuiltBundles } from '../src/workers/workflow-bundle.ts';
import { projectRoot } from './lib/tools.ts';

const log = (m: string) => console.error(`[build] ${m}`);
const dist = path.join(projectRoot, 'dist');

function fail(message: string): never {
  console.error(`[build] FAILED ${message}`);
  process.exit(1);
}

const started = performance.now();
if (!fs.existsSync(path.join(projectRoot, 'src/generated/prisma/client.ts')))
  fail('src/generated/prisma is missing: run npm run setup (or npm run db:generate) first');
fs.rmSync(dist, { recursive: true, force: true });

const tsc = spawnSync(
  process.execPath,
  [path.join(projectRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
  { cwd: projectRoot, stdio: 'inherit' },
);
if (tsc.status !== 0) fail('tsc -p tsconfig.build.json failed');
log(`compiled into dist/ in ${((performance.now() - started) / 1000).toFixed(1)} s`);

fs.cpSync(path.join(projectRoot, 'prisma/migrations'), path.join(dist, 'prisma/migrations'), {
  recursive: true,
});

try {
  const t = performance.now();
  const bundles = await writeBuiltBundles(dist);
  log(
    `workflow bundles in ${((performance.now() - t) / 1000).toFixed(1)} s: ${bundles.map((b) => path.relative(projectRoot, b)).join(', ')}`,
  );
} catch (e) {
  fail(`workflow bundle: ${(e as Error).message}`);
}
log(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
