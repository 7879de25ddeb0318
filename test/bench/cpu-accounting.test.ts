import { describe, expect, it } from 'vitest';
import type { ManagedProcess } from '../../scripts/lib/process.ts';
import {
  cpuMsPer,
  cpuMsPerOrder,
  cpuPerOrderTable,
  isOrderflowApp,
  isPeerApp,
} from '../../bench/lib/cpu-per-order.ts';
import {
  busyTicks,
  coresFromTicks,
  mainThread,
  owners,
  parseStat,
  ticksBetween,
  type ProcInfo,
  type Snapshot,
} from '../../bench/lib/proc-stats.ts';

const snapshot = (at: number, procs: [number, Partial<ProcInfo>][] = []): Snapshot => ({
  at,
  busy: 0,
  procs: new Map(
    procs.map(([pid, p]) => [
      pid,
      { ppid: 1, pgrp: pid, ticks: 0, childTicks: 0, rssKiB: 0, ...p },
    ]),
  ),
  sched: new Map(),
});

describe('CPU from /proc', () => {
  it('reads ppid, pgrp and the four tick counters after a command with spaces and parentheses', () => {
    const stat = '4242 (node (worker) x) S 17 4242 4242 0 -1 4194304 1 0 0 0 100 50 7 3 20 0 11 0';
    expect(parseStat(stat)).toEqual({ ppid: 17, pgrp: 4242, ticks: 160, childTicks: 10 });
  });

  it('counts the machine busy without idle and iowait', () => {
    expect(busyTicks('cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n')).toBe(160);
  });

  it('turns tick deltas into cores per process, the machine and everything else', () => {
    // 2 s at 100 ticks/s: 100 ticks are half a core.
    const cores = coresFromTicks({ api: 100, temporal: 200, loadgen: 20 }, 500, 2, 100, {
      machine: 'total',
    });
    expect(cores).toEqual({ api: 0.5, temporal: 1, loadgen: 0.1, total: 2.5, other: 0.9 });
    // Others never go below zero (tick counters are sampled a moment apart).
    expect(coresFromTicks({ api: 300 }, 200, 1, 100).other).toBe(0);
    expect(coresFromTicks({}, 100, 1, 100)).toEqual({ machine: 1, other: 1 });
  });

  it('gives each pid to the stack process whose group or tree it is in, the runner its own', () => {
    const stack = [
      { name: 'postgresql', pid: 100, running: true },
      { name: 'api', pid: 200, running: true },
      { name: 'gone', pid: 300, running: false },
    ] as unknown as ManagedProcess[];
    const snap = snapshot(0, [
      [100, {}],
      [101, { ppid: 100, pgrp: 101 }], // a backend in a session of its own
      [201, { ppid: 999, pgrp: 200 }], // reparented, still in the API's group
      [301, { ppid: 300, pgrp: 300 }], // under a stopped process
      [process.pid, { pgrp: 1 }],
      [555, {}], // someone else's
    ]);
    expect(Object.fromEntries(owners(snap, stack, 'loadgen'))).toEqual({
      100: 'postgresql',
      101: 'postgresql',
      201: 'api',
      [process.pid]: 'loadgen',
    });
  });

  it('counts an exited child only for its time inside the window, on its parent', () => {
    const stack = [{ name: 'postgresql', pid: 100, running: true }] as unknown as ManagedProcess[];
    // Backend 101 had used 500 ticks before the window, 30 more in it, then exited and was
    // reaped: the postmaster's cutime grew by its whole life (530).
    const a = snapshot(0, [
      [100, { ticks: 1000, childTicks: 400 }],
      [101, { ppid: 100, pgrp: 101, ticks: 500 }],
      [102, { ppid: 100, pgrp: 102, ticks: 70 }],
    ]);
    const b = snapshot(1000, [
      [100, { ticks: 1000 + 10 + 530, childTicks: 400 + 530 }],
      [102, { ppid: 100, pgrp: 102, ticks: 90 }],
    ]);
    // 10 of its own, 30 of 101 in the window, 20 of 102.
    expect(ticksBetween(a, b, stack)).toEqual({ postgresql: 60 });
    // Not reaped into the parent (e.g. reaped by init): nothing is taken back from the parent.
    const c = snapshot(1000, [
      [100, { ticks: 1010, childTicks: 400 }],
      [102, { ppid: 100, pgrp: 102, ticks: 90 }],
    ]);
    expect(ticksBetween(a, c, stack)).toEqual({ postgresql: 30 });
  });

  it("gives a watched main thread's share of time on a CPU and waiting for one", () => {
    const a = snapshot(0);
    const b = snapshot(1000);
    a.sched.set(7, [0, 0]);
    b.sched.set(7, [250e6, 50e6]);
    expect(mainThread(a, b, 7)).toEqual({ onCpu: 0.25, waitingForCpu: 0.05 });
    expect(mainThread(a, b, 8)).toBeNull();
    expect(mainThread(a, b, undefined)).toBeNull();
  });
});

describe('CPU per completed order', () => {
  const cores = {
    temporal: 1,
    api: 0.25,
    relay: 0.05,
    'worker-orders': 0.2,
    'consumer-analytics': 0.1,
    postgresql: 0.4,
    kafka: 0.2,
    maildev: 0.3,
    runner: 0.5,
    redis: 0.6,
    'peer-api': 0.2,
  };

  it('tells the app processes of each system apart', () => {
    expect(['api', 'relay', 'worker-email', 'consumer-inventory'].every(isOrderflowApp)).toBe(true);
    expect(['temporal', 'postgresql', 'peer-api', 'runner'].some(isOrderflowApp)).toBe(false);
    expect(isPeerApp('peer-worker-email')).toBe(true);
    expect(isPeerApp('api')).toBe(false);
  });

  it('is cores × seconds × 1000 ÷ orders, NaN without orders', () => {
    // 0.4 cores for 10 s over 100 orders: 40 ms each.
    expect(cpuMsPer(cores, 10, 100, (k) => k === 'postgresql')).toBe(40);
    expect(cpuMsPer(cores, 10, 0, () => true)).toBeNaN();
  });

  it('splits broker, app, PostgreSQL and Kafka, leaving out the runner, maildev and the other system', () => {
    expect(cpuMsPerOrder('orderflow', cores, 10, 100)).toEqual({
      broker: 100,
      app: 60,
      postgresql: 40,
      kafka: 20,
      total: 220,
    });
    expect(cpuMsPerOrder('peer', cores, 10, 100)).toEqual({
      broker: 60,
      app: 20,
      postgresql: 40,
      kafka: 20,
      total: 140,
    });
  });

  it('renders one markdown row per run, "–" where a value is missing', () => {
    const table = cpuPerOrderTable([
      {
        name: 'orderflow sustained',
        system: 'orderflow',
        orders: 100,
        perOrder: { broker: 100, app: 60, postgresql: 40, kafka: 20, total: 220 },
      },
      {
        name: 'empty',
        system: 'peer',
        orders: 0,
        perOrder: { broker: NaN, app: NaN, postgresql: NaN, kafka: NaN, total: NaN },
      },
    ]);
    expect(table).toHaveLength(4);
    expect(table[2]).toBe(
      '| orderflow sustained | 100 | 100.00 | 60.00 | 40.00 | 20.00 | **220.00** |',
    );
    expect(table[3]).toBe('| empty | 0 | – | – | – | – | **–** |');
  });
});
