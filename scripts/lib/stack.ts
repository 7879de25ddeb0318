/**
 * The local stack: PostgreSQL, the Temporal dev server (with its Web UI),
 * a single-node KRaft Kafka broker, maildev, and the application processes.
 * `npm start` runs it on the default ports with data under .data/; the test
 * suite runs another instance on ephemeral ports in a temporary folder, so the
 * two never collide.
 */
import { Connection } from '@temporalio/client';
import { Kafka, logLevel } from 'kafkajs';
import { fixRequestQueueIdleLoop } from '../../src/events/kafkajs-request-queue.ts';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { ensureDatabase, migrate } from '../../src/db/migrate.ts';
import { ORDER_STATUS_SEARCH_ATTRIBUTE } from '../../src/shared/task-queues.ts';
import { PriorityGovernor } from './priority-governor.ts';
import {
  ComponentError,
  IDLE_BUSY_NICENESS,
  IDLE_NICENESS,
  ManagedProcess,
  assertPortFree,
  delay,
  isListening,
  nicenessOf,
  waitUntilReady,
  type CpuPriority,
} from './process.ts';
import { projectRoot, type Tools } from './tools.ts';

// kafkajs' idle loop, fixed as in every orderflow process (src/events/kafkajs-request-queue.ts).
fixRequestQueueIdleLoop();

const execFileAsync = promisify(execFile);

export interface StackPorts {
  postgres: number;
  temporal: number;
  temporalUi: number;
  temporalHttp: number;
  temporalMetrics: number;
  kafka: number;
  kafkaController: number;
  /** The SASL_PLAINTEXT and SASL_SSL listeners, when the stack opens them (StackOptions.kafkaSasl). */
  kafkaSasl: number;
  kafkaSaslSsl: number;
  smtp: number;
  mailUi: number;
  api: number;
}

/** The one-machine defaults of DESIGN.md, each overridable by the named variable. */
export const defaultPorts: Record<keyof StackPorts, [number, string]> = {
  postgres: [5432, 'POSTGRES_PORT'],
  temporal: [7233, 'TEMPORAL_PORT'],
  temporalUi: [8233, 'TEMPORAL_UI_PORT'],
  temporalHttp: [7243, 'TEMPORAL_HTTP_PORT'],
  temporalMetrics: [7239, 'TEMPORAL_METRICS_PORT'],
  kafka: [9092, 'KAFKA_PORT'],
  kafkaController: [9093, 'KAFKA_CONTROLLER_PORT'],
  kafkaSasl: [9094, 'KAFKA_SASL_PORT'],
  kafkaSaslSsl: [9095, 'KAFKA_SASL_SSL_PORT'],
  smtp: [1025, 'SMTP_PORT'],
  mailUi: [1080, 'MAIL_UI_PORT'],
  api: [3000, 'PORT'],
};

/** The application processes of the stack, in start order (`npm start`, the e2e and chaos stacks). */
export const APP_PROCESSES = [
  { name: 'api', entry: 'src/api/server.ts' },
  { name: 'relay', entry: 'src/api/relay.ts' },
  { name: 'worker-orders', entry: 'src/workers/orders.ts' },
  { name: 'worker-email', entry: 'src/workers/email.ts' },
  { name: 'worker-webhooks', entry: 'src/workers/webhooks.ts' },
  { name: 'worker-events', entry: 'src/workers/events.ts' },
  { name: 'consumer-analytics', entry: 'src/consumers/analytics.ts' },
  { name: 'consumer-inventory', entry: 'src/consumers/inventory.ts' },
] as const;

/** What stays at normal CPU priority: the request path (the API and its database). */
export const FOREGROUND_PROCESSES: ReadonlySet<string> = new Set([
  'api',
  'postgresql',
  'postgres-initdb',
]);

/**
 * Stack's `priorityOf` as `npm start` sets it: the foreground at normal
 * priority, everything else (Temporal, Kafka, maildev, the relay, workers,
 * consumers) at `background` once ready, so a spike queues up as backlog
 * instead of slowing `POST /orders`.
 */
export function backgroundPriorityOf(
  background: CpuPriority,
  foreground: ReadonlySet<string> = FOREGROUND_PROCESSES,
): (name: string) => CpuPriority {
  return (name) => (foreground.has(name) ? 'normal' : background);
}

/** The log line (JSON) with which a relay, worker or consumer says it runs. */
export const RUNNING_LOG_LINE = /"msg":"(worker|consumer|relay) running"/;

export interface StackOptions {
  dataDir: string;
  ports: StackPorts;
  tools: Tools;
  /** Test stacks trade durability for speed (no fsync). */
  ephemeral?: boolean;
  /**
   * CPU priority per component name, taken once the component is ready
   * (absent: normal). `npm start` runs everything off the request path
   * (Temporal, Kafka, maildev, workers, relay, consumers) below the API and
   * PostgreSQL, so a spike becomes backlog instead of request latency.
   */
  priorityOf?: (name: string) => CpuPriority;
  /**
   * When a process takes its priority: `ready` (the default), as soon as it
   * is ready; `settled`, when `settle()` says the whole stack is up (`npm
   * start`), so that start-up work that needs another component (a consumer
   * group's first join, a topic's creation) never waits for one already lowered.
   * A process started after settle() takes it when ready.
   */
  lowerPriority?: 'ready' | 'settled';
  /**
   * Kafka also listens on `ports.kafkaSasl` with SASL_PLAINTEXT and on
   * `ports.kafkaSaslSsl` with SASL_SSL (a self-signed certificate for
   * 127.0.0.1 made with the JDK's keytool), for the users of KAFKA_SASL_USERS
   * (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); the plaintext listener stays as it
   * is. SCRAM users are written when the storage is formatted, so a data
   * folder formatted without them has none (test stacks always start from an
   * empty folder). Addresses and the certificate: Stack.kafkaSecure.
   */
  kafkaSasl?: boolean;
  /** Peers given from outside (DATABASE_URL, KAFKA_BROKERS, TEMPORAL_ADDRESS) are used, not started. */
  external?: { databaseUrl?: string; kafkaBrokers?: string; temporalAddress?: string };
  log?: (msg: string) => void;
}

/** Addresses of a running stack, as the application's environment variables. */
export interface StackEnv {
  DATABASE_URL: string;
  TEMPORAL_ADDRESS: string;
  TEMPORAL_NAMESPACE: string;
  KAFKA_BROKERS: string;
  SMTP_URL: string;
  MAIL_API_URL: string;
  TEMPORAL_UI_URL: string;
}

/** The users of the broker's SASL listener (StackOptions.kafkaSasl), one per mechanism. */
export const KAFKA_SASL_USERS = {
  plain: { username: 'orderflow_plain', password: 'plain-secret' },
  'scram-sha-256': { username: 'orderflow_scram256', password: 'scram256-secret' },
  'scram-sha-512': { username: 'orderflow_scram512', password: 'scram512-secret' },
} as const;

/** Start-up budgets: generous for a cold JVM on two busy cores. */
const TIMEOUT = {
  postgres: 60_000,
  temporal: 90_000,
  kafka: 120_000,
  maildev: 30_000,
  app: 90_000,
};

/** How a process is judged ready: kept so a process found dead can be started again the same way. */
interface Readiness {
  check: (proc: ManagedProcess) => Promise<boolean>;
  timeoutMs: number;
}

/** The broker's SASL listeners (StackOptions.kafkaSasl), once Kafka runs. */
export interface KafkaSecureListeners {
  /** SASL_PLAINTEXT. */
  saslBrokers: string;
  /** SASL_SSL: TLS with the certificate in `caFile` (PEM, self-signed, for 127.0.0.1). */
  saslSslBrokers: string;
  caFile: string;
}

export class Stack {
  readonly procs: ManagedProcess[] = [];
  env!: StackEnv;
  kafkaSecure?: KafkaSecureListeners;
  readonly log: (msg: string) => void;
  private readonly readiness = new Map<string, Readiness>();
  private stopped = false;
  private settled = false;
  /** Keeps an `idle` background below the request path while it works (no-op without one). */
  private readonly governor = new PriorityGovernor({
    watched: () => this.running((p) => p.spec.requestPath === true),
    background: () => this.running((p) => p.spec.priority === 'idle' && !!p.priorityChange),
    quiet: IDLE_NICENESS,
    busy: IDLE_BUSY_NICENESS,
  });

  constructor(readonly opts: StackOptions) {
    this.log = opts.log ?? (() => {});
    if (opts.priorityOf) this.governor.start();
  }

  /** Pids (process group leaders) of the stack's running processes that match. */
  private running(match: (p: ManagedProcess) => boolean): number[] {
    return this.procs
      .filter((p) => p.running && p.pid !== undefined && match(p))
      .map((p) => p.pid!);
  }

  logFile(name: string): string {
    return path.join(this.opts.dataDir, 'logs', `${name}.log`);
  }

  /** Starts the infrastructure (not the application processes) and waits until each is ready. */
  async startInfrastructure(): Promise<StackEnv> {
    fs.mkdirSync(this.opts.dataDir, { recursive: true });
    const ext = this.opts.external ?? {};
    const { ports } = this.opts;
    // Check every port first, so a clash is reported before anything starts.
    if (!ext.databaseUrl) await assertPortFree('postgresql', ports.postgres, 'POSTGRES_PORT');
    if (!ext.temporalAddress) {
      await assertPortFree('temporal', ports.temporal, 'TEMPORAL_PORT');
      await assertPortFree('temporal-ui', ports.temporalUi, 'TEMPORAL_UI_PORT');
      await assertPortFree('temporal', ports.temporalHttp, 'TEMPORAL_HTTP_PORT');
      await assertPortFree('temporal', ports.temporalMetrics, 'TEMPORAL_METRICS_PORT');
    }
    if (!ext.kafkaBrokers) {
      await assertPortFree('kafka', ports.kafka, 'KAFKA_PORT');
      await assertPortFree('kafka', ports.kafkaController, 'KAFKA_CONTROLLER_PORT');
      if (this.opts.kafkaSasl) {
        await assertPortFree('kafka', ports.kafkaSasl, 'KAFKA_SASL_PORT');
        await assertPortFree('kafka', ports.kafkaSaslSsl, 'KAFKA_SASL_SSL_PORT');
      }
    }
    await assertPortFree('maildev', ports.smtp, 'SMTP_PORT');
    await assertPortFree('maildev', ports.mailUi, 'MAIL_UI_PORT');

    // Independent components start in parallel; Kafka's JVM is the slowest.
    // Temporal may keep its own databases in the stack's PostgreSQL (the cluster topology).
    const database = ext.databaseUrl
      ? this.useExternalDatabase(ext.databaseUrl)
      : this.startPostgres();
    const [databaseUrl, temporalAddress, kafkaBrokers] = await Promise.all([
      database,
      ext.temporalAddress ?? this.startTemporal(database),
      ext.kafkaBrokers ?? this.startKafka(),
      this.startMaildev(),
    ]);
    this.env = {
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: 'default',
      KAFKA_BROKERS: kafkaBrokers,
      SMTP_URL: `smtp://127.0.0.1:${ports.smtp}`,
      MAIL_API_URL: `http://127.0.0.1:${ports.mailUi}`,
      TEMPORAL_UI_URL: `http://127.0.0.1:${ports.temporalUi}`,
    };
    return this.env;
  }

  /**
   * A process of the stack (kept for stop(), given its CPU priority); for
   * the components a subclass starts (ClusterStack).
   */
  spawn(
    name: string,
    command: string,
    args: string[],
    extra: Partial<ManagedProcess['spec']> = {},
  ) {
    // A component still starting when another failed must not outlive the stack's stop.
    if (this.stopped) throw new ComponentError(name, 'not started: the stack is stopping');
    const priority = this.opts.priorityOf?.(name);
    const proc = new ManagedProcess({
      name,
      command,
      args,
      logFile: this.logFile(name),
      ...(priority !== undefined ? { priority } : {}),
      ...extra,
    });
    proc.holdPriority = this.opts.lowerPriority === 'settled' && !this.settled;
    this.procs.push(proc);
    return proc;
  }

  /**
   * Waits until `proc` is ready (see waitUntilReady) and remembers how, so
   * `respawn` and `waitReady` can start it again after it died.
   */
  async awaitReady(
    proc: ManagedProcess,
    check: (proc: ManagedProcess) => Promise<boolean>,
    timeoutMs: number,
  ): Promise<void> {
    this.readiness.set(proc.name, { check, timeoutMs });
    await waitUntilReady(proc, proc.name, () => check(proc), timeoutMs);
  }

  /**
   * A new process in place of `dead` (same command, environment, log file and
   * priority; same place in the stop order). It starts at normal priority and
   * takes its own once ready (waitReady), also after settle().
   */
  respawn(dead: ManagedProcess): ManagedProcess {
    const { name, command, args, ...extra } = dead.spec;
    const proc = this.spawn(name, command, args, extra);
    this.procs.pop();
    const at = this.procs.indexOf(dead);
    if (at >= 0) this.procs[at] = proc;
    else this.procs.push(proc);
    return proc;
  }

  /** Waits until a respawned process is ready, as it was judged at its first start. */
  async waitReady(proc: ManagedProcess): Promise<void> {
    const readiness = this.readiness.get(proc.name);
    if (!readiness) throw new ComponentError(proc.name, 'no readiness check known for a restart');
    await waitUntilReady(proc, proc.name, () => readiness.check(proc), readiness.timeoutMs);
  }

  /**
   * The stack is up: every process held at normal priority (`lowerPriority:
   * 'settled'`) takes its own now. Returns one line per lowered process.
   */
  async settle(): Promise<string[]> {
    this.settled = true;
    const lines: string[] = [];
    for (const proc of this.procs) {
      if (!proc.holdPriority) continue;
      proc.holdPriority = false;
      await proc.enterRunPriority();
      if (proc.priorityNote) lines.push(`${proc.name}${proc.priorityNote}`);
    }
    return lines;
  }

  private async useExternalDatabase(url: string): Promise<string> {
    await waitUntilReady(undefined, 'postgresql', () => pgReady(url, 'postgres'), 10_000);
    await ensureDatabase(url);
    await migrate(url, undefined, (m) => this.log(m));
    return url;
  }

  private async startPostgres(): Promise<string> {
    const { tools, ports, ephemeral } = this.opts;
    const dir = path.join(this.opts.dataDir, 'postgres');
    const asRoot = process.getuid?.() === 0;
    // PostgreSQL refuses to run as root: run it as the `postgres` user instead.
    const runAs = (cmd: string, args: string[]): [string, string[]] =>
      asRoot
        ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', cmd, ...args]]
        : [cmd, args];
    if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (asRoot) chownToPostgres(dir);
      const [cmd, args] = runAs(path.join(tools.postgresBin, 'initdb'), [
        '-D',
        dir,
        '-U',
        'postgres',
        '--auth=trust',
        '--encoding=UTF8',
        '--no-instructions',
      ]);
      const initdb = this.spawn('postgres-initdb', cmd, args);
      await initdb.exited;
      if (initdb.exitCode !== 0) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw new ComponentError('postgresql', `initdb failed:\n${initdb.tail()}`);
      }
      this.procs.splice(this.procs.indexOf(initdb), 1);
    }
    const settings = [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=300',
      '-c',
      'shared_buffers=128MB',
      ...(ephemeral
        ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
        : []),
    ];
    const [cmd, args] = runAs(path.join(tools.postgresBin, 'postgres'), [
      '-D',
      dir,
      '-p',
      String(ports.postgres),
      ...settings,
    ]);
    const proc = this.spawn('postgresql', cmd, args, { stopSignal: 'SIGINT' });
    const url = `postgresql://postgres@127.0.0.1:${ports.postgres}/orderflow`;
    await this.awaitReady(proc, () => pgReady(url, 'postgres'), TIMEOUT.postgres);
    await ensureDatabase(url);
    const { applied } = await migrate(url, undefined, (m) => this.log(m));
    this.log(
      `postgresql ready on ${ports.postgres}${applied.length ? `, applied ${applied.join(', ')}` : ''}`,
    );
    return url;
  }

  /** The Temporal dev server (SQLite) with its Web UI; returns the frontend address. */
  protected async startTemporal(_database: Promise<string>): Promise<string> {
    const { tools, ports } = this.opts;
    const dir = path.join(this.opts.dataDir, 'temporal');
    fs.mkdirSync(dir, { recursive: true });
    const proc = this.spawn(
      'temporal',
      tools.temporalCli,
      temporalDevServerArgs({
        port: ports.temporal,
        uiPort: ports.temporalUi,
        httpPort: ports.temporalHttp,
        metricsPort: ports.temporalMetrics,
        dbFile: path.join(dir, 'temporal.db'),
        logLevel: 'warn',
        extra: [
          '--search-attribute',
          `${ORDER_STATUS_SEARCH_ATTRIBUTE}=Keyword`,
          // WAL with synchronous=NORMAL: 2.6x the workflow throughput of the default rollback
          // journal (200 one-activity workflows in 5.8 s vs 15.1 s here). A process crash loses
          // nothing; a power cut may lose the last transactions (production: Temporal on PostgreSQL).
          '--sqlite-pragma',
          'journal_mode=wal',
          '--sqlite-pragma',
          'synchronous=normal',
        ],
      }),
    );
    const address = `127.0.0.1:${ports.temporal}`;
    await waitUntilReady(proc, 'temporal', () => temporalReady(address), TIMEOUT.temporal);
    const uiReady = async () => (await fetch(`http://127.0.0.1:${ports.temporalUi}/`)).ok;
    await waitUntilReady(proc, 'temporal-ui', uiReady, TIMEOUT.temporal);
    // A restart is ready when both answer.
    this.readiness.set(proc.name, {
      check: async () => (await temporalReady(address)) && (await uiReady()),
      timeoutMs: TIMEOUT.temporal,
    });
    this.log(`temporal ready on ${address}, Web UI on ${ports.temporalUi}${proc.priorityNote}`);
    return address;
  }

  /** One KRaft node (broker and controller); returns the bootstrap address. */
  protected async startKafka(): Promise<string> {
    const { tools, ports } = this.opts;
    const dir = path.join(this.opts.dataDir, 'kafka');
    const logs = path.join(dir, 'data');
    fs.mkdirSync(logs, { recursive: true });
    const props = path.join(dir, 'server.properties');
    const sasl = this.opts.kafkaSasl === true;
    const java = javaCommand();
    const keystore = sasl ? await brokerCertificate(path.join(dir, 'tls'), java) : undefined;
    fs.writeFileSync(props, kafkaProperties(ports, logs, keystore));
    const jvm = kafkaJvmArgs(tools.kafkaLibs);
    if (!fs.existsSync(path.join(logs, 'meta.properties'))) {
      // The cluster id only has to be stable for this data folder.
      const clusterId = newKafkaClusterId();
      await this.formatKafkaStorage('kafka-format', 'kafka', {
        java,
        jvm,
        clusterId,
        props,
        extra: sasl ? scramCredentialArgs() : [],
      });
    }
    const proc = this.spawn('kafka', java, [...jvm, 'kafka.Kafka', props]);
    const brokers = `127.0.0.1:${ports.kafka}`;
    await this.awaitReady(proc, () => kafkaReady(brokers), TIMEOUT.kafka);
    if (keystore) {
      this.kafkaSecure = {
        saslBrokers: `127.0.0.1:${ports.kafkaSasl}`,
        saslSslBrokers: `127.0.0.1:${ports.kafkaSaslSsl}`,
        caFile: keystore.caFile,
      };
    }
    this.log(`kafka ready on ${brokers}${proc.priorityNote}`);
    return brokers;
  }

  /**
   * Formats one node's storage with Kafka's storage tool (`props` names its
   * log.dirs; `--ignore-formatted`, then `extra`) as a short-lived process of
   * the stack; throws, as `component`, with the tail of its log when it fails.
   */
  async formatKafkaStorage(
    name: string,
    component: string,
    f: { java: string; jvm: string[]; clusterId: string; props: string; extra?: string[] },
  ): Promise<void> {
    const format = this.spawn(name, f.java, [
      ...f.jvm,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      f.clusterId,
      '-c',
      f.props,
      '--ignore-formatted',
      ...(f.extra ?? []),
    ]);
    await format.exited;
    this.procs.splice(this.procs.indexOf(format), 1);
    if (format.exitCode !== 0)
      throw new ComponentError(component, `storage format failed:\n${format.tail()}`);
  }

  private async startMaildev(): Promise<void> {
    const { ports } = this.opts;
    const dir = path.join(this.opts.dataDir, 'mail');
    fs.mkdirSync(dir, { recursive: true });
    const proc = this.spawn('maildev', process.execPath, [
      path.join(projectRoot, 'node_modules/maildev/bin/maildev'),
      '--ip',
      '127.0.0.1',
      '--smtp',
      String(ports.smtp),
      '--web',
      String(ports.mailUi),
      '--mail-directory',
      dir,
      '--silent',
    ]);
    await this.awaitReady(
      proc,
      async () =>
        (await isListening(ports.smtp)) &&
        (await fetch(`http://127.0.0.1:${ports.mailUi}/email`)).ok,
      TIMEOUT.maildev,
    );
    this.log(`maildev ready: SMTP ${ports.smtp}, UI ${ports.mailUi}${proc.priorityNote}`);
  }

  /**
   * Starts one application process (`node --import tsx <entry>`) with the
   * stack's environment and waits until `ready` says so.
   */
  async startApp(
    name: string,
    entry: string,
    env: NodeJS.ProcessEnv,
    ready: (proc: ManagedProcess) => Promise<boolean>,
  ): Promise<ManagedProcess> {
    const proc = this.spawn(
      name,
      process.execPath,
      ['--import', 'tsx', path.join(projectRoot, entry)],
      {
        requestPath: nicenessOf(this.opts.priorityOf?.(name)) === 0,
        cwd: projectRoot,
        // Log files hold JSON lines (readiness is read from them), whatever LOG_FORMAT the shell has.
        env: { ...process.env, ...this.env, ...env, LOG_FORMAT: 'json' },
      },
    );
    await this.awaitReady(proc, ready, TIMEOUT.app);
    this.log(`${name} ready${proc.priorityNote}`);
    return proc;
  }

  /** Stops everything in reverse start order: applications first, then the peers they use. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.governor.stop();
    // A test stack's data is thrown away: no need to wait for clean shutdowns.
    const grace = (proc: ManagedProcess) =>
      this.opts.ephemeral
        ? 2_000
        : proc.name === 'kafka' || proc.spec.stopGroup === 'kafka'
          ? 30_000
          : 10_000;
    const order = [...this.procs].reverse();
    for (let i = 0; i < order.length;) {
      // A stop group's neighbours go together (SpawnSpec.stopGroup).
      const group = order[i]!.spec.stopGroup;
      let end = i + 1;
      while (group !== undefined && end < order.length && order[end]!.spec.stopGroup === group)
        end++;
      await Promise.all(
        order.slice(i, end).map(async (proc) => {
          const t = Date.now();
          await proc.stop(grace(proc));
          this.log(`${proc.name} stopped in ${Date.now() - t} ms`);
        }),
      );
      i = end;
    }
  }
}

function chownToPostgres(dir: string): void {
  const passwd = fs
    .readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  if (!passwd) {
    throw new ComponentError(
      'postgresql',
      'running as root but there is no `postgres` user to run PostgreSQL as. Fix: apt-get install postgresql, or run as a normal user, or set DATABASE_URL.',
    );
  }
  const [, , uid, gid] = passwd.split(':');
  // The user must be able to reach the folder, too.
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) {
    const mode = fs.statSync(d).mode;
    if ((mode & 0o001) === 0) fs.chmodSync(d, mode | 0o711);
  }
  fs.chownSync(dir, Number(uid), Number(gid));
}

/**
 * `temporal server start-dev` arguments: on 127.0.0.1, its history in the
 * SQLite file `dbFile`, headless unless `uiPort` is given, then `extra`.
 */
export function temporalDevServerArgs(opts: {
  port: number;
  httpPort: number;
  metricsPort: number;
  uiPort?: number;
  dbFile: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  extra?: string[];
}): string[] {
  return [
    'server',
    'start-dev',
    ...(opts.uiPort === undefined ? ['--headless'] : ['--ui-port', String(opts.uiPort)]),
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--http-port',
    String(opts.httpPort),
    '--metrics-port',
    String(opts.metricsPort),
    '--db-filename',
    opts.dbFile,
    '--log-level',
    opts.logLevel,
    ...(opts.extra ?? []),
  ];
}

async function pgReady(url: string, database: string): Promise<boolean> {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return postgresAnswers(u.toString());
}

/** Whether the PostgreSQL database at `connectionString` answers a query (connecting for 1 s at most). */
export async function postgresAnswers(connectionString: string): Promise<boolean> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The application can use the frontend: the `default` namespace is there with the OrderStatus attribute. */
export async function temporalReady(address: string): Promise<boolean> {
  const connection = await Connection.connect({ address, connectTimeout: 1000 });
  try {
    await connection.workflowService.describeNamespace({ namespace: 'default' });
    const attrs = await connection.operatorService.listSearchAttributes({ namespace: 'default' });
    return ORDER_STATUS_SEARCH_ATTRIBUTE in (attrs.customAttributes ?? {});
  } finally {
    await connection.close();
  }
}

/** The java of JAVA_HOME, else the one on the PATH. */
export function javaCommand(): string {
  return process.env.JAVA_HOME ? path.join(process.env.JAVA_HOME, 'bin', 'java') : 'java';
}

/**
 * The JVM arguments of a Kafka node (broker, controller or the storage tool)
 * up to the main class: a small heap, the serial collector and C1 only (start
 * time and footprint over peak throughput on two shared cores), the broker's
 * log4j2 settings and the classpath.
 */
export function kafkaJvmArgs(
  kafkaLibs: string,
  heap: { initial: string; max: string } = { initial: '256m', max: '512m' },
): string[] {
  return [
    `-Xms${heap.initial}`,
    `-Xmx${heap.max}`,
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-Xshare:auto',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${path.join(projectRoot, 'scripts/kafka/log4j2.properties')}`,
    '-cp',
    `${kafkaLibs}/*`,
  ];
}

/**
 * A new random KRaft cluster id (16 bytes, base64url), never one that starts
 * with "-": the storage tool would read that as an option.
 */
export function newKafkaClusterId(): string {
  let clusterId: string;
  do {
    clusterId = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url');
  } while (clusterId.startsWith('-'));
  return clusterId;
}

/**
 * What the cluster at `brokers` (comma list) says about itself: the node ids
 * of its registered (unfenced) brokers and the controller it names; kafkajs
 * asks the first broker of the list that answers.
 */
export async function describeKafkaCluster(
  brokers: string,
  clientId = 'orderflow-stack',
): Promise<{ brokers: number[]; controller: number | null }> {
  const kafka = new Kafka({
    brokers: brokers.split(','),
    clientId,
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1000,
    requestTimeout: 5000,
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return { brokers: cluster.brokers.map((b) => b.nodeId).sort(), controller: cluster.controller };
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Whether the Kafka cluster at `brokers` (comma-separated) has brokers and a controller. */
export async function kafkaReady(brokers: string, clientId = 'orderflow-stack'): Promise<boolean> {
  const { brokers: registered, controller } = await describeKafkaCluster(brokers, clientId);
  return registered.length > 0 && controller !== null && controller >= 0;
}

/** `kafka-storage format` arguments that create the SCRAM users of KAFKA_SASL_USERS. */
function scramCredentialArgs(): string[] {
  return (['scram-sha-256', 'scram-sha-512'] as const).flatMap((mechanism) => {
    const { username, password } = KAFKA_SASL_USERS[mechanism];
    return ['--add-scram', `${mechanism.toUpperCase()}=[name=${username},password=${password}]`];
  });
}

/** The broker's TLS identity for its SASL_SSL listener. */
interface BrokerKeystore {
  /** PKCS#12 keystore with the key and its self-signed certificate. */
  keystore: string;
  password: string;
  /** The certificate as PEM, for clients to trust (KAFKA_TLS_CA_FILE). */
  caFile: string;
}

/**
 * A self-signed certificate for 127.0.0.1 made with keytool (the JDK's, which
 * Kafka runs on anyway), once per data folder: the broker's keystore and the
 * PEM file clients trust.
 */
async function brokerCertificate(dir: string, java: string): Promise<BrokerKeystore> {
  const keystore = path.join(dir, 'broker.p12');
  const caFile = path.join(dir, 'broker-ca.pem');
  const password = 'orderflow-test-keystore';
  if (fs.existsSync(caFile)) return { keystore, password, caFile };
  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(keystore, { force: true });
  const keytool = java === 'java' ? 'keytool' : path.join(path.dirname(java), 'keytool');
  const store = ['-keystore', keystore, '-storetype', 'PKCS12', '-storepass', password];
  try {
    await execFileAsync(
      keytool,
      [
        '-genkeypair',
        '-alias',
        'broker',
        '-keyalg',
        'RSA',
        '-keysize',
        '2048',
        '-dname',
        'CN=127.0.0.1',
        '-ext',
        'SAN=IP:127.0.0.1,DNS:localhost',
        '-validity',
        '3650',
        '-keypass',
        password,
        ...store,
      ],
      { timeout: 60_000 },
    );
    await execFileAsync(
      keytool,
      ['-exportcert', '-rfc', '-alias', 'broker', '-file', caFile, ...store],
      { timeout: 60_000 },
    );
  } catch (e) {
    fs.rmSync(caFile, { force: true });
    throw new ComponentError(
      'kafka',
      `could not make the broker's TLS certificate with ${keytool}: ${(e as Error).message}`,
    );
  }
  return { keystore, password, caFile };
}

/**
 * The SASL listeners' settings: PLAIN users in each listener's JAAS entry,
 * SCRAM users in the metadata log (scramCredentialArgs); the SASL_SSL one
 * with the broker's keystore.
 */
function saslListenerProperties(tls: BrokerKeystore): string[] {
  const plain = KAFKA_SASL_USERS.plain;
  const jaas = (listener: string) => [
    `listener.name.${listener}.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${plain.username}="${plain.password}";`,
    `listener.name.${listener}.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
    `listener.name.${listener}.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;`,
  ];
  return [
    'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    ...jaas('sasl_plaintext'),
    ...jaas('sasl_ssl'),
    'listener.name.sasl_ssl.ssl.keystore.type=PKCS12',
    `listener.name.sasl_ssl.ssl.keystore.location=${tls.keystore}`,
    `listener.name.sasl_ssl.ssl.keystore.password=${tls.password}`,
    `listener.name.sasl_ssl.ssl.key.password=${tls.password}`,
  ];
}

function kafkaProperties(ports: StackPorts, logDir: string, tls?: BrokerKeystore): string {
  const saslListeners = tls
    ? `,SASL_PLAINTEXT://127.0.0.1:${ports.kafkaSasl},SASL_SSL://127.0.0.1:${ports.kafkaSaslSsl}`
    : '';
  return [
    '# Written by the stack runner on every start; edit scripts/lib/stack.ts instead.',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${ports.kafkaController}`,
    `listeners=PLAINTEXT://127.0.0.1:${ports.kafka},CONTROLLER://127.0.0.1:${ports.kafkaController}${saslListeners}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.kafka}${saslListeners}`,
    'controller.listener.names=CONTROLLER',
    `listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${tls ? ',SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL' : ''}`,
    ...(tls ? saslListenerProperties(tls) : []),
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${logDir}`,
    'num.partitions=6',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=10',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // Fencing its only broker helps nothing and stops the broker's partitions: a controller
    // short of CPU (a busy machine, the low background priority) is given a minute, not 9 s.
    'broker.session.timeout.ms=60000',
    // Topics are created explicitly, with their partition count, by the code that owns them.
    'auto.create.topics.enable=false',
    '',
  ].join('\n');
}

/** Ports for a test stack: all ephemeral and distinct. */
export async function ephemeralPorts(
  freePorts: (n: number) => Promise<number[]>,
): Promise<StackPorts> {
  const keys = Object.keys(defaultPorts) as (keyof StackPorts)[];
  const chosen = await freePorts(keys.length);
  return Object.fromEntries(keys.map((k, i) => [k, chosen[i]])) as unknown as StackPorts;
}

/** Ports for `npm start`: the defaults, each overridable through its environment variable. */
export function configuredPorts(env: NodeJS.ProcessEnv = process.env): StackPorts {
  const ports = {} as StackPorts;
  for (const [k, [def, name]] of Object.entries(defaultPorts) as [
    keyof StackPorts,
    [number, string],
  ][]) {
    const raw = env[name];
    const n = raw === undefined || raw === '' ? def : Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) {
      throw new ComponentError('config', `${name}=${raw} is not a TCP port (1-65535)`);
    }
    ports[k] = n;
  }
  return ports;
}

export const tmpStackDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-test-'));

export { delay };
