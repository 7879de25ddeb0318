/**
 * `npm start`: the whole system on one machine. Starts PostgreSQL, the
 * Temporal dev server and Web UI, Kafka and maildev (data under .data/), then
 * the API and one process per worker task queue and consumer group; prints the
 * addresses; restarts a process that dies (with backoff; a crash loop stops the
 * stack, see Supervisor); stops everything on Ctrl-C / SIGTERM.
 */
import fs from 'node:fs';
import path from 'node:path';
import { IDLE_BUSY_NICENESS, parseCpuPriority } from './lib/process.ts';
import { APP_PROCESSES, Stack, backgroundPriorityOf, configuredPorts } from './lib/stack.ts';
import {
  appReadiness,
  addressRows,
  printTable,
  runSupervised,
  stopLeftovers,
} from './lib/stack-runner.ts';
import { projectRoot, provisionAll } from './lib/tools.ts';

const dataDir = path.resolve(process.env.ORDERFLOW_DATA_DIR ?? path.join(projectRoot, '.data'));
const log = (m: string) => console.error(`[stack] ${m}`);

/**
 * CPU priority of everything off the request path once the stack is up
 * (BACKGROUND_PRIORITY: `idle`, the default, nice 10 and nice 19 while the
 * API works; a niceness 1-19; `normal`): on one machine a spike queues up as
 * workflow-start and activity backlog instead of slowing `POST /orders`,
 * while the stack still starts and drains when something else keeps the CPU
 * busy (see CpuPriority and PriorityGovernor).
 */
const backgroundPriority = (() => {
  try {
    return parseCpuPriority(process.env.BACKGROUND_PRIORITY ?? 'idle', 'BACKGROUND_PRIORITY');
  } catch (e) {
    console.error(`[stack] ${(e as Error).message}`);
    process.exit(2);
  }
})();

/** One line per priority the background took, e.g. "temporal, kafka, ...: background: nice 19, autogroup nice 19". */
function logLowered(lines: string[]): void {
  const byNote = new Map<string, string[]>();
  for (const line of lines) {
    const [name = '', note = ''] = line.split(/ \((.*)\)$/);
    byNote.set(note, [...(byNote.get(note) ?? []), name]);
  }
  for (const [note, names] of byNote) log(`${note}: ${names.join(', ')}`);
}

async function main(): Promise<void> {
  const started = Date.now();
  const ports = configuredPorts();
  const tools = provisionAll(log);
  stopLeftovers(dataDir, log);
  const stack = new Stack({
    dataDir,
    ports,
    tools,
    log,
    priorityOf: backgroundPriorityOf(backgroundPriority),
    // Everything starts at normal priority, and the background drops once the whole stack is up.
    lowerPriority: 'settled',
    external: {
      databaseUrl: process.env.DATABASE_URL || undefined,
      kafkaBrokers: process.env.KAFKA_BROKERS || undefined,
      temporalAddress: process.env.TEMPORAL_ADDRESS || undefined,
    },
  });

  await runSupervised({
    stack,
    dataDir,
    log,
    startApps: async (env, recordPids) => {
      // Started in this order when their entry file exists.
      for (const app of APP_PROCESSES) {
        if (!fs.existsSync(path.join(projectRoot, app.entry))) continue;
        // The API only commits; the relay process starts the workflows (unless told otherwise).
        // On one machine, webhooks may target loopback receivers (the default elsewhere: public only).
        const mode = {
          WORKFLOW_START_MODE: process.env.WORKFLOW_START_MODE || 'relay',
          WEBHOOK_ALLOWED_TARGETS: process.env.WEBHOOK_ALLOWED_TARGETS || 'loopback',
        };
        await stack.startApp(
          app.name,
          app.entry,
          { PORT: String(ports.api), ...mode, ...env },
          appReadiness(app.name, ports.api),
        );
        recordPids();
      }
      logLowered(await stack.settle());
      if (backgroundPriority === 'idle')
        log(`while the API works, the background's autogroups go to nice ${IDLE_BUSY_NICENESS}`);
    },
    ready: () => {
      const rows: [string, string][] = [
        ['API', `http://127.0.0.1:${ports.api}  (GET /healthz, /readyz, /metrics)`],
        ...addressRows(stack, dataDir),
      ];
      printTable(`orderflow is ready in ${((Date.now() - started) / 1000).toFixed(1)} s`, rows, [
        `processes: ${stack.procs.map((p) => p.name).join(', ')}`,
        'Ctrl-C stops everything; data stays in .data/ (npm run stack:reset wipes it).',
      ]);
    },
  });
}

await main();
