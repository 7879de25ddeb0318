/**
 * Temporal as separate services on PostgreSQL (the cluster topology):
 * frontend, history, matching and worker from one config file
 * (deploy/temporal/config.yaml, shared with docker-compose.yml), the
 * `temporal` and `temporal_visibility` databases set up with the schema tool,
 * the `default` namespace and the OrderStatus search attribute, and the Web UI
 * server in front of the frontend.
 */
import type { Stack } from './stack.ts';

export interface TemporalClusterPorts {
  /** gRPC of the frontend: the address clients use. */
  frontend: number;
  frontendHttp: number;
  frontendMembership: number;
  history: number;
  historyMembership: number;
  matching: number;
  matchingMembership: number;
  worker: number;
  workerMembership: number;
  /** Prometheus /metrics of each service. */
  metrics: { frontend: number; history: number; matching: number; worker: number };
  /** The Web UI server. */
  ui: number;
}

/** Temporal's own default ports for each service; metrics on 8000-8003; the UI on 8233 as under npm start. */
export const TEMPORAL_CLUSTER_PORT_DEFAULTS: TemporalClusterPorts = {
  frontend: 7233,
  frontendHttp: 7243,
  frontendMembership: 6933,
  history: 7234,
  historyMembership: 6934,
  matching: 7235,
  matchingMembership: 6935,
  worker: 7239,
  workerMembership: 6939,
  metrics: { frontend: 8000, history: 8001, matching: 8002, worker: 8003 },
  ui: 8233,
};

/** The pinned server binaries (scripts/lib/tools.ts provisionTemporalServer). */
export interface TemporalServerTools {
  /** go.temporal.io/server/cmd/server */
  server: string;
  /** go.temporal.io/server/cmd/tools/sql */
  sqlTool: string;
  /** github.com/temporalio/ui-server/v2/cmd/server */
  uiServer: string;
  /** schema/postgresql/v12 of the server module (temporal/ and visibility/ inside). */
  schemaDir: string;
}

/**
 * Sets up the databases and starts the four services and the UI server as
 * processes of `host`; resolves with the frontend's address once a client can
 * use the `default` namespace and its search attributes.
 */
export async function startTemporalCluster(
  host: Stack,
  opts: {
    ports: TemporalClusterPorts;
    tools: TemporalServerTools;
    dataDir: string;
    /** The stack's PostgreSQL (resolves with orderflow's DATABASE_URL once it is up). */
    database: Promise<string>;
  },
): Promise<string> {
  void host;
  void opts;
  throw new Error('startTemporalCluster: not built yet');
}
