/**
 * The cluster topology (`npm run start:cluster`, the cluster fault suite, the
 * cluster bench): the Stack's PostgreSQL and maildev, but Temporal as separate
 * services (frontend, history, matching, worker) on PostgreSQL with the Web UI
 * server (temporal-cluster.ts), and a three-broker KRaft Kafka
 * (kafka-cluster.ts). Configuration files shared with docker-compose.yml live
 * in deploy/.
 */
import { assertPortFree, type ManagedProcess } from './process.ts';
import { APP_PROCESSES, Stack, type StackOptions, type StackPorts } from './stack.ts';
import { appReadiness } from './stack-runner.ts';
import {
  TEMPORAL_CLUSTER_PORT_DEFAULTS,
  startTemporalCluster,
  type TemporalClusterPorts,
  type TemporalServerTools,
} from './temporal-cluster.ts';
import {
  KAFKA_CLUSTER_PORT_DEFAULTS,
  startKafkaCluster,
  type KafkaClusterPorts,
} from './kafka-cluster.ts';

/** Every address of the cluster topology on top of the one-machine stack's. */
export interface ClusterPorts {
  temporal: TemporalClusterPorts;
  kafka: KafkaClusterPorts;
  /** One port per API replica (DESIGN.md: :3000 and :3001). */
  api: number[];
}

export interface ClusterStackOptions extends StackOptions {
  cluster: ClusterPorts;
  temporalServer: TemporalServerTools;
}

export class ClusterStack extends Stack {
  declare readonly opts: ClusterStackOptions;

  constructor(opts: ClusterStackOptions) {
    // The dev server's metrics port is not used: the frontend's own is checked in its place.
    super({
      ...opts,
      ports: { ...opts.ports, temporalMetrics: opts.cluster.temporal.metrics.frontend },
    });
  }

  protected override async startTemporal(database: Promise<string>): Promise<string> {
    const t = this.opts.cluster.temporal;
    const own: [string, number][] = [
      ['frontend membership', t.frontendMembership],
      ['history', t.history],
      ['history membership', t.historyMembership],
      ['matching', t.matching],
      ['matching membership', t.matchingMembership],
      ['worker', t.worker],
      ['worker membership', t.workerMembership],
      ...Object.entries(t.metrics).map(([k, v]): [string, number] => [`${k} metrics`, v]),
    ];
    for (const [what, port] of own) await assertPortFree(`temporal ${what}`, port);
    return startTemporalCluster(this, {
      ports: this.opts.cluster.temporal,
      tools: this.opts.temporalServer,
      dataDir: this.opts.dataDir,
      database,
    });
  }

  protected override async startKafka(): Promise<string> {
    const { brokers, controllers } = this.opts.cluster.kafka;
    for (let i = 1; i < brokers.length; i++) {
      await assertPortFree(`kafka-${i + 1}`, brokers[i]!);
      await assertPortFree(`kafka-${i + 1}`, controllers[i]!);
    }
    return startKafkaCluster(this, {
      ports: this.opts.cluster.kafka,
      kafkaLibs: this.opts.tools.kafkaLibs,
      dataDir: this.opts.dataDir,
    });
  }
}

/** How many processes of each application (API, relay, each worker, each consumer group) the topology runs. */
export const CLUSTER_REPLICAS = 2;

/**
 * The cluster's addresses from the one-machine stack's (configuredPorts(),
 * ephemeralPorts()): the same frontend, Web UI, first broker and first API, so
 * tools and docs work against either; the other services and brokers on
 * Temporal's own defaults or next to the first (brokers +100, +200; the
 * second API +1). Ephemeral stacks pass `extra` ports for the rest.
 */
export function clusterPortsOf(ports: StackPorts, extra?: number[]): ClusterPorts {
  const next = (() => {
    let i = 0;
    return (fallback: number) => extra?.[i++] ?? fallback;
  })();
  const d = TEMPORAL_CLUSTER_PORT_DEFAULTS;
  return {
    temporal: {
      frontend: ports.temporal,
      frontendHttp: ports.temporalHttp,
      frontendMembership: next(d.frontendMembership),
      history: next(d.history),
      historyMembership: next(d.historyMembership),
      matching: next(d.matching),
      matchingMembership: next(d.matchingMembership),
      worker: next(d.worker),
      workerMembership: next(d.workerMembership),
      metrics: {
        frontend: next(d.metrics.frontend),
        history: next(d.metrics.history),
        matching: next(d.metrics.matching),
        worker: next(d.metrics.worker),
      },
      ui: ports.temporalUi,
    },
    kafka: {
      brokers: [ports.kafka, next(ports.kafka + 100), next(ports.kafka + 200)],
      controllers: [
        ports.kafkaController,
        next(ports.kafkaController + 100),
        next(ports.kafkaController + 200),
      ],
    },
    api: [ports.api, next(ports.api + 1)],
  };
}

/** Ports clusterPortsOf takes from `extra` for an ephemeral cluster. */
export const CLUSTER_EXTRA_PORTS = 16;

/** The replicas of one application, e.g. worker-email-1, worker-email-2. */
export function replicaNames(app: string, replicas = CLUSTER_REPLICAS): string[] {
  return Array.from({ length: replicas }, (_, i) => `${app}-${i + 1}`);
}

/**
 * Starts CLUSTER_REPLICAS processes of every application on a running
 * ClusterStack (in APP_PROCESSES order, each replica ready before the next):
 * API replica i on cluster.api[i]. Returns them by name (api-1, api-2, relay-1, ...).
 */
export async function startClusterApps(
  stack: ClusterStack,
  env: Record<string, string>,
  onStarted: (proc: ManagedProcess) => void = () => {},
): Promise<Map<string, ManagedProcess>> {
  const procs = new Map<string, ManagedProcess>();
  for (const app of APP_PROCESSES) {
    for (const [i, name] of replicaNames(app.name).entries()) {
      const apiPort = stack.opts.cluster.api[i] ?? stack.opts.cluster.api[0]!;
      const proc = await stack.startApp(
        name,
        app.entry,
        { ...env, PORT: String(apiPort) },
        appReadiness(app.name, apiPort),
      );
      procs.set(name, proc);
      onStarted(proc);
    }
  }
  return procs;
}

export { KAFKA_CLUSTER_PORT_DEFAULTS, TEMPORAL_CLUSTER_PORT_DEFAULTS };
