/**
 * Replay tests: every committed history in test/replay/histories (recorded by
 * `npm run histories:record`) must replay against today's workflow code, so a
 * change that would break running orders fails here rather than in production.
 * The negative cases prove the check bites: an unpatched reordering of the
 * workflow's activities is a determinism violation; the same change behind
 * `patched()` is not.
 */
import { Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../scripts/lib/workflow-fakes.ts';
import { historiesDir, historyFromJSON, type History } from '../../scripts/lib/history-json.ts';

const historyFiles = fs
  .readdirSync(historiesDir)
  .filter((f) => f.endsWith('.json'))
  .sort();

const loadHistory = (file: string): History =>
  historyFromJSON(JSON.parse(fs.readFileSync(path.join(historiesDir, file), 'utf8')));

const bundle = (workflowsPath: string): Promise<WorkflowBundleWithSourceMap> =>
  bundleWorkflowCode({ workflowsPath, logger: silentLogger });

let current: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  current = await bundle(path.resolve(import.meta.dirname, '../../src/workflows/index.ts'));
});

describe('committed workflow histories', () => {
  it('include every recorded scenario', () => {
    expect(historyFiles).toEqual(
      expect.arrayContaining([
        'happy-path.json',
        'parked-then-retried.json',
        'webhook-429-then-success.json',
        'cancelled-while-parked.json',
        'resend-events.json',
        // Recorded after the bookkeeping moved to local activities (patch bookkeeping-local-activities).
        'happy-path.local-bookkeeping.json',
        'parked-then-retried.local-bookkeeping.json',
        'cancelled-while-retrying.local-bookkeeping.json',
        // Recorded after the lean bookkeeping (patch lean-bookkeeping).
        'happy-path.lean-bookkeeping.json',
        'parked-then-retried.lean-bookkeeping.json',
        'cancelled-while-retrying.lean-bookkeeping.json',
        // Recorded after cancellation holds (patch cancellation-holds): an operator's cancel
        // (API, CLI: the signal) and Temporal's cancel of a parked order, a cancel while a
        // webhook waits for its retry, and a cancel that won before the workflow began.
        'happy-path.cancellation-holds.json',
        'cancelled-while-parked.cancellation-holds.json',
        'cancelled-in-temporal-while-parked.cancellation-holds.json',
        'cancelled-while-retrying.cancellation-holds.json',
        'cancelled-before-start.cancellation-holds.json',
        // The order.cancelled announcement of an order whose workflow was terminated.
        'announce-cancellation.cancellation-holds.json',
        // Recorded after a cancel waits for every running attempt (patch cancellation-waits-for-all).
        'happy-path.cancellation-waits.json',
        'parked-then-retried.cancellation-waits.json',
        'cancelled-while-parked.cancellation-waits.json',
        'cancelled-in-temporal-while-parked.cancellation-waits.json',
        'cancelled-while-retrying.cancellation-waits.json',
        'cancelled-before-start.cancellation-waits.json',
      ]),
    );
  });

  it('all replay against the current workflow code without a determinism violation', async () => {
    const histories = historyFiles.map((file) => ({
      workflowId: file,
      history: loadHistory(file),
    }));
    const replayed: string[] = [];
    const failures: string[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: current, replayName: 'committed-histories' },
      histories,
    )) {
      replayed.push(result.workflowId);
      if (result.error)
        failures.push(`${result.workflowId}: ${result.error.name}: ${result.error.message}`);
    }
    expect(failures).toEqual([]);
    expect(replayed).toEqual(historyFiles);
  });
});

describe('a changed workflow', () => {
  const changed = (file: string) => path.resolve(import.meta.dirname, 'changed-workflows', file);

  it('that reorders its activities without a patch fails to replay the happy path with a determinism violation', async () => {
    const replay = Worker.runReplayHistory(
      { workflowBundle: await bundle(changed('index.ts')), replayName: 'unpatched-change' },
      loadHistory('happy-path.json'),
      'happy-path',
    );
    await expect(replay).rejects.toThrow(DeterminismViolationError);
    await expect(replay).rejects.toThrow(/nondetermin/i);
  });

  it('that makes the same change behind patched() still replays the happy path', async () => {
    await expect(
      Worker.runReplayHistory(
        { workflowBundle: await bundle(changed('patched.ts')), replayName: 'patched-change' },
        loadHistory('happy-path.json'),
        'happy-path',
      ),
    ).resolves.toBeUndefined();
  });
});
