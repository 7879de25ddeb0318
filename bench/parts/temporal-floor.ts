/**
 * bench/run.ts part `temporal-floor`: Temporal's own ceiling for orderflow's
 * shape, on the same Temporal server in the same run. The shape is read from
 * the history of one real order completed just before (upserts, local
 * activities and activities per task queue, in order; see
 * bench/floor-workflow/shape.ts), then no-op workflows of that shape run
 * through four worker processes (one per orderflow task queue, on queues of
 * their own, at the stack's background CPU priority) in the sustained part's
 * closed loop: `inFlight` workflows at a time, a new one started when one
 * completes, the same warm-up and counted window, `windows` times (drained
 * in between). It reports workflows/s, and the CPU of the Temporal server and
 * of the floor's workers, and orderflow's rate ÷ the floor's (pairWithOrderflow;
 * bench/run.ts pairs it again with orderflow's windows on both sides of the
 * floor's, so the ratio holds when the machine's speed drifts).
 */
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type pg from 'pg';
import type { ManagedProcess } from '../../scripts/lib/process.ts';
import { orderWorkflowId } from '../../src/shared/task-queues.ts';
import { currentRunLog, type AppStack } from '../../scripts/lib/app-stack.ts';
import {
  FLOOR_WORKER_QUEUES,
  FLOOR_WORKFLOW_TYPE,
  countShape,
  floorQueue,
  formatShape,
  parseShape,
  type FloorStep,
} from '../floor-workflow/shape.ts';
import type { temporalFloorWorkflow } from '../floor-workflow/workflows.ts';
import {
  closedLoop,
  type ClosedLoopResult,
  type Completions,
  type Window,
} from '../lib/closed-loop.ts';
import type { MachineSpeed } from '../lib/machine-speed.ts';
import { cpuMsPer } from '../lib/cpu-per-order.ts';
import { pairWithOrderflow } from '../lib/floor-pairing.ts';
import { CompletionWatcher, delay, log, postOrder } from '../lib/e2e-kit.ts';
import { coreLine, fmtNum as f, ratioCell } from '../lib/report-format.ts';
import { mean, round, sumWhere } from '../lib/stats.ts';
import { counterTotal, countersPer, readTemporalCounters } from '../lib/temporal-counters.ts';

/**
 * src/workflows/order.ts's happy path without webhook subscribers, used only
 * when no order's history could be read. As read on 2026-12-05 in the working
 * tree (lean bookkeeping): its patch, beginOrderProcessing, email ∥ event,
 * recordOrderStatus; at c91dd0d it was "P U L L (email events) U L".
 */
const FALLBACK_SHAPE = 'P L (email events) L';

const LOCAL_ACTIVITY_MARKER = 'core_local_activity';
const PATCH_MARKER = 'core_patch';
/** The search attribute the SDK upserts with a patch: part of the floor's `P` step. */
const PATCH_SEARCH_ATTRIBUTE = 'TemporalChangeVersion';

export interface TemporalFloorResult {
  shape: string;
  /** Where the shape comes from: an order's history, or the fallback. */
  shapeSource: string;
  perWorkflow: ReturnType<typeof countShape>;
  /** History events of the order the shape was read from, and of one floor workflow. */
  historyEvents: { order: number | null; floor: number | null };
  /** Markers in the order's history that are neither local activities nor patches. */
  otherMarkers: number;
  /** The search attributes each of the order's upserts wrote (a patch writes TemporalChangeVersion). */
  orderUpserts: string[] | null;
  workers: string[];
  /** The mean of the floor windows' rates. */
  workflowsPerS: number;
  /** Each floor window's workflows/s, in run order. */
  windowRates: number[];
  /** Each floor window's counted span, epoch ms. */
  windows?: Window[];
  /**
   * The machine-speed probe's medians over each window of the windows row, in run order
   * (orderflow's first, the floor's, orderflow's second); set by bench/run.ts.
   */
  windowSpeeds?: (MachineSpeed | null)[];
  /**
   * orderflow's sustained orders/s in the same run (null: that part did not run), and ÷ the
   * floor; with windows around the floor's, the mean of their rates (`orderflowWindowRates`).
   */
  orderflowRate: number | null;
  orderflowWindowRates?: number[];
  ratio: number | null;
  /** The first floor window (its latency, CPU and counters are the ones reported). */
  loop: ClosedLoopResult;
  cpuMsPerWorkflow: { temporal: number; workers: number };
  /** Every started floor workflow finished before the workers were stopped. */
  drained: boolean;
  /**
   * The Temporal server's requests and persistence calls (bench/lib/temporal-counters.ts)
   * per floor workflow, and per orderflow order in the sustained part (null: it did not run).
   */
  temporalCounts?: { floor: [string, number][]; orderflow: [string, number][] | null };
  /** Floor workflows completed by the runner's count and by the server's visibility. */
  completedTotal: { heard: number; server: number | null };
}

type HistoryEvents = NonNullable<
  Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']
>;

/** The floor steps of an order's history: upserts, local-activity markers, activities started together. */
export function shapeFromHistory(events: HistoryEvents): {
  steps: FloorStep[];
  otherMarkers: number;
  upserts: string[];
} {
  const steps: FloorStep[] = [];
  const upserts: string[] = [];
  let otherMarkers = 0;
  let previousScheduled = false;
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    const upsert = e.upsertWorkflowSearchAttributesEventAttributes;
    if (upsert) {
      const names = Object.keys(upsert.searchAttributes?.indexedFields ?? {});
      upserts.push(names.join('+'));
      // A patch's own upsert comes with the floor's patch step.
      if (names.join() !== PATCH_SEARCH_ATTRIBUTE) steps.push({ kind: 'upsert' });
    } else if (e.markerRecordedEventAttributes) {
      const name = e.markerRecordedEventAttributes.markerName;
      if (name === LOCAL_ACTIVITY_MARKER) steps.push({ kind: 'local' });
      else if (name === PATCH_MARKER) steps.push({ kind: 'patch' });
      else otherMarkers++;
    } else if (scheduled) {
      const queue = scheduled.taskQueue?.name ?? '';
      if (!(FLOOR_WORKER_QUEUES as readonly string[]).includes(queue))
        throw new Error(`activity on task queue "${queue}": no floor worker for it`);
      const last = steps.at(-1);
      // Activities scheduled by one workflow task run together.
      if (previousScheduled && last?.kind === 'activities') last.queues.push(queue);
      else steps.push({ kind: 'activities', queues: [queue] });
    }
    previousScheduled = !!scheduled;
  }
  return { steps, otherMarkers, upserts };
}

/**
 * The history of an order without webhook subscribers completed in this run:
 * the latest one (the sustained part leaves many), or else one posted now
 * and awaited (≤ 120 s).
 */
async function orderHistory(app: AppStack, db: pg.Pool, client: Client) {
  const { rows } = await db.query<{ id: string }>(
    `SELECT o.id::text AS id FROM orders o
      WHERE o.status = 'COMPLETED' AND o.updated_at > now() - interval '1 hour'
        AND NOT EXISTS (SELECT 1 FROM webhook_deliveries w WHERE w.order_id = o.id)
      ORDER BY o.updated_at DESC LIMIT 1`,
  );
  let id = rows[0]?.id;
  if (!id) {
    id = (await postOrder(app.apiUrl, 'temporal-floor-shape@bench.local')).id;
    const watcher = new CompletionWatcher(db, 100);
    watcher.add(id);
    try {
      if (!(await watcher.drained(120_000))) throw new Error(`order ${id} not COMPLETED in 120 s`);
    } finally {
      await watcher.stop();
    }
  }
  const workflowId = orderWorkflowId(id);
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return { workflowId, events: history.events ?? [] };
}

/**
 * Terminates the floor workflows still running, so none outlives the part;
 * bounded: at most 10,000 and 60 s (the rest stay open, without workers).
 */
async function terminateRunning(client: Client): Promise<void> {
  const deadline = Date.now() + 60_000;
  let n = 0;
  const all = async () => {
    for await (const wf of client.workflow.list({
      query: `WorkflowType = '${FLOOR_WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'`,
    })) {
      // One that completed meanwhile cannot be terminated: nothing to do.
      await client.workflow
        .getHandle(wf.workflowId, wf.runId)
        .terminate('bench: bound reached')
        .catch(() => {});
      if (++n >= 10_000 || Date.now() > deadline) break;
    }
  };
  await Promise.race([
    all().catch((e: unknown) => log(`  terminating floor workflows: ${(e as Error).message}`)),
    delay(Math.max(0, deadline - Date.now())),
  ]);
  log(`  ${n} floor workflows terminated`);
}

/**
 * The runner's end of the floor workers' sink: one workflow id per line.
 * A completion heard before its start was acknowledged is kept until add().
 */
class CompletionListener implements Completions {
  private readonly server = net.createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const id of lines) if (id) this.heard(id);
    });
    socket.on('error', () => {}); // a worker stopping mid-line
  });
  private readonly pending = new Set<string>();
  private readonly early = new Set<string>();
  private onCompleted: ((id: string) => void) | undefined;
  total = 0;
  firstId: string | undefined;

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  attach(onCompleted: (id: string) => void): this {
    this.onCompleted = onCompleted;
    return this;
  }

  add(id: string): void {
    if (this.early.delete(id)) this.onCompleted?.(id);
    else this.pending.add(id);
  }

  /** The closed loop is over: completions are still heard (for the drain), no longer reported. */
  async stop(): Promise<void> {
    this.onCompleted = undefined;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      setTimeout(resolve, 2000).unref();
    });
  }

  private heard(id: string): void {
    this.total++;
    this.firstId ??= id;
    if (this.pending.delete(id)) this.onCompleted?.(id);
    else this.early.add(id);
  }
}

export async function temporalFloor(opts: {
  app: AppStack;
  db: pg.Pool;
  inFlight: number;
  warmupS: number;
  seconds: number;
  /** Counted windows, one after the other, each drained before the next. */
  windows: number;
  /** Bound on waiting for the floor workflows still in flight after a window. */
  drainS: number;
  /** orderflow's sustained orders/s in this run; null when that part did not run. */
  orderflowRate: number | null;
  /** The Temporal server's work per orderflow order in the sustained part, when it ran. */
  orderflowCounts?: [string, number][] | null;
}): Promise<TemporalFloorResult> {
  const { app } = opts;
  const connection = await Connection.connect({ address: app.env.TEMPORAL_ADDRESS });
  const listener = new CompletionListener();
  const workers: ManagedProcess[] = [];
  try {
    const client = new Client({ connection, namespace: app.env.TEMPORAL_NAMESPACE });
    let shape = FALLBACK_SHAPE;
    let shapeSource = '';
    let orderEvents: number | null = null;
    let otherMarkers = 0;
    let orderUpserts: string[] | null = null;
    try {
      const h = await orderHistory(app, opts.db, client);
      const read = shapeFromHistory(h.events);
      shape = formatShape(read.steps);
      otherMarkers = read.otherMarkers;
      orderUpserts = read.upserts;
      orderEvents = h.events.length;
      shapeSource = `the history of ${h.workflowId}, completed in this run`;
    } catch (e) {
      log(`temporal-floor: order shape not read (${(e as Error).message}); using ${shape}`);
      shapeSource = `a fallback, src/workflows/order.ts as read when this part was written (no order's history: ${(e as Error).message})`;
    }
    parseShape(shape); // fails here, not in every workflow
    log(`temporal-floor: shape ${shape} (${shapeSource})`);

    // Bundled once here, at the runner's priority; the workers load it.
    const bundlePath = path.join(app.stack.opts.dataDir, 'temporal-floor-bundle.js');
    const { code } = await bundleWorkflowCode({
      workflowsPath: path.join(import.meta.dirname, '../floor-workflow/workflows.ts'),
    });
    fs.writeFileSync(bundlePath, code);
    const port = await listener.listen();
    for (const queue of FLOOR_WORKER_QUEUES) {
      const name = `floor-worker-${queue}`;
      workers.push(
        await app.stack.startApp(
          name,
          'bench/floor-workflow/worker.ts',
          { FLOOR_QUEUE: queue, FLOOR_BUNDLE_PATH: bundlePath, FLOOR_NOTIFY_PORT: String(port) },
          async (p) => /floor worker running/.test(currentRunLog(p.spec.logFile)),
        ),
      );
    }

    const runId = Date.now().toString(36);
    const loops: ClosedLoopResult[] = [];
    let drained = true;
    for (let w = 1; w <= opts.windows && drained; w++) {
      log(
        `temporal-floor: window ${w}/${opts.windows}: ${opts.inFlight} workflows in flight, ${opts.warmupS} s warm-up + ${opts.seconds} s`,
      );
      const loop = await closedLoop({
        inFlight: opts.inFlight,
        warmupS: opts.warmupS,
        seconds: opts.seconds,
        procs: () => app.stack.procs,
        maxStartErrors: 1000,
        start: async (seq) => {
          const workflowId = `bench-floor-${runId}-${w}-${seq}`;
          // As src/api/workflow-starter.ts starts an order's workflow.
          await client.workflow.start<typeof temporalFloorWorkflow>(FLOOR_WORKFLOW_TYPE, {
            workflowId,
            taskQueue: floorQueue('orders'),
            args: [shape],
            workflowIdConflictPolicy: 'USE_EXISTING',
            workflowIdReusePolicy: 'REJECT_DUPLICATE',
          });
          return workflowId;
        },
        completions: (onCompleted) => listener.attach(onCompleted),
        counters: () => readTemporalCounters(app.ports.temporalMetrics),
      });
      loops.push(loop);
      log(
        `  ${loop.rate} workflows/s completed (${loop.leftInFlight} still in flight), start errors ${loop.startErrors}; temporal ${loop.cores.temporal ?? 0} cores`,
      );
      // What is still in flight finishes before the next window or the workers' stop (bounded).
      const deadline = Date.now() + opts.drainS * 1000;
      while (listener.pendingCount > 0 && Date.now() < deadline) await delay(200);
      drained = listener.pendingCount === 0;
    }
    if (!drained) {
      log(
        `  ${listener.pendingCount} floor workflows not finished within the bound: terminating them (no further window)`,
      );
      await terminateRunning(client);
    }
    const loop = loops[0]!;
    const windowRates = loops.map((l) => l.rate);
    const workflowsPerS = round(mean(windowRates), 2);
    const floorEvents = listener.firstId
      ? ((await client.workflow.getHandle(listener.firstId).fetchHistory()).events?.length ?? null)
      : null;
    const server = await client.workflow
      .count(`WorkflowType = '${FLOOR_WORKFLOW_TYPE}' AND ExecutionStatus = 'Completed'`)
      .then((c) => c.count)
      .catch(() => null);
    const result: TemporalFloorResult = {
      shape,
      shapeSource,
      perWorkflow: countShape(parseShape(shape)),
      historyEvents: { order: orderEvents, floor: floorEvents },
      otherMarkers,
      orderUpserts,
      workers: workers.map((w) => w.name),
      workflowsPerS,
      windowRates,
      windows: loops.map((l) => l.window),
      orderflowRate: null,
      ratio: null,
      loop,
      cpuMsPerWorkflow: {
        temporal: cpuMsOverWindows(loops, (k) => k === 'temporal'),
        workers: cpuMsOverWindows(loops, (k) => k.startsWith('floor-worker-')),
      },
      drained,
      completedTotal: { heard: listener.total, server },
      temporalCounts: {
        floor: countersPer(loop.counters.before, loop.counters.after, loop.completed),
        orderflow: opts.orderflowCounts ?? null,
      },
    };
    // The ratio as bench/run.ts pairs it when orderflow's windows run around the floor's.
    return pairWithOrderflow(result, opts.orderflowRate === null ? [] : [opts.orderflowRate]);
  } finally {
    // The floor's workers leave the stack: later parts run without them.
    for (const w of workers) {
      await w.stop(10_000);
      const i = app.stack.procs.indexOf(w);
      if (i >= 0) app.stack.procs.splice(i, 1);
    }
    await listener.close();
    await connection.close();
  }
}

/** CPU ms per workflow of the processes `pick` selects, over all the counted windows. */
function cpuMsOverWindows(loops: ClosedLoopResult[], pick: (name: string) => boolean): number {
  const coreSeconds = loops.reduce((a, l) => a + sumWhere(l.cores, pick) * l.seconds, 0);
  const completed = loops.reduce((a, l) => a + l.completed, 0);
  return cpuMsPer({ picked: coreSeconds }, 1, completed, () => true);
}

const count = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The report's section. */
export function renderTemporalFloor(r: TemporalFloorResult, goal: number): string[] {
  const c = r.perWorkflow;
  const floorWorkers = Object.entries(r.loop.cores)
    .filter(([k]) => k.startsWith('floor-worker-'))
    .reduce((a, [, v]) => a + v, 0);
  const activities = Object.entries(c.activities)
    .map(([q, n]) => `${count(n, 'activity', 'activities')} on ${q}`)
    .join(', ');
  return [
    '## Temporal floor: no-op workflows of orderflow’s shape',
    '',
    `The Temporal work of one order with nothing behind it, on the same Temporal dev server in the same run: shape \`${r.shape}\`, read from ${r.shapeSource} (P = a patch: its marker and the ${PATCH_SEARCH_ATTRIBUTE} upsert the SDK writes with it; U = a search-attribute upsert, \`OrderStatus\` in the floor; L = a local activity; (…) = activities started together, on those task queues). Per workflow: ${count(c.patches, 'patch', 'patches')}, ${count(c.upserts, 'upsert')}, ${count(c.localActivities, 'local activity', 'local activities')}, ${activities || 'no activity'}; every (local) activity a no-op. Four worker processes (${r.workers.join(', ')}), one per orderflow task queue, on floor queues of their own (\`${floorQueue('…')}\`), SDK default worker options, the workflow bundle built once by the runner, the stack's background CPU priority. ${r.loop.inFlight} workflows kept in flight (a new one started, as orderflow's are, when one completes), the sustained part's warm-up, then ${r.loop.seconds} s counted${r.windowRates.length > 1 ? `, ${r.windowRates.length} times (drained in between)` : ''}. A workflow counts when its worker finishes it (a sink on its last activation: no server call).`,
    '',
    '| measure | value | goal |',
    '|---|--:|---|',
    `| floor: workflows/s completed${r.windowRates.length > 1 ? ` (mean of ${r.windowRates.length} windows)` : ''} | **${f(r.workflowsPerS, 1)}** | |`,
    ...(r.orderflowWindowRates && r.orderflowWindowRates.length > 1
      ? [
          `| windows in run order: orderflow orders/s, floor workflows/s…, orderflow orders/s | ${[r.orderflowWindowRates[0], ...r.windowRates, ...r.orderflowWindowRates.slice(1)].map((x) => f(x, 1)).join(' → ')} | |`,
          ...(r.windowSpeeds?.some((x) => x)
            ? [
                `| the machine in those windows: CPU ms of the speed probe's memory walk / arithmetic loop (lower: faster; bench/probes/machine-speed.ts) | ${r.windowSpeeds.map((x) => (x ? `${f(x.memMs, 1)} / ${f(x.aluMs, 1)}` : '–')).join(' → ')} | |`,
              ]
            : []),
        ]
      : []),
    `| orderflow sustained orders/s${r.orderflowWindowRates && r.orderflowWindowRates.length > 1 ? ' (mean of the windows around the floor’s)' : ''} ÷ floor | ${r.orderflowRate === null ? 'sustained did not run in this run: no ratio' : ratioCell(r.orderflowRate, r.workflowsPerS)} | ≥ ${Math.round(goal * 100)}% |`,
    `| floor: start → completed p50 / p99 ms | ${f(r.loop.latencyMs.p50)} / ${f(r.loop.latencyMs.p99)} | |`,
    `| CPU cores: Temporal server / floor workers | ${f(r.loop.cores.temporal, 2)} / ${f(floorWorkers, 2)} | |`,
    `| CPU ms per workflow: Temporal server / floor workers | ${f(r.cpuMsPerWorkflow.temporal, 2)} / ${f(r.cpuMsPerWorkflow.workers, 2)} | |`,
    `| history events: orderflow order / floor workflow | ${r.historyEvents.order ?? '–'} / ${r.historyEvents.floor ?? '–'}${r.otherMarkers ? ` (the order's also holds ${r.otherMarkers} other marker${r.otherMarkers === 1 ? '' : 's'})` : ''} | |`,
    `| search attributes the order's upserts wrote | ${r.orderUpserts === null ? '–' : r.orderUpserts.join(', ') || 'none'} | |`,
    `| start errors; all finished before the workers stopped | ${r.loop.startErrors}; ${r.drained ? 'yes' : '**no**'} | |`,
    `| floor workflows completed: heard by the runner / by the server's visibility | ${r.completedTotal.heard} / ${r.completedTotal.server ?? '–'} | |`,
    '',
    `CPU cores over the ${r.windowRates.length > 1 ? 'first floor window (the CPU ms per workflow above are over all of them)' : 'counted window'}: ${coreLine(r.loop.cores)}.`,
    '',
    ...renderTemporalCounts(r.temporalCounts),
  ];
}

/** How many of each server request and persistence call a floor workflow and an order cost. */
function renderTemporalCounts(c: TemporalFloorResult['temporalCounts']): string[] {
  if (!c || (c.floor.length === 0 && !c.orderflow?.length)) return [];
  const floor = new Map(c.floor);
  const order = new Map(c.orderflow ?? []);
  const keys = [...new Set([...order.keys(), ...floor.keys()])]
    .sort((a, b) => (order.get(b) ?? floor.get(b)!) - (order.get(a) ?? floor.get(a)!))
    .filter((k) => Math.max(order.get(k) ?? 0, floor.get(k) ?? 0) >= 0.05);
  const cell = (m: Map<string, number>, k: string) => (m.has(k) ? f(m.get(k), 2) : '–');
  return [
    `The Temporal server's own counters (\`service_requests\` and \`persistence_requests\` by operation, from its metrics endpoint) over the first counted window of each, divided by the orders / floor workflows completed in it (operations under 0.05 per order are left out; the sustained window is orderflow's, so its polls and reads of the relay and the reconciler are in it):`,
    '',
    '| counter | per orderflow order | per floor workflow |',
    '|---|--:|--:|',
    `| **all service requests** | ${c.orderflow ? f(counterTotal(c.orderflow, 'service_requests'), 2) : '–'} | ${f(counterTotal(c.floor, 'service_requests'), 2)} |`,
    `| **all persistence requests** | ${c.orderflow ? f(counterTotal(c.orderflow, 'persistence_requests'), 2) : '–'} | ${f(counterTotal(c.floor, 'persistence_requests'), 2)} |`,
    ...keys.map((k) => `| ${k.replace(':', ' ')} | ${cell(order, k)} | ${cell(floor, k)} |`),
    '',
  ];
}
