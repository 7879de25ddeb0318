/**
 * The cluster topology (`npm run start:cluster`, the cluster fault suite, the
 * cluster bench): the Stack's PostgreSQL and maildev, but Temporal as separate
 * services (frontend, history, matching, worker) on PostgreSQL with the Web UI
 * server (temporal-cluster.ts), and a three-broker KRaft Kafka
 * (kafka-cluster.ts). Configuration files shared with docker-compose.yml live
 * in deploy/.
 */
import { assertPortFree } from './process.ts';
import { Stack, type StackOptions, type StackPorts } from './stack.ts';
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
    super(opts);
  }

  protected override async startTemporal(database: Promise<string>): Promise<string> {
    return startTemporalCluster(this, {
      ports: this.opts.cluster.temporal,
      tools: this.opts.temporalServer,
      dataDir: this.opts.dataDir,
      database,
    });
  }

  protected override async startKafka(): Promise<string> {
    return startKafkaCluster(this, {
      ports: this.opts.cluster.kafka,
      kafkaLibs: this.opts.tools.kafkaLibs,
      dataDir: this.opts.dataDir,
    });
  }
}

export { assertPortFree, KAFKA_CLUSTER_PORT_DEFAULTS, TEMPORAL_CLUSTER_PORT_DEFAULTS };
export type { StackPorts };
