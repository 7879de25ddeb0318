/**
 * The `idle` background yields to the request path while it works: its
 * autogroup drops to the busy niceness when the watched process uses CPU and
 * goes back to the quiet one once that has been idle for the calm period.
 */
import { describe, expect, it } from 'vitest';
import { PriorityGovernor } from '../../scripts/lib/priority-governor.ts';
import {
  IDLE_BUSY_NICENESS,
  IDLE_NICENESS,
  type ManagedProcess,
  autogroupNiceness,
  delay,
  waitUntilReady,
} from '../../scripts/lib/process.ts';
import { useTestProcesses } from '../support/processes.ts';

const procs = useTestProcesses('governor');

function spawn(name: string, args: string[], priority: 'idle' | 'normal'): ManagedProcess {
  return procs.start({
    name,
    command: process.execPath,
    args,
    logFile: procs.file(`${name}.log`),
    priority,
  });
}

describe.skipIf(autogroupNiceness(process.pid) === undefined)('PriorityGovernor', () => {
  it("drops an idle background's autogroup while the API works and restores it once the API is calm", async () => {
    // The "API": busy for its first second, idle afterwards.
    const api = spawn(
      'api',
      ['-e', 'const t = Date.now(); while (Date.now() - t < 1000) {} setInterval(() => {}, 1000);'],
      'normal',
    );
    const background = spawn('worker', ['-e', 'setInterval(() => {}, 1000)'], 'idle');
    await waitUntilReady(background, 'worker', async () => true, 5_000);
    expect(autogroupNiceness(background.pid!)).toBe(IDLE_NICENESS);

    const governor = new PriorityGovernor({
      watched: () => [api.pid!],
      background: () => [background.pid!],
      quiet: IDLE_NICENESS,
      busy: IDLE_BUSY_NICENESS,
      // Low, so a loaded test machine still counts the loop as work.
      busyCores: 0.05,
      calmMs: 600,
    });
    await governor.tick();
    await delay(300);
    await governor.tick();
    expect(governor.level).toBe('busy');
    expect(autogroupNiceness(background.pid!)).toBe(IDLE_BUSY_NICENESS);

    // The loop ends after 1 s; the background stays low for the calm period, then goes back.
    await delay(1_200);
    await governor.tick();
    const calmFrom = Date.now();
    let level = governor.level;
    while (level === 'busy' && Date.now() - calmFrom < 5_000) {
      await delay(200);
      await governor.tick();
      level = governor.level;
    }
    expect(level).toBe('quiet');
    expect(autogroupNiceness(background.pid!)).toBe(IDLE_NICENESS);
    // The watched process itself is never touched.
    expect(autogroupNiceness(api.pid!)).toBe(0);
  });
});
