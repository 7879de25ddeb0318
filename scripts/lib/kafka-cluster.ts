/**
 * Three KRaft Kafka nodes (each broker and controller), replication factor 3
 * and min.insync.replicas 2 by default, settings shared with
 * docker-compose.yml (deploy/kafka/).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ComponentError, type ManagedProcess } from './process.ts';
import {
  describeKafkaCluster,
  javaCommand,
  kafkaJvmArgs,
  newKafkaClusterId,
  type Stack,
} from './stack.ts';
import { projectRoot } from './tools.ts';

export interface KafkaClusterPorts {
  /** The PLAINTEXT listener of each broker; the first is the bootstrap address of docs and tools. */
  brokers: number[];
  /** The CONTROLLER listener of each node. */
  controllers: number[];
}

export const KAFKA_CLUSTER_PORT_DEFAULTS: KafkaClusterPorts = {
  brokers: [9092, 9192, 9292],
  controllers: [9093, 9193, 9293],
};

/** The settings every node shares (also mounted by docker-compose.yml). */
export const KAFKA_CLUSTER_PROPERTIES = path.join(projectRoot, 'deploy/kafka/cluster.properties');

/** How many nodes the cluster has; node ids are 1..NODES. */
const NODES = 3;

/**
 * Three JVMs start on two cores: the heap of each is kept small (the broker
 * of the one-node stack gets 512 MB), and the start-up budget is generous.
 */
const HEAP = { initial: '128m', max: '384m' };
const TIMEOUT_MS = 180_000;

/** Where node `id`'s files live: its server.properties and, under data/, its log dir. */
export function kafkaNodeDir(dataDir: string, id: number): string {
  return path.join(dataDir, 'kafka-cluster', `node-${id}`);
}

/**
 * Node `id`'s server.properties: the shared settings, then its own (node id,
 * listeners, the quorum's voters, its log dir). Properties files let a later
 * line win, so nothing here may repeat a shared key unknowingly.
 */
export function kafkaNodeProperties(
  shared: string,
  ports: KafkaClusterPorts,
  id: number,
  logDir: string,
): string {
  const i = id - 1;
  const voters = ports.controllers.map((port, n) => `${n + 1}@127.0.0.1:${port}`).join(',');
  return [
    "# Written by the stack runner on every start: deploy/kafka/cluster.properties and this node's",
    '# own settings (scripts/lib/kafka-cluster.ts). Edit those instead.',
    shared.trimEnd(),
    '',
    `# Node ${id}.`,
    `node.id=${id}`,
    `controller.quorum.voters=${voters}`,
    `listeners=PLAINTEXT://127.0.0.1:${ports.brokers[i]},CONTROLLER://127.0.0.1:${ports.controllers[i]}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${ports.brokers[i]}`,
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `log.dirs=${logDir}`,
    '',
  ].join('\n');
}

/**
 * The cluster id of the data folder: the one a node was formatted with, else
 * the one chosen earlier (kafka-cluster/cluster.id), else a new one, kept there.
 */
function clusterIdOf(dataDir: string): string {
  for (let id = 1; id <= NODES; id++) {
    const meta = path.join(kafkaNodeDir(dataDir, id), 'data', 'meta.properties');
    if (!fs.existsSync(meta)) continue;
    const m = /^cluster\.id=(.+)$/m.exec(fs.readFileSync(meta, 'utf8'));
    if (m) return m[1]!.trim();
  }
  const file = path.join(dataDir, 'kafka-cluster', 'cluster.id');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const clusterId = newKafkaClusterId();
  fs.writeFileSync(file, `${clusterId}\n`);
  return clusterId;
}

/**
 * Formats (once per data folder) and starts the three nodes as processes of
 * `host` (named kafka-1, kafka-2, kafka-3); resolves with the comma list of
 * broker addresses once all three brokers are registered and a controller leads.
 */
export async function startKafkaCluster(
  host: Stack,
  opts: { ports: KafkaClusterPorts; kafkaLibs: string; dataDir: string },
): Promise<string> {
  const { ports, kafkaLibs, dataDir } = opts;
  if (ports.brokers.length !== NODES || ports.controllers.length !== NODES) {
    throw new ComponentError(
      'kafka',
      `the cluster has ${NODES} nodes: give ${NODES} broker and ${NODES} controller ports`,
    );
  }
  const started = Date.now();
  const java = javaCommand();
  const jvm = kafkaJvmArgs(kafkaLibs, HEAP);
  const shared = fs.readFileSync(KAFKA_CLUSTER_PROPERTIES, 'utf8');
  fs.mkdirSync(path.join(dataDir, 'kafka-cluster'), { recursive: true });
  const clusterId = clusterIdOf(dataDir);

  const nodes = Array.from({ length: NODES }, (_, i) => {
    const id = i + 1;
    const dir = kafkaNodeDir(dataDir, id);
    const logDir = path.join(dir, 'data');
    fs.mkdirSync(logDir, { recursive: true });
    const props = path.join(dir, 'server.properties');
    fs.writeFileSync(props, kafkaNodeProperties(shared, ports, id, logDir));
    return { id, props, logDir, address: `127.0.0.1:${ports.brokers[i]}` };
  });

  // Format the nodes not formatted yet (all on a cold start; none on a warm one), in parallel.
  const toFormat = nodes.filter((n) => !fs.existsSync(path.join(n.logDir, 'meta.properties')));
  await Promise.all(
    toFormat.map(async (n) => {
      await host.formatKafkaStorage(`kafka-format-${n.id}`, `kafka-${n.id}`, {
        java,
        jvm,
        clusterId,
        props: n.props,
      });
    }),
  );
  const formatted = Date.now();

  // All three at once: a node's broker opens its listener only once the quorum (two of the
  // three controllers) has a leader and has unfenced it, so none is ready alone.
  const procs = nodes.map((n) =>
    // Stopped together: a node stopped after the other two cannot shut down cleanly (its broker
    // waits for a controller quorum that is gone) and is killed, and the next start of the
    // cluster waits about broker.session.timeout.ms for its old registration to expire.
    host.spawn(`kafka-${n.id}`, java, [...jvm, 'kafka.Kafka', n.props], { stopGroup: 'kafka' }),
  );
  await Promise.all(
    nodes.map((n, i) =>
      host.awaitReady(
        procs[i]!,
        // Ready (also after a restart): this node's listener answers and lists it as a registered broker.
        async () => (await describeKafkaCluster(n.address)).brokers.includes(n.id),
        TIMEOUT_MS,
      ),
    ),
  );

  const brokers = nodes.map((n) => n.address).join(',');
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const cluster = await describeKafkaCluster(brokers).catch(() => undefined);
    if (
      cluster &&
      cluster.brokers.length === NODES &&
      cluster.controller !== null &&
      cluster.controller >= 0
    )
      break;
    if (Date.now() > deadline) {
      throw new ComponentError(
        'kafka',
        `the cluster did not show ${NODES} brokers and a controller: ${JSON.stringify(cluster)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const seconds = (ms: number) => (ms / 1000).toFixed(1);
  host.log(
    `kafka cluster ready on ${brokers} in ${seconds(Date.now() - started)} s` +
      (toFormat.length
        ? ` (formatting ${toFormat.length} nodes: ${seconds(formatted - started)} s)`
        : '') +
      procs
        .filter((p: ManagedProcess) => p.priorityNote)
        .map((p) => `; ${p.name}${p.priorityNote}`)
        .join(''),
  );
  return brokers;
}

export { describeKafkaCluster };
