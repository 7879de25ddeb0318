/**
 * The relay's Temporal probe runs at most once per PROBE_INTERVAL_MS however
 * short the poll (it ran on every poll: ten gRPC calls a second at 100 ms).
 * No stack: a relay that only probes (sweep: false), with a counting probe.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { OutboxRelay, PROBE_INTERVAL_MS, defaultRelayOptions } from '../../src/api/outbox-relay.ts';
import type { Db } from '../../src/db/client.ts';

describe('the relay’s Temporal probe', () => {
  it('runs at most once a second while the poll runs every 20 ms', async () => {
    let probes = 0;
    const relay = new OutboxRelay(
      {} as Db, // never used: sweep false
      () => Promise.reject(new Error('no client in this test')),
      pino({ level: 'silent' }),
      { ...defaultRelayOptions, intervalMs: 20, sweep: false },
      () => {
        probes++;
        return Promise.resolve(true);
      },
    );
    relay.run();
    await sleep(PROBE_INTERVAL_MS + 500);
    await relay.stop();
    // ~75 polls; a probe on the first and one a second later.
    expect(PROBE_INTERVAL_MS).toBe(1_000);
    expect(probes).toBe(2);
  });
});
