/**
 * The suite runs on a supported Node, and so does everything it spawns: npm
 * test and .ci/run put the pinned Node first on PATH (scripts/with-node.sh),
 * so `node`, `npx`/bin shims and process.execPath all reach the same binary.
 * A run on another Node (e.g. `npx vitest` on the machine's EOL Node 20)
 * fails here with the command to use instead.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_RUNTIMES, satisfiesLine } from '../scripts/provision-node.mjs';

const root = path.resolve(import.meta.dirname, '..');
const engines = (
  JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    engines: { node: string };
  }
).engines.node;

/** The `^X.Y.Z` alternatives of `engines.node`, as [line, minimum]. */
const engineLines = engines.split('||').map((alt) => {
  const m = /^\s*\^(\d+)\.(\d+\.\d+)\s*$/.exec(alt);
  if (!m) throw new Error(`engines.node alternative "${alt}" is not of the form ^X.Y.Z`);
  return [m[1]!, `${m[1]}.${m[2]}`] as const;
});

function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 30_000 });
  expect(r.status, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout.trim();
}

describe('the Node runtime', () => {
  it('is a line that package.json engines allow, pinned by the provisioning at its minimum or later', () => {
    expect(Object.fromEntries(engineLines)).toEqual(
      Object.fromEntries(Object.entries(NODE_RUNTIMES).map(([line, r]) => [line, r.minimum])),
    );
    for (const [line, runtime] of Object.entries(NODE_RUNTIMES))
      expect(satisfiesLine(runtime.version, line), `${runtime.version} is a ${line}`).toBe(true);
    const line = process.versions.node.split('.')[0]!;
    expect(
      satisfiesLine(process.version, line),
      `the tests run on Node ${process.version}, outside engines "${engines}": run them with npm test, or bash scripts/with-node.sh npx vitest run <file>`,
    ).toBe(true);
  });

  it('runs on the line ORDERFLOW_NODE_LINE asks for (24 by default)', () => {
    expect(process.versions.node.split('.')[0]).toBe(process.env.ORDERFLOW_NODE_LINE ?? '24');
  });

  it('is the Node that spawned processes get: process.execPath, `node` on PATH and the tsx shim', () => {
    const probe = ['-e', 'process.stdout.write(process.version)'];
    expect(versionOf(process.execPath, probe)).toBe(process.version);
    expect(versionOf('node', probe)).toBe(process.version);
    // How the stack starts the API and the workers (`node --import tsx <entry>`), and a bin shim.
    expect(versionOf('node', ['--import', 'tsx', ...probe])).toBe(process.version);
    expect(versionOf(path.join(root, 'node_modules/.bin/tsx'), probe)).toBe(process.version);
  });
});
