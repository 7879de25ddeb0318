/**
 * `npm run stack:reset`: wipes the local stack's data (.data/, the cluster
 * topology's .data/cluster/ included). Refuses while either runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pidFileOf, readPids } from './lib/stack-runner.ts';
import { projectRoot } from './lib/tools.ts';

const dataDir = path.resolve(process.env.ORDERFLOW_DATA_DIR ?? path.join(projectRoot, '.data'));
const clusterDir = path.resolve(
  process.env.ORDERFLOW_CLUSTER_DATA_DIR ?? path.join(projectRoot, '.data', 'cluster'),
);
for (const dir of [dataDir, clusterDir]) {
  const pidFile = pidFileOf(dir);
  const alive = readPids(dir).filter(({ pid }) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  if (alive.length) {
    console.error(
      `[stack:reset] a stack is running (see ${path.relative(projectRoot, pidFile)}); stop it with Ctrl-C first.`,
    );
    process.exit(1);
  }
}
for (const dir of [clusterDir, dataDir]) {
  if (!fs.existsSync(dir)) continue;
  fs.rmSync(dir, { recursive: true, force: true });
  console.error(`[stack:reset] removed ${dir}`);
}
