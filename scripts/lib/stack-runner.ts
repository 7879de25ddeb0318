/**
 * What `npm start` (scripts/stack.ts) and `npm run start:cluster`
 * (scripts/cluster.ts) do alike around their Stack: stop the process groups an
 * earlier run left behind, record the pids, supervise the processes once the
 * stack is up (restart with backoff, stop on a crash loop), stop everything on
 * Ctrl-C / SIGTERM / SIGHUP, and print the address table.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  ComponentError,
  currentRunLog,
  signalGroup,
  sinceLastStart,
  tailFile,
  type ManagedProcess,
} from './process.ts';
import { RUNNING_LOG_LINE, type Stack, type StackEnv } from './stack.ts';
import { STACK_SUPERVISION, Supervisor } from './supervisor.ts';
import { ProvisionError } from './tools.ts';

export type Log = (msg: string) => void;

/** Where a runner records the process groups it started (`stack:reset` refuses while they live). */
export const pidFileOf = (dataDir: string): string => path.join(dataDir, 'run', 'pids.json');

/** The process groups a runner recorded in `dataDir` (recordPids); none without a pid file. */
export function readPids(dataDir: string): { pid: number; name: string }[] {
  const pidFile = pidFileOf(dataDir);
  if (!fs.existsSync(pidFile)) return [];
  return JSON.parse(fs.readFileSync(pidFile, 'utf8')) as { pid: number; name: string }[];
}

/** Process groups left by a runner that was killed with SIGKILL are stopped first. */
export function stopLeftovers(dataDir: string, log: Log): void {
  const pidFile = pidFileOf(dataDir);
  try {
    for (const { pid, name } of readPids(dataDir)) {
      try {
        process.kill(pid, 0);
        log(`stopping ${name} (pid ${pid}) left over from an earlier run`);
        signalGroup(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  } catch {
    /* no earlier run */
  }
  fs.rmSync(pidFile, { force: true });
}

export function recordPids(dataDir: string, procs: ManagedProcess[]): void {
  const pidFile = pidFileOf(dataDir);
  fs.mkdirSync(path.dirname(pidFile), { recursive: true });
  fs.writeFileSync(pidFile, JSON.stringify(procs.map((p) => ({ pid: p.pid, name: p.name }))));
}

/** Whether an API answers GET `url` (its /readyz) with 2xx within 2 s. */
export async function isReady(url: string): Promise<boolean> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return res.ok;
}

/** The readiness of an app process: the API on its /readyz, the others on their "running" log line. */
export function appReadiness(
  name: string,
  apiPort: number,
): (proc: ManagedProcess) => Promise<boolean> {
  return name.startsWith('api')
    ? () => isReady(`http://127.0.0.1:${apiPort}/readyz`)
    : async (p) => RUNNING_LOG_LINE.test(sinceLastStart(tailFile(p.spec.logFile, 200)));
}

/**
 * The /metrics address a worker or consumer named in its "running" line, if
 * any: from the whole log of its latest start, since a busy process's line is
 * soon far from the tail.
 */
export function metricsUrlOf(proc: ManagedProcess): string | undefined {
  return /"metricsUrl":"([^"]+)"/.exec(currentRunLog(proc.spec.logFile))?.[1];
}

/**
 * The address rows both runners print after their API rows: Temporal, mail,
 * Kafka, PostgreSQL, logs (`extra` after the frontend), then the /metrics of
 * every worker and consumer (a free port unless WORKER_METRICS_PORT /
 * CONSUMER_METRICS_PORT say otherwise, named in their "running" line).
 */
export function addressRows(
  stack: Stack,
  dataDir: string,
  extra: [string, string][] = [],
): [string, string][] {
  const rows: [string, string][] = [
    ['Temporal Web UI', stack.env.TEMPORAL_UI_URL],
    ['Temporal frontend', stack.env.TEMPORAL_ADDRESS],
    ...extra,
    ['Mail UI (maildev)', stack.env.MAIL_API_URL],
    ['SMTP', stack.env.SMTP_URL],
    ['Kafka', stack.env.KAFKA_BROKERS],
    ['PostgreSQL', stack.env.DATABASE_URL],
    ['Logs', path.join(dataDir, 'logs')],
  ];
  for (const proc of stack.procs) {
    const url = metricsUrlOf(proc);
    if (url) rows.push([`Metrics ${proc.name}`, url]);
  }
  return rows;
}

export function printTable(title: string, rows: [string, string][], footer: string[]): void {
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${title}\n`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
  console.log('');
  for (const line of footer) console.log(`  ${line}`);
  console.log('');
}

/**
 * Runs `stack`: starts its infrastructure, then `startApps`; once both are up,
 * every process is supervised and `ready` prints what to print.
 * A failed start stops what did start and exits 1; a signal stops all and exits 0.
 */
export async function runSupervised(opts: {
  stack: Stack;
  dataDir: string;
  log: Log;
  /** Starts the applications once the infrastructure is up (`env`: its addresses). */
  startApps: (env: StackEnv, recordPids: () => void) => Promise<void>;
  ready: () => void;
}): Promise<void> {
  const { stack, dataDir, log } = opts;
  const record = () => recordPids(dataDir, stack.procs);
  let stopping = false;
  // Once the stack is up, a process that dies on its own is named and started again after a
  // backoff while the rest keep serving; only a crash loop stops the stack, saying which and why.
  const supervisor = new Supervisor({
    ...STACK_SUPERVISION,
    respawn: (dead) => stack.respawn(dead),
    ready: (proc) => stack.waitReady(proc),
    onRestarted: record,
    onCrashLoop: (message) => {
      console.error(`\n[stack] FAILED ${message}\n`);
      void stop(1);
    },
    log,
  });
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    log('stopping…');
    supervisor.stop();
    await stack.stop();
    fs.rmSync(pidFileOf(dataDir), { force: true });
    log('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGHUP', () => void stop(0));

  try {
    const env = await stack.startInfrastructure();
    record();
    await opts.startApps(env, record);
  } catch (e) {
    const err = e as Error;
    console.error(`\n[stack] FAILED ${err.message}\n`);
    if (!(err instanceof ComponentError || err instanceof ProvisionError)) console.error(err.stack);
    await stop(1);
    return;
  }
  for (const proc of stack.procs) supervisor.watch(proc);
  opts.ready();
}
