/**
 * bench/run.ts part `peer-intake`: POST /orders on orderflow's API and on the
 * BullMQ peer's, each in turn while the other idles: a warm-up, then at a
 * paced rate (open loop) and at saturation (autocannon), the CPU per process
 * and how long each backlog took to drain.
 */
import type pg from 'pg';
import type { AppStack } from '../../scripts/lib/app-stack.ts';
import { describeCpuPriority } from '../../scripts/lib/process.ts';
import type { System } from '../lib/cpu-per-order.ts';
import { log } from '../lib/e2e-kit.ts';
import { drain, intakeStats, openLoop, saturate, type IntakeStats } from '../lib/order-load.ts';
import { coresBetween, procSnapshot } from '../lib/proc-stats.ts';
import { coreLine, fmtNum as f } from '../lib/report-format.ts';
import { round } from '../lib/stats.ts';
import type { Peer } from '../peers/bullmq/start.ts';
import type { RunSettings } from '../run-settings.ts';

export interface PeerIntakeResult {
  /** orderflow's WORKFLOW_START_MODE (scripts/lib/app-stack.ts runs the relay process). */
  startMode: string;
  rate: number;
  durationS: number;
  paced: Record<System, IntakeStats>;
  saturation: Record<System, IntakeStats>;
  cores: Record<string, Record<string, number>>;
  drainMs: Record<string, number | null>;
}

export async function peerIntake(
  app: AppStack,
  peer: Peer,
  db: pg.Pool,
  settings: RunSettings,
): Promise<PeerIntakeResult> {
  const urls: Record<System, string> = { orderflow: app.apiUrl, peer: peer.apiUrl };
  const out: PeerIntakeResult = {
    startMode: app.env.WORKFLOW_START_MODE ?? 'async',
    rate: settings.peerRate,
    durationS: settings.peerS,
    paced: {} as Record<System, IntakeStats>,
    saturation: {} as Record<System, IntakeStats>,
    cores: {},
    drainMs: {},
  };
  for (const sys of ['orderflow', 'peer'] as const) {
    // Cold code paths (JIT, pools, first connections) are not what is compared.
    log(
      `peer-intake: ${sys} warm-up, ${settings.peerWarmupS} s at ${Math.min(50, settings.peerRate)} req/s`,
    );
    const n = Math.min(50, settings.peerRate) * settings.peerWarmupS;
    if (n > 0)
      await openLoop(urls[sys], n, settings.peerWarmupS, (i) => `warmup-${sys}-${i}@bench.local`);
    await drain(db, sys, settings.drainS);
  }
  for (const mode of ['paced', 'saturation'] as const) {
    for (const sys of ['orderflow', 'peer'] as const) {
      log(
        `peer-intake: ${sys} ${mode === 'paced' ? `${settings.peerRate} req/s` : 'saturation'} for ${settings.peerS} s`,
      );
      const a = procSnapshot();
      if (mode === 'paced') {
        const { sent } = await openLoop(
          urls[sys],
          settings.peerRate * settings.peerS,
          settings.peerS,
          (i) => `intake-${sys}-${i}@bench.local`,
        );
        out.paced[sys] = intakeStats(sent, settings.peerS);
      } else {
        out.saturation[sys] = await saturate(
          urls[sys],
          settings.peerS,
          settings.peerSatConnections,
        );
      }
      out.cores[`${sys} ${mode}`] = coresBetween(a, procSnapshot(), app.stack.procs);
      const r = out[mode][sys];
      log(
        `  ${r.throughput} req/s, p50 ${round(r.latencyMs.p50, 2)} ms, p99 ${round(r.latencyMs.p99, 2)} ms, errors ${r.errors}`,
      );
      out.drainMs[`${sys} ${mode}`] = await drain(db, sys, settings.drainS);
    }
  }
  return out;
}
/** Its rows of the orderflow-vs-peer table. */
export function peerIntakeComparison(pi: PeerIntakeResult, settings: RunSettings): string[] {
  return [
    `| POST /orders at ${pi.rate} req/s (paced): p50 / p99 ms | ${f(pi.paced.orderflow?.latencyMs.p50, 1)} / ${f(pi.paced.orderflow?.latencyMs.p99, 1)} | ${f(pi.paced.peer?.latencyMs.p50, 1)} / ${f(pi.paced.peer?.latencyMs.p99, 1)} |`,
    `| POST /orders at ${pi.rate} req/s: errors | ${pi.paced.orderflow?.errors ?? '–'} | ${pi.paced.peer?.errors ?? '–'} |`,
    `| POST /orders at saturation (${settings.peerSatConnections} connections): req/s, p99 ms | ${f(pi.saturation.orderflow?.throughput)}, ${f(pi.saturation.orderflow?.latencyMs.p99)} | ${f(pi.saturation.peer?.throughput)}, ${f(pi.saturation.peer?.latencyMs.p99)} |`,
  ];
}

export function renderPeerIntake(pi: PeerIntakeResult, settings: RunSettings): string[] {
  const lines = [
    '## Intake, orderflow vs peer',
    '',
    `Paced: ${pi.rate} req/s, arrivals evenly spread (open loop, latency from the scheduled time), ${pi.durationS} s. Saturation: autocannon, ${settings.peerSatConnections} connections, ${pi.durationS} s. orderflow = the API as npm start runs it: WORKFLOW_START_MODE=${pi.startMode}, LOG_LEVEL=info (the default), with the relay, the four workers${settings.consumers ? ' and the two consumers' : ''} running. CPU priority of everything but the two APIs, PostgreSQL and Redis: ${describeCpuPriority(settings.backgroundPriority)}. Each backlog drained before the next measurement.`,
    '',
    '| system | load | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | backlog drained in |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const mode of ['paced', 'saturation'] as const)
    for (const sys of ['orderflow', 'peer'] as const) {
      const x = pi[mode][sys];
      if (!x) continue;
      const d = pi.drainMs[`${sys} ${mode}`];
      lines.push(
        `| ${sys} | ${mode} | ${x.throughput} | ${f(x.latencyMs.p50, 2)} | ${f(x.latencyMs.p90, 2)} | ${f(x.latencyMs.p99, 2)} | ${f(x.latencyMs.max, 1)} | ${x.errors} | ${d === null || d === undefined ? '–' : `${f(d / 1000, 1)} s`} |`,
      );
    }
  lines.push(
    '',
    ...Object.entries(pi.cores).map(([k, c]) => `- CPU cores, ${k}: ${coreLine(c)}`),
    '',
  );
  return lines;
}
