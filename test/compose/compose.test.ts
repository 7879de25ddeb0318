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
 *    And the cluster topology of `npm run start:cluster`, from the same files:
 *    every Temporal service mounts deploy/temporal/config.yaml and runs exactly
 *    the arguments the cluster runner gives it (temporalServiceArgs), sets only
 *    variables that file reads, history first, all after the schema job; the
 *    three Kafka nodes mount deploy/kafka/cluster.properties, set every
 *    node-specific key the cluster runner adds (kafkaNodeProperties) and
 *    override no shared one, node ids 1-3, voters all three; CLUSTER_REPLICAS
 *    processes of every application; KAFKA_BROKERS lists every broker; the
 *    published ports of DESIGN.md (API 3000 and 3001, UI 8233, frontend 7233,
 *    Kafka 9092).
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
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { CLUSTER_REPLICAS } from '../../scripts/lib/cluster.ts';
import {
  KAFKA_CLUSTER_PORT_DEFAULTS,
  KAFKA_CLUSTER_PROPERTIES,
  kafkaNodeProperties,
} from '../../scripts/lib/kafka-cluster.ts';
import {
  TEMPORAL_CONFIG_FILE,
  TEMPORAL_DYNAMIC_CONFIG_FILE,
  TEMPORAL_SERVICES,
  temporalServiceArgs,
} from '../../scripts/lib/temporal-cluster.ts';
import { versions } from '../../scripts/lib/tools.ts';
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
  problems.push(...topologyProblems(doc));
  return problems;
}

// ------------------------------------------------------------------ cluster topology

/** The variables deploy/temporal/config.yaml reads (`env "NAME"` in the template). */
const temporalTemplateVars = new Set(
  [...readFileSync(TEMPORAL_CONFIG_FILE, 'utf8').matchAll(/env "([A-Z_]+)"/g)].map((m) => m[1]),
);

/** `key=value` lines of a properties file (comments and blank lines skipped). */
function parseProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*([^#!\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) props.set(m[1]!, m[2]!);
  }
  return props;
}

const sharedKafkaText = readFileSync(KAFKA_CLUSTER_PROPERTIES, 'utf8');
const sharedKafkaProps = parseProperties(sharedKafkaText);

/** The keys the cluster runner adds per node to the shared file (node.id, listeners, ...). */
const kafkaNodeKeys = [
  ...parseProperties(
    kafkaNodeProperties(sharedKafkaText, KAFKA_CLUSTER_PORT_DEFAULTS, 1, '/data'),
  ).keys(),
].filter((k) => !sharedKafkaProps.has(k));

/** Where the apache/kafka image reads a properties file ("file input", see docker-compose.yml). */
const KAFKA_FILE_INPUT = '/mnt/shared/config/server.properties';

/** Variables of the apache/kafka image that are not broker properties (its kafka-propertiesSpec.json excludes). */
const KAFKA_NON_PROPERTY_ENV = new Set([
  'KAFKA_VERSION',
  'KAFKA_HEAP_OPTS',
  'KAFKA_LOG4J_OPTS',
  'KAFKA_OPTS',
  'KAFKA_JMX_OPTS',
  'KAFKA_JVM_PERFORMANCE_OPTS',
  'KAFKA_GC_LOG_OPTS',
  'KAFKA_LOG4J_ROOT_LOGLEVEL',
  'KAFKA_LOG4J_LOGGERS',
  'KAFKA_TOOLS_LOG4J_LOGLEVEL',
]);

/** The broker property a KAFKA_* variable sets, by the image's rules (_ is ., __ is _, ___ is -). */
function kafkaPropertyOf(envKey: string): string {
  return envKey
    .slice('KAFKA_'.length)
    .replace(/(?<!_)_(?!_)/g, '.')
    .replaceAll('___', '-')
    .replaceAll('__', '_')
    .toLowerCase();
}

const KAFKA_NODES = ['kafka-1', 'kafka-2', 'kafka-3'];

/** A scalar as Compose reads it into a string; anything else as ''. */
const str = (v: unknown): string =>
  typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : '';

function envOf(svc: Doc): Record<string, string> {
  const env = svc.environment;
  if (Array.isArray(env))
    return Object.fromEntries(
      env.map((e) => {
        const [k, ...v] = String(e).split('=');
        return [k ?? '', v.join('=')];
      }),
    );
  return isRecord(env) ? Object.fromEntries(Object.entries(env).map(([k, v]) => [k, str(v)])) : {};
}

/** A service's mounts as absolute host paths (bind mounts only) with their target and mode. */
function bindMounts(svc: Doc): { source: string; target: string; readOnly: boolean }[] {
  const out: { source: string; target: string; readOnly: boolean }[] = [];
  for (const v of Array.isArray(svc.volumes) ? svc.volumes : []) {
    if (typeof v === 'string') {
      const [source, target, mode] = v.split(':');
      if (source && target && /^[./]/.test(source))
        out.push({
          source: path.resolve(root, source),
          target,
          readOnly: (mode ?? '').split(',').includes('ro'),
        });
    } else if (isRecord(v) && v.type === 'bind' && typeof v.source === 'string') {
      out.push({
        source: path.resolve(root, v.source),
        target: String(v.target),
        readOnly: v.read_only === true,
      });
    }
  }
  return out;
}

/** [host port, container port] of each published port (short syntax). */
function publishedPorts(svc: Doc): [string, string][] {
  return (Array.isArray(svc.ports) ? svc.ports : []).flatMap((p): [string, string][] => {
    if (isRecord(p)) return [[str(p.published), str(p.target)]];
    const parts = String(p).split(':');
    return parts.length >= 2 ? [[parts.at(-2)!, parts.at(-1)!.split('/')[0]!]] : [];
  });
}

const rel = (file: string) => path.relative(root, file);

/** The cluster topology's rules (see the file comment); one message per violation. */
function topologyProblems(doc: Doc): string[] {
  const problems: string[] = [];
  const all = services(doc);
  const byName = new Map(all);

  // Temporal: four services from the one config file, as the cluster runner starts them.
  const schemaJobs = all
    .filter(
      ([, s]) =>
        str(s.image).startsWith('temporalio/admin-tools:') &&
        JSON.stringify(s.command ?? '').includes('update-schema'),
    )
    .map(([name]) => name);
  for (const service of TEMPORAL_SERVICES) {
    const name = `temporal-${service}`;
    const svc = byName.get(name);
    if (!svc) {
      problems.push(`no service ${name}`);
      continue;
    }
    if (!str(svc.image).startsWith('temporalio/server:'))
      problems.push(`${name}: image is not temporalio/server`);
    const mounts = bindMounts(svc);
    const config = mounts.find((m) => m.source === TEMPORAL_CONFIG_FILE && m.readOnly);
    const dynamic = mounts.find((m) => m.source === TEMPORAL_DYNAMIC_CONFIG_FILE && m.readOnly);
    if (!config) problems.push(`${name}: does not mount ${rel(TEMPORAL_CONFIG_FILE)} read-only`);
    if (!dynamic)
      problems.push(`${name}: does not mount ${rel(TEMPORAL_DYNAMIC_CONFIG_FILE)} read-only`);
    const expected = temporalServiceArgs(service, config?.target ?? '<config.yaml>');
    if (JSON.stringify(svc.command) !== JSON.stringify(expected))
      problems.push(`${name}: command is not \`${expected.join(' ')}\``);
    const env = envOf(svc);
    for (const key of Object.keys(env))
      if (!temporalTemplateVars.has(key))
        problems.push(`${name}: sets ${key}, which ${rel(TEMPORAL_CONFIG_FILE)} does not read`);
    if (dynamic && env.DYNAMIC_CONFIG_FILE_PATH !== dynamic.target)
      problems.push(`${name}: DYNAMIC_CONFIG_FILE_PATH is not the mounted ${dynamic.target}`);
    if (env.TEMPORAL_SERVICES !== service)
      problems.push(`${name}: TEMPORAL_SERVICES is not ${service}`);
    const broadcast = env.TEMPORAL_BROADCAST_ADDRESS ?? '';
    if (broadcast !== '' && isIP(broadcast) === 0)
      problems.push(
        `${name}: TEMPORAL_BROADCAST_ADDRESS must be an IP or empty (is "${broadcast}")`,
      );
    if (env.FRONTEND_ADDRESS?.split(':')[0] !== 'temporal-frontend')
      problems.push(`${name}: FRONTEND_ADDRESS is not temporal-frontend`);
    const deps = dependsOn(svc);
    if (!schemaJobs.some((job) => deps.get(job) === 'service_completed_successfully'))
      problems.push(`${name}: does not wait for the schema job to complete`);
    if (service !== 'history' && deps.get('temporal-history') !== 'service_healthy')
      problems.push(`${name}: must wait for temporal-history to be healthy (history starts first)`);
  }

  // Kafka: three nodes on the shared file; only node-specific keys from the environment.
  const advertised = new Map<string, string[]>();
  const clusterIds = new Set<string>();
  for (const [i, name] of KAFKA_NODES.entries()) {
    const svc = byName.get(name);
    if (!svc) {
      problems.push(`no service ${name}`);
      continue;
    }
    if (
      !bindMounts(svc).some(
        (m) => m.source === KAFKA_CLUSTER_PROPERTIES && m.target === KAFKA_FILE_INPUT,
      )
    )
      problems.push(
        `${name}: does not mount ${rel(KAFKA_CLUSTER_PROPERTIES)} at ${KAFKA_FILE_INPUT}`,
      );
    const env = envOf(svc);
    clusterIds.add(env.CLUSTER_ID ?? '');
    const props = new Map(
      Object.entries(env)
        .filter(([k]) => k.startsWith('KAFKA_') && !KAFKA_NON_PROPERTY_ENV.has(k))
        .map(([k, v]) => [kafkaPropertyOf(k), v]),
    );
    for (const key of kafkaNodeKeys)
      if (!props.has(key)) problems.push(`${name}: node-specific ${key} is not set`);
    for (const [key, value] of props) {
      const shared = sharedKafkaProps.get(key);
      if (shared !== undefined && shared !== value)
        problems.push(
          `${name}: ${key}=${value} overrides ${key}=${shared} of ${rel(KAFKA_CLUSTER_PROPERTIES)}`,
        );
    }
    if (props.get('node.id') !== String(i + 1))
      problems.push(`${name}: KAFKA_NODE_ID is not ${i + 1}`);
    const controllerPort = /CONTROLLER:\/\/[^:,]*:(\d+)/.exec(props.get('listeners') ?? '')?.[1];
    const voters = (props.get('controller.quorum.voters') ?? '').split(',').sort();
    const expectedVoters = KAFKA_NODES.map((n, j) => `${j + 1}@${n}:${controllerPort}`).sort();
    if (JSON.stringify(voters) !== JSON.stringify(expectedVoters))
      problems.push(
        `${name}: controller.quorum.voters is not ${expectedVoters.join(',')} (is ${voters.join(',')})`,
      );
    advertised.set(name, (props.get('advertised.listeners') ?? '').split(','));
  }
  if (clusterIds.size > 1) problems.push('kafka: the nodes have different CLUSTER_IDs');
  const brokers = KAFKA_NODES.flatMap((n) =>
    (advertised.get(n) ?? []).filter((l) => l.startsWith('PLAINTEXT://')),
  )
    .map((l) => l.slice('PLAINTEXT://'.length))
    .sort();

  // The applications: CLUSTER_REPLICAS processes each, every broker, the Temporal frontend.
  const processes = new Map<string, number>();
  for (const [name, svc] of all) {
    const entry = entryOf(svc);
    if (!entry) continue;
    const replicas = isRecord(svc.deploy) ? svc.deploy.replicas : undefined;
    processes.set(
      entry,
      (processes.get(entry) ?? 0) + (typeof replicas === 'number' ? replicas : 1),
    );
    const env = envOf(svc);
    const listed = (env.KAFKA_BROKERS ?? '').split(',').sort();
    if (JSON.stringify(listed) !== JSON.stringify(brokers))
      problems.push(`${name}: KAFKA_BROKERS is not every broker (${brokers.join(',')})`);
    if (env.TEMPORAL_ADDRESS?.split(':')[0] !== 'temporal-frontend')
      problems.push(`${name}: TEMPORAL_ADDRESS is not temporal-frontend`);
  }
  const appEntries = new Set([...requiredEntries, 'src/api/relay.ts', ...consumerEntries()]);
  for (const entry of appEntries) {
    const n = processes.get(entry) ?? 0;
    if (n !== CLUSTER_REPLICAS)
      problems.push(
        `${CLUSTER_REPLICAS} processes of "${commandOf(entry).join(' ')}" expected, ${n} found`,
      );
  }

  // Published ports (DESIGN.md): API 3000 and 3001, UI 8233, frontend 7233, Kafka bootstrap 9092.
  const publisher = new Map<string, [string, Doc, string]>();
  for (const [name, svc] of all)
    for (const [host, target] of publishedPorts(svc)) publisher.set(host, [name, svc, target]);
  for (const host of ['3000', '3001']) {
    const [, svc, target] = publisher.get(host) ?? [];
    if (!svc || entryOf(svc) !== 'src/api/server.ts' || envOf(svc).PORT !== target)
      problems.push(`host port ${host} is not published by an API service on its PORT`);
  }
  const expectPort = (host: string, service: string, target: string) => {
    const [name, , t] = publisher.get(host) ?? [];
    if (name !== service || t !== target)
      problems.push(`host port ${host} is not published by ${service} (to ${target})`);
  };
  expectPort('8233', 'temporal-ui', '8080');
  expectPort('7233', 'temporal-frontend', '7233');
  const [kafkaName, kafkaSvc, kafkaTarget] = publisher.get('9092') ?? [];
  const hostListener = kafkaSvc
    ? (advertised.get(kafkaName ?? '') ?? []).find((l) => l.endsWith('://localhost:9092'))
    : undefined;
  const listenerName = hostListener?.split('://')[0];
  const listens = new RegExp(`(^|,)${listenerName}://[^:,]*:${kafkaTarget}(,|$)`);
  if (
    kafkaName !== 'kafka-1' ||
    !hostListener ||
    !listens.test(envOf(kafkaSvc ?? {}).KAFKA_LISTENERS ?? '')
  )
    problems.push(
      'host port 9092 is not kafka-1 advertising localhost:9092 on the listener it publishes',
    );

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

  it('runs the cluster topology: two of every process, every broker, the Temporal frontend', () => {
    const svc = new Map(services(compose));
    for (const name of [
      'relay',
      'worker-orders',
      'worker-email',
      'worker-webhooks',
      'worker-events',
      'consumer-analytics',
      'consumer-inventory',
    ]) {
      const deploy = svc.get(name)?.deploy;
      expect(isRecord(deploy) && deploy.replicas, name).toBe(CLUSTER_REPLICAS);
    }
    // Two API services, one host port each (DESIGN.md: :3000 and :3001).
    for (const [name, port] of [
      ['api-1', '3000:3000'],
      ['api-2', '3001:3000'],
    ] as const) {
      expect(svc.get(name)?.command, name).toEqual(['node', 'dist/src/api/server.js']);
      expect(svc.get(name)?.ports, name).toEqual([port]);
      // The API only commits; a relay service starts the workflows.
      expect(svc.get(name)?.environment, name).toMatchObject({ WORKFLOW_START_MODE: 'relay' });
    }
    expect(svc.get('relay')?.command).toEqual(['node', 'dist/src/api/relay.js']);
    const env = compose['x-app-env'];
    expect(env).toMatchObject({
      DATABASE_URL: 'postgresql://orderflow:orderflow@postgres:5432/orderflow',
      TEMPORAL_ADDRESS: 'temporal-frontend:7233',
      TEMPORAL_NAMESPACE: 'default',
      KAFKA_BROKERS: 'kafka-1:9092,kafka-2:9092,kafka-3:9092',
      SMTP_URL: 'smtp://smtp:1025',
    });
    // Hostnames in the shared settings are services of this file.
    expect([...svc.keys()]).toEqual(
      expect.arrayContaining([
        'postgres',
        'temporal-schema',
        'temporal-history',
        'temporal-matching',
        'temporal-frontend',
        'temporal-worker',
        'temporal-setup',
        'temporal-ui',
        'kafka-1',
        'kafka-2',
        'kafka-3',
        'smtp',
      ]),
    );
    // No single-node leftovers.
    expect([...svc.keys()]).not.toEqual(expect.arrayContaining(['temporal']));
    expect([...svc.keys()]).not.toEqual(expect.arrayContaining(['kafka']));
  });

  it('pins the images to the releases the cluster topology runs (scripts/lib/tools.ts)', () => {
    const svc = new Map(services(compose));
    const server = versions.temporalServer.replace(/^v/, '');
    const images: [string, string][] = [
      ...TEMPORAL_SERVICES.map((s): [string, string] => [
        `temporal-${s}`,
        `temporalio/server:${server}`,
      ]),
      ['temporal-schema', `temporalio/admin-tools:${server}`],
      ['temporal-setup', `temporalio/admin-tools:${server}`],
      ['temporal-ui', `temporalio/ui:${versions.temporalUiServer.replace(/^v/, '')}`],
      ...KAFKA_NODES.map((n): [string, string] => [n, `apache/kafka:${versions.kafka}`]),
    ];
    for (const [name, image] of images) expect(svc.get(name)?.image, name).toBe(image);
  });

  it('runs each Temporal service as the cluster runner does, from the shared config file', () => {
    const svc = new Map(services(compose));
    for (const service of TEMPORAL_SERVICES) {
      const s = svc.get(`temporal-${service}`) ?? {};
      expect(s.image, service).toBe('temporalio/server:1.32.0');
      expect(s.volumes, service).toEqual([
        './deploy/temporal/config.yaml:/etc/temporal/orderflow/config.yaml:ro',
        './deploy/temporal/dynamicconfig.yaml:/etc/temporal/orderflow/dynamicconfig.yaml:ro',
      ]);
      expect(s.command, service).toEqual(
        temporalServiceArgs(service, '/etc/temporal/orderflow/config.yaml'),
      );
      expect(s.command, service).toEqual(expect.arrayContaining(['start', '--service', service]));
      expect(s.environment, service).toMatchObject({
        BIND_ON_IP: '0.0.0.0',
        TEMPORAL_BROADCAST_ADDRESS: '',
        FRONTEND_ADDRESS: 'temporal-frontend:7233',
      });
    }
    // The schema job and the namespace job use the admin tools of the same server release.
    expect(svc.get('temporal-schema')?.image).toBe('temporalio/admin-tools:1.32.0');
    expect(svc.get('temporal-setup')?.image).toBe('temporalio/admin-tools:1.32.0');
    expect(svc.get('temporal-ui')?.image).toBe('temporalio/ui:2.54.1');
    // The schema steps of setUpTemporalDatabases, for both databases.
    const schema = JSON.stringify(svc.get('temporal-schema')?.command);
    for (const step of [
      'create-database',
      'setup-schema -v 0.0',
      'update-schema -d',
      'temporal:temporal',
      'temporal_visibility:visibility',
      '/etc/temporal/schema/postgresql/v12/',
    ])
      expect(schema).toContain(step);
    const setup = JSON.stringify(svc.get('temporal-setup')?.command);
    for (const step of [
      'namespace create --namespace default',
      'search-attribute create --namespace default',
      '--name OrderStatus --type Keyword',
    ])
      expect(setup).toContain(step);
  });

  it('configures the Kafka nodes from the shared file and only node-specific values', () => {
    const svc = new Map(services(compose));
    const ids = new Set<string>();
    for (const [i, name] of KAFKA_NODES.entries()) {
      const s = svc.get(name) ?? {};
      expect(s.image, name).toBe('apache/kafka:4.1.1');
      expect(s.volumes, name).toContain(
        './deploy/kafka/cluster.properties:/mnt/shared/config/server.properties:ro',
      );
      const env = envOf(s);
      expect(env.KAFKA_NODE_ID, name).toBe(String(i + 1));
      expect(env.KAFKA_CONTROLLER_QUORUM_VOTERS, name).toBe(
        '1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093',
      );
      ids.add(env.CLUSTER_ID ?? '');
      // Nothing of the replication settings comes from the environment.
      for (const key of Object.keys(env).filter((k) => k.startsWith('KAFKA_')))
        expect(sharedKafkaProps.get(kafkaPropertyOf(key)) ?? env[key], key).toBe(env[key]);
    }
    expect(ids.size).toBe(1);
    expect(sharedKafkaProps.get('default.replication.factor')).toBe('3');
    expect(sharedKafkaProps.get('min.insync.replicas')).toBe('2');
    expect(kafkaNodeKeys.sort()).toEqual([
      'advertised.listeners',
      'controller.quorum.voters',
      'listener.security.protocol.map',
      'listeners',
      'log.dirs',
      'node.id',
    ]);
    expect(svc.get('kafka-1')?.ports).toEqual(['9092:9094']);
  });

  it('runs the API with keys from a secret, which its own start-up check accepts', () => {
    for (const name of ['api-1', 'api-2']) {
      const api = new Map(services(compose)).get(name) ?? {};
      const env = envOf(api);
      // The secret is mounted where API_KEYS_FILE points, from a file of the project.
      expect(api.secrets, name).toEqual(['api_keys']);
      expect(env.API_KEYS_FILE, name).toBe('/run/secrets/api_keys');
      expect(env.API_ALLOW_ANONYMOUS, name).toBeUndefined();
      expect(env.NODE_ENV, name).toBe('production');
      expect(env.API_METRICS_PORT, name).toBe('9464');
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
    }
    expect(compose.secrets).toEqual({ api_keys: { file: './secrets/api-keys' } });
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

/** Sets (or, with undefined, removes) variables of a service's environment, on a copy (anchors share it). */
function setEnv(svc: Doc, patch: Record<string, string | undefined>): void {
  const env: Record<string, string> = { ...envOf(svc) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  svc.environment = env;
}

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
      ['unknown key', broken((_, s) => (s('api-1').restart_policy = 'always'))],
      [
        'bad condition',
        broken((_, s) => (s('api-1').depends_on = { migrate: { condition: 'service_ready' } })),
      ],
      ['replicas type', broken((_, s) => (s('worker-orders').deploy = { replicas: [2] }))],
      ['command type', broken((_, s) => (s('api-1').command = { run: 'node' }))],
      ['top-level key', broken((doc) => (doc.service = {}))],
      ['service name', broken((doc) => ((doc.services as Doc)['bad name!'] = { image: 'x:1' }))],
    ];
    for (const [label, doc] of cases) expect(schemaErrors(doc), label).not.toEqual([]);
  });

  it('YAML: ambiguous scalars and duplicate keys are refused', () => {
    const sexagesimal = composeText.replace("- '8233:8080'", '- 22:22');
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
        broken((_, s) => (s('api-1').command = ['node', '--import', 'tsx', 'src/api/server.ts'])),
        /api-1: runs tsx/,
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
      ['latest', broken((_, s) => (s('kafka-1').image = 'apache/kafka:latest')), /kafka-1: image/],
      ['untagged', broken((_, s) => (s('postgres').image = 'postgres')), /postgres: image/],
      [
        'unknown dependency',
        broken((_, s) => (s('api-1').depends_on = { database: { condition: 'service_started' } })),
        /api-1: depends_on unknown service "database"/,
      ],
      [
        'healthy without healthcheck',
        broken((_, s) => delete s('kafka-1').healthcheck),
        /waits for kafka-1 to be healthy, but kafka-1 has no healthcheck/,
      ],
      [
        'completion of a restarting service',
        broken((_, s) => (s('migrate').restart = 'unless-stopped')),
        /waits for migrate to complete, but migrate restarts/,
      ],
      [
        'cycle',
        broken((_, s) => (s('postgres').depends_on = ['api-1'])),
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
      // The cluster topology, from the shared files.
      [
        'temporal service without the shared config',
        broken((_, s) => (s('temporal-matching').volumes = [])),
        /temporal-matching: does not mount deploy\/temporal\/config\.yaml read-only/,
      ],
      [
        'temporal config mounted writable',
        broken(
          (_, s) =>
            (s('temporal-history').volumes = [
              './deploy/temporal/config.yaml:/etc/temporal/orderflow/config.yaml',
              './deploy/temporal/dynamicconfig.yaml:/etc/temporal/orderflow/dynamicconfig.yaml:ro',
            ]),
        ),
        /temporal-history: does not mount deploy\/temporal\/config\.yaml read-only/,
      ],
      [
        'temporal service running another service',
        broken(
          (_, s) =>
            (s('temporal-worker').command = temporalServiceArgs(
              'frontend',
              '/etc/temporal/orderflow/config.yaml',
            )),
        ),
        /temporal-worker: command is not `.*start --service worker`/,
      ],
      [
        'temporal service with its own config',
        broken((_, s) => (s('temporal-frontend').command = ['--env', 'docker', 'start'])),
        /temporal-frontend: command is not/,
      ],
      [
        'temporal variable the template does not read',
        broken((_, s) => setEnv(s('temporal-history'), { PROMETHEUS_ENDPOINT: '0.0.0.0:8000' })),
        /temporal-history: sets PROMETHEUS_ENDPOINT, which deploy\/temporal\/config\.yaml does not read/,
      ],
      [
        'temporal broadcast address as a name',
        broken((_, s) =>
          setEnv(s('temporal-matching'), { TEMPORAL_BROADCAST_ADDRESS: 'temporal-matching' }),
        ),
        /temporal-matching: TEMPORAL_BROADCAST_ADDRESS must be an IP/,
      ],
      [
        'temporal service before history',
        broken(
          (_, s) =>
            (s('temporal-frontend').depends_on = {
              'temporal-schema': { condition: 'service_completed_successfully' },
            }),
        ),
        /temporal-frontend: must wait for temporal-history to be healthy/,
      ],
      [
        'temporal service before the schema',
        broken(
          (_, s) =>
            (s('temporal-history').depends_on = { postgres: { condition: 'service_healthy' } }),
        ),
        /temporal-history: does not wait for the schema job to complete/,
      ],
      [
        'temporal service missing',
        broken((doc) => delete (doc.services as Doc)['temporal-worker']),
        /no service temporal-worker/,
      ],
      [
        'kafka node without the shared file',
        broken((_, s) => (s('kafka-2').volumes = ['kafka2data:/var/lib/kafka/data'])),
        /kafka-2: does not mount deploy\/kafka\/cluster\.properties at \/mnt\/shared\/config\/server\.properties/,
      ],
      [
        'kafka node id',
        broken((_, s) => setEnv(s('kafka-3'), { KAFKA_NODE_ID: '1' })),
        /kafka-3: KAFKA_NODE_ID is not 3/,
      ],
      [
        'kafka voters missing a node',
        broken((_, s) =>
          setEnv(s('kafka-1'), { KAFKA_CONTROLLER_QUORUM_VOTERS: '1@kafka-1:9093,2@kafka-2:9093' }),
        ),
        /kafka-1: controller\.quorum\.voters is not 1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093/,
      ],
      [
        'kafka environment overriding a shared setting',
        broken((_, s) => setEnv(s('kafka-2'), { KAFKA_MIN_INSYNC_REPLICAS: '1' })),
        /kafka-2: min\.insync\.replicas=1 overrides min\.insync\.replicas=2 of deploy\/kafka\/cluster\.properties/,
      ],
      [
        'kafka node-specific setting missing',
        broken((_, s) => setEnv(s('kafka-1'), { KAFKA_LOG_DIRS: undefined })),
        /kafka-1: node-specific log\.dirs is not set/,
      ],
      [
        'kafka nodes of different clusters',
        broken((_, s) => setEnv(s('kafka-3'), { CLUSTER_ID: 'MkU3OEVBNTcwNTJENDM2Qk' })),
        /the nodes have different CLUSTER_IDs/,
      ],
      [
        'one relay',
        broken((_, s) => (s('relay').deploy = { replicas: 1 })),
        /2 processes of "node dist\/src\/api\/relay\.js" expected, 1 found/,
      ],
      [
        'one API',
        broken((doc) => delete (doc.services as Doc)['api-2']),
        /2 processes of "node dist\/src\/api\/server\.js" expected, 1 found/,
      ],
      [
        'three consumers',
        broken((_, s) => (s('consumer-analytics').deploy = { replicas: 3 })),
        /2 processes of "node dist\/src\/consumers\/analytics\.js" expected, 3 found/,
      ],
      [
        'one broker listed',
        broken((_, s) => setEnv(s('worker-events'), { KAFKA_BROKERS: 'kafka-1:9092' })),
        /worker-events: KAFKA_BROKERS is not every broker \(kafka-1:9092,kafka-2:9092,kafka-3:9092\)/,
      ],
      [
        'second API port',
        broken((_, s) => (s('api-2').ports = ['3002:3000'])),
        /host port 3001 is not published by an API service/,
      ],
      [
        'API port to the wrong container port',
        broken((_, s) => (s('api-1').ports = ['3000:3001'])),
        /host port 3000 is not published by an API service/,
      ],
      [
        'UI port',
        broken((_, s) => (s('temporal-ui').ports = ['8080:8080'])),
        /host port 8233 is not published by temporal-ui/,
      ],
      [
        'frontend port',
        broken((_, s) => delete s('temporal-frontend').ports),
        /host port 7233 is not published by temporal-frontend/,
      ],
      [
        'Kafka bootstrap port',
        broken((_, s) => (s('kafka-1').ports = ['9094:9094'])),
        /host port 9092 is not kafka-1/,
      ],
      [
        'Kafka bootstrap advertised elsewhere',
        broken((_, s) =>
          setEnv(s('kafka-1'), {
            KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://kafka-1:9092,HOST://localhost:9094',
          }),
        ),
        /host port 9092 is not kafka-1 advertising localhost:9092/,
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
