/**
 * Child processes of the stack runner: each in its own process group (so a
 * stop reaches its children too), logging to a file, stopped with SIGTERM and
 * then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A stack component that failed (to start, to answer, to stop); the message starts with its name. */
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
  /** CPU priority of the process once it is ready; it starts at normal priority (see CpuPriority). */
  priority?: CpuPriority;
  /** It serves requests (the API): an `idle` background yields to it while it works (PriorityGovernor). */
  requestPath?: boolean;
  /**
   * Processes of one stop group that are next to each other in the stop order
   * are stopped together (Stack.stop): the nodes of a quorum, whose last
   * member cannot shut down cleanly once the others are gone.
   */
  stopGroup?: string;
}

/**
 * A background CPU priority, taken once the process is ready (waitUntilReady)
 * or once the whole stack is (Stack's `lowerPriority`): it starts at normal
 * priority, so start-up (a JVM warming up, a worker bundling its workflows)
 * gets its fair share even when something else keeps every core busy, and
 * only then drops to a CPU weight. `idle`: nice IDLE_NICENESS, and the lowest
 * weight, nice IDLE_BUSY_NICENESS, while the API works (PriorityGovernor);
 * a number 1-19: that niceness, fixed; `normal` or 0: unchanged. Never
 * SCHED_IDLE, and not from the start: with other processes keeping both cores
 * busy, a SCHED_IDLE or nice-19 process got 2-3% of a core here, too little to
 * start within the start-up budgets.
 */
export type CpuPriority = 'normal' | 'idle' | number;

export function parseCpuPriority(raw: string, variable: string): CpuPriority {
  const v = raw.trim().toLowerCase();
  if (v === 'normal' || v === 'idle') return v;
  const n = Number(v);
  if (v !== '' && Number.isInteger(n) && n >= 0 && n <= 19) return n;
  throw new Error(`${variable} must be "idle", "normal" or a niceness 0-19, got "${raw}"`);
}

/** The niceness of an `idle` background while the API is idle: enough to make progress on a busy machine. */
export const IDLE_NICENESS = 10;
/** The autogroup niceness of an `idle` background while the API works: the lowest weight. */
export const IDLE_BUSY_NICENESS = 19;

/** The niceness a ready process drops to (0: it stays at normal priority). */
export function nicenessOf(p: CpuPriority | undefined): number {
  return p === 'idle' ? IDLE_NICENESS : typeof p === 'number' ? p : 0;
}

/** A CpuPriority as reports print it. */
export function describeCpuPriority(p: CpuPriority): string {
  const nice = nicenessOf(p);
  if (nice === 0) return 'normal';
  const governed =
    p === 'idle' ? `, its autogroup at nice ${IDLE_BUSY_NICENESS} while the API works` : '';
  return `nice ${nice} (every thread and the session's autogroup) once ready${governed}; normal while starting`;
}

/** What lowerCpuPriority did to a process group. */
export interface PriorityChange {
  /** Threads whose niceness was raised to the target. */
  threads: number;
  /** The autogroup's niceness after the change (undefined: the kernel has no autogroups). */
  autogroup?: number;
  /** What could not be changed (the process keeps running, at a higher priority than asked). */
  errors: string[];
}

/**
 * Lowers process group `pgid` (led by the session leader `pgid`, as every
 * ManagedProcess is) to niceness `nice`: every thread of every process in the
 * group (threads created later inherit it from their creator) and the
 * session's autogroup. With the kernel's autogroup scheduling on (the default
 * of most distributions), CPU time is first shared between sessions, so the
 * autogroup's niceness is what ranks the process against the API (nice 10:
 * weight 110 against 1024, nice 19: 15); where autogroups do not apply (a process in a
 * cgroup of its own, or autogroups off), the threads' niceness does. Both are
 * weights: the process still gets a share of a CPU that others keep busy.
 */
export async function lowerCpuPriority(pgid: number, nice: number): Promise<PriorityChange> {
  const change: PriorityChange = { threads: 0, errors: [] };
  // A thread created during a pass by a thread not yet lowered starts at the old niceness: pass again.
  for (let pass = 0; pass < 5; pass++) {
    let lowered = 0;
    for (const pid of groupMembers(pgid)) {
      for (const tid of threadsOf(pid)) {
        try {
          if (os.getPriority(tid) >= nice) continue;
          os.setPriority(tid, nice);
          lowered++;
        } catch (e) {
          // ESRCH: the thread ended meanwhile.
          if (!(e as Error).message.includes('ESRCH'))
            change.errors.push(`thread ${tid}: ${(e as Error).message}`);
        }
      }
    }
    change.threads += lowered;
    if (lowered === 0) break;
  }
  const autogroup = await setAutogroupNiceness(pgid, nice, { onlyLower: true });
  if (typeof autogroup === 'string') change.errors.push(`autogroup: ${autogroup}`);
  else if (autogroup !== undefined) change.autogroup = autogroup;
  return change;
}

/** The autogroup niceness of `pid`'s session, or undefined without autogroups. */
export function autogroupNiceness(pid: number): number | undefined {
  try {
    const m = /nice (-?\d+)/.exec(fs.readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sets the autogroup of `pid`'s session to `nice` (to at least `nice` with
 * `onlyLower`): the resulting niceness, undefined without autogroups, or the
 * error. Any niceness 0-19 needs no privilege. The kernel accepts one such
 * write per 100 ms from a process without CAP_SYS_ADMIN (EAGAIN otherwise),
 * so a busy moment is waited out.
 */
export async function setAutogroupNiceness(
  pid: number,
  nice: number,
  { onlyLower = false }: { onlyLower?: boolean } = {},
): Promise<number | string | undefined> {
  for (let attempt = 0; ; attempt++) {
    const current = autogroupNiceness(pid);
    if (current === undefined) return undefined;
    if (current === nice || (onlyLower && current > nice)) return current;
    try {
      fs.writeFileSync(`/proc/${pid}/autogroup`, String(nice));
      return autogroupNiceness(pid) ?? nice;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT' || err.code === 'ESRCH') return undefined;
      if (err.code !== 'EAGAIN' || attempt >= 20) return err.message;
      await delay(120);
    }
  }
}

/**
 * The fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]
 * (with `tid`, of that thread's /proc/<pid>/task/<tid>/stat); undefined once it is gone.
 */
export function statFields(pid: number, tid?: number): string[] | undefined {
  try {
    const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
    const stat = fs.readFileSync(file, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The live processes of process group `pgid`. */
export function groupMembers(pgid: number): number[] {
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  return entries
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const f = statFields(pid);
      return f !== undefined && f[0] !== 'Z' && Number(f[2]) === pgid;
    });
}

/**
 * CPU time (user + system, seconds) used so far by process `pid`, all its
 * threads (with `tid`, that thread alone); undefined once it is gone.
 */
export function cpuSeconds(pid: number, tid?: number): number | undefined {
  const f = statFields(pid, tid);
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (USER_HZ, 100 on Linux).
  return f ? (Number(f[11]) + Number(f[12])) / 100 : undefined;
}

/** The thread ids of process `pid`; none once it is gone. */
export function threadsOf(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
}

/** What each start of a process writes to its (appended) log before the process's own output. */
const START_MARKER = '\n--- ';

/** The part of a process's log text written since its latest start (all of it without a marker). */
export function sinceLastStart(logText: string): string {
  const i = logText.lastIndexOf(START_MARKER);
  return i < 0 ? logText : logText.slice(i);
}

/**
 * The log a process wrote since its latest start. Log files are appended to
 * and ManagedProcess writes a `--- <ISO date> <command>` line at each start,
 * so a restarted worker is not judged ready by its predecessor's log line.
 */
export function currentRunLog(logFile: string): string {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return '';
  }
  return sinceLastStart(text);
}

export class ManagedProcess {
  readonly child: ChildProcess;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  /** What dropping to spec.priority did, once the process was ready (undefined until then). */
  priorityChange?: PriorityChange;
  /** While true, readiness does not lower the priority (Stack's `lowerPriority: 'settled'`). */
  holdPriority = false;
  private stopping = false;

  constructor(readonly spec: SpawnSpec) {
    fs.mkdirSync(path.dirname(spec.logFile), { recursive: true });
    const fd = fs.openSync(spec.logFile, 'a');
    fs.writeSync(
      fd,
      `${START_MARKER}${new Date().toISOString()} ${spec.command} ${spec.args.join(' ')}\n`,
    );
    this.child = spawn(spec.command, spec.args, {
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

  /**
   * Drops the process from normal priority to spec.priority (once; a no-op at
   * normal priority or while held). waitUntilReady calls it when the process
   * is ready.
   */
  async enterRunPriority(): Promise<void> {
    const nice = nicenessOf(this.spec.priority);
    if (nice === 0 || this.holdPriority || this.pid === undefined || !this.running) return;
    if (this.priorityChange) return;
    this.priorityChange = { threads: 0, errors: [] };
    this.priorityChange = await lowerCpuPriority(this.pid, nice);
  }

  /** The priority the process runs at, for a log line ("" at normal priority). */
  get priorityNote(): string {
    const c = this.priorityChange;
    if (!c) return '';
    const nice = nicenessOf(this.spec.priority);
    const autogroup = c.autogroup === undefined ? 'no autogroups' : `autogroup nice ${c.autogroup}`;
    return c.errors.length
      ? ` (background priority nice ${nice} not fully applied: ${c.errors.slice(0, 3).join('; ')})`
      : ` (background: nice ${nice}, ${autogroup})`;
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

/** SIGKILLs `proc`'s whole process group and waits (10 s at most) for it to exit. */
export async function killGroup(proc: ManagedProcess): Promise<void> {
  if (!proc.pid) throw new Error(`${proc.name} is not running`);
  signalGroup(proc.pid, 'SIGKILL');
  await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (proc.running) throw new Error(`${proc.name} (pid ${proc.pid}) survived SIGKILL`);
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
 * A process found ready drops to its run priority (spec.priority).
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
      if (await Promise.race([check(), timeout])) {
        await proc?.enterRunPriority();
        return;
      }
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
  /** The variable that moves it; absent for a port fixed by its neighbours (the cluster's). */
  envVar?: string,
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
      `port ${port} is already in use. Stop whatever holds it (\`ss -ltnp 'sport = :${port}'\` shows it)${envVar ? `, or choose another port with ${envVar}=<port>` : ''}.`,
    );
  }
}

/** A free TCP port on loopback (for tests' ephemeral stacks). */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/**
 * n distinct free TCP ports on loopback: every socket stays bound until all n are chosen, so the
 * kernel cannot hand one port out twice (separate freePort() calls can get the same port back).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < n; i++) servers.push(await bound());
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

function bound(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, () => resolve(server));
  });
}
