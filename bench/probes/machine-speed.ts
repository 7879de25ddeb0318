/**
 * The machine's speed, sampled beside a bench run (bench/lib/machine-speed.ts
 * starts it): every 2 s a fixed arithmetic loop that stays in the L1 cache and
 * a fixed walk of dependent random reads over 64 MiB that misses the caches,
 * each timed by this process's own CPU time (waiting for a CPU does not count;
 * a slower core, a busy sibling hyperthread or contention for caches and
 * memory does). One JSON line per sample on stdout: { at, aluMs, memMs }.
 * About 2.5% of a core. Ends after `maxS` seconds (argv[2]) or when its parent
 * is gone.
 */
const maxS = Number(process.argv[2] ?? 3600);
const INTERVAL_MS = 2000;
const parent = process.ppid;

function alu(): number {
  let x = 0;
  for (let i = 0; i < 3_000_000; i++) x = (x + i * 7) % 1_000_003;
  return x;
}

const N = 16 * 1024 * 1024; // 64 MiB of Int32
const next = new Int32Array(N);
for (let i = 0; i < N; i++) next[i] = (Math.imul(i, 0x9e3779b1) >>> 0) % N;

function mem(): number {
  let j = 0;
  let s = 0;
  for (let i = 0; i < 400_000; i++) {
    j = (next[j]! ^ (i & 1023)) % N;
    s += j;
  }
  return s;
}

function cpuMs(work: () => number): number {
  const c0 = process.cpuUsage();
  work();
  const c = process.cpuUsage(c0);
  return Math.round((c.user + c.system) / 100) / 10;
}

alu();
mem();
const until = Date.now() + maxS * 1000;
const timer = setInterval(() => {
  if (Date.now() > until || process.ppid !== parent) {
    clearInterval(timer);
    return;
  }
  process.stdout.write(
    `${JSON.stringify({ at: Date.now(), aluMs: cpuMs(alu), memMs: cpuMs(mem) })}\n`,
  );
}, INTERVAL_MS);
