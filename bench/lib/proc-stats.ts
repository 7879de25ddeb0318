/**
 * CPU and resident memory per stack process, read from /proc: snapshots of
 * every process's ticks (and VmRSS, and the scheduler's run/wait time of
 * chosen main threads), the stack process each pid belongs to, and the cores
 * used between two snapshots per stack process, by the runner, by the whole
 * machine and by everything else.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { delay, type ManagedProcess } from '../../scripts/lib/process.ts';
import { round } from './stats.ts';

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
export const CLK_TCK = clockTicks();

/** What the /proc accounting needs of a stack process: a ManagedProcess, or a pid file's entry. */
export type ProcessRef = Pick<ManagedProcess, 'pid' | 'name' | 'running'>;

export interface ProcInfo {
  ppid: number;
  pgrp: number;
  /** utime + stime + cutime + cstime */
  ticks: number;
  /** cutime + cstime: what its reaped children used in their whole lives. */
  childTicks: number;
  rssKiB: number;
}

export interface Snapshot {
  at: number;
  /** Busy ticks of the whole machine (all but idle and iowait). */
  busy: number;
  procs: Map<number, ProcInfo>;
  /** Main thread of each watched process: ns on CPU and ns runnable but waiting. */
  sched: Map<number, [number, number]>;
}

/** The fields of /proc/<pid>/stat after the command (which may hold spaces and parentheses). */
export function parseStat(stat: string): Omit<ProcInfo, 'rssKiB'> {
  // state(3) ppid(4) pgrp(5) ... utime(14) stime(15) cutime(16) cstime(17)
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
    childTicks: Number(f[13]) + Number(f[14]),
  };
}

/** Busy ticks from the first line of /proc/stat: the total minus idle and iowait. */
export function busyTicks(procStat: string): number {
  const v = procStat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return total - (v[3] ?? 0) - (v[4] ?? 0);
}

/** Every process's ticks (with `rss`, its VmRSS too), and the schedstat of `schedPids`. */
export function procSnapshot(opts: { rss?: boolean; schedPids?: Iterable<number> } = {}): Snapshot {
  const procs = new Map<number, ProcInfo>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const info = parseStat(fs.readFileSync(`/proc/${entry}/stat`, 'utf8'));
      let rssKiB = 0;
      if (opts.rss) {
        const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'));
        rssKiB = m ? Number(m[1]) : 0;
      }
      procs.set(Number(entry), { ...info, rssKiB });
    } catch {
      /* exited meanwhile */
    }
  }
  const sched = new Map<number, [number, number]>();
  for (const pid of opts.schedPids ?? []) {
    try {
      const [run, wait] = fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
      sched.set(pid, [run ?? 0, wait ?? 0]);
    } catch {
      /* gone */
    }
  }
  return { at: Date.now(), busy: busyTicks(fs.readFileSync('/proc/stat', 'utf8')), procs, sched };
}

/**
 * Which stack process each pid belongs to: the process group of a stack
 * process or its descendants (PostgreSQL backends leave the group, not the
 * tree); this runner is `runner`.
 */
export function owners(
  snap: Snapshot,
  procs: ProcessRef[],
  runner = 'runner',
): Map<number, string> {
  const roots = new Map<number, string>([[process.pid, runner]]);
  for (const p of procs) if (p.pid !== undefined && p.running) roots.set(p.pid, p.name);
  const out = new Map<number, string>();
  for (const [pid, info] of snap.procs) {
    let name = roots.get(info.pgrp);
    for (let cur: number | undefined = pid, i = 0; !name && cur && cur > 1 && i < 32; i++) {
      name = roots.get(cur);
      cur = snap.procs.get(cur)?.ppid;
    }
    if (name) out.set(pid, name);
  }
  return out;
}

export function rssByOwner(snap: Snapshot, procs: ManagedProcess[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pid, name] of owners(snap, procs))
    out[name] = (out[name] ?? 0) + (snap.procs.get(pid)?.rssKiB ?? 0);
  return out;
}

/** What the runner and the whole machine are called in a cores record (each report has its words). */
export interface CoreLabels {
  /** This process, the load generator (default "runner"). */
  runner?: string;
  /** Every busy tick of the machine (default "machine"). */
  machine?: string;
}

/**
 * Cores used per stack process, by this runner, by the whole machine and by
 * everything else ("other"), from tick deltas: ticks ÷ CLK_TCK ÷ seconds.
 */
export function coresFromTicks(
  ticks: Record<string, number>,
  machineTicks: number,
  seconds: number,
  clkTck: number,
  labels: CoreLabels = {},
): Record<string, number> {
  const cores = (t: number) => round(t / clkTck / seconds, 2);
  const out: Record<string, number> = {};
  let ours = 0;
  for (const [name, t] of Object.entries(ticks)) {
    out[name] = cores(t);
    ours += t;
  }
  out[labels.machine ?? 'machine'] = cores(machineTicks);
  out.other = cores(Math.max(0, machineTicks - ours));
  return out;
}

/**
 * Ticks per stack process between two snapshots. A process that exits in
 * between hands its whole life's ticks to its parent's cutime when it is
 * reaped (a PostgreSQL backend to the postmaster, a dead app process to the
 * runner); what it had used before `a` is taken back out of the parent's
 * delta (at most what the parent reaped), so only its time inside the window
 * counts, on the parent's owner.
 */
export function ticksBetween(
  a: Snapshot,
  b: Snapshot,
  procs: ProcessRef[],
  runner = 'runner',
): Record<string, number> {
  const ticks: Record<string, number> = {};
  const own = owners(b, procs, runner);
  for (const [pid, name] of own)
    ticks[name] = (ticks[name] ?? 0) + b.procs.get(pid)!.ticks - (a.procs.get(pid)?.ticks ?? 0);
  const before = new Map<number, number>(); // per parent: its exited children's ticks at `a`
  for (const [pid, info] of a.procs)
    if (!b.procs.has(pid)) before.set(info.ppid, (before.get(info.ppid) ?? 0) + info.ticks);
  for (const [ppid, gone] of before) {
    const name = own.get(ppid);
    const x = a.procs.get(ppid);
    const y = b.procs.get(ppid);
    if (!name || !x || !y) continue;
    ticks[name]! -= Math.min(gone, Math.max(0, y.childTicks - x.childTicks));
  }
  return ticks;
}

/** Cores used per stack process, by this runner, by the whole machine and by everything else. */
export function coresBetween(
  a: Snapshot,
  b: Snapshot,
  procs: ManagedProcess[],
  labels: CoreLabels = {},
): Record<string, number> {
  const ticks = ticksBetween(a, b, procs, labels.runner ?? 'runner');
  return coresFromTicks(ticks, b.busy - a.busy, (b.at - a.at) / 1000, CLK_TCK, labels);
}

/** Share of the time a watched process's main thread ran, and was runnable but waited for a CPU. */
export function mainThread(
  a: Snapshot,
  b: Snapshot,
  pid: number | undefined,
): { onCpu: number; waitingForCpu: number } | null {
  const x = pid === undefined ? undefined : a.sched.get(pid);
  const y = pid === undefined ? undefined : b.sched.get(pid);
  if (!x || !y) return null;
  const ns = (b.at - a.at) * 1e6;
  return { onCpu: round((y[0] - x[0]) / ns, 2), waitingForCpu: round((y[1] - x[1]) / ns, 2) };
}

/**
 * Waits (bounded) until the machine outside this bench is quiet: processes
 * that are not the stack's nor this runner's use at most `otherMaxCores`
 * over 3 s. Returns what they used in the last window and how long it waited.
 */
export async function waitForQuiet(
  procs: () => ManagedProcess[],
  phase: string,
  limits: { otherMaxCores: number; quietWaitS: number },
  log: (msg: string) => void,
): Promise<{ otherCores: number; waitedS: number }> {
  const t0 = Date.now();
  for (let i = 0; ; i++) {
    const a = procSnapshot();
    await delay(3000);
    const other = coresBetween(a, procSnapshot(), procs()).other ?? 0;
    const waitedS = Math.round((Date.now() - t0) / 1000);
    if (other <= limits.otherMaxCores) return { otherCores: other, waitedS };
    if (waitedS >= limits.quietWaitS) {
      log(
        `${phase}: other processes still use ${other} cores after ${waitedS} s; measuring anyway`,
      );
      return { otherCores: other, waitedS };
    }
    if (i % 10 === 0)
      log(`${phase}: waiting for the machine to be quiet (other processes use ${other} cores)`);
  }
}

/** Samples RSS every 250 ms and keeps each process's peak for the current phase. */
export class RssSampler {
  private peaks: Record<string, number> = {};
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly procs: () => ManagedProcess[]) {}
  start(): void {
    this.peaks = {};
    const sample = () => {
      const rss = rssByOwner(procSnapshot({ rss: true }), this.procs());
      for (const [k, v] of Object.entries(rss)) this.peaks[k] = Math.max(this.peaks[k] ?? 0, v);
    };
    sample();
    this.timer = setInterval(sample, 250);
  }
  stop(): Record<string, number> {
    clearInterval(this.timer);
    return { ...this.peaks };
  }
}

/** RSS averaged over a few samples a second apart (an idle process still breathes a little). */
export async function idleRss(
  procs: () => ManagedProcess[],
  samples = 4,
): Promise<Record<string, number>> {
  const sum: Record<string, number> = {};
  for (let i = 0; i < samples; i++) {
    for (const [k, v] of Object.entries(rssByOwner(procSnapshot({ rss: true }), procs())))
      sum[k] = (sum[k] ?? 0) + v;
    if (i < samples - 1) await delay(1000);
  }
  return Object.fromEntries(Object.entries(sum).map(([k, v]) => [k, Math.round(v / samples)]));
}
