/**
 * Child processes a test file starts (scripts/lib/process.ts): a scratch
 * folder for their logs, and every process group SIGKILLed after each test,
 * so a failed test leaves nothing running. Call at the top of the file; an
 * afterEach the file registers later runs before these kills (vitest runs
 * hooks as a stack).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { ManagedProcess, signalGroup, type SpawnSpec } from '../../scripts/lib/process.ts';

export interface TestProcesses {
  /** A path in this file's scratch folder (once the file's tests run). */
  file(name: string): string;
  /** The processes started in the current test (emptied after each). */
  readonly started: ManagedProcess[];
  /** Starts `spec` and tracks it. */
  start(spec: SpawnSpec): ManagedProcess;
  /** Tracks a process started some other way. */
  track(proc: ManagedProcess): ManagedProcess;
}

export function useTestProcesses(prefix: string): TestProcesses {
  let scratch = '';
  const started: ManagedProcess[] = [];
  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), `orderflow-${prefix}-test-`));
  });
  afterEach(async () => {
    for (const proc of started.splice(0)) {
      if (proc.pid !== undefined) signalGroup(proc.pid, 'SIGKILL');
      await proc.exited;
    }
  });
  afterAll(() => {
    fs.rmSync(scratch, { recursive: true, force: true });
  });
  const track = (proc: ManagedProcess) => {
    started.push(proc);
    return proc;
  };
  return {
    file: (name) => path.join(scratch, name),
    started,
    start: (spec) => track(new ManagedProcess(spec)),
    track,
  };
}
