/**
 * `npm run start:cluster`: the production topology on one machine. PostgreSQL
 * and maildev as under `npm start`; Temporal as separate services (frontend,
 * history, matching, worker) on PostgreSQL with the Web UI server; three Kafka
 * brokers (replication factor 3, min.insync.replicas 2); and two processes of
 * every application: API (on PORT and PORT+1), relay, each worker, each
 * consumer group. Same supervision, address table and Ctrl-C as `npm start`
 * (scripts/lib/stack-runner.ts); data under .data/cluster/. Needs Go for the
 * first provisioning of the Temporal server (see README "Production").
 */
import path from 'node:path';
import {
  CLUSTER_REPLICAS,
  ClusterStack,
  clusterPortsOf,
  replicaNames,
  startClusterApps,
} from './lib/cluster.ts';
import { configuredPorts } from './lib/stack.ts';
import { addressRows, printTable, runSupervised, stopLeftovers } from './lib/stack-runner.ts';
import { projectRoot, provisionAll, provisionTemporalServer } from './lib/tools.ts';

const dataDir = path.resolve(
  process.env.ORDERFLOW_CLUSTER_DATA_DIR ?? path.join(projectRoot, '.data', 'cluster'),
);
const log = (m: string) => console.error(`[cluster] ${m}`);

async function main(): Promise<void> {
  const started = Date.now();
  const ports = configuredPorts();
  const cluster = clusterPortsOf(ports);
  const tools = provisionAll(log);
  const temporalServer = provisionTemporalServer(log);
  stopLeftovers(dataDir, log);
  const stack = new ClusterStack({ dataDir, ports, cluster, tools, temporalServer, log });

  await runSupervised({
    stack,
    dataDir,
    log,
    startApps: async (env, recordPids) => {
      await startClusterApps(
        stack,
        {
          ...env,
          // As under npm start: the APIs commit, the relays start the workflows, and
          // webhooks may target loopback receivers on one machine.
          WORKFLOW_START_MODE: process.env.WORKFLOW_START_MODE || 'relay',
          WEBHOOK_ALLOWED_TARGETS: process.env.WEBHOOK_ALLOWED_TARGETS || 'loopback',
        },
        () => recordPids(),
      );
    },
    ready: () => {
      const t = cluster.temporal;
      const rows: [string, string][] = [
        ...cluster.api.map((port, i): [string, string] => [
          `API ${i + 1}`,
          `http://127.0.0.1:${port}  (GET /healthz, /readyz, /metrics)`,
        ]),
        ...addressRows(stack, dataDir, [
          [
            'Temporal services',
            `history :${t.history}, matching :${t.matching}, worker :${t.worker} (metrics :${t.metrics.frontend}-:${t.metrics.worker})`,
          ],
        ]),
      ];
      printTable(
        `orderflow (cluster topology) is ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
        rows,
        [
          `processes: ${stack.procs.map((p) => p.name).join(', ')}`,
          `${CLUSTER_REPLICAS} of each application (${replicaNames('worker-email').join(', ')}, ...)`,
          'Ctrl-C stops everything; data stays in .data/cluster/ (npm run stack:reset wipes it).',
        ],
      );
    },
  });
}

await main();
