import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  cacheDir,
  SCHEMATHESIS_REQUIREMENTS,
  findPostgresBin,
  provisionSchemathesis,
  provisionTemporalCli,
  schemathesisInstall,
  versions,
} from '../../scripts/lib/tools.ts';

// Resolved before any test points ORDERFLOW_CACHE elsewhere: the cache the global setup filled.
const installedCliDir = path.join(cacheDir(), 'temporal-cli', versions.temporalCli);

describe('Temporal CLI provisioning (against a scratch ORDERFLOW_CACHE)', () => {
  let scratch: string;
  let cliDir: string;
  let bin: string;
  let fullSize: number;
  let logs: string[];
  const log = (msg: string) => void logs.push(msg);
  const saved = {
    ORDERFLOW_CACHE: process.env.ORDERFLOW_CACHE,
    TEMPORAL_CLI_PATH: process.env.TEMPORAL_CLI_PATH,
  };

  beforeEach(() => {
    expect(fs.existsSync(path.join(installedCliDir, 'temporal')), installedCliDir).toBe(true);
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-tools-test-'));
    process.env.ORDERFLOW_CACHE = scratch;
    // An override from the developer's shell would bypass the cache under test.
    delete process.env.TEMPORAL_CLI_PATH;
    cliDir = path.join(scratch, 'temporal-cli', versions.temporalCli);
    bin = path.join(cliDir, 'temporal');
    fullSize = fs.statSync(path.join(installedCliDir, 'temporal')).size;
    logs = [];
  });

  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  const copyInstalledCli = () => fs.cpSync(installedCliDir, cliDir, { recursive: true });

  const expectWorkingCli = () => {
    expect(fs.statSync(bin).size).toBe(fullSize);
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    expect(v.status, v.stderr).toBe(0);
    expect(v.stdout).toContain(`temporal version ${versions.temporalCli}`);
  };

  it('does nothing, quickly, when the cached CLI is intact', () => {
    copyInstalledCli();
    const before = fs.statSync(bin);
    const started = performance.now();
    const result = provisionTemporalCli(log);
    const elapsed = performance.now() - started;

    expect(result).toBe(bin);
    expect(logs).toEqual([]);
    expect(elapsed).toBeLessThan(500);
    // Not reinstalled: the very same file, untouched.
    const after = fs.statSync(bin);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBe(before.mtimeMs);
  });

  it('detects a truncated binary and reinstalls it, despite a leftover partial install', () => {
    copyInstalledCli();
    fs.truncateSync(bin, Math.floor(fullSize / 2));
    // An earlier run killed mid-install leaves its scratch folder next to the real one.
    const leftover = `${cliDir}.partial-Ab12Cd`;
    fs.mkdirSync(leftover);
    fs.writeFileSync(path.join(leftover, 'temporal'), 'half a binary');

    const result = provisionTemporalCli(log);

    expect(result).toBe(bin);
    expect(
      logs.some((l) => l.includes(`installing the Temporal CLI ${versions.temporalCli}`)),
    ).toBe(true);
    expect(logs.some((l) => l.startsWith('Temporal CLI ready'))).toBe(true);
    expectWorkingCli();
    // No scratch folder of this run is left behind (the old leftover may or may not be).
    const siblings = fs.readdirSync(path.dirname(cliDir));
    expect(
      siblings.filter(
        (s) => s.startsWith(`${versions.temporalCli}.partial-`) && s !== path.basename(leftover),
      ),
    ).toEqual([]);

    // The repaired cache now counts as installed.
    logs = [];
    expect(provisionTemporalCli(log)).toBe(bin);
    expect(logs).toEqual([]);
  });

  it('installs when an interrupted first install left only a partial folder', () => {
    fs.mkdirSync(`${cliDir}.partial-Zz99Yy`, { recursive: true });
    fs.writeFileSync(path.join(`${cliDir}.partial-Zz99Yy`, 'temporal'), Buffer.alloc(1024));
    expect(fs.existsSync(cliDir)).toBe(false);

    const result = provisionTemporalCli(log);

    expect(result).toBe(bin);
    expect(logs.some((l) => l.includes('installing the Temporal CLI'))).toBe(true);
    expectWorkingCli();
  });

  it('uses TEMPORAL_CLI_PATH as is, without touching the cache', () => {
    const custom = path.join(scratch, 'elsewhere', 'my-temporal');
    process.env.TEMPORAL_CLI_PATH = custom;

    expect(provisionTemporalCli(log)).toBe(custom);
    expect(logs).toEqual([]);
    expect(fs.existsSync(path.join(scratch, 'temporal-cli'))).toBe(false);
  });
});

describe('findPostgresBin', () => {
  it('returns a folder with runnable initdb and postgres of the same major version', () => {
    const dir = findPostgresBin();
    const major = (tool: string) => {
      const file = path.join(dir, tool);
      fs.accessSync(file, fs.constants.X_OK);
      const r = spawnSync(file, ['--version'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const m = /\(PostgreSQL\) (\d+)/.exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      return m![1];
    };
    expect(major('initdb')).toBe(major('postgres'));
    // The test stack's PostgreSQL was started from the same folder.
    expect(inject('tools').postgresBin).toBe(dir);
  });
});

describe('Schemathesis provisioning', () => {
  const saved = {
    ORDERFLOW_CACHE: process.env.ORDERFLOW_CACHE,
    SCHEMATHESIS_PATH: process.env.SCHEMATHESIS_PATH,
  };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const pinned = () =>
    /^schemathesis==(\S+)$/m.exec(fs.readFileSync(SCHEMATHESIS_REQUIREMENTS, 'utf8'))![1]!;

  it('pins schemathesis and every package it needs to exact versions', () => {
    const lines = fs
      .readFileSync(SCHEMATHESIS_REQUIREMENTS, 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) expect(line).toMatch(/^[A-Za-z0-9._-]+==[\w.!+-]+$/);
  });

  it('answers from the cache, quickly and without logging, once installed', () => {
    delete process.env.SCHEMATHESIS_PATH;
    const st = provisionSchemathesis(() => {}); // installs if the setup did not
    const logs: string[] = [];
    const started = performance.now();
    expect(provisionSchemathesis((m) => logs.push(m))).toBe(st);
    expect(performance.now() - started).toBeLessThan(500);
    expect(logs).toEqual([]);
    const v = spawnSync(st, ['--version'], { encoding: 'utf8' });
    expect(`${v.stdout}${v.stderr}`).toContain(pinned());
  }, 300_000);

  it('rebuilds a venv whose install was interrupted (no stamp)', () => {
    delete process.env.SCHEMATHESIS_PATH;
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-st-test-'));
    try {
      process.env.ORDERFLOW_CACHE = scratch;
      // What a run killed mid-install leaves: a venv folder without the stamp.
      const { dir } = schemathesisInstall();
      fs.mkdirSync(path.join(dir, 'venv', 'bin'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'venv', 'bin', 'st'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
      const logs: string[] = [];
      const st = provisionSchemathesis((m) => logs.push(m));
      expect(st).toBe(path.join(dir, 'venv', 'bin', 'st'));
      expect(logs.some((l) => l.startsWith('installing Schemathesis'))).toBe(true);
      expect(spawnSync(st, ['--version'], { encoding: 'utf8' }).status).toBe(0);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }, 300_000);
});
