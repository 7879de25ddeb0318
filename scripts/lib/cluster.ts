/**
 * The cluster topology (`npm run start:cluster`, the cluster fault suite, the
 * cluster bench): the Stack's PostgreSQL and maildev, but Temporal as separate
 * services (frontend, history, matching, worker) on PostgreSQL with the Web UI
 * server (temporal-cluster.ts), and a three-broker KRaft Kafka
 * (kafka-cluster.ts). Configuration files shared with docker-compose.yml live
 * in deploy/.
 */
import { assertPortFree, freePorts, type ManagedProcess } from './process.ts';
import { APP_PROCESSES, Stack, defaultPorts, type StackOptions, type StackPorts } from './stack.ts';
import { appReadiness } from './stack-runner.ts';
import {
  TEMPORAL_CLUSTER_PORT_DEFAULTS,
  ephemeralTemporalClusterPorts,
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
      // The frontend's metrics port is checked by startInfrastructure, as ports.temporalMetrics.
      ['history metrics', t.metrics.history],
      ['matching metrics', t.metrics.matching],
      ['worker metrics', t.metrics.worker],
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
 * The cluster's addresses from the one-machine stack's (configuredPorts()):
 * the same frontend, Web UI, first broker and first API, so tools and docs
 * work against either; the other Temporal services on Temporal's own default
 * ports, the other brokers next to the first (+100, +200) and the second API
 * on the next port.
 */
export function clusterPortsOf(ports: StackPorts): ClusterPorts {
  const d = TEMPORAL_CLUSTER_PORT_DEFAULTS;
  return {
    temporal: {
      ...d,
      frontend: ports.temporal,
      frontendHttp: ports.temporalHttp,
      ui: ports.temporalUi,
    },
    kafka: {
      brokers: [ports.kafka, ports.kafka + 100, ports.kafka + 200],
      controllers: [
        ports.kafkaController,
        ports.kafkaController + 100,
        ports.kafkaController + 200,
      ],
    },
    api: [ports.api, ports.api + 1],
  };
}

/**
 * Ports for a test or bench cluster: all free and distinct, ephemeral but for
 * Temporal's membership ports, which must be at or below 32767
 * (ephemeralTemporalClusterPorts).
 */
export async function ephemeralClusterPorts(): Promise<{
  ports: StackPorts;
  cluster: ClusterPorts;
}> {
  const keys = Object.keys(defaultPorts) as (keyof StackPorts)[];
  // One freePorts call for everything from the ephemeral range, so no port is handed out twice.
  const all = await freePorts(keys.length + 10 + 5);
  const ports = Object.fromEntries(keys.map((k, i) => [k, all[i]])) as unknown as StackPorts;
  const rest = all.slice(keys.length);
  const temporal = await ephemeralTemporalClusterPorts(async (n) => rest.splice(0, n));
  const [broker2, broker3, controller2, controller3, api2] = rest as [
    number,
    number,
    number,
    number,
    number,
  ];
  // ClusterStack puts the frontend's metrics port in place of the dev server's.
  Object.assign(ports, {
    temporal: temporal.frontend,
    temporalHttp: temporal.frontendHttp,
    temporalUi: temporal.ui,
  });
  return {
    ports,
    cluster: {
      temporal,
      kafka: {
        brokers: [ports.kafka, broker2, broker3],
        controllers: [ports.kafkaController, controller2, controller3],
      },
      api: [ports.api, api2],
    },
  };
}

/** The replicas of one application, e.g. worker-email-1, worker-email-2. */
export function replicaNames(app: string, replicas = CLUSTER_REPLICAS): string[] {
  return Array.from({ length: replicas }, (_, i) => `${app}-${i + 1}`);
}

/**
 * Starts CLUSTER_REPLICAS processes of every application on a running
 * ClusterStack, app after app in APP_PROCESSES order, the replicas of one app
 * together: API replica i on cluster.api[i]. Returns them by name (api-1,
 * api-2, relay-1, ...).
 */
export async function startClusterApps(
  stack: ClusterStack,
  env: Record<string, string>,
  onStarted: (proc: ManagedProcess) => void = () => {},
): Promise<Map<string, ManagedProcess>> {
  const procs = new Map<string, ManagedProcess>();
  for (const app of APP_PROCESSES) {
    await Promise.all(
      replicaNames(app.name).map(async (name, i) => {
        const apiPort = stack.opts.cluster.api[i] ?? stack.opts.cluster.api[0]!;
        const proc = await stack.startApp(
          name,
          app.entry,
          { ...env, PORT: String(apiPort) },
          appReadiness(app.name, apiPort),
        );
        procs.set(name, proc);
        onStarted(proc);
      }),
    );
  }
  return procs;
}

export { KAFKA_CLUSTER_PORT_DEFAULTS, TEMPORAL_CLUSTER_PORT_DEFAULTS };
