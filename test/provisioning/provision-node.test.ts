/**
 * Provisioning of the pinned Node (scripts/provision-node.mjs) against a
 * scratch cache: the registry package is installed and verified, a second run
 * only checks, a truncated binary is installed again, and a package whose
 * sha512 is not the pinned one is refused without leaving anything behind.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_RUNTIMES, installNode } from '../../scripts/provision-node.mjs';

const { version } = NODE_RUNTIMES['24'];

describe('Node provisioning (against a scratch cache)', () => {
  let scratch: string;
  const logs: string[] = [];
  const log = (m: string) => void logs.push(m);

  beforeAll(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-node-test-'));
  });
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it('installs the pinned Node 24 from the registry, verified, and a second run only checks', () => {
    const bin = installNode({ line: '24', cacheDir: scratch, log });
    expect(bin).toBe(path.join(scratch, 'node', `${version}-linux-${process.arch}`, 'bin'));
    const v = spawnSync(path.join(bin, 'node'), ['--version'], { encoding: 'utf8' });
    expect(v.stdout.trim()).toBe(`v${version}`);
    expect(logs.some((l) => l.includes(`installing Node.js ${version}`))).toBe(true);
    logs.length = 0;
    expect(installNode({ line: '24', cacheDir: scratch, log })).toBe(bin);
    expect(logs).toEqual([]);
  }, 180_000);

  it('installs it again when the cached binary was truncated', () => {
    const node = path.join(scratch, 'node', `${version}-linux-${process.arch}`, 'bin', 'node');
    const size = fs.statSync(node).size;
    fs.truncateSync(node, 1024);
    logs.length = 0;
    installNode({ line: '24', cacheDir: scratch, log });
    expect(fs.statSync(node).size).toBe(size);
    expect(logs.some((l) => l.includes(`installing Node.js ${version}`))).toBe(true);
  }, 180_000);

  it('refuses a package whose sha512 is not the pinned one and leaves nothing in the cache', () => {
    const other = fs.mkdtempSync(path.join(scratch, 'tampered-'));
    const wrong = `sha512-${Buffer.alloc(64).toString('base64')}`;
    expect(() => installNode({ line: '24', cacheDir: other, integrity: wrong })).toThrow(
      /does not match the pinned sha512-AAAA/,
    );
    expect(fs.readdirSync(path.join(other, 'node'))).toEqual([]);
  }, 180_000);
});
