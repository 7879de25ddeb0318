/**
 * Child processes of the stack runner: each in its own process group (so a
 * stop reaches its children too), logging to a file, stopped with SIGTERM and
 * then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export class ComponentError extends Error {
  constructor(
    readonly component: string,
    message: string,
  ) {
    super(`[${component}] ${message}`);
    this.name = 'ComponentError';
  }
}

export interface SpawnSpec {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  logFile: string;
  /** Signal for a graceful stop (PostgreSQL's "fast" shutdown is SIGINT). */
  stopSignal?: NodeJS.Signals;
  /** CPU priority of the process and of every thread it creates (see CpuPriority). */
  priority?: CpuPriority;
}

/**
 * `idle`: Linux SCHED_IDLE (`chrt --idle 0`), the process runs only on CPU
 * time nothing else wants; a number 1-19: that niceness (`nice -n`);
 * `normal` or 0: unchanged. Set at exec time, so every thread inherits it
 * (niceness weighs each thread, which makes it weak for a many-threaded
 * server such as Temporal's or a JVM; SCHED_IDLE is not).
 */
export type CpuPriority = 'normal' | 'idle' | number;

export function parseCpuPriority(raw: string, variable: string): CpuPriority {
  const v = raw.trim().toLowerCase();
  if (v === 'normal' || v === 'idle') return v;
  const n = Number(v);
  if (v !== '' && Number.isInteger(n) && n >= 0 && n <= 19) return n;
  throw new Error(`${variable} must be "idle", "normal" or a niceness 0-19, got "${raw}"`);
}

/** A CpuPriority as reports print it. */
export function describeCpuPriority(p: CpuPriority): string {
  if (p === 'idle') return 'SCHED_IDLE, session autogroup at nice 19';
  return p === 'normal' || p === 0 ? 'normal' : `nice ${p}`;
}

const CHRT = ['/usr/bin/chrt', '/bin/chrt'].find((p) => fs.existsSync(p));

/**
 * The command line that runs `command` at `priority`. With the kernel's
 * autogroup scheduling on (the default of most desktop and server
 * distributions), CPU time is first shared between sessions, and every
 * process started here leads a session of its own (`detached`): a process's
 * niceness or SCHED_IDLE then only ranks its own threads. So a low priority
 * is also written to the session's autogroup (`/proc/self/autogroup`, from
 * inside the new session, before exec) to rank the whole process below the
 * others.
 */
export function withPriority(
  priority: CpuPriority | undefined,
  command: string,
  args: string[],
): [string, string[]] {
  const nice = priority === 'idle' ? 19 : typeof priority === 'number' ? priority : 0;
  if (nice <= 0) return [command, args];
  const inner =
    priority === 'idle' && CHRT
      ? [CHRT, '--idle', '0', command, ...args]
      : ['nice', '-n', String(nice), command, ...args];
  return [
    'sh',
    ['-c', `echo ${nice} > /proc/self/autogroup 2>/dev/null; exec "$0" "$@"`, ...inner],
  ];
}

/** What each start of a process writes to its (appended) log before the process's own output. */
const START_MARKER = '\n--- ';

/** The part of a process's log text written since its latest start (all of it without a marker). */
export function sinceLastStart(logText: string): string {
  const i = logText.lastIndexOf(START_MARKER);
  return i < 0 ? logText : logText.slice(i);
}

export class ManagedProcess {
  readonly child: ChildProcess;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  private stopping = false;

  constructor(readonly spec: SpawnSpec) {
    fs.mkdirSync(path.dirname(spec.logFile), { recursive: true });
    const fd = fs.openSync(spec.logFile, 'a');
    fs.writeSync(
      fd,
      `${START_MARKER}${new Date().toISOString()} ${spec.command} ${spec.args.join(' ')}\n`,
    );
    const [command, args] = withPriority(spec.priority, spec.command, spec.args);
    this.child = spawn(command, args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true,
    });
    fs.closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        resolve();
      });
      this.child.once('error', (err) => {
        fs.appendFileSync(spec.logFile, `spawn error: ${err.message}\n`);
        this.exitCode = -1;
        resolve();
      });
    });
  }

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  /** True once stop() was called: an exit after that is expected. */
  get isStopping(): boolean {
    return this.stopping;
  }

  tail(lines = 30): string {
    return tailFile(this.spec.logFile, lines);
  }

  /** Stops the whole process group: the stop signal, then SIGKILL after graceMs. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.pid === undefined) return;
    if (!this.running) {
      // The leader is gone, but children it left in the group may not be.
      signalGroup(this.pid, 'SIGKILL');
      return;
    }
    signalGroup(this.pid, this.spec.stopSignal ?? 'SIGTERM');
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      delay(graceMs).then(() => true),
    ]);
    if (timedOut) signalGroup(this.pid, 'SIGKILL');
    await this.exited;
    // Stragglers in the group (e.g. a JVM behind a wrapper) go too.
    signalGroup(this.pid, 'SIGKILL');
  }
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

export function tailFile(file: string, lines = 30): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return '(no log)';
  }
}

export const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` until it resolves truthy, the process dies, or the timeout
 * passes; the error names the component and carries the tail of its log.
 */
export async function waitUntilReady(
  proc: ManagedProcess | undefined,
  name: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  logFile?: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (proc && !proc.running) {
      throw new ComponentError(
        name,
        `exited during start-up (code ${proc.exitCode}, signal ${proc.exitSignal}). Last lines of ${proc.spec.logFile}:\n${proc.tail()}`,
      );
    }
    // A check that hangs (a port that accepts but never answers) is cut off at the deadline.
    const remaining = Math.max(deadline - Date.now(), 0);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`check did not answer within ${remaining} ms`)),
        remaining,
      );
    });
    try {
      if (await Promise.race([check(), timeout])) return;
    } catch (e) {
      lastError = (e as Error).message;
    } finally {
      clearTimeout(timer);
    }
    await delay(150);
  }
  const log = proc ? proc.spec.logFile : logFile;
  throw new ComponentError(
    name,
    `not ready after ${(timeoutMs / 1000).toFixed(timeoutMs < 10_000 ? 1 : 0)} s${lastError ? ` (last error: ${lastError})` : ''}.` +
      (log ? ` Last lines of ${log}:\n${tailFile(log)}` : ''),
  );
}

/** Resolves true when something accepts TCP connections on host:port. */
export function isListening(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (v: boolean) => {
      socket.destroy();
      resolve(v);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Fails with the component's name and the fix when its port is taken. */
export async function assertPortFree(
  component: string,
  port: number,
  envVar: string,
): Promise<void> {
  const free = await new Promise<boolean>((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () =>
      server.close(() => resolve(true)),
    );
  });
  if (!free) {
    throw new ComponentError(
      component,
      `port ${port} is already in use. Stop whatever holds it (\`ss -ltnp 'sport = :${port}'\` shows it), or choose another port with ${envVar}=<port>.`,
    );
  }
}

/** A free TCP port on loopback (for tests' ephemeral stacks). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
