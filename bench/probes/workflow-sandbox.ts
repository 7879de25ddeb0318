/**
 * Probe: what one order costs inside the workflow sandbox, where the orders
 * worker's workflow thread spends its time (closing note of issue 12).
 *
 * 1. Promises per order. The SDK's promise hook captures and source-maps a
 *    stack trace for every promise created in the sandbox (for the
 *    stack-trace query; temporalio/sdk-typescript#1587), so the workflow
 *    thread's largest cost grows with this count. A committed history is
 *    replayed in this thread (TEMPORAL_DEBUG) against orderflow's workflows and
 *    against sandbox-minimal-workflow.ts (the same commands and nothing
 *    else); a promise counts when its constructor is the sandbox's Promise.
 * 2. The vm watchdog. The SDK calls into the sandbox with a timeout
 *    (isolateExecutionTimeout), and Node starts and joins a thread for each
 *    such call (nodejs/node#47739): CPU per call with and without one.
 *
 * The CPU per replay includes the replay machinery (one worker per history):
 * it compares the two workflows, it is not a worker's cost per order.
 *
 *   bash scripts/with-node.sh node --import tsx bench/probes/workflow-sandbox.ts [history.json] [replays]
 */
import { DefaultLogger, Runtime, Worker, bundleWorkflowCode } from '@temporalio/worker';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { historiesDir, historyFromJSON } from '../../scripts/lib/history-json.ts';
import { projectRoot as root } from '../../scripts/lib/tools.ts';
import { silentLogger } from '../../scripts/lib/workflow-fakes.ts';

Runtime.install({ logger: new DefaultLogger('ERROR') });
// The SDK's debug mode runs the workflows in this thread, where the hook below sees their promises.
process.env.TEMPORAL_DEBUG = '1';

const historyFile =
  process.argv[2] ?? path.join(historiesDir, 'happy-path.cancellation-holds.json');
const replays = Number(process.argv[3] ?? 200);
if (!Number.isInteger(replays) || replays < 1 || replays > 10_000)
  throw new Error(`replays must be an integer 1-10000, got "${process.argv[3]}"`);

const history = historyFromJSON(JSON.parse(fs.readFileSync(historyFile, 'utf8')));
const workflows = {
  orderflow: path.join(root, 'src', 'workflows', 'index.ts'),
  'same commands, nothing else': path.join(import.meta.dirname, 'sandbox-minimal-workflow.ts'),
};

let sandboxPromises = 0;
let allPromises = 0;
v8.promiseHooks.onInit((promise) => {
  allPromises++;
  if (promise.constructor !== Promise) sandboxPromises++;
});

async function* copies(n: number) {
  for (let i = 0; i < n; i++) yield { workflowId: `probe-${i}`, history };
}

console.log(`history: ${path.relative(root, historyFile)}, ${replays} replays per round`);
console.log(
  '| workflow | round | replayed | promises in the sandbox per order | all promises per replay | CPU ms per replay |',
);
console.log('|---|--:|--:|--:|--:|--:|');
for (const [label, workflowsPath] of Object.entries(workflows)) {
  const workflowBundle = await bundleWorkflowCode({ workflowsPath, logger: silentLogger });
  for (const round of [1, 2, 3]) {
    sandboxPromises = 0;
    allPromises = 0;
    let ok = 0;
    const cpu0 = process.cpuUsage();
    for await (const result of Worker.runReplayHistories({ workflowBundle }, copies(replays))) {
      if (result.error) throw result.error;
      ok++;
    }
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `| ${label} | ${round} | ${ok} | ${(sandboxPromises / ok).toFixed(1)} | ${(allPromises / ok).toFixed(1)} | ${((cpu.user + cpu.system) / 1000 / ok).toFixed(2)} |`,
    );
  }
}

console.log('\n| call into a vm context | round | CPU µs per call | of which system |');
console.log('|---|--:|--:|--:|');
const context = vm.createContext({}, { microtaskMode: 'afterEvaluate' });
const script = new vm.Script('1 + 1');
for (const round of [1, 2, 3]) {
  for (const [label, options] of [
    ['without a timeout', {}],
    ['with a timeout (5 s, as the SDK)', { timeout: 5_000 }],
  ] as const) {
    const calls = 20_000;
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) script.runInContext(context, options);
    const cpu = process.cpuUsage(cpu0);
    console.log(
      `| ${label} | ${round} | ${((cpu.user + cpu.system) / calls).toFixed(1)} | ${(cpu.system / calls).toFixed(1)} |`,
    );
  }
}
