import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { intakeStats, type Sent } from '../../bench/lib/order-load.ts';
import { coreLine, fmtNum, mib, ratioCell } from '../../bench/lib/report-format.ts';
import { pairWithOrderflow } from '../../bench/lib/floor-pairing.ts';
import { freeResultBase } from '../../bench/lib/results.ts';
import { labelEnv } from '../../bench/lib/settings.ts';
import { intEnv, listEnv } from '../../scripts/lib/env-settings.ts';
import { PARTS, runSettings } from '../../bench/run-settings.ts';

describe('report formatting', () => {
  it('formats numbers with fixed digits and "–" for what is missing', () => {
    expect(fmtNum(1.256, 2)).toBe('1.26');
    expect(fmtNum(3)).toBe('3');
    expect([fmtNum(undefined), fmtNum(null), fmtNum(NaN), fmtNum(Infinity)]).toEqual([
      '–',
      '–',
      '–',
      '–',
    ]);
  });

  it('lists cores busiest first and leaves out those below 0.01', () => {
    expect(coreLine({ api: 0.2, temporal: 0.93, idle: 0.005 })).toBe('temporal 0.93, api 0.2');
  });

  it('writes a ratio as a bold percentage, "–" when the denominator is not positive', () => {
    expect(ratioCell(19.8, 32.5)).toBe('19.8 ÷ 32.5 = **61%**');
    expect(ratioCell(5, 0)).toBe('5.0 ÷ 0.0 = –');
  });

  it('gives KiB as whole MiB, or the word for missing', () => {
    expect(mib(2048)).toBe('2');
    expect(mib(undefined)).toBe('–');
    expect(mib(undefined, 'n/a')).toBe('n/a');
  });
});

describe('the Temporal-floor ratio over windows around the floor', () => {
  const floor = { workflowsPerS: 30, orderflowRate: 18, ratio: 0.6, shape: 'P L' };

  it('divides the mean of the orderflow windows by the floor windows’ mean', () => {
    // A machine slowing down over orderflow 24, floor 32 and 28, orderflow 18: 21 ÷ 30.
    expect(pairWithOrderflow(floor, [24, 18])).toEqual({
      workflowsPerS: 30,
      orderflowRate: 21,
      orderflowWindowRates: [24, 18],
      ratio: 0.7,
      shape: 'P L',
    });
  });

  it('leaves the result alone without orderflow windows, and gives no ratio for a floor of 0', () => {
    expect(pairWithOrderflow(floor, [])).toBe(floor);
    expect(pairWithOrderflow({ ...floor, workflowsPerS: 0 }, [10, 12]).ratio).toBeNull();
  });
});

describe('POST statistics', () => {
  it('counts by status, takes latency from the scheduled time of the accepted only', () => {
    const sent: Sent[] = [
      { scheduledAt: 0, answeredAt: 10, status: 201, id: 'a' },
      { scheduledAt: 0, answeredAt: 30, status: 202, id: 'b' },
      { scheduledAt: 0, answeredAt: 500, status: 503 },
      { scheduledAt: 0, answeredAt: 900, status: 0, error: 'timeout' },
    ];
    const stats = intakeStats(sent, 2);
    expect(stats).toMatchObject({
      sent: 4,
      ok: 2,
      errors: 2,
      statusCodes: { '201': 1, '202': 1, '503': 1, 'socket: timeout': 1 },
      throughput: 1,
    });
    expect(stats.latencyMs).toMatchObject({ n: 2, p50: 10, max: 30 });
  });
});

describe('bench settings', () => {
  it('reads an integer within its bounds, the default when unset or empty', () => {
    expect(intEnv('N', 5, 1, 10, {})).toBe(5);
    expect(intEnv('N', 5, 1, 10, { N: '' })).toBe(5);
    expect(intEnv('N', 5, 1, 10, { N: '7' })).toBe(7);
    expect(() => intEnv('N', 5, 1, 10, { N: '11' })).toThrow(
      'N=11: expected an integer in [1, 10]',
    );
    expect(() => intEnv('N', 5, 1, 10, { N: '2.5' })).toThrow(/expected an integer/);
  });

  it('reads a list of known values, all of them when unset', () => {
    const modes = ['per-event', 'per-batch'] as const;
    expect(listEnv('M', modes, {})).toEqual(['per-event', 'per-batch']);
    expect(listEnv('M', modes, { M: ' per-batch ' })).toEqual(['per-batch']);
    expect(() => listEnv('M', modes, { M: 'per-day' })).toThrow('M: unknown value per-day');
  });

  it('keeps only file-name characters of BENCH_LABEL', () => {
    expect(labelEnv({ BENCH_LABEL: 'run 1/../x' })).toBe('run1..x');
    expect(labelEnv({})).toBe('');
  });

  it("gives npm run bench's defaults and refuses an unknown part", () => {
    const s = runSettings({});
    expect(s.parts).toEqual([...PARTS]);
    expect(s).toMatchObject({
      spikeOrders: 5000,
      sustainedInFlight: 200,
      backlogOrders: 5000,
      consumers: true,
      floorPaired: true,
      speedProbe: true,
      redisAof: true,
      label: '',
      backgroundPriority: 'idle',
    });
    expect(
      runSettings({
        BENCH_PARTS: 'sustained, spike',
        BENCH_CONSUMERS: '0',
        BENCH_FLOOR_PAIRED: '0',
        BENCH_SPEED_PROBE: '0',
      }),
    ).toMatchObject({
      parts: ['sustained', 'spike'],
      consumers: false,
      floorPaired: false,
      speedProbe: false,
    });
    expect(() => runSettings({ BENCH_PARTS: 'sustained,nap' })).toThrow(
      /BENCH_PARTS: unknown part nap/,
    );
    expect(() => runSettings({ BENCH_SPIKE_S: '0' })).toThrow(/BENCH_SPIKE_S=0/);
  });
});

describe('result file names', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-results-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('takes the next free name when a file of that day and label exists with any of the extensions', () => {
    const exts = ['md', 'json', 'svg'];
    expect(freeResultBase(dir, 'bench', '2026-12-05', 'run1', exts)).toBe(
      path.join(dir, 'bench-2026-12-05-run1'),
    );
    fs.writeFileSync(path.join(dir, 'bench-2026-12-05.svg'), '');
    expect(freeResultBase(dir, 'bench', '2026-12-05', '', exts)).toBe(
      path.join(dir, 'bench-2026-12-05-2'),
    );
    // Another kind of file does not count.
    expect(freeResultBase(dir, 'bench', '2026-12-05', '', ['md', 'json'])).toBe(
      path.join(dir, 'bench-2026-12-05'),
    );
  });
});
