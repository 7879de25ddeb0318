/**
 * The orders worker's workflow code, bundled once at setup instead of at every
 * worker start: webpack (bundleWorkflowCode) takes seconds of CPU, and far
 * longer on a machine that something else keeps busy.
 *
 * A bundle is stored under a key of everything it is built from: the files of
 * src/workflows and src/shared, the installed Temporal SDK, package-lock.json
 * and the checkout's path (its source map names the files). A worker uses it
 * only when the key of the files on disk matches; otherwise it bundles at
 * start-up as before, since a stale bundle would run old workflow code.
 *
 * Compiled (`npm run build`, what the production image runs), the worker has
 * no sources to bundle: it loads the bundles that the same build wrote next to
 * the compiled code (dist/), which match it by construction.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import type { Logger } from '../shared/logger.ts';

/** Where the workflows come from (a checkout) and where their bundles are kept. */
export interface BundleLocation {
  root: string;
  cacheDir: string;
}

const projectRoot = path.resolve(import.meta.dirname, '..', '..');

/** This module runs compiled (dist/src/workers/*.js, the production image), not from the TypeScript sources. */
const runsCompiled = import.meta.filename.endsWith('.js');

/** The bundles `npm run build` writes into dist/, beside the compiled code: without and with tracing's workflow interceptors. */
export const BUILT_BUNDLES = {
  plain: 'workflow-bundle.js',
  tracing: 'workflow-bundle.tracing.js',
} as const;

/** The workflow interceptor module of Temporal's OpenTelemetry plugin (what it adds to a bundle built at start-up). */
export const tracingWorkflowInterceptorModule = (): string =>
  createRequire(import.meta.url).resolve(
    '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors',
  );

export const defaultBundleLocation: BundleLocation = {
  root: projectRoot,
  cacheDir: path.join(projectRoot, 'node_modules', '.cache', 'orderflow', 'workflow-bundles'),
};

/** Everything the bundle may contain from the checkout (the workflow lint rule keeps it so). */
const SOURCE_DIRS = ['src/workflows', 'src/shared'];
/** The SDK packages whose code is bundled with the workflows. */
const SDK_PACKAGES = ['@temporalio/workflow', '@temporalio/common', '@temporalio/worker'];
/** Changed with the bundler options below, so bundles built with other options are not used. */
const RECIPE = 'bundleWorkflowCode defaults, v1';
/** Bundles kept in the cache (the newest), for a checkout that switches back and forth. */
const KEEP_BUNDLES = 4;

export const workflowsPathOf = (root: string): string =>
  path.join(root, 'src', 'workflows', 'index.ts');

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name))
    .sort();
}

function installedVersion(root: string, pkg: string): string {
  try {
    const file = path.join(root, 'node_modules', pkg, 'package.json');
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'missing';
  }
}

/** The key of the bundle that the files on disk make (a few ms: reads the sources and the lock file). */
export function workflowBundleKey(root: string = defaultBundleLocation.root): string {
  const hash = createHash('sha256').update(`${RECIPE}\0${path.resolve(root)}\0`);
  for (const pkg of SDK_PACKAGES) hash.update(`${pkg}@${installedVersion(root, pkg)}\0`);
  const lock = path.join(root, 'package-lock.json');
  if (fs.existsSync(lock)) hash.update(fs.readFileSync(lock));
  for (const dir of SOURCE_DIRS) {
    for (const file of filesUnder(path.join(root, dir))) {
      hash.update(`\0${path.relative(root, file)}\0`).update(fs.readFileSync(file));
    }
  }
  return hash.digest('hex').slice(0, 32);
}

/** Where the bundle of the workflow files as they are now is (or would be) kept. */
export const workflowBundlePath = (loc: BundleLocation = defaultBundleLocation): string =>
  path.join(loc.cacheDir, `${workflowBundleKey(loc.root)}.js`);

export type FoundBundle = { codePath: string } | { missing: string };

/** The prebuilt bundle of the workflow files as they are now, or why there is none. */
export function findWorkflowBundle(loc: BundleLocation = defaultBundleLocation): FoundBundle {
  const codePath = workflowBundlePath(loc);
  if (fs.existsSync(codePath)) return { codePath };
  return {
    missing: fs.existsSync(loc.cacheDir)
      ? 'none matches the current workflow sources (npm run setup builds it)'
      : 'no bundle was built (npm run setup builds it)',
  };
}

/**
 * Builds the bundle of the current workflow files unless it exists (setup
 * calls it; a second run only computes the key).
 */
export async function buildWorkflowBundle(
  loc: BundleLocation = defaultBundleLocation,
  log: (msg: string) => void = () => {},
): Promise<{ codePath: string; built: boolean }> {
  const codePath = workflowBundlePath(loc);
  if (fs.existsSync(codePath)) return { codePath, built: false };
  const started = performance.now();
  writeAtomically(codePath, await bundleChecked(loc.root, []));
  pruneOldBundles(loc.cacheDir);
  log(
    `workflow bundle built in ${((performance.now() - started) / 1000).toFixed(1)} s: ${path.relative(loc.root, codePath)}`,
  );
  return { codePath, built: true };
}

/**
 * Writes the bundles of a build (scripts/build.ts, the production image) into
 * `outDir`: BUILT_BUNDLES.plain, and BUILT_BUNDLES.tracing with tracing's
 * workflow interceptors, so a compiled worker never needs webpack or sources.
 */
export async function writeBuiltBundles(
  outDir: string,
  root: string = projectRoot,
): Promise<string[]> {
  const written: string[] = [];
  for (const [kind, file] of Object.entries(BUILT_BUNDLES)) {
    const modules = kind === 'tracing' ? [tracingWorkflowInterceptorModule()] : [];
    const out = path.join(outDir, file);
    writeAtomically(out, await bundleChecked(root, modules));
    written.push(out);
  }
  return written;
}

/**
 * Bundles the checkout's workflows. Refuses a bundle that holds project files
 * outside the keyed folders, whose changes the key would miss.
 */
async function bundleChecked(root: string, workflowInterceptorModules: string[]): Promise<string> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: workflowsPathOf(root),
    workflowInterceptorModules,
    logger: quietBundlerLogger,
  });
  const outside = projectFilesIn(code, root).filter(
    (f) => !SOURCE_DIRS.some((dir) => f.startsWith(`${dir}/`)),
  );
  if (outside.length > 0) {
    throw new Error(
      `the workflow bundle includes ${outside.join(', ')}, outside ${SOURCE_DIRS.join(' and ')}: workflows may import only those (and @temporalio/workflow)`,
    );
  }
  return code;
}

/** Written aside and renamed, so a worker never reads half a bundle. */
function writeAtomically(file: string, code: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  fs.writeFileSync(partial, code);
  fs.renameSync(partial, file);
}

/**
 * The orders worker's workflow code: the bundle built at setup when it
 * matches the files on disk, else the sources, which the worker bundles at
 * start-up. With workflow interceptors (tracing on) always the sources: the
 * interceptor modules are bundled with the workflows, and the prebuilt bundle
 * has none.
 */
export function workflowCode(
  log: Logger,
  opts: {
    interceptors: boolean;
    location?: BundleLocation;
    /** Where a build's bundles are (BUILT_BUNDLES); by default dist/ when this module runs compiled. */
    builtDir?: string;
  },
): { workflowBundle: { codePath: string } } | { workflowsPath: string } {
  const builtDir = opts.builtDir ?? (runsCompiled ? projectRoot : undefined);
  if (builtDir) {
    const codePath = path.join(builtDir, BUILT_BUNDLES[opts.interceptors ? 'tracing' : 'plain']);
    if (!fs.existsSync(codePath))
      throw new Error(`${codePath} is missing: npm run build writes it beside the compiled code`);
    // With tracing on, the SDK warns that the plugin's workflow interceptor module is
    // ignored: this bundle already holds it.
    log.info(
      { workflowBundle: codePath },
      'workflow code: the bundle built with the compiled code',
    );
    return { workflowBundle: { codePath } };
  }
  const loc = opts.location ?? defaultBundleLocation;
  const found: FoundBundle = opts.interceptors
    ? { missing: 'workflow interceptors (tracing) are bundled at start-up' }
    : findWorkflowBundle(loc);
  if ('codePath' in found) {
    log.info({ workflowBundle: found.codePath }, 'workflow code: the bundle built at setup');
    return { workflowBundle: { codePath: found.codePath } };
  }
  log.info({ reason: found.missing }, 'workflow code: bundling the sources at start-up');
  return { workflowsPath: workflowsPathOf(loc.root) };
}

/** The checkout's files (relative paths) named by the inline source map of a bundle. */
export function projectFilesIn(code: string, root: string): string[] {
  const m =
    /\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/.exec(
      code,
    );
  if (!m?.[1]) return [];
  const { sources } = JSON.parse(Buffer.from(m[1], 'base64').toString('utf8')) as {
    sources: string[];
  };
  const prefix = `${path.resolve(root)}/`;
  return [
    ...new Set(
      sources
        .map((s) => s.replace(/^webpack:\/\/\/?/, '/').replace(/^\/+/, '/'))
        .filter((s) => s.startsWith(prefix) && !s.includes('/node_modules/'))
        .map((s) => s.slice(prefix.length)),
    ),
  ].sort();
}

function pruneOldBundles(cacheDir: string): void {
  const bundles = fs
    .readdirSync(cacheDir)
    .filter((f) => f.endsWith('.js'))
    .map((f) => ({
      file: path.join(cacheDir, f),
      mtime: fs.statSync(path.join(cacheDir, f)).mtimeMs,
    }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { file } of bundles.slice(KEEP_BUNDLES)) fs.rmSync(file, { force: true });
}

/** Webpack's chatter stays out of setup's output; its warnings and errors do not. */
const quietBundlerLogger = {
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: (message: string, meta?: Record<string, unknown>) =>
    console.error(`[workflow bundle] ${message}`, meta ?? ''),
  error: (message: string, meta?: Record<string, unknown>) =>
    console.error(`[workflow bundle] ${message}`, meta ?? ''),
  log: () => {},
};
