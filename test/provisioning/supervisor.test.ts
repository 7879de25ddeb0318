/**
 * npm start's supervision on real child processes: a process that dies is
 * named with its signal or exit code and started again after a backoff; one
 * that keeps dying is a crash loop, reported with its name, its exit and the
 * tail of its log; deaths spread out in time are not.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { delay, signalGroup, type ManagedProcess } from '../../scripts/lib/process.ts';
import {
  Supervisor,
  describeExit,
  restartBackoffMs,
  type SupervisorOptions,
} from '../../scripts/lib/supervisor.ts';
import { useTestProcesses } from '../support/processes.ts';

const procs = useTestProcesses('supervisor');
const supervisors: Supervisor[] = [];
// Registered after useTestProcesses, so it runs before its kills: those must not be restarted into the next test.
afterEach(() => {
  for (const supervisor of supervisors.splice(0)) supervisor.stop();
});

function supervised(script: string, opts: Partial<SupervisorOptions> = {}) {
  const first = procs.start({
    name: 'worker-test',
    command: 'sh',
    args: ['-c', script],
    logFile: procs.file(`${Math.random().toString(36).slice(2)}.log`),
  });
  const logs: string[] = [];
  const crashLoops: string[] = [];
  const restarted: ManagedProcess[] = [];
  const supervisor = new Supervisor({
    maxRestarts: 3,
    windowMs: 10_000,
    initialBackoffMs: 50,
    maxBackoffMs: 400,
    respawn: (dead) => procs.start(dead.spec),
    // Ready: still running 300 ms after the spawn.
    ready: async (proc) => {
      await delay(300);
      if (!proc.running)
        throw new Error(
          `exited during start-up (code ${proc.exitCode}, signal ${proc.exitSignal})`,
        );
    },
    onRestarted: (proc) => restarted.push(proc),
    onCrashLoop: (message) => crashLoops.push(message),
    log: (message) => logs.push(message),
    ...opts,
  });
  supervisor.watch(first);
  supervisors.push(supervisor);
  return { first, supervisor, logs, crashLoops, restarted };
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

describe('Supervisor', () => {
  it('restarts a process killed with SIGKILL after naming it and the signal, and watches the new one', async () => {
    const { first, logs, restarted, crashLoops } = supervised('echo serving; sleep 60');
    await until('it serves', () => first.tail().includes('serving'));
    signalGroup(first.pid!, 'SIGKILL');
    await until('a restart', () => restarted.length === 1);
    expect(logs[0]).toMatch(
      new RegExp(
        `^worker-test \\(pid ${first.pid}\\) was killed by SIGKILL; restarting it in 50 ms`,
      ),
    );
    expect(logs[0]).toContain('serving');
    expect(logs[1]).toMatch(/^worker-test restarted \(pid \d+\), ready in/);
    const second = restarted[0]!;
    expect(second.pid).not.toBe(first.pid);
    expect(second.running).toBe(true);

    // The new process is watched too; the second death within the window waits longer.
    signalGroup(second.pid!, 'SIGKILL');
    await until('a second restart', () => restarted.length === 2);
    expect(logs[2]).toMatch(
      /was killed by SIGKILL; restarting it in 100 ms \(death 2 of at most 3/,
    );
    expect(restarted[1]!.running).toBe(true);
    expect(crashLoops).toEqual([]);
  });

  it('stops at a crash loop with a message naming the process, its exit code and its last log lines', async () => {
    const { crashLoops, restarted, logs } = supervised('echo "cannot bind 0.0.0.0:80" >&2; exit 3');
    await until('the crash loop', () => crashLoops.length === 1);
    expect(restarted).toEqual([]);
    expect(logs.filter((l) => l.includes('restarting it in'))).toHaveLength(3);
    expect(crashLoops[0]).toMatch(
      /^worker-test is in a crash loop: it did not start again \(exited during start-up \(code 3, signal null\)\), and died 4 times within 10 s \(at most 3 restarts allowed\)/,
    );
    expect(crashLoops[0]).toContain('cannot bind 0.0.0.0:80');
    // Nothing is restarted after a crash loop.
    await delay(600);
    expect(procs.started.filter((p) => p.running)).toEqual([]);
  });

  it('does not count deaths older than the window', async () => {
    const { first, restarted, crashLoops } = supervised('sleep 60', {
      maxRestarts: 1,
      windowMs: 400,
    });
    let current = first;
    for (let i = 1; i <= 3; i++) {
      await delay(450);
      signalGroup(current.pid!, 'SIGKILL');
      await until(`restart ${i}`, () => restarted.length === i);
      current = restarted[i - 1]!;
    }
    expect(crashLoops).toEqual([]);
    expect(current.running).toBe(true);
  });

  it('restarts nothing once stopped', async () => {
    const { first, supervisor, restarted, logs } = supervised('sleep 60');
    supervisor.stop();
    signalGroup(first.pid!, 'SIGKILL');
    await first.exited;
    await delay(300);
    expect(restarted).toEqual([]);
    expect(logs).toEqual([]);
  });

  it('backs off exponentially up to the cap and describes exits', () => {
    const opts = { initialBackoffMs: 500, maxBackoffMs: 15_000 };
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => restartBackoffMs(n, opts))).toEqual([
      500, 1000, 2000, 4000, 8000, 15_000, 15_000,
    ]);
    expect(describeExit({ exitCode: null, exitSignal: 'SIGKILL' })).toBe('was killed by SIGKILL');
    expect(describeExit({ exitCode: 2, exitSignal: null })).toBe('exited with code 2');
  });
});
