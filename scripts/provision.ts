/**
 * Installs the external tools (see scripts/lib/tools.ts), the headless browser
 * of the Web UI tests, generates the Prisma client when the schema changed,
 * and bundles the workflow code when it changed (the orders worker then
 * starts without webpack). Idempotent: a second run only checks.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildWorkflowBundle } from '../src/workers/workflow-bundle.ts';
import {
  ProvisionError,
  projectRoot,
  provisionAll,
  provisionChromium,
  provisionSchemathesis,
  provisionTemporalServer,
} from './lib/tools.ts';

const log = (m: string) => console.error(`[setup] ${m}`);

function generatePrismaClient(): void {
  const schema = path.join(projectRoot, 'prisma/schema.prisma');
  const out = path.join(projectRoot, 'src/generated/prisma');
  const hash = createHash('sha256')
    .update(fs.readFileSync(schema))
    .update(fs.readFileSync(path.join(projectRoot, 'package-lock.json')))
    .digest('hex');
  const stampFile = path.join(out, '.schema-hash');
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === hash) return;
  log('generating the Prisma client');
  // `prisma generate` needs no schema engine, but the CLI insists on locating
  // one and would try to download it; any existing file satisfies the check.
  const env = {
    ...process.env,
    PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  };
  const r = spawnSync(
    process.execPath,
    [path.join(projectRoot, 'node_modules/prisma/build/index.js'), 'generate'],
    {
      cwd: projectRoot,
      env,
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) {
    throw new ProvisionError('prisma', `prisma generate failed:\n${r.stdout}${r.stderr}`);
  }
  fs.writeFileSync(stampFile, hash);
}

/** Only the browser test needs Chromium: without it the stack still runs, so warn instead of failing. */
function provisionBrowser(): void {
  try {
    provisionChromium((m) => log(m));
  } catch (e) {
    if (!(e instanceof ProvisionError)) throw e;
    log(`WARNING ${e.message} (only test/browser needs it)`);
  }
}

/** Only test/api/schemathesis.test.ts needs Schemathesis (it fails there, saying why, when missing). */
function provisionFuzzer(): void {
  try {
    provisionSchemathesis((m) => log(m));
  } catch (e) {
    if (!(e instanceof ProvisionError)) throw e;
    log(`WARNING ${e.message} (only test/api/schemathesis.test.ts needs it)`);
  }
}

/**
 * The Temporal server, its schema tool and Web UI server, for the cluster
 * topology (`npm run start:cluster`, its fault suite and bench); built with Go.
 * npm start does not need them, so warn instead of failing.
 */
function provisionClusterTools(): void {
  try {
    provisionTemporalServer((m) => log(m));
  } catch (e) {
    if (!(e instanceof ProvisionError)) throw e;
    log(
      `WARNING ${e.message} (only npm run start:cluster, the cluster fault runs and bench:cluster need it)`,
    );
  }
}

/** Without a prebuilt bundle the orders worker bundles at start-up (slower), so warn instead of failing. */
async function provisionWorkflowBundle(): Promise<void> {
  try {
    const { built } = await buildWorkflowBundle(undefined, (m) => log(m));
    if (!built && process.argv.includes('--verbose')) log('workflow bundle is current');
  } catch (e) {
    log(
      `WARNING workflow bundle not built, the orders worker will bundle at start-up: ${(e as Error).message}`,
    );
  }
}

try {
  const started = Date.now();
  provisionAll((m) => log(m));
  provisionBrowser();
  provisionFuzzer();
  provisionClusterTools();
  generatePrismaClient();
  await provisionWorkflowBundle();
  const s = ((Date.now() - started) / 1000).toFixed(1);
  if (process.argv.includes('--verbose')) log(`ready in ${s} s`);
} catch (e) {
  console.error(`\n[setup] FAILED ${(e as Error).message}\n`);
  process.exit(1);
}
