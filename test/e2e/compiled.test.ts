/**
 * The production image's contents, run without a Docker engine: `npm run
 * build` (the script the Dockerfile's build stage runs) compiles dist/ and its
 * workflow bundles; a folder laid out like the image's /app (package.json,
 * the Dockerfile's `npm ci --omit=...`, dist/) then runs the API, the relay and the four workers as
 * `node dist/...js` on this run's Node (24 under npm test), against the
 * suite's real stack. An order placed through the compiled API completes
 * through the compiled workers; the orders worker loads the prebuilt bundle
 * (with tracing on, the one that holds the tracing interceptors).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '../../scripts/lib/process.ts';
import {
  stackEnvOf,
  startAppProcess,
  startCollector,
  waitUntil,
  type AppProcess,
} from '../observability/processes.ts';
import { postOrder, validOrder, type Body } from '../support/api.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const stack = inject('stack');
const apiKey = 'compiled-test-key';

const WORKERS = ['orders', 'email', 'webhooks', 'events'] as const;
/** Development-only packages that must not reach the image. */
const DEV_ONLY = ['tsx', 'typescript', 'vitest', 'prisma', 'eslint', '@temporalio/testing'];

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

/** The Dockerfile's `npm ci` of production dependencies, as npm's arguments. */
function dockerfileProductionInstall(): string[] {
  const m = /^RUN npm (ci --omit=dev[^&\n]*)/m.exec(
    fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8'),
  );
  if (!m?.[1]) throw new Error('the Dockerfile has no `RUN npm ci --omit=dev ...`');
  return m[1].trim().split(/\s+/);
}

/**
 * /app as the Dockerfile's runtime stage lays it out: production dependencies
 * (the Dockerfile's `npm ci --omit=dev ...`, kept per lock file, flags and Node ABI under the temporary
 * folder, outside the checkout so nothing resolves from its node_modules) and
 * a fresh copy of dist/.
 */
function imageLayout(): string {
  const lock = fs.readFileSync(path.join(root, 'package-lock.json'));
  const key = createHash('sha256')
    .update(lock)
    .update(fs.readFileSync(path.join(root, 'package.json')))
    .update(dockerfileProductionInstall().join(' '))
    .update(process.versions.modules)
    .digest('hex')
    .slice(0, 16);
  const app = path.join(os.tmpdir(), `orderflow-image-${key}`);
  if (!fs.existsSync(path.join(app, 'node_modules', '.orderflow-prod'))) {
    // Layouts of other lock files are stale: ~400 MB each.
    for (const old of fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('orderflow-image-')))
      fs.rmSync(path.join(os.tmpdir(), old), { recursive: true, force: true });
    fs.mkdirSync(app, { recursive: true });
    for (const f of ['package.json', 'package-lock.json'])
      fs.copyFileSync(path.join(root, f), path.join(app, f));
    run('npm', [...dockerfileProductionInstall(), '--loglevel=error'], app);
    fs.writeFileSync(path.join(app, 'node_modules', '.orderflow-prod'), '');
  }
  fs.rmSync(path.join(app, 'dist'), { recursive: true, force: true });
  fs.cpSync(path.join(root, 'dist'), path.join(app, 'dist'), { recursive: true });
  return app;
}

/** Places an order through the compiled API and waits until it is COMPLETED; returns its id. */
async function placeAndComplete(): Promise<string> {
  const created = await postOrder(apiUrl, validOrder(), { authorization: `Bearer ${apiKey}` });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const id = String(created.body.id);
  let order: Body = created.body;
  await waitUntil(
    () => `order ${id} COMPLETED (last: ${JSON.stringify(order)})`,
    async () => {
      const res = await fetch(`${apiUrl}/orders/${id}`, {
        headers: { authorization: `Bearer ${apiKey}` },
      });
      order = (await res.json()) as Body;
      return order.status === 'COMPLETED';
    },
    90_000,
  );
  return id;
}

/** The Dockerfile's HEALTHCHECK command (exec form), as argv. */
function healthcheckArgv(): string[] {
  const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const m = /^HEALTHCHECK .*?CMD (\[.*\])\s*$/m.exec(text);
  if (!m?.[1]) throw new Error('the Dockerfile has no exec-form HEALTHCHECK');
  return JSON.parse(m[1]) as string[];
}

let app: string;
let apiUrl: string;
let workerEnv: Record<string, string>;
let buildOutput = '';
const procs: AppProcess[] = [];
const workers = new Map<string, AppProcess>();
let api: AppProcess;

beforeAll(async () => {
  buildOutput = run('npm', ['run', 'build'], root);
  app = imageLayout();
  const env = (workerEnv = {
    ...stackEnvOf(stack),
    NODE_ENV: 'production',
    API_KEYS: apiKey,
    LOG_LEVEL: 'info',
    WORKER_METRICS_PORT: '0',
  });
  for (const queue of WORKERS) {
    const p = startAppProcess(`worker-${queue}`, `dist/src/workers/${queue}.js`, env, app);
    procs.push(p);
    workers.set(queue, p);
  }
  // As docker-compose.yml runs them: the API only commits, the relay process starts the workflows.
  const relay = startAppProcess('relay', 'dist/src/api/relay.js', env, app);
  procs.push(relay);
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  api = startAppProcess(
    'api',
    'dist/src/api/server.js',
    { ...env, PORT: String(port), WORKFLOW_START_MODE: 'relay' },
    app,
  );
  procs.push(api);
  await Promise.all([
    ...[...workers.values()].map((w) =>
      w.waitForLine('worker running', (l) => l.msg === 'worker running', 120_000),
    ),
    relay.waitForLine('relay running', (l) => l.msg === 'relay running', 120_000),
  ]);
  await waitUntil(
    () => `the compiled API's /readyz on ${apiUrl}:\n${api.output().slice(-2000)}`,
    async () => (await fetch(`${apiUrl}/readyz`).catch(() => undefined))?.ok === true,
    60_000,
  );
}, 600_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop(10_000)));
}, 60_000);

describe('the compiled build (what the production image holds)', () => {
  it('is compiled JavaScript with its workflow bundles and migrations, and production dependencies only', () => {
    expect(buildOutput).toMatch(/workflow bundles in/);
    for (const f of [
      'dist/src/api/server.js',
      'dist/src/generated/prisma/client.js',
      'dist/scripts/migrate.js',
      'dist/workflow-bundle.js',
      'dist/workflow-bundle.tracing.js',
    ])
      expect(fs.existsSync(path.join(app, f)), f).toBe(true);
    expect(fs.readdirSync(path.join(app, 'dist/prisma/migrations')).length).toBeGreaterThan(0);
    const tsFiles = fs
      .readdirSync(path.join(app, 'dist'), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    expect(tsFiles).toEqual([]);
    const present = DEV_ONLY.filter((p) => fs.existsSync(path.join(app, 'node_modules', p)));
    expect(present, 'devDependencies in the production node_modules').toEqual([]);
  });

  it("holds every entry docker-compose.yml's services run", () => {
    const compose = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), {
      merge: true,
    }) as { services: Record<string, { build?: unknown; command?: string[] }> };
    const entries = Object.values(compose.services)
      .filter((s) => s.build !== undefined)
      .map((s) => s.command?.[1] ?? 'dist/src/api/server.js');
    expect(entries.length).toBeGreaterThanOrEqual(9);
    for (const entry of entries) expect(fs.existsSync(path.join(app, entry)), entry).toBe(true);
  });

  it('migrates with the compiled migration runner (the compose migrate service)', () => {
    const out = run(process.execPath, ['dist/scripts/migrate.js'], app, {
      DATABASE_URL: stack.DATABASE_URL,
    });
    expect(out).toMatch(/\d+ applied, [1-9]\d* already up to date/);
  });

  it('runs the API, the relay and the workers on this Node, the orders worker on the prebuilt bundle', () => {
    expect(process.versions.node.split('.')[0]).toBe(process.env.ORDERFLOW_NODE_LINE ?? '24');
    for (const p of procs) {
      expect(fs.realpathSync(`/proc/${p.child.pid}/exe`), p.name).toBe(
        fs.realpathSync(process.execPath),
      );
    }
    const orders = workers.get('orders')!;
    const line = orders.lines.find((l) => typeof l.workflowBundle === 'string');
    expect(line?.msg, orders.output().slice(-2000)).toBe(
      'workflow code: the bundle built with the compiled code',
    );
    expect(line?.workflowBundle).toBe(path.join(app, 'dist', 'workflow-bundle.js'));
    expect(orders.output()).not.toMatch(/bundling the sources|webpack/i);
  });

  it('completes an order placed through the compiled API with the compiled relay and workers', async () => {
    await placeAndComplete();
  }, 120_000);

  it('runs the orders worker with tracing on the bundle that holds the tracing interceptors', async () => {
    const collector = await startCollector();
    const plain = workers.get('orders')!;
    await plain.stop();
    const traced = startAppProcess(
      'worker-orders-traced',
      'dist/src/workers/orders.js',
      { ...workerEnv, OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '200' },
      app,
    );
    procs.push(traced);
    try {
      await traced.waitForLine('worker running', (l) => l.msg === 'worker running');
      const line = traced.lines.find((l) => typeof l.workflowBundle === 'string');
      expect(line?.workflowBundle).toBe(path.join(app, 'dist', 'workflow-bundle.tracing.js'));
      const id = await placeAndComplete();
      await waitUntil(
        () =>
          `a RunWorkflow:orderWorkflow span from the traced worker (order ${id}); spans: ${collector.spans.map((x) => `${x.service}: ${x.name}`).join(', ')}`,
        () =>
          collector.spans.some(
            (x) =>
              x.service === 'orderflow-worker-orders' && x.name === 'RunWorkflow:orderWorkflow',
          ),
        30_000,
      );
    } finally {
      await traced.stop();
      await collector.close();
    }
  }, 180_000);

  it("answers the image's HEALTHCHECK: the API on /healthz, a worker on its /metrics", () => {
    const [cmd, ...args] = healthcheckArgv();
    expect(cmd).toBe('node');
    const check = (env: Record<string, string>) =>
      spawnSync(process.execPath, args, {
        env: { PATH: process.env.PATH, ...env },
        timeout: 10_000,
      }).status;
    expect(check({ PORT: new URL(apiUrl).port })).toBe(0);
    const running = workers.get('email')!.lines.find((l) => l.msg === 'worker running');
    expect(check({ HEALTHCHECK_URL: String(running?.metricsUrl) })).toBe(0);
    // And it fails where nothing answers.
    expect(check({ HEALTHCHECK_URL: 'http://127.0.0.1:9/healthz' })).not.toBe(0);
  });
});
