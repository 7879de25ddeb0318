/**
 * What the chaos run drives: a whole orderflow on real processes, either the
 * one-machine stack (scripts/lib/app-stack.ts: one process per app, both
 * consumer groups added here) or the cluster topology (scripts/lib/cluster.ts:
 * Temporal as separate services on PostgreSQL, three Kafka brokers, two
 * processes of every app). The run sees the APIs, the app processes it
 * supervises, and one way to kill -9 and restart any process by name.
 */
import { killGroup, type ManagedProcess } from '../../scripts/lib/process.ts';
import type { APP_PROCESSES } from '../../scripts/lib/app-stack.ts';
import { startAppStack, currentRunLog } from '../../scripts/lib/app-stack.ts';
import {
  ClusterStack,
  ephemeralClusterPorts,
  startClusterApps,
} from '../../scripts/lib/cluster.ts';
import { tmpStackDir, type Stack, type StackEnv } from '../../scripts/lib/stack.ts';
import type { TemporalServerTools } from '../../scripts/lib/temporal-cluster.ts';
import type { Tools } from '../../scripts/lib/tools.ts';

export type Topology = 'single' | 'cluster';

export interface ChaosTarget {
  topology: Topology;
  stack: Stack;
  env: StackEnv & Record<string, string>;
  /** The API replicas' base URLs (one on the single stack). */
  apiUrls: string[];
  smtpPort: number;
  /** The app processes a supervisor restarts when they die on their own, by name. */
  readonly apps: Map<string, ManagedProcess>;
  /** Starts an app process again (after it died), waiting until it is ready. */
  restart(name: string): Promise<ManagedProcess>;
  /**
   * SIGKILLs the process group of `name` (an app or an infrastructure process
   * such as kafka-2 or temporal-history), waits for it to exit, and starts it
   * again on the same data; resolves once it is ready.
   */
  killAndRestart(name: string): Promise<void>;
  stop(): Promise<void>;
}

const CONSUMERS = [
  { name: 'consumer-analytics', entry: 'src/consumers/analytics.ts' },
  { name: 'consumer-inventory', entry: 'src/consumers/inventory.ts' },
] as const;

/** Kills an infrastructure process of `stack` and starts it again the way it was started. */
async function killAndRespawn(stack: Stack, name: string): Promise<void> {
  const dead = stack.procs.find((p) => p.name === name && p.running);
  if (!dead) throw new Error(`${name} is not running: cannot kill it`);
  await killGroup(dead);
  const fresh = stack.respawn(dead);
  await stack.waitReady(fresh);
}

export async function startChaosTarget(opts: {
  topology: Topology;
  tools: Tools;
  /** The Temporal server binaries (cluster topology only). */
  temporalServer?: TemporalServerTools;
  appEnv: Record<string, string>;
  log: (msg: string) => void;
}): Promise<ChaosTarget> {
  return opts.topology === 'cluster' ? startCluster(opts) : startSingle(opts);
}

async function startSingle(opts: {
  tools: Tools;
  appEnv: Record<string, string>;
  log: (msg: string) => void;
}): Promise<ChaosTarget> {
  const app = await startAppStack({
    tools: opts.tools,
    ephemeral: true,
    appEnv: opts.appEnv,
    log: opts.log,
  });
  const apps = new Map<string, ManagedProcess>();
  const sync = () => {
    for (const [name, proc] of app.apps) if (name !== 'api') apps.set(name, proc);
  };
  const startConsumer = async (c: (typeof CONSUMERS)[number]) => {
    const proc = await app.stack.startApp(
      c.name,
      c.entry,
      { PORT: String(app.ports.api), ...app.env },
      async (p) => /"msg":"consumer running"/.test(currentRunLog(p.spec.logFile)),
    );
    apps.set(c.name, proc);
    return proc;
  };
  try {
    sync();
    for (const c of CONSUMERS) await startConsumer(c);
  } catch (e) {
    await app.stop();
    throw e;
  }
  const restart = async (name: string): Promise<ManagedProcess> => {
    const consumer = CONSUMERS.find((c) => c.name === name);
    if (consumer) return startConsumer(consumer);
    const proc = await app.restart(name as (typeof APP_PROCESSES)[number]['name']);
    sync();
    return proc;
  };
  return {
    topology: 'single',
    stack: app.stack,
    env: app.env,
    apiUrls: [app.apiUrl],
    smtpPort: app.ports.smtp,
    apps,
    restart,
    async killAndRestart(name) {
      const proc = apps.get(name) ?? (name === 'api' ? app.apps.get('api') : undefined);
      if (!proc) return killAndRespawn(app.stack, name);
      await killGroup(proc);
      await restart(name);
    },
    stop: () => app.stop(),
  };
}

async function startCluster(opts: {
  tools: Tools;
  temporalServer?: TemporalServerTools;
  appEnv: Record<string, string>;
  log: (msg: string) => void;
}): Promise<ChaosTarget> {
  if (!opts.temporalServer) throw new Error('the cluster topology needs the Temporal server tools');
  const { ports, cluster } = await ephemeralClusterPorts();
  const stack = new ClusterStack({
    dataDir: tmpStackDir(),
    ports,
    cluster,
    tools: opts.tools,
    temporalServer: opts.temporalServer,
    ephemeral: true,
    log: opts.log,
  });
  let apps: Map<string, ManagedProcess>;
  let env: ChaosTarget['env'];
  try {
    const stackEnv = await stack.startInfrastructure();
    env = {
      ...stackEnv,
      WORKFLOW_START_MODE: 'relay',
      WEBHOOK_ALLOWED_TARGETS: 'loopback',
      ...opts.appEnv,
    };
    apps = await startClusterApps(stack, env);
  } catch (e) {
    await stack.stop();
    throw e;
  }
  const restartApp = async (name: string): Promise<ManagedProcess> => {
    const old = apps.get(name);
    if (!old) throw new Error(`no app process named ${name}`);
    const proc = stack.respawn(old);
    await stack.waitReady(proc);
    apps.set(name, proc);
    return proc;
  };
  return {
    topology: 'cluster',
    stack,
    env,
    apiUrls: cluster.api.map((p) => `http://127.0.0.1:${p}`),
    smtpPort: ports.smtp,
    apps,
    restart: restartApp,
    async killAndRestart(name) {
      const proc = apps.get(name);
      if (!proc) return killAndRespawn(stack, name);
      await killGroup(proc);
      await restartApp(name);
    },
    stop: () => stack.stop(),
  };
}
