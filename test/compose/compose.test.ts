/**
 * Validates docker-compose.yml without a Docker engine.
 *
 * 1. The file is parsed as YAML (anchors and `<<` merge keys resolved, as
 *    Compose does) and must mean the same under YAML 1.1 and 1.2, so no
 *    scalar is read differently by different Compose implementations
 *    (`no` vs false, `22:22` as a base-60 number, ...).
 * 2. The result is validated against the official Compose Specification JSON
 *    schema, the same schema Docker Compose v2 validates with.
 * 3. Our own invariants: every process of DESIGN.md's "Processes" table has a
 *    service running exactly its entry; workers and consumers have
 *    deploy.replicas >= 1; app services get the shared connection settings;
 *    images are pinned; depends_on targets exist, form no cycle, and wait
 *    only for conditions the target can reach; no accidental `$` interpolation.
 * 4. When a Compose CLI is on PATH (`docker compose` or `docker-compose`), or
 *    COMPOSE_CLI names one, its `config -q` must accept the file too. That
 *    case is reported as skipped where no CLI exists; 1-3 always run.
 *
 * Every check is also run against deliberately broken copies of the file, to
 * prove that it can fail.
 *
 * Schema origin: compose-spec.schema.json beside this file is
 * compose-spec/compose-spec's schema/compose-spec.json (Apache-2.0), copied
 * byte for byte from the copy that the npm package dclint@3.1.0 ships as
 * schemas/compose.schema.json (sha256 46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496).
 * To update it: `npm pack dclint@<version>` (or another registry package that
 * ships the spec's schema) and copy the file over; keep it unformatted.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { apiAccessOf, loadConfig } from '../../src/config/env.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const composeFile = path.join(root, 'docker-compose.yml');
const composeText = readFileSync(composeFile, 'utf8');

type Doc = Record<string, unknown>;

const isRecord = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);
const clone = <T>(v: T): T => structuredClone(v);

// ------------------------------------------------------------------ parsing

function parseYaml(text: string, version: '1.1' | '1.2'): unknown {
  const doc = parseDocument(text, { version, merge: true, uniqueKeys: true, prettyErrors: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) throw new Error(problems.map((e) => e.message).join('\n'));
  return doc.toJS({ maxAliasCount: 10_000 });
}

// ------------------------------------------------------------------ schema

const schema = JSON.parse(readFileSync(path.join(here, 'compose-spec.schema.json'), 'utf8')) as Doc;

function createValidator(): ValidateFunction {
  const ajv = new Ajv({
    allErrors: true,
    // The spec's schema relies on union types and on properties/required
    // next to type lists; everything else stays strict.
    allowUnionTypes: true,
    strictTypes: false,
    strictRequired: false,
  });
  // The spec names its meta-schema with https; Ajv registers draft-07 as http.
  const draft7 = ajv.getSchema('http://json-schema.org/draft-07/schema')?.schema;
  if (!isRecord(draft7)) throw new Error('Ajv does not bundle the draft-07 meta-schema');
  ajv.addMetaSchema({ ...draft7, $id: String(schema.$schema) });
  return ajv.compile(schema);
}

const validate = createValidator();

const formatErrors = (errors: ErrorObject[] | null | undefined): string[] =>
  (errors ?? []).map(
    (e) => `${e.instancePath || '/'} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`,
  );

function schemaErrors(doc: unknown): string[] {
  return validate(doc) ? [] : formatErrors(validate.errors);
}

// ------------------------------------------------------------------ invariants

/** DESIGN.md, "Processes": the entry of every process that must have a service. */
const requiredEntries = [
  'src/api/server.ts',
  'src/workers/orders.ts',
  'src/workers/email.ts',
  'src/workers/webhooks.ts',
  'src/workers/events.ts',
  'src/consumers/analytics.ts',
  'src/consumers/inventory.ts',
];

/** Every consumer group in src/consumers needs a service too, not only the two named ones. */
function consumerEntries(): string[] {
  const dir = path.join(root, 'src', 'consumers');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .map((f) => `src/consumers/${f}`);
}

const sharedEnv = ['DATABASE_URL', 'TEMPORAL_ADDRESS', 'KAFKA_BROKERS'];

const services = (doc: Doc): [string, Doc][] =>
  isRecord(doc.services)
    ? Object.entries(doc.services).map(([name, s]): [string, Doc] => [name, isRecord(s) ? s : {}])
    : [];

/**
 * The TypeScript source of the compiled entry a service runs: `node dist/<entry>.js`
 * (the image holds `npm run build`'s output, see Dockerfile) gives `<entry>.ts`, else undefined.
 */
function entryOf(svc: Doc): string | undefined {
  const cmd = svc.command;
  if (!Array.isArray(cmd) || cmd.length !== 2) return undefined;
  const [node, compiled] = cmd as unknown[];
  const m = typeof compiled === 'string' ? /^dist\/(.+)\.js$/.exec(compiled) : null;
  return node === 'node' && m ? `${m[1]}.ts` : undefined;
}

/** How a service runs `entry` (a source path): its compiled JavaScript. */
const commandOf = (entry: string): string[] => ['node', `dist/${entry.replace(/\.ts$/, '.js')}`];

function envKeys(svc: Doc): string[] {
  const env = svc.environment;
  if (Array.isArray(env)) return env.map((e) => String(e).split('=')[0] ?? '');
  return isRecord(env) ? Object.keys(env) : [];
}

function dependsOn(svc: Doc): Map<string, string> {
  const deps = new Map<string, string>();
  const d = svc.depends_on;
  if (Array.isArray(d)) for (const name of d) deps.set(String(name), 'service_started');
  else if (isRecord(d))
    for (const [name, spec] of Object.entries(d))
      deps.set(name, isRecord(spec) ? String(spec.condition) : 'service_started');
  return deps;
}

/** An image reference pinned to a tag other than `latest`, or to a digest. */
function isPinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  const colon = lastPart.indexOf(':');
  if (colon < 0) return false;
  const tag = lastPart.slice(colon + 1);
  return tag !== '' && tag !== 'latest';
}

/** Strings with a `$` that Compose would interpolate although it is no `${...}`. */
function strayDollars(value: unknown, at: string): string[] {
  if (typeof value === 'string') {
    const rest = value.replaceAll('$$', '');
    return /\$(?!\{)/.test(rest) ? [`${at}: unescaped "$" (write "$$" for a literal one)`] : [];
  }
  if (Array.isArray(value)) return value.flatMap((v, i) => strayDollars(v, `${at}[${i}]`));
  if (isRecord(value))
    return Object.entries(value).flatMap(([k, v]) => strayDollars(v, `${at}.${k}`));
  return [];
}

function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    if (state.get(n) === 'done') return undefined;
    if (state.get(n) === 'visiting') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'visiting');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      const cycle = visit(m);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(n, 'done');
    return undefined;
  };
  for (const n of graph.keys()) {
    const cycle = visit(n);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Our own rules for the topology; returns one message per violation. */
function invariantProblems(doc: Doc): string[] {
  const problems: string[] = [];
  const all = services(doc);
  const byName = new Map(all);

  const entries = new Map<string, string>();
  for (const [name, svc] of all) {
    const entry = entryOf(svc);
    if (entry) entries.set(entry, name);
  }
  for (const entry of new Set([...requiredEntries, ...consumerEntries()]))
    if (!entries.has(entry)) problems.push(`no service runs "${commandOf(entry).join(' ')}"`);

  for (const [name, svc] of all) {
    const entry = entryOf(svc);
    const isApp = svc.build !== undefined;

    // The image runs compiled JavaScript only: it has no tsx (a devDependency) and no sources.
    if (isApp && JSON.stringify(svc.command ?? '').includes('tsx'))
      problems.push(`${name}: runs tsx, which the production image does not hold`);

    if (entry && /^src\/(workers|consumers)\//.test(entry)) {
      const replicas = isRecord(svc.deploy) ? svc.deploy.replicas : undefined;
      if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 1)
        problems.push(`${name}: deploy.replicas must be an integer >= 1 (is ${String(replicas)})`);
    }

    if (isApp) {
      const keys = envKeys(svc);
      for (const key of sharedEnv)
        if (!keys.includes(key)) problems.push(`${name}: environment lacks ${key}`);
    }

    if (typeof svc.image === 'string') {
      if (!isPinned(svc.image))
        problems.push(`${name}: image "${svc.image}" is not pinned to a tag`);
    } else if (!isApp) {
      problems.push(`${name}: neither image nor build`);
    }

    for (const [dep, condition] of dependsOn(svc)) {
      const target = byName.get(dep);
      if (!target) {
        problems.push(`${name}: depends_on unknown service "${dep}"`);
        continue;
      }
      if (dep === name) problems.push(`${name}: depends on itself`);
      if (condition === 'service_healthy' && target.healthcheck === undefined)
        problems.push(`${name}: waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      if (
        condition === 'service_completed_successfully' &&
        target.restart !== undefined &&
        target.restart !== 'no'
      )
        problems.push(
          `${name}: waits for ${dep} to complete, but ${dep} restarts (${JSON.stringify(target.restart)})`,
        );
    }
  }

  const graph = new Map(all.map(([name, svc]) => [name, [...dependsOn(svc).keys()]]));
  const cycle = findCycle(graph);
  if (cycle) problems.push(`depends_on cycle: ${cycle.join(' -> ')}`);

  const published = new Map<string, string>();
  for (const [name, svc] of all)
    for (const p of Array.isArray(svc.ports) ? svc.ports : []) {
      const host = String(p).split(':').slice(0, -1).join(':');
      if (!host) continue;
      const other = published.get(host);
      if (other) problems.push(`${name}: host port ${host} already published by ${other}`);
      published.set(host, name);
    }

  problems.push(...strayDollars(doc, '$'));
  return problems;
}

// ------------------------------------------------------------------ compose CLI

/** A working Compose CLI as [command, ...args], or undefined. */
function findComposeCli(): string[] | undefined {
  const candidates: string[][] = [];
  if (process.env.COMPOSE_CLI) candidates.push(process.env.COMPOSE_CLI.split(' '));
  candidates.push(['docker', 'compose'], ['docker-compose']);
  for (const [cmd, ...args] of candidates) {
    if (!cmd) continue;
    const r = spawnSync(cmd, [...args, 'version'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status === 0) return [cmd, ...args];
  }
  return undefined;
}

// ------------------------------------------------------------------ tests

const yaml12 = parseYaml(composeText, '1.2');
if (!isRecord(yaml12)) throw new Error('docker-compose.yml is not a YAML mapping');
const compose: Doc = yaml12;

describe('docker-compose.yml', () => {
  it('reads the same under YAML 1.1 and YAML 1.2', () => {
    expect(parseYaml(composeText, '1.1')).toEqual(compose);
  });

  it('is valid against the Compose Specification schema', () => {
    expect(schemaErrors(compose)).toEqual([]);
  });

  it('satisfies the orderflow invariants', () => {
    expect(invariantProblems(compose)).toEqual([]);
  });

  it('runs the expected replicas and shared settings', () => {
    const svc = new Map(services(compose));
    for (const name of ['worker-orders', 'worker-email', 'worker-webhooks', 'worker-events']) {
      const deploy = svc.get(name)?.deploy;
      expect(isRecord(deploy) && deploy.replicas, name).toBeGreaterThanOrEqual(2);
    }
    // The API only commits; a relay service starts the workflows.
    expect(svc.get('relay')?.command).toEqual(['node', 'dist/src/api/relay.js']);
    expect(svc.get('api')?.environment).toMatchObject({ WORKFLOW_START_MODE: 'relay' });
    const env = compose['x-app-env'];
    expect(env).toMatchObject({
      DATABASE_URL: 'postgresql://orderflow:orderflow@postgres:5432/orderflow',
      TEMPORAL_ADDRESS: 'temporal:7233',
      TEMPORAL_NAMESPACE: 'default',
      KAFKA_BROKERS: 'kafka:9092',
      SMTP_URL: 'smtp://smtp:1025',
    });
    // Hostnames in the shared settings are services of this file.
    expect([...svc.keys()]).toEqual(
      expect.arrayContaining(['postgres', 'temporal', 'kafka', 'smtp']),
    );
  });

  it('runs the API with keys from a secret, which its own start-up check accepts', () => {
    const api = new Map(services(compose)).get('api') ?? {};
    const env = Object.fromEntries(
      Object.entries(isRecord(api.environment) ? api.environment : {}).map(([k, v]) => [
        k,
        String(v),
      ]),
    );
    // The secret is mounted where API_KEYS_FILE points, from a file of the project.
    expect(api.secrets).toEqual(['api_keys']);
    expect(env.API_KEYS_FILE).toBe('/run/secrets/api_keys');
    expect(compose.secrets).toEqual({ api_keys: { file: './secrets/api-keys' } });
    expect(env.API_ALLOW_ANONYMOUS).toBeUndefined();
    // What the container sees, with a key in the secret file: the API starts.
    const dir = mkdtempSync(path.join(tmpdir(), 'orderflow-compose-'));
    try {
      const secret = path.join(dir, 'api-keys');
      writeFileSync(secret, `${'k'.repeat(32)}\n`);
      const access = apiAccessOf(loadConfig({ ...env, API_KEYS_FILE: secret }));
      expect(access).toMatchObject({ apiKeys: ['k'.repeat(32)], anonymous: false });
      expect(access.metrics).toBe('elsewhere');
      // Without the secret, the same environment is refused, naming API_KEYS.
      const keyless = { ...env };
      delete keyless.API_KEYS_FILE;
      expect(() => apiAccessOf(loadConfig(keyless))).toThrow(/API_KEYS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('references entry points that exist in the repository', () => {
    const missing = services(compose)
      .map(([, s]) => entryOf(s))
      .filter((e): e is string => e !== undefined)
      .concat(['scripts/migrate.ts'])
      .filter((e) => !existsSync(path.join(root, e)));
    expect(missing).toEqual([]);
  });

  const cli = findComposeCli();
  it.skipIf(!cli)(`is accepted by \`${cli?.join(' ') ?? 'compose'} config -q\``, () => {
    const [cmd, ...args] = cli ?? [];
    const r = spawnSync(cmd ?? '', [...args, '-f', composeFile, 'config', '-q'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr.trim() === '' ? r.status : `${r.status}: ${r.stderr}`).toBe(0);
  });
});

describe('the checks reject broken compose files', () => {
  const broken = (mutate: (doc: Doc, svc: (name: string) => Doc) => void): Doc => {
    const doc = clone(compose);
    mutate(doc, (name) => {
      const s = (doc.services as Doc)[name];
      if (!isRecord(s)) throw new Error(`no service ${name}`);
      return s;
    });
    return doc;
  };

  it('schema: unknown service key, bad depends_on condition, wrong types, unknown top-level key', () => {
    const cases: [string, Doc][] = [
      ['unknown key', broken((_, s) => (s('api').restart_policy = 'always'))],
      [
        'bad condition',
        broken((_, s) => (s('api').depends_on = { migrate: { condition: 'service_ready' } })),
      ],
      ['replicas type', broken((_, s) => (s('worker-orders').deploy = { replicas: [2] }))],
      ['command type', broken((_, s) => (s('api').command = { run: 'node' }))],
      ['top-level key', broken((doc) => (doc.service = {}))],
      ['service name', broken((doc) => ((doc.services as Doc)['bad name!'] = { image: 'x:1' }))],
    ];
    for (const [label, doc] of cases) expect(schemaErrors(doc), label).not.toEqual([]);
  });

  it('YAML: ambiguous scalars and duplicate keys are refused', () => {
    const sexagesimal = composeText.replace("- '9094:9094'", '- 22:22');
    expect(parseYaml(sexagesimal, '1.1')).not.toEqual(parseYaml(sexagesimal, '1.2'));
    const duplicate = composeText.replace('  postgres:\n', '  postgres:\n    image: postgres:15\n');
    expect(() => parseYaml(duplicate, '1.2')).toThrow();
  });

  it('invariants: each rule reports its violation', () => {
    const cases: [string, Doc, RegExp][] = [
      [
        'missing process',
        broken((doc) => delete (doc.services as Doc)['consumer-inventory']),
        /no service runs "node dist\/src\/consumers\/inventory\.js"/,
      ],
      [
        'tsx at run time',
        broken((_, s) => (s('api').command = ['node', '--import', 'tsx', 'src/api/server.ts'])),
        /api: runs tsx/,
      ],
      [
        'no replicas',
        broken((_, s) => delete s('worker-webhooks').deploy),
        /worker-webhooks: deploy\.replicas/,
      ],
      [
        'zero replicas',
        broken((_, s) => (s('worker-events').deploy = { replicas: 0 })),
        /worker-events: deploy\.replicas/,
      ],
      [
        'missing env',
        broken((_, s) => {
          const env = { ...(s('worker-email').environment as Doc) };
          delete env.KAFKA_BROKERS;
          s('worker-email').environment = env;
        }),
        /worker-email: environment lacks KAFKA_BROKERS/,
      ],
      ['latest', broken((_, s) => (s('kafka').image = 'apache/kafka:latest')), /kafka: image/],
      ['untagged', broken((_, s) => (s('postgres').image = 'postgres')), /postgres: image/],
      [
        'unknown dependency',
        broken((_, s) => (s('api').depends_on = { database: { condition: 'service_started' } })),
        /api: depends_on unknown service "database"/,
      ],
      [
        'healthy without healthcheck',
        broken((_, s) => delete s('kafka').healthcheck),
        /waits for kafka to be healthy, but kafka has no healthcheck/,
      ],
      [
        'completion of a restarting service',
        broken((_, s) => (s('migrate').restart = 'unless-stopped')),
        /waits for migrate to complete, but migrate restarts/,
      ],
      [
        'cycle',
        broken((_, s) => (s('postgres').depends_on = ['api'])),
        /depends_on cycle: .*postgres/,
      ],
      [
        'port clash',
        broken((_, s) => (s('temporal-ui').ports = ['3000:8080'])),
        /host port 3000 already published/,
      ],
      [
        'stray $',
        broken((_, s) => (s('temporal-setup').command = ['echo $i'])),
        /temporal-setup\.command\[0\]: unescaped "\$"/,
      ],
    ];
    for (const [label, doc, expected] of cases) {
      const problems = invariantProblems(doc);
      expect(
        problems.some((p) => expected.test(p)),
        `${label}: ${problems.join('; ')}`,
      ).toBe(true);
    }
  });
});
