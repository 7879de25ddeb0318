/**
 * The Node.js that orderflow installs its dependencies with, runs and tests
 * on: a pinned release of a supported line (package.json `engines`), taken
 * from the npm registry's `node-linux-<arch>` packages when the machine's Node
 * is of another line, verified against the pinned sha512 and its own
 * `--version`, and cached like the other tools (ORDERFLOW_CACHE, default
 * ~/.cache/orderflow; a stamp of file sizes; installed aside and renamed
 * into place, so a truncated download is installed again).
 *
 * Plain dependency-free JavaScript on purpose: setup runs it on the machine's
 * Node (any from 18 on), before `npm ci`, to switch to the pinned one.
 *
 *   node scripts/provision-node.mjs [--line 24|22]   prints the folder of that `node`
 *
 * ORDERFLOW_NODE_LINE picks the line too (default 24).
 */
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

/**
 * Pinned releases per supported line, with the registry's sha512 of each
 * package (`npm view node-linux-<arch>@<version> dist.integrity`).
 * 24: Active LTS, what the suite and the image run. 22: maintenance LTS until
 * 2027-04-30, kept in `engines` and tested on the unit tier.
 */
export const NODE_RUNTIMES = {
  24: {
    version: '24.22.3',
    minimum: '24.11.0',
    integrity: {
      x64: 'sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==',
      arm64:
        'sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==',
    },
  },
  22: {
    version: '22.23.5',
    minimum: '22.12.0',
    integrity: {
      x64: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
      arm64:
        'sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==',
    },
  },
};

export const DEFAULT_LINE = '24';

const STAMP = '.orderflow-ok';

const cacheRoot = () =>
  process.env.ORDERFLOW_CACHE ?? path.join(os.homedir(), '.cache', 'orderflow');

/** [major, minor, patch] of "v24.1.0" or "24.1.0". */
const parse = (v) => v.replace(/^v/, '').split('.').map(Number);

/** Whether `version` is of `line` and at least its minimum. */
export function satisfiesLine(version, line) {
  const runtime = NODE_RUNTIMES[line];
  if (!runtime) return false;
  const [major, minor, patch] = parse(version);
  const [, minMinor, minPatch] = parse(runtime.minimum);
  return String(major) === line && (minor > minMinor || (minor === minMinor && patch >= minPatch));
}

function isInstalled(dir) {
  try {
    const stamp = JSON.parse(fs.readFileSync(path.join(dir, STAMP), 'utf8'));
    return Object.entries(stamp.files).every(
      ([f, size]) => fs.statSync(path.join(dir, f)).size === size,
    );
  } catch {
    return false;
  }
}

function sri(file) {
  return `sha512-${createHash('sha512').update(fs.readFileSync(file)).digest('base64')}`;
}

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.status !== 0 || r.error)
    throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? ''}${r.stderr ?? ''}`);
  return r.stdout.trim();
}

/**
 * Installs the pinned Node of `line` into the cache unless it is there and
 * returns the folder of its `node` binary. `integrity` overrides the pin
 * (tests prove a mismatch is refused).
 */
export function installNode({
  line = DEFAULT_LINE,
  cacheDir = cacheRoot(),
  log = () => {},
  integrity,
} = {}) {
  const runtime = NODE_RUNTIMES[line];
  if (!runtime)
    throw new Error(`Node ${line} is not a supported line (${Object.keys(NODE_RUNTIMES)})`);
  const arch = process.arch;
  const expected = integrity ?? runtime.integrity[arch];
  if (process.platform !== 'linux' || !expected)
    throw new Error(
      `no pinned Node ${runtime.version} for ${process.platform}-${arch}. Fix: install Node ${line} (>= ${runtime.minimum}) and put it first on PATH.`,
    );
  const pkg = `node-linux-${arch}@${runtime.version}`;
  const dir = path.join(cacheDir, 'node', `${runtime.version}-linux-${arch}`);
  const bin = path.join(dir, 'bin');
  if (isInstalled(dir)) return bin;
  log(`installing Node.js ${runtime.version} (npm ${pkg}) into ${dir}`);
  const started = Date.now();
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = fs.mkdtempSync(`${dir}.partial-`);
  try {
    fs.chmodSync(tmp, 0o755);
    const packed = JSON.parse(
      run('npm', ['pack', pkg, '--json', '--silent', '--pack-destination', tmp], tmp),
    );
    const tgz = path.join(tmp, packed[0].filename);
    const actual = sri(tgz);
    if (actual !== expected)
      throw new Error(`${pkg}: sha512 ${actual} does not match the pinned ${expected}`);
    run('tar', ['-xzf', tgz, '--strip-components=1', 'package/bin/node', 'package/LICENSE'], tmp);
    fs.rmSync(tgz);
    const v = run(path.join(tmp, 'bin', 'node'), ['--version']);
    if (v !== `v${runtime.version}`) throw new Error(`${pkg}: bin/node --version says ${v}`);
    fs.writeFileSync(
      path.join(tmp, STAMP),
      JSON.stringify({
        source: `npm ${pkg}`,
        integrity: expected,
        version: v,
        files: { 'bin/node': fs.statSync(path.join(tmp, 'bin', 'node')).size },
        at: new Date().toISOString(),
      }),
    );
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  log(`Node.js ${runtime.version} ready (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return bin;
}

/**
 * The folder of the `node` to use for `line`: the running one's when it is of
 * that line (a machine with Node 24 LTS downloads nothing), else the pinned one.
 */
export function nodeFor(line = DEFAULT_LINE, log = () => {}) {
  if (satisfiesLine(process.version, line)) return path.dirname(process.execPath);
  return installNode({ line, log });
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--line');
  const line = i > 0 ? process.argv[i + 1] : (process.env.ORDERFLOW_NODE_LINE ?? DEFAULT_LINE);
  try {
    process.stdout.write(`${nodeFor(line, (m) => console.error(`[setup] ${m}`))}\n`);
  } catch (e) {
    console.error(`[setup] FAILED [node] ${e.message}`);
    process.exit(1);
  }
}
