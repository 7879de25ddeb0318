/** `npm run stack:reset`: wipes the local stack's data (.data/). Refuses while the stack runs. */
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from './lib/tools.ts';

const dataDir = path.resolve(process.env.ORDERFLOW_DATA_DIR ?? path.join(projectRoot, '.data'));
const pidFile = path.join(dataDir, 'run', 'pids.json');
if (fs.existsSync(pidFile)) {
  const pids = JSON.parse(fs.readFileSync(pidFile, 'utf8')) as { pid: number }[];
  const alive = pids.filter(({ pid }) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  if (alive.length) {
    console.error(
      '[stack:reset] the stack is running (see .data/run/pids.json); stop it with Ctrl-C first.',
    );
    process.exit(1);
  }
}
fs.rmSync(dataDir, { recursive: true, force: true });
console.error(`[stack:reset] removed ${dataDir}`);
