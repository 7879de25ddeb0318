/**
 * Stack.stop: processes stop one by one in reverse start order, except that
 * neighbours of one stop group (SpawnSpec.stopGroup: a quorum's nodes) stop
 * together, so none is left to shut down alone after the others.
 */
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { Stack, tmpStackDir, type StackPorts } from '../../scripts/lib/stack.ts';
import type { Tools } from '../../scripts/lib/tools.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A shell that takes `ms` to exit after SIGTERM, and writes when it got it. */
function slowToStop(stack: Stack, name: string, ms: number, stopGroup?: string) {
  const script = `trap 'echo "$(date +%s%3N)" > ${stack.opts.dataDir}/${name}.term; sleep ${ms / 1000}; exit 0' TERM; while :; do sleep 0.05; done`;
  return stack.spawn(name, 'bash', ['-c', script], stopGroup ? { stopGroup } : {});
}

describe('Stack.stop', () => {
  it('stops a stop group together and the others one by one, in reverse start order', async () => {
    const dataDir = tmpStackDir();
    dirs.push(dataDir);
    const stack = new Stack({
      dataDir,
      ports: {} as StackPorts,
      tools: {} as Tools,
      ephemeral: false,
    });
    slowToStop(stack, 'first', 300);
    for (const id of [1, 2, 3]) slowToStop(stack, `node-${id}`, 1_000, 'quorum');
    slowToStop(stack, 'last', 300);
    await new Promise((r) => setTimeout(r, 500));

    const t = Date.now();
    await stack.stop();
    const elapsed = Date.now() - t;
    const termAt = (name: string) =>
      Number(fs.readFileSync(`${dataDir}/${name}.term`, 'utf8').trim());

    // last, then the three nodes at once (about 1 s, not 3 s), then first.
    expect(elapsed).toBeLessThan(2_800);
    const nodes = [1, 2, 3].map((id) => termAt(`node-${id}`));
    expect(Math.max(...nodes) - Math.min(...nodes)).toBeLessThan(500);
    expect(Math.min(...nodes)).toBeGreaterThanOrEqual(termAt('last') + 250);
    expect(termAt('first')).toBeGreaterThanOrEqual(Math.max(...nodes) + 900);
  }, 20_000);
});
