/**
 * `--help` of every command: exit code 0, its options, examples and the exit
 * codes; and usage errors exit 2.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, type CliRun } from './run-cli.ts';

const projectRoot = path.resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as {
  version: string;
  bin: { orderflow: string };
};

const commands: [command: string[], options: string[]][] = [
  [
    ['orders', 'list'],
    ['--status <status>', '--limit <n>', '--json'],
  ],
  [['orders', 'show'], ['--json']],
  [
    ['orders', 'retry'],
    ['--all-parked', '--limit <n>', '--json'],
  ],
  [['orders', 'cancel'], ['--reason <text>']],
  [['webhooks', 'list'], ['--json']],
  [
    ['webhooks', 'add'],
    ['--event <type>', '--json', 'WEBHOOK_ALLOWED_TARGETS'],
  ],
  [['webhooks', 'remove'], ['<id>']],
  [
    ['webhooks', 'enable'],
    ['<id>', '--json'],
  ],
  [
    ['webhooks', 'disable'],
    ['<id>', '--json'],
  ],
  [
    ['events', 'resend'],
    ['--since <time>', '--until <time>', '--no-wait', '--json'],
  ],
  [
    ['consumers', 'lag'],
    ['[group]', '--topic <topic>', '--json'],
  ],
  [['consumers', 'status'], ['--json']],
  [
    ['consumers', 'reset'],
    ['--to <earliest|time>', '--force', '--json'],
  ],
  [
    ['dlq', 'list'],
    ['--group <group>', '--pending', '--json'],
  ],
  [
    ['dlq', 'replay'],
    ['--group <group>', '--json'],
  ],
];

describe('orderflow --help', () => {
  it.concurrent.each(commands)(
    '%j --help exits 0 and names its options',
    async (command, options) => {
      const run = await cli([...command, '--help']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`Usage: orderflow ${command.join(' ')} [options]`);
      for (const option of options) expect(run.stdout).toContain(option);
      expect(run.stdout).toContain(`$ npm run orderflow -- ${command.join(' ')}`);
      expect(run.stdout).toMatch(/^Exit codes:$/m);
      expect(run.stdout).toMatch(/^ {2}3 {2}partial failure/m);
    },
  );

  it.concurrent.each([['orders'], ['webhooks'], ['events'], ['consumers'], ['dlq']])(
    '%s --help lists its subcommands with examples',
    async (group) => {
      const run = await cli([group, '--help']);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain(`Usage: orderflow ${group} [options] [command]`);
      expect(run.stdout).toContain('Examples:');
    },
  );

  it.concurrent.each([
    [
      ['orders', 'list', '--status', 'LOST'],
      /option '-s, --status <status>' argument 'LOST' is invalid/,
    ],
    [['orders', 'list', '--bogus'], /unknown option '--bogus'/],
    [['webhooks', 'add'], /missing required argument 'url'/],
    [['orders', 'show', 'nope'], /invalid for argument 'id'\. must be a UUID/],
    [['orders', 'retry', randomUUID(), 'nope'], /invalid for argument 'ids'\. must be a UUID/],
    [['events', 'resend'], /required option '--since <time>' not specified/],
    [['consumers', 'reset', 'nosuch', '--to', 'earliest'], /unknown group nosuch/],
  ])('%j is a usage error: exit 2', async (args, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  });
});

describe('orderflow --version and the bin entry', () => {
  it('prints the package version and exits 0', async () => {
    const run = await cli(['--version']);
    expect([run.code, run.stdout.trim()]).toEqual([0, pkg.version]);
  });

  it("runs as the package's `orderflow` command (an executable), with the same tree", async () => {
    const bin = path.join(projectRoot, pkg.bin.orderflow);
    fs.accessSync(bin, fs.constants.X_OK);
    const run = (args: string[]) =>
      new Promise<CliRun>((resolve) => {
        execFile(bin, args, { cwd: projectRoot, timeout: 60_000 }, (err, stdout, stderr) => {
          resolve({
            code: err ? (typeof err.code === 'number' ? err.code : -1) : 0,
            stdout,
            stderr,
          });
        });
      });
    expect(await run(['--version'])).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    const usage = await run(['orders', 'list', '--bogus']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/unknown option '--bogus'/);
  });
});
