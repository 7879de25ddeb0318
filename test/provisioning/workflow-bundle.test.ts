/**
 * The workflow bundle built at setup: built once per version of the workflow
 * sources, found only while it matches them, and what the orders worker runs
 * (a start without webpack), with the committed histories replaying on it.
 */
import { Worker } from '@temporalio/worker';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ManagedProcess, waitUntilReady } from '../../scripts/lib/process.ts';
import { RUNNING_LOG_LINE } from '../../scripts/lib/stack.ts';
import { projectRoot } from '../../scripts/lib/tools.ts';
import type { Logger } from '../../src/shared/logger.ts';
import {
  BUILT_BUNDLES,
  buildWorkflowBundle,
  defaultBundleLocation,
  findWorkflowBundle,
  projectFilesIn,
  workflowBundlePath,
  workflowCode,
  type BundleLocation,
} from '../../src/workers/workflow-bundle.ts';
import { historyFromJSON } from '../../scripts/lib/history-json.ts';

let scratch: string;
beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-bundle-test-'));
});
afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** A Logger that keeps its info lines. */
function recordingLogger(): {
  log: Logger;
  lines: { obj: Record<string, unknown>; msg: string }[];
} {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const log = { info: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) };
  return { log: log as unknown as Logger, lines };
}

describe('buildWorkflowBundle (as setup runs it)', () => {
  it('builds the bundle once; a second run builds nothing and leaves it untouched', async () => {
    const loc: BundleLocation = { root: projectRoot, cacheDir: path.join(scratch, 'cache') };
    // Bundles of older sources beyond the newest few are pruned.
    fs.mkdirSync(loc.cacheDir, { recursive: true });
    for (let i = 0; i < 5; i++) {
      const old = path.join(loc.cacheDir, `old-${i}.js`);
      fs.writeFileSync(old, '// an older bundle');
      fs.utimesSync(old, new Date(2020, 0, 1 + i), new Date(2020, 0, 1 + i));
    }

    const first = await buildWorkflowBundle(loc);
    expect(first.built).toBe(true);
    expect(findWorkflowBundle(loc)).toEqual({ codePath: first.codePath });
    const code = fs.readFileSync(first.codePath, 'utf8');
    expect(projectFilesIn(code, projectRoot)).toEqual(
      expect.arrayContaining(['src/workflows/index.ts', 'src/workflows/order.ts']),
    );
    expect(fs.readdirSync(loc.cacheDir).sort()).toEqual(
      [path.basename(first.codePath), 'old-2.js', 'old-3.js', 'old-4.js'].sort(),
    );

    const mtime = fs.statSync(first.codePath).mtimeMs;
    const started = performance.now();
    const second = await buildWorkflowBundle(loc);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(second).toEqual({ codePath: first.codePath, built: false });
    expect(fs.statSync(first.codePath).mtimeMs).toBe(mtime);

    // The bundle is today's workflow code: every committed history replays on it.
    const historiesDir = path.join(projectRoot, 'test/replay/histories');
    const histories = fs
      .readdirSync(historiesDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => ({
        workflowId: f,
        history: historyFromJSON(JSON.parse(fs.readFileSync(path.join(historiesDir, f), 'utf8'))),
      }));
    const failures: string[] = [];
    for await (const r of Worker.runReplayHistories(
      { workflowBundle: { codePath: first.codePath }, replayName: 'prebuilt-bundle' },
      histories,
    )) {
      if (r.error) failures.push(`${r.workflowId}: ${r.error.message}`);
    }
    expect(histories.length).toBeGreaterThan(0);
    expect(failures).toEqual([]);
  }, 120_000);
});

describe('findWorkflowBundle', () => {
  // A checkout of its own (sources copied, dependencies linked), with a stand-in bundle file.
  let loc: BundleLocation;
  const file = (rel: string) => path.join(loc.root, rel);

  beforeAll(() => {
    const root = path.join(scratch, 'checkout');
    for (const dir of ['src/workflows', 'src/shared']) {
      fs.cpSync(path.join(projectRoot, dir), path.join(root, dir), { recursive: true });
    }
    fs.copyFileSync(
      path.join(projectRoot, 'package-lock.json'),
      path.join(root, 'package-lock.json'),
    );
    fs.symlinkSync(path.join(projectRoot, 'node_modules'), path.join(root, 'node_modules'));
    loc = { root, cacheDir: path.join(scratch, 'checkout-cache') };
  });

  it('finds a bundle only while the workflow sources are those it was built from', () => {
    expect(findWorkflowBundle(loc)).toEqual({ missing: expect.stringContaining('npm run setup') });
    // Stands in for setup: a file where the bundle of the current sources goes.
    const built = workflowBundlePath(loc);
    fs.mkdirSync(loc.cacheDir, { recursive: true });
    fs.writeFileSync(built, '// bundle');
    expect(findWorkflowBundle(loc)).toEqual({ codePath: built });

    const workflow = file('src/workflows/order.ts');
    const original = fs.readFileSync(workflow, 'utf8');
    fs.appendFileSync(workflow, '\n// a change\n');
    expect(findWorkflowBundle(loc)).toEqual({ missing: expect.stringContaining('none matches') });
    fs.writeFileSync(workflow, original);
    expect(findWorkflowBundle(loc)).toEqual({ codePath: built });

    fs.writeFileSync(file('src/shared/new-contract.ts'), 'export const x = 1;\n');
    expect(findWorkflowBundle(loc)).toHaveProperty('missing');
    fs.rmSync(file('src/shared/new-contract.ts'));
    expect(findWorkflowBundle(loc)).toEqual({ codePath: built });
  });

  it('makes the worker bundle the sources at start-up when stale or when interceptors must be bundled', () => {
    const stale = recordingLogger();
    const emptyCache = { root: loc.root, cacheDir: path.join(scratch, 'no-bundles') };
    expect(workflowCode(stale.log, { interceptors: false, location: emptyCache })).toEqual({
      workflowsPath: path.join(loc.root, 'src/workflows/index.ts'),
    });
    expect(stale.lines[0]?.msg).toBe('workflow code: bundling the sources at start-up');

    const traced = recordingLogger();
    expect(workflowCode(traced.log, { interceptors: true, location: loc })).toHaveProperty(
      'workflowsPath',
    );
    expect(traced.lines[0]?.obj.reason).toMatch(/interceptors/);
  });

  it('makes a compiled worker load the bundle its build wrote, the tracing one with tracing on, and fail without it', () => {
    const builtDir = fs.mkdtempSync(path.join(scratch, 'dist-'));
    expect(() => workflowCode(recordingLogger().log, { interceptors: false, builtDir })).toThrow(
      /workflow-bundle\.js is missing: npm run build/,
    );
    for (const file of Object.values(BUILT_BUNDLES))
      fs.writeFileSync(path.join(builtDir, file), '// bundle');
    const plain = recordingLogger();
    expect(workflowCode(plain.log, { interceptors: false, builtDir })).toEqual({
      workflowBundle: { codePath: path.join(builtDir, BUILT_BUNDLES.plain) },
    });
    expect(plain.lines[0]?.msg).toBe('workflow code: the bundle built with the compiled code');
    expect(workflowCode(plain.log, { interceptors: true, builtDir })).toEqual({
      workflowBundle: { codePath: path.join(builtDir, BUILT_BUNDLES.tracing) },
    });
  });
});

describe('the orders worker process', () => {
  it('runs the bundle built at setup instead of bundling at start-up', async () => {
    const stack = inject('stack');
    // What setup does (a no-op when it already ran for these sources).
    const { codePath } = await buildWorkflowBundle(defaultBundleLocation);
    const worker = new ManagedProcess({
      name: 'worker-orders',
      command: process.execPath,
      args: ['--import', 'tsx', path.join(projectRoot, 'src/workers/orders.ts')],
      cwd: projectRoot,
      env: {
        ...process.env,
        DATABASE_URL: stack.DATABASE_URL,
        TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
        LOG_FORMAT: 'json',
        LOG_LEVEL: 'info',
      },
      logFile: path.join(scratch, 'worker-orders.log'),
    });
    try {
      const started = performance.now();
      await waitUntilReady(
        worker,
        'worker-orders',
        async () => RUNNING_LOG_LINE.test(worker.tail(200)),
        60_000,
      );
      const lines = fs
        .readFileSync(worker.spec.logFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { msg: string; workflowBundle?: string });
      const choice = lines.find((l) => l.msg.startsWith('workflow code:'));
      expect(choice).toMatchObject({
        msg: 'workflow code: the bundle built at setup',
        workflowBundle: codePath,
      });
      // The SDK logs this only when it runs webpack.
      expect(lines.some((l) => /bundle created/i.test(l.msg))).toBe(false);
      console.info(
        `worker-orders running ${((performance.now() - started) / 1000).toFixed(1)} s after spawn`,
      );
    } finally {
      await worker.stop(5_000);
    }
  }, 120_000);
});
