import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  ComponentError,
  type ManagedProcess,
  assertPortFree,
  autogroupNiceness,
  delay,
  describeCpuPriority,
  freePort,
  freePorts,
  groupMembers,
  IDLE_NICENESS,
  parseCpuPriority,
  statFields,
  waitUntilReady,
  type CpuPriority,
} from '../../scripts/lib/process.ts';
import { rejectionOf } from '../support/rejection.ts';
import { useTestProcesses } from '../support/processes.ts';

const procs = useTestProcesses('process');

function spawnSh(name: string, script: string, priority?: CpuPriority): ManagedProcess {
  return procs.start({
    name,
    command: 'sh',
    args: ['-c', script],
    logFile: procs.file(`${name}-${procs.started.length}.log`),
    ...(priority !== undefined ? { priority } : {}),
  });
}

/** Rejection of `promise`, which must reject (a resolution fails the test). */
async function rejection(promise: Promise<unknown>): Promise<ComponentError> {
  const outcome = await rejectionOf(promise);
  expect(outcome).toBeInstanceOf(ComponentError);
  return outcome as ComponentError;
}

/**
 * True while `pid` exists. A zombie counts as gone: it runs nothing, and an
 * orphan's zombie waits for PID 1 to reap it, which some container inits do late.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  return statFields(pid)?.[0] !== 'Z';
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await delay(25);
  }
  return cond();
}

describe('assertPortFree', () => {
  it('rejects naming the component, the port and the variable when the port is held', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1' }, resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const err = await rejection(assertPortFree('kafka', port, 'KAFKA_PORT'));
      expect(err.component).toBe('kafka');
      expect(err.message).toMatch(/^\[kafka\] /);
      expect(err.message).toContain(`port ${port} is already in use`);
      expect(err.message).toContain('KAFKA_PORT=<port>');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    // Once released, the same port passes.
    await expect(assertPortFree('kafka', port, 'KAFKA_PORT')).resolves.toBeUndefined();
  });

  it('passes for a free port and leaves it free', async () => {
    const port = await freePort();
    await assertPortFree('maildev', port, 'SMTP_PORT');
    await assertPortFree('maildev', port, 'SMTP_PORT');
  });
});

describe('freePorts', () => {
  it('hands out distinct ports, each free once chosen', async () => {
    const ports = await freePorts(40);
    expect(new Set(ports).size).toBe(40);
    for (const port of ports) await assertPortFree('stack', port, 'PORT');
  });
});

describe('waitUntilReady', () => {
  it('fails fast with the exit code and the log tail when the process dies during start-up', async () => {
    const proc = spawnSh('flaky-db', 'echo boom-marker >&2; exit 3');
    const t = Date.now();
    const err = await rejection(waitUntilReady(proc, 'flaky-db', async () => false, 30_000));
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(err.component).toBe('flaky-db');
    expect(err.message).toMatch(/^\[flaky-db\] exited during start-up/);
    expect(err.message).toContain('code 3');
    expect(err.message).toContain('boom-marker');
    expect(err.message).toContain(proc.spec.logFile);
  });

  it('reports a command that cannot be spawned, with the spawn error from the log', async () => {
    const proc = procs.start({
      name: 'ghost',
      command: procs.file('no-such-binary'),
      args: [],
      logFile: procs.file('ghost.log'),
    });
    const err = await rejection(waitUntilReady(proc, 'ghost', async () => false, 30_000));
    expect(err.message).toMatch(/^\[ghost\] exited during start-up/);
    expect(err.message).toContain('ENOENT');
  });

  it('times out naming the component and the last check error', async () => {
    const proc = spawnSh('slow-svc', 'echo starting-marker; sleep 300');
    const t = Date.now();
    const err = await rejection(
      waitUntilReady(
        proc,
        'slow-svc',
        async () => {
          throw new Error('connect ECONNREFUSED probe-marker');
        },
        500,
      ),
    );
    const elapsed = Date.now() - t;
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(3_000);
    expect(err.component).toBe('slow-svc');
    expect(err.message).toMatch(/^\[slow-svc\] not ready after/);
    expect(err.message).toContain('(last error: connect ECONNREFUSED probe-marker)');
    expect(err.message).toContain('starting-marker');
    expect(proc.running).toBe(true);
  });

  it('times out without a process too, quoting the given log file', async () => {
    const logFile = procs.file('external.log');
    fs.writeFileSync(logFile, 'external-marker\n');
    const err = await rejection(waitUntilReady(undefined, 'postgresql', async () => false, 500));
    expect(err.message).toMatch(/^\[postgresql\] not ready after/);
    const withLog = await rejection(
      waitUntilReady(undefined, 'postgresql', async () => false, 300, logFile),
    );
    expect(withLog.message).toContain('external-marker');
  });

  // A check that hangs (e.g. fetch() against a port that accepts but never answers) must not
  // outlive the deadline.
  it('enforces its timeout even when a check never settles', { timeout: 5_000 }, async () => {
    const outcome = await Promise.race([
      waitUntilReady(undefined, 'hung-check', () => new Promise<boolean>(() => {}), 500).then(
        () => 'resolved',
        (e: unknown) => e,
      ),
      delay(3_000).then(() => 'still waiting after 3 s'),
    ]);
    expect(outcome).toBeInstanceOf(ComponentError);
  });
});

describe('ManagedProcess.stop', () => {
  it('stops the whole process group, children included', async () => {
    const proc = spawnSh('tree', 'sleep 300 & sleep 300');
    const pgid = proc.pid!;
    // The shell and both sleeps, all in the group led by the shell.
    expect(await waitFor(() => groupMembers(pgid).length >= 3, 5_000)).toBe(true);
    const members = groupMembers(pgid);
    expect(members).toContain(pgid);

    const t = Date.now();
    await proc.stop(10_000);
    // SIGTERM was enough: no wait for the grace period.
    expect(Date.now() - t).toBeLessThan(5_000);
    expect(proc.running).toBe(false);
    expect(proc.exitSignal).toBe('SIGTERM');
    expect(await waitFor(() => members.every((pid) => !alive(pid)), 10_000)).toBe(true);
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace period', async () => {
    const proc = spawnSh('stubborn', 'trap "" TERM; sleep 300 & sleep 300');
    const pgid = proc.pid!;
    expect(await waitFor(() => groupMembers(pgid).length >= 3, 5_000)).toBe(true);
    const members = groupMembers(pgid);

    const t = Date.now();
    await proc.stop(300);
    const elapsed = Date.now() - t;
    expect(elapsed).toBeGreaterThanOrEqual(300);
    expect(elapsed).toBeLessThan(5_000);
    expect(proc.exitSignal).toBe('SIGKILL');
    expect(await waitFor(() => members.every((pid) => !alive(pid)), 10_000)).toBe(true);
  });

  it('also stops the children of a leader that already exited', async () => {
    const proc = spawnSh('orphaning', 'sleep 300 & exit 0');
    const pgid = proc.pid!;
    await proc.exited;
    expect(await waitFor(() => groupMembers(pgid).length >= 1, 5_000)).toBe(true);
    const members = groupMembers(pgid);

    await proc.stop(300);
    expect(await waitFor(() => members.every((pid) => !alive(pid)), 3_000)).toBe(true);
  });
});

describe('CPU priority', () => {
  /** The niceness of every thread of every process in the group, as tid -> nice. */
  const threadNiceness = (pgid: number): Map<number, number> =>
    new Map(
      groupMembers(pgid).flatMap((pid) =>
        fs
          .readdirSync(`/proc/${pid}/task`)
          .map((tid) => [Number(tid), os.getPriority(Number(tid))] as const),
      ),
    );
  // A process with several threads (node) and a child in its group (sleep).
  const script = `sleep 300 & exec ${JSON.stringify(process.execPath)} -e "setInterval(() => {}, 1000)"`;
  const hasAutogroups = autogroupNiceness(process.pid) !== undefined;

  it('starts a background process at normal priority and lowers every thread and its autogroup once it is ready', async () => {
    const ownAutogroup = autogroupNiceness(process.pid);
    const proc = spawnSh('background', script, 'idle');
    const pgid = proc.pid!;
    expect(await waitFor(() => threadNiceness(pgid).size >= 4, 5_000)).toBe(true);
    // While it starts: normal, so a busy machine cannot keep it from getting ready.
    expect([...new Set(threadNiceness(pgid).values())]).toEqual([0]);
    if (hasAutogroups) expect(autogroupNiceness(pgid)).toBe(0);

    await waitUntilReady(proc, 'background', async () => true, 5_000);
    const after = threadNiceness(pgid);
    expect(after.size).toBeGreaterThanOrEqual(4);
    expect([...new Set(after.values())]).toEqual([IDLE_NICENESS]);
    if (hasAutogroups) expect(autogroupNiceness(pgid)).toBe(IDLE_NICENESS);
    expect(proc.priorityChange?.errors).toEqual([]);
    expect(proc.priorityNote).toContain(`nice ${IDLE_NICENESS}`);
    // The runner's own session is untouched.
    expect(autogroupNiceness(process.pid)).toBe(ownAutogroup);
  });

  it('keeps a held process at normal priority through readiness until it is released', async () => {
    const proc = spawnSh('held', script, 'idle');
    proc.holdPriority = true;
    const pgid = proc.pid!;
    await waitUntilReady(proc, 'held', async () => true, 5_000);
    expect(await waitFor(() => threadNiceness(pgid).size >= 4, 5_000)).toBe(true);
    expect([...new Set(threadNiceness(pgid).values())]).toEqual([0]);
    expect(proc.priorityNote).toBe('');

    proc.holdPriority = false;
    await proc.enterRunPriority();
    expect([...new Set(threadNiceness(pgid).values())]).toEqual([IDLE_NICENESS]);
    if (hasAutogroups) expect(autogroupNiceness(pgid)).toBe(IDLE_NICENESS);
  });

  it('leaves a process at normal priority alone', async () => {
    const proc = spawnSh('foreground', script, 'normal');
    const pgid = proc.pid!;
    await waitUntilReady(proc, 'foreground', async () => true, 5_000);
    expect(await waitFor(() => threadNiceness(pgid).size >= 4, 5_000)).toBe(true);
    expect([...new Set(threadNiceness(pgid).values())]).toEqual([0]);
    if (hasAutogroups) expect(autogroupNiceness(pgid)).toBe(0);
    expect(proc.priorityNote).toBe('');
  });

  it('parses BACKGROUND_PRIORITY and describes it as a weight taken once ready', () => {
    expect(parseCpuPriority(' IDLE ', 'BACKGROUND_PRIORITY')).toBe('idle');
    expect(parseCpuPriority('10', 'BACKGROUND_PRIORITY')).toBe(10);
    expect(parseCpuPriority('normal', 'BACKGROUND_PRIORITY')).toBe('normal');
    expect(() => parseCpuPriority('-1', 'BACKGROUND_PRIORITY')).toThrow(/BACKGROUND_PRIORITY/);
    expect(describeCpuPriority('idle')).toMatch(new RegExp(`^nice ${IDLE_NICENESS} .*once ready`));
    expect(describeCpuPriority(19)).toMatch(/^nice 19 /);
    expect(describeCpuPriority(0)).toBe('normal');
  });
});
