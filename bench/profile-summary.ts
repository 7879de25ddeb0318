/**
 * Summarises V8 CPU profiles (.cpuprofile, as bench/cpu-profiler.mjs writes
 * them): the share of sampled CPU time per package (node_modules/<pkg>, the
 * project's own src/, Node's internals, GC, idle) and the top functions by
 * self time, so a profile before and after a change compare in a few lines.
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [more...] [--top 25]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code comes from: a package, the project's source, Node, or a V8 pseudo-frame. */
export function frameOwner(url: string, fn: string): string {
  if (!url)
    return fn === '(garbage collector)' ? 'gc' : fn === '(idle)' ? 'idle' : `(${fn || 'native'})`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node';
  const src = /\/(src|bench|scripts|test)\/(.*?)([^/]+)$/.exec(url);
  if (src) return `${src[1]}/${src[2]}`.replace(/\/$/, '');
  return url;
}

/** Self time (µs) per frame owner and per function, plus the sampled total without idle. */
export function summarise(profile: CpuProfile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) =>
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)),
  );
  const owners = new Map<string, number>();
  const functions = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const { callFrame: f } = byId.get(id)!;
    const owner = frameOwner(f.url, f.functionName);
    if (owner === 'idle' || owner === '(program)') continue;
    busyUs += us;
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const fn = `${f.functionName || '(anonymous)'} ${owner}:${f.lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { busyUs, owners: sorted(owners), functions: sorted(functions) };
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string', default: '25' } },
  });
  const top = Number(values.top);
  for (const file of positionals) {
    const s = summarise(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile);
    const pct = (us: number) => `${((100 * us) / s.busyUs).toFixed(1)}%`;
    console.log(`\n## ${file}\n\nbusy (sampled, without idle): ${(s.busyUs / 1e6).toFixed(2)} s\n`);
    console.log('| where | share of busy |\n|---|--:|');
    for (const [owner, us] of s.owners.slice(0, top)) console.log(`| ${owner} | ${pct(us)} |`);
    console.log('\n| function (self time) | share |\n|---|--:|');
    for (const [fn, us] of s.functions.slice(0, top)) console.log(`| ${fn} | ${pct(us)} |`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
