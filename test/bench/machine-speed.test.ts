/**
 * The machine-speed probe beside the bench: its samples summarised per window
 * (medians of the samples inside it), and the probe process itself, which
 * reports a sample every 2 s and stops when told.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { speedIn, startSpeedProbe, type SpeedSample } from '../../bench/lib/machine-speed.ts';

describe('machine-speed probe', () => {
  it('gives the medians of the samples inside a window, null for a window without any', () => {
    const samples: SpeedSample[] = [
      { at: 1_000, aluMs: 99, memMs: 99 }, // before
      { at: 2_000, aluMs: 14, memMs: 44 },
      { at: 4_000, aluMs: 16, memMs: 62 },
      { at: 6_000, aluMs: 15, memMs: 50 },
      { at: 9_000, aluMs: 99, memMs: 99 }, // after
    ];
    expect(speedIn(samples, { from: 2_000, to: 6_000 })).toEqual({
      samples: 3,
      aluMs: 15,
      memMs: 50,
    });
    expect(speedIn(samples, { from: 6_500, to: 8_000 })).toBeNull();
  });

  it('runs beside the bench, a sample every 2 s, until stopped', async () => {
    const probe = startSpeedProbe(30);
    try {
      const from = Date.now();
      for (let i = 0; i < 60 && probe.samples.length < 2; i++) await sleep(250);
      expect(probe.samples.length).toBeGreaterThanOrEqual(2);
      const [a, b] = probe.samples;
      expect(b!.at - a!.at).toBeGreaterThanOrEqual(1_500);
      for (const s of [a!, b!]) {
        expect(s.aluMs).toBeGreaterThan(0);
        expect(s.memMs).toBeGreaterThan(0);
      }
      expect(speedIn(probe.samples, { from, to: Date.now() })?.samples).toBeGreaterThanOrEqual(2);
    } finally {
      probe.stop();
    }
    const n = probe.samples.length;
    await sleep(2_500);
    expect(probe.samples.length).toBe(n);
  });
});
