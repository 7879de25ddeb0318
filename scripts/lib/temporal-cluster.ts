/**
 * Temporal as separate services on PostgreSQL (the cluster topology):
 * frontend, history, matching and worker from one config file
 * (deploy/temporal/config.yaml, shared with docker-compose.yml), the
 * `temporal` and `temporal_visibility` databases set up with the schema tool,
 * the `default` namespace and the OrderStatus search attribute, and the Web UI
 * server in front of the frontend.
 */
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { ORDER_STATUS_SEARCH_ATTRIBUTE } from '../../src/shared/task-queues.ts';
import { ComponentError, isListening, type ManagedProcess } from './process.ts';
import { temporalReady, type Stack } from './stack.ts';

const execFileAsync = promisify(execFile);
const projectRoot = path.resolve(import.meta.dirname, '..', '..');

/** The server config shared by the four services (and docker-compose.yml). */
export const TEMPORAL_CONFIG_FILE = path.join(projectRoot, 'deploy/temporal/config.yaml');
export const TEMPORAL_DYNAMIC_CONFIG_FILE = path.join(
  projectRoot,
  'deploy/temporal/dynamicconfig.yaml',
);

export interface TemporalClusterPorts {
  /** gRPC of the frontend: the address clients use. */
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
  /** Prometheus /metrics of each service. */
  metrics: { frontend: number; history: number; matching: number; worker: number };
  /** The Web UI server. */
  ui: number;
}

/** Temporal's own default ports for each service; metrics on 8000-8003; the UI on 8233 as under npm start. */
export const TEMPORAL_CLUSTER_PORT_DEFAULTS: TemporalClusterPorts = {
  frontend: 7233,
  frontendHttp: 7243,
  frontendMembership: 6933,
  history: 7234,
  historyMembership: 6934,
  matching: 7235,
  matchingMembership: 6935,
  worker: 7239,
  workerMembership: 6939,
  metrics: { frontend: 8000, history: 8001, matching: 8002, worker: 8003 },
  ui: 8233,
};

/**
 * The highest membership port Temporal can use on PostgreSQL: the services
 * find each other through the cluster_membership table, whose rpc_port is a
 * SMALLINT, so a membership port above 32767 makes the service die at start
 * ("value ... is out of range for type smallint"). Linux hands out ephemeral
 * ports from 32768 up, so a test stack cannot take its membership ports from
 * freePorts(): see ephemeralTemporalClusterPorts.
 */
export const MAX_MEMBERSHIP_PORT = 32767;

/** Membership ports are searched for from here (below Linux's ephemeral range, above the well-known ports). */
const LOW_PORT_FLOOR = 20000;

/**
 * Ports for a test cluster: gRPC, HTTP, metrics and UI from `freePorts`
 * (ephemeral), the four membership ports free ones at or below
 * MAX_MEMBERSHIP_PORT, all distinct.
 */
export async function ephemeralTemporalClusterPorts(
  freePorts: (n: number) => Promise<number[]>,
): Promise<TemporalClusterPorts> {
  const p = await freePorts(10);
  const low = await freeLowPorts(4);
  const at = (list: number[], i: number): number => list[i]!;
  return {
    frontend: at(p, 0),
    frontendHttp: at(p, 1),
    frontendMembership: at(low, 0),
    history: at(p, 2),
    historyMembership: at(low, 1),
    matching: at(p, 3),
    matchingMembership: at(low, 2),
    worker: at(p, 4),
    workerMembership: at(low, 3),
    metrics: { frontend: at(p, 5), history: at(p, 6), matching: at(p, 7), worker: at(p, 8) },
    ui: at(p, 9),
  };
}

/** n distinct free ports in [LOW_PORT_FLOOR, MAX_MEMBERSHIP_PORT], each held bound until all are found. */
async function freeLowPorts(n: number): Promise<number[]> {
  const held: net.Server[] = [];
  const tried = new Set<number>();
  const span = MAX_MEMBERSHIP_PORT - LOW_PORT_FLOOR + 1;
  try {
    while (held.length < n && tried.size < span) {
      const port = LOW_PORT_FLOOR + Math.floor(Math.random() * span);
      if (tried.has(port)) continue;
      tried.add(port);
      const server = await new Promise<net.Server | undefined>((resolve) => {
        const s = net.createServer();
        s.once('error', () => resolve(undefined));
        s.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(s));
      });
      if (server) held.push(server);
    }
    if (held.length < n)
      throw new ComponentError('temporal', `no ${n} free ports at or below ${MAX_MEMBERSHIP_PORT}`);
    return held.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  }
}

/** The pinned server binaries (scripts/lib/tools.ts provisionTemporalServer). */
export interface TemporalServerTools {
  /** go.temporal.io/server/cmd/server */
  server: string;
  /** go.temporal.io/server/cmd/tools/sql */
  sqlTool: string;
  /** github.com/temporalio/ui-server/v2/cmd/server */
  uiServer: string;
  /** schema/postgresql/v12 of the server module (temporal/ and visibility/ inside). */
  schemaDir: string;
}

/** The four services of the server, in start order; each runs as its own process `temporal-<name>`. */
export const TEMPORAL_SERVICES = ['history', 'matching', 'frontend', 'worker'] as const;
export type TemporalService = (typeof TEMPORAL_SERVICES)[number];

/** The namespace the application uses, and how long closed workflows are kept in it. */
export const TEMPORAL_NAMESPACE = 'default';
export const NAMESPACE_RETENTION_SECONDS = 3 * 24 * 3600;

/** Start-up budgets: generous for four Go services and a schema set-up on two busy cores. */
const TIMEOUT = { schema: 120_000, service: 120_000, frontend: 120_000, ui: 60_000 };

/** The PostgreSQL server Temporal keeps its databases in, from a DATABASE_URL. */
export interface TemporalDatabase {
  host: string;
  port: number;
  user: string;
  password: string;
}

export function temporalDatabaseOf(databaseUrl: string): TemporalDatabase {
  const u = new URL(databaseUrl);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || 'postgres',
    password: decodeURIComponent(u.password),
  };
}

/**
 * Variables a shell or a container may carry that change how temporal-server
 * finds its config (another file, or a config folder that clashes with
 * --config-file): never passed on.
 */
const CONFLICTING_SERVER_ENV = [
  'TEMPORAL_ROOT',
  'TEMPORAL_CONFIG_DIR',
  'TEMPORAL_ENVIRONMENT',
  'TEMPORAL_AVAILABILITY_ZONE',
  'TEMPORAL_AVAILABILTY_ZONE',
  'TEMPORAL_SERVER_CONFIG_FILE_PATH',
];

/**
 * The environment deploy/temporal/config.yaml is rendered with for one
 * service: every variable it reads is set, so nothing of the caller's shell
 * (a LOG_LEVEL, a DB_PORT) leaks into the server's configuration.
 */
export function temporalServiceEnv(
  service: TemporalService,
  ports: TemporalClusterPorts,
  db: TemporalDatabase,
  opts: { logLevel?: string; bindOnIp?: string; dynamicConfigFile?: string } = {},
): Record<string, string> {
  const bind = opts.bindOnIp ?? '127.0.0.1';
  return {
    TEMPORAL_SERVICES: service,
    BIND_ON_IP: bind,
    TEMPORAL_BROADCAST_ADDRESS: bind,
    FRONTEND_GRPC_PORT: String(ports.frontend),
    FRONTEND_HTTP_PORT: String(ports.frontendHttp),
    FRONTEND_MEMBERSHIP_PORT: String(ports.frontendMembership),
    HISTORY_GRPC_PORT: String(ports.history),
    HISTORY_MEMBERSHIP_PORT: String(ports.historyMembership),
    MATCHING_GRPC_PORT: String(ports.matching),
    MATCHING_MEMBERSHIP_PORT: String(ports.matchingMembership),
    WORKER_GRPC_PORT: String(ports.worker),
    WORKER_MEMBERSHIP_PORT: String(ports.workerMembership),
    FRONTEND_ADDRESS: `${bind}:${ports.frontend}`,
    FRONTEND_HTTP_ADDRESS: `${bind}:${ports.frontendHttp}`,
    METRICS_PORT: String(ports.metrics[service]),
    METRICS_BIND_ON_IP: bind,
    POSTGRES_SEEDS: db.host,
    DB_PORT: String(db.port),
    POSTGRES_USER: db.user,
    POSTGRES_PWD: db.password,
    DBNAME: 'temporal',
    VISIBILITY_DBNAME: 'temporal_visibility',
    SQL_MAX_CONNS: '20',
    VISIBILITY_SQL_MAX_CONNS: '10',
    LOG_LEVEL: opts.logLevel ?? 'warn',
    DYNAMIC_CONFIG_FILE_PATH: opts.dynamicConfigFile ?? TEMPORAL_DYNAMIC_CONFIG_FILE,
  };
}

/** `temporal-server` arguments that start one service from `configFile`. */
export function temporalServiceArgs(
  service: TemporalService,
  configFile = TEMPORAL_CONFIG_FILE,
): string[] {
  return ['--config-file', configFile, '--allow-no-auth', 'start', '--service', service];
}

/** The gRPC and membership ports of a service. */
export function servicePorts(
  service: TemporalService,
  ports: TemporalClusterPorts,
): [number, number] {
  switch (service) {
    case 'frontend':
      return [ports.frontend, ports.frontendMembership];
    case 'history':
      return [ports.history, ports.historyMembership];
    case 'matching':
      return [ports.matching, ports.matchingMembership];
    case 'worker':
      return [ports.worker, ports.workerMembership];
  }
}

/** The Web UI server's config (ui-server's config/<env>.yaml): the frontend it talks to, its own port. */
export function temporalUiConfig(frontend: string, port: number): string {
  return [
    '# Written by the stack runner on every start (scripts/lib/temporal-cluster.ts).',
    `temporalGrpcAddress: ${frontend}`,
    'host: 127.0.0.1',
    `port: ${port}`,
    'enableUi: true',
    `defaultNamespace: ${TEMPORAL_NAMESPACE}`,
    'hideLogs: true',
    'disableNewsFetch: true',
    'cors:',
    '  cookieInsecure: true',
    '',
  ].join('\n');
}

/**
 * Sets up the databases and starts the four services and the UI server as
 * processes of `host`; resolves with the frontend's address once a client can
 * use the `default` namespace and its search attributes.
 */
export async function startTemporalCluster(
  host: Stack,
  opts: {
    ports: TemporalClusterPorts;
    tools: TemporalServerTools;
    dataDir: string;
    /** The stack's PostgreSQL (resolves with orderflow's DATABASE_URL once it is up). */
    database: Promise<string>;
  },
): Promise<string> {
  const { ports, tools } = opts;
  for (const service of TEMPORAL_SERVICES) {
    const membership = servicePorts(service, ports)[1];
    if (membership > MAX_MEMBERSHIP_PORT)
      throw new ComponentError(
        `temporal-${service}`,
        `membership port ${membership} is above ${MAX_MEMBERSHIP_PORT}: Temporal keeps it in a SMALLINT column of PostgreSQL (cluster_membership.rpc_port). Choose one at or below ${MAX_MEMBERSHIP_PORT}.`,
      );
  }
  const dir = path.join(opts.dataDir, 'temporal-cluster');
  fs.mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  const db = temporalDatabaseOf(await opts.database);
  const applied = await setUpTemporalDatabases(tools, db);
  host.log(
    `temporal databases ready on ${db.host}:${db.port}${applied.length ? ` (${applied.join(', ')})` : ''}`,
  );

  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !CONFLICTING_SERVER_ENV.includes(k)),
  );
  const address = `127.0.0.1:${ports.frontend}`;
  const startService = async (service: TemporalService): Promise<ManagedProcess> => {
    const proc = host.spawn(`temporal-${service}`, tools.server, temporalServiceArgs(service), {
      cwd: projectRoot,
      env: { ...env, ...temporalServiceEnv(service, ports, db) },
    });
    const [grpc, membership] = servicePorts(service, ports);
    if (service === 'frontend') {
      // For now: it answers at all (the namespace may not exist yet).
      await host.awaitReady(proc, () => frontendAnswers(address), TIMEOUT.frontend);
    } else {
      // Its ports open once it has joined the membership ring.
      await host.awaitReady(
        proc,
        async () => (await isListening(grpc)) && (await isListening(membership)),
        TIMEOUT.service,
      );
    }
    host.log(
      `temporal-${service} ready: gRPC ${grpc}, membership ${membership}, metrics ${ports.metrics[service]}${proc.priorityNote}`,
    );
    return proc;
  };
  // One service first: on a new database every service writes the cluster metadata at
  // start, and those that lose the race exit ("SaveClusterMetadata encountered version
  // mismatch"); once one is up, the others find it written.
  const [first, ...rest] = TEMPORAL_SERVICES;
  await startService(first);
  const started = await Promise.all(rest.map(startService));
  const frontend = started[rest.indexOf('frontend')]!;

  const created = await ensureNamespace(address);
  if (created.length) host.log(`temporal: created ${created.join(', ')}`);
  // From now on (and after a restart) the frontend is ready when the application can use it.
  await host.awaitReady(frontend, () => temporalReady(address), TIMEOUT.frontend);

  const ui = startUi(host, tools, dir, address, ports.ui);
  await host.awaitReady(
    ui,
    async () => (await fetch(`http://127.0.0.1:${ports.ui}/`)).ok,
    TIMEOUT.ui,
  );
  host.log(`temporal-ui ready on ${ports.ui}${ui.priorityNote}`);
  host.log(`temporal cluster ready on ${address} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return address;
}

function startUi(
  host: Stack,
  tools: TemporalServerTools,
  dir: string,
  frontend: string,
  port: number,
): ManagedProcess {
  const root = path.join(dir, 'ui');
  fs.mkdirSync(path.join(root, 'config'), { recursive: true });
  fs.writeFileSync(path.join(root, 'config', 'production.yaml'), temporalUiConfig(frontend, port));
  return host.spawn(
    'temporal-ui',
    tools.uiServer,
    ['--root', root, '--config', 'config', '--env', 'production', 'start'],
    { cwd: root },
  );
}

/**
 * Creates the `temporal` and `temporal_visibility` databases and their schemas
 * with temporal-sql-tool when missing, and brings existing ones up to the
 * schema version of the pinned server (update-schema applies only what is
 * newer, so a second start changes nothing). Returns what it did.
 */
export async function setUpTemporalDatabases(
  tools: TemporalServerTools,
  db: TemporalDatabase,
): Promise<string[]> {
  const env = {
    ...process.env,
    SQL_PLUGIN: 'postgres12',
    SQL_HOST: db.host,
    SQL_PORT: String(db.port),
    SQL_USER: db.user,
    SQL_PASSWORD: db.password,
  };
  const tool = async (database: string, args: string[]): Promise<void> => {
    try {
      await execFileAsync(tools.sqlTool, ['--db', database, ...args], {
        env,
        timeout: TIMEOUT.schema,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (e) {
      const err = e as Error & { stdout?: string; stderr?: string };
      throw new ComponentError(
        'temporal-schema',
        `temporal-sql-tool --db ${database} ${args.join(' ')} failed: ${err.message}\n${(err.stderr ?? '').slice(-1500)}`,
      );
    }
  };
  const done: string[] = [];
  for (const [database, schema] of [
    ['temporal', 'temporal'],
    ['temporal_visibility', 'visibility'],
  ] as const) {
    const state = await schemaState(db, database);
    if (state === 'no-database') {
      await tool(database, ['create-database']);
      done.push(`created ${database}`);
    }
    if (state !== 'schema') {
      await tool(database, ['setup-schema', '-v', '0.0']);
    }
    const before = await schemaVersion(db, database);
    await tool(database, ['update-schema', '-d', path.join(tools.schemaDir, schema, 'versioned')]);
    const after = await schemaVersion(db, database);
    if (before !== after) done.push(`${database} schema ${before ?? 'none'} -> ${after}`);
  }
  return done;
}

function pgClient(db: TemporalDatabase, database: string): pg.Client {
  return new pg.Client({
    host: db.host,
    port: db.port,
    user: db.user,
    password: db.password,
    database,
    connectionTimeoutMillis: 5000,
  });
}

async function withClient<T>(
  db: TemporalDatabase,
  database: string,
  f: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = pgClient(db, database);
  await client.connect();
  try {
    return await f(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Whether `database` exists, and whether the schema tool has set it up (its schema_version table). */
async function schemaState(
  db: TemporalDatabase,
  database: string,
): Promise<'no-database' | 'empty' | 'schema'> {
  const exists = await withClient(db, 'postgres', async (c) => {
    const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    return r.rowCount === 1;
  });
  if (!exists) return 'no-database';
  return withClient(db, database, async (c) => {
    const r = await c.query<{ t: string | null }>(`SELECT to_regclass('schema_version') AS t`);
    return r.rows[0]?.t ? 'schema' : 'empty';
  });
}

async function schemaVersion(db: TemporalDatabase, database: string): Promise<string | undefined> {
  return withClient(db, database, async (c) => {
    const r = await c.query<{ v: string }>(
      `SELECT curr_version AS v FROM schema_version WHERE version_partition = 0 AND db_name = $1`,
      [database],
    );
    return r.rows[0]?.v;
  });
}

async function withConnection<T>(address: string, f: (c: Connection) => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    return await f(connection);
  } finally {
    await connection.close();
  }
}

/** The frontend answers (before any namespace of ours exists). */
async function frontendAnswers(address: string): Promise<boolean> {
  return withConnection(address, async (c) => {
    await c.workflowService.getSystemInfo({});
    return true;
  });
}

/** gRPC status codes the checks below meet. */
const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;

/** Registers the `default` namespace and adds the OrderStatus search attribute, each when missing. */
async function ensureNamespace(address: string): Promise<string[]> {
  return withConnection(address, async (c) => {
    const created: string[] = [];
    let exists = true;
    try {
      await c.workflowService.describeNamespace({ namespace: TEMPORAL_NAMESPACE });
    } catch (e) {
      if ((e as { code?: number }).code !== NOT_FOUND) throw e;
      exists = false;
    }
    if (!exists) {
      try {
        await c.workflowService.registerNamespace({
          namespace: TEMPORAL_NAMESPACE,
          description: 'orderflow',
          workflowExecutionRetentionPeriod: proto.google.protobuf.Duration.fromObject({
            seconds: NAMESPACE_RETENTION_SECONDS,
          }),
        });
        created.push(
          `namespace ${TEMPORAL_NAMESPACE} (retention ${NAMESPACE_RETENTION_SECONDS / 86400} days)`,
        );
      } catch (e) {
        if ((e as { code?: number }).code !== ALREADY_EXISTS) throw e;
      }
    }
    // A new namespace reaches the frontend's namespace cache within its refresh interval (2 s).
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const attrs = await c.operatorService.listSearchAttributes({
          namespace: TEMPORAL_NAMESPACE,
        });
        if (ORDER_STATUS_SEARCH_ATTRIBUTE in (attrs.customAttributes ?? {})) break;
        await c.operatorService.addSearchAttributes({
          namespace: TEMPORAL_NAMESPACE,
          searchAttributes: { [ORDER_STATUS_SEARCH_ATTRIBUTE]: KEYWORD },
        });
        created.push(`search attribute ${ORDER_STATUS_SEARCH_ATTRIBUTE} (Keyword)`);
        break;
      } catch (e) {
        const code = (e as { code?: number }).code;
        if (code === ALREADY_EXISTS) break;
        if (code !== NOT_FOUND || Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    return created;
  });
}

const KEYWORD = proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
