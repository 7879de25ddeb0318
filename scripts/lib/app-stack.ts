/**
 * A whole orderflow on real processes, for the end-to-end and chaos suites
 * and the benchmarks (bench/e2e.ts, bench/run.ts): a Stack of its own (PostgreSQL, Temporal, Kafka, maildev on
 * ephemeral ports in a temporary folder), then the API and one process per
 * worker task queue, started the way scripts/stack.ts starts them
 * (`stack.startApp`, ready on /readyz or on the worker's "worker running" log line).
 */
import fs from 'node:fs';
import {
  currentRunLog,
  freePorts,
  killGroup,
  type CpuPriority,
  type ManagedProcess,
} from './process.ts';
import {
  APP_PROCESSES as ALL_APP_PROCESSES,
  RUNNING_LOG_LINE,
  Stack,
  ephemeralPorts,
  tmpStackDir,
  type StackEnv,
  type StackPorts,
} from './stack.ts';
import type { Tools } from './tools.ts';

type StackApp = (typeof ALL_APP_PROCESSES)[number];
/** The stack's application processes but the consumers (the chaos run adds those itself), in start order. */
export const APP_PROCESSES = ALL_APP_PROCESSES.filter(
  (a): a is Exclude<StackApp, { name: `consumer-${string}` }> => !a.name.startsWith('consumer-'),
);
export type AppName = (typeof APP_PROCESSES)[number]['name'];

export { currentRunLog };

export interface AppStack {
  stack: Stack;
  ports: StackPorts;
  /** The stack's addresses plus the extra variables every app process was given. */
  env: StackEnv & Record<string, string>;
  apiUrl: string;
  /** The running process of each app (replaced on restart). */
  readonly apps: Map<AppName, ManagedProcess>;
  /** Starts an app process again (after a kill), waiting until it is ready. */
  restart(name: AppName): Promise<ManagedProcess>;
  /** SIGKILLs an app's whole process group and waits for the leader to exit. */
  kill(name: AppName): Promise<void>;
  stop(): Promise<void>;
}

export async function startAppStack(opts: {
  tools: Tools;
  /** false: PostgreSQL with fsync (for benchmarks). */
  ephemeral: boolean;
  /** Variables for every app process on top of the stack's (LOG_LEVEL, retry budgets...). */
  appEnv?: Record<string, string>;
  dataDir?: string;
  log?: (msg: string) => void;
  /** CPU priority per stack process (default: all normal); bench/run.ts sets npm start's. */
  priorityOf?: (name: string) => CpuPriority;
}): Promise<AppStack> {
  let stack!: Stack;
  let ports!: StackPorts;
  let stackEnv!: StackEnv;
  // Stack formats Kafka's storage with a random base64url cluster id, which starts with '-'
  // once in 64 starts and is then taken for an option (`-t -f8G…`): try a fresh stack once more.
  for (let attempt = 1; ; attempt++) {
    ports = await ephemeralPorts(freePorts);
    stack = new Stack({
      dataDir: attempt === 1 && opts.dataDir ? opts.dataDir : tmpStackDir(),
      ports,
      tools: opts.tools,
      ephemeral: opts.ephemeral,
      log: opts.log,
      priorityOf: opts.priorityOf,
    });
    try {
      stackEnv = await stack.startInfrastructure();
      break;
    } catch (e) {
      await stopAll(stack);
      if (attempt < 2 && /\[kafka\] storage format failed/.test(String(e))) {
        opts.log?.(`kafka storage format failed (cluster id taken for an option); starting again`);
        if (stack.opts.dataDir !== opts.dataDir)
          fs.rmSync(stack.opts.dataDir, { recursive: true, force: true });
        continue;
      }
      throw e;
    }
  }
  const apiUrl = `http://127.0.0.1:${ports.api}`;
  const apps = new Map<AppName, ManagedProcess>();
  // As `npm start`: the API commits, the relay process starts the workflows, and webhooks
  // may target loopback (the subscribers of tests and benchmarks listen there).
  const env: AppStack['env'] = {
    ...stackEnv,
    WORKFLOW_START_MODE: 'relay',
    WEBHOOK_ALLOWED_TARGETS: 'loopback',
    ...opts.appEnv,
  };

  const start = async (name: AppName): Promise<ManagedProcess> => {
    const { entry } = APP_PROCESSES.find((a) => a.name === name)!;
    const ready =
      name === 'api'
        ? async () => (await fetch(`${apiUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).ok
        : async (p: ManagedProcess) => RUNNING_LOG_LINE.test(currentRunLog(p.spec.logFile));
    const proc = await stack.startApp(name, entry, { PORT: String(ports.api), ...env }, ready);
    apps.set(name, proc);
    return proc;
  };

  try {
    for (const app of APP_PROCESSES) await start(app.name);
  } catch (e) {
    await stopAll(stack);
    throw e;
  }

  return {
    stack,
    ports,
    env,
    apiUrl,
    apps,
    restart: start,
    async kill(name) {
      const proc = apps.get(name);
      if (!proc) throw new Error(`${name} is not running`);
      await killGroup(proc);
    },
    async stop() {
      await stack.stop();
    },
  };
}

/**
 * Stack.stop(), then a bounded sweep: when one component fails to start,
 * startInfrastructure() rejects while the others are still starting, and a
 * component spawned after stop() (PostgreSQL after initdb, say) would be left
 * running and keep this process alive.
 */
async function stopAll(stack: Stack): Promise<void> {
  await stack.stop();
  const until = Date.now() + 15_000;
  while (Date.now() < until) {
    for (const p of stack.procs) if (p.running) await p.stop(2000);
    if (!stack.procs.some((p) => p.running)) break;
    await new Promise((r) => setTimeout(r, 500));
  }
}
