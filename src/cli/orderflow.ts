/**
 * The operator CLI: `npm run orderflow -- <command>`. Talks to PostgreSQL,
 * Temporal and Kafka directly (the same configuration as the services), so it
 * works while the API is down. Exit codes: 0 success, 1 failure, 2 usage,
 * 3 partial (a bulk operation where some items failed); see output.ts.
 */
import { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { addConsumerCommands } from './consumer-commands.ts';
import { addEventCommands } from './events-commands.ts';
import { addOrderCommands } from './orders-commands.ts';
import { EXIT_CODES_HELP, ExitCode, examplesHelp } from './output.ts';
import { addWebhookCommands } from './webhook-commands.ts';

export { table } from './output.ts';

/** orderflow's version: the `version` of the nearest package.json named orderflow above this file. */
export function orderflowVersion(from = import.meta.dirname): string {
  for (let dir = from, i = 0; i < 8; dir = path.dirname(dir), i++) {
    const file = path.join(dir, 'package.json');
    if (!fs.existsSync(file)) continue;
    const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'orderflow' && pkg.version) return pkg.version;
  }
  return 'unknown';
}

/** The whole command tree; usage errors exit 2, `--help` and `--version` exit 0. */
export function buildCli(): Command {
  const program = new Command('orderflow')
    .version(orderflowVersion(), '-V, --version', 'print the version of orderflow and exit')
    .description(
      'Operate orderflow: orders (list, show, retry, cancel), webhooks, events, consumer groups and dead letters.',
    )
    .showHelpAfterError()
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
    })
    .addHelpText(
      'after',
      `
Configuration is the services' environment (DATABASE_URL, TEMPORAL_ADDRESS,
KAFKA_BROKERS, WEBHOOK_ALLOWED_TARGETS, ...). Every command has --help with examples.
${examplesHelp([
  ['orders list --status PARKED'],
  ['orders retry --all-parked'],
  ['webhooks add https://hooks.example.com/orders'],
  ['consumers lag --json'],
  ['dlq replay --group analytics'],
])}`,
    )
    .addHelpText('afterAll', EXIT_CODES_HELP);

  addOrderCommands(program);
  addWebhookCommands(program);
  addEventCommands(program);
  addConsumerCommands(program);
  return program;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildCli().parseAsync(process.argv);
}
