/**
 * The Temporal runtime of a worker process: the SDK's logs (its own, the
 * native core's, and `log` in activities and workflows, which carry
 * workflowId, activityType, attempt...) go to the process's pino logger, and
 * the core's metrics (task slots, polls, latencies, requests) to a Prometheus
 * exporter on a loopback port, which the worker's /metrics appends to its own.
 */
import net from 'node:net';
import type { LogLevel, LogMetadata, Logger as TemporalLogger } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import type { Logger } from '../shared/logger.ts';

const PINO_METHOD = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
} as const satisfies Record<LogLevel, string>;

/** The SDK's Logger interface over pino: the message as `msg`, the metadata as fields. */
export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly pino: Logger) {}

  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    // The SDK logs each activity's and workflow's start and end at DEBUG: skipped before any copying.
    if (!this.pino.isLevelEnabled(PINO_METHOD[level])) return;
    // The SDK's timestamp rides along under a symbol key, which pino ignores. The task token
    // is left out: long, and enough (with a connection) to complete the activity in its stead.
    const fields: Record<string, unknown> = { ...meta };
    delete fields.taskToken;
    this.pino[PINO_METHOD[level]](fields, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

/** A port free on 127.0.0.1 right now (the native exporter needs a fixed address). */
async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface TemporalRuntimeTelemetry {
  /** The native exporter's address, e.g. http://127.0.0.1:40123/metrics. */
  exporterUrl: string;
  /** The exporter's current exposition text; a comment line when it cannot be read. */
  scrape(): Promise<string>;
}

/**
 * Installs the process's Temporal Runtime (once, before any connection):
 * SDK and core logs through `log`, core metrics on a loopback Prometheus exporter.
 */
export async function installTemporalRuntime(log: Logger): Promise<TemporalRuntimeTelemetry> {
  let lastError: unknown;
  // The port is free when picked; another process may take it before the core binds it.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const bindAddress = `127.0.0.1:${await freeLoopbackPort()}`;
    try {
      Runtime.install({
        logger: new PinoTemporalLogger(log),
        telemetryOptions: {
          logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
          metrics: {
            prometheus: { bindAddress, countersTotalSuffix: true, useSecondsForDurations: true },
          },
        },
      });
      const exporterUrl = `http://${bindAddress}/metrics`;
      return { exporterUrl, scrape: () => scrapeExporter(exporterUrl) };
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`Temporal runtime metrics exporter could not bind a loopback port`, {
    cause: lastError,
  });
}

async function scrapeExporter(url: string): Promise<string> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return await res.text();
  } catch (err) {
    // The worker's own series still answer; the gap is visible in the text.
    return `# Temporal runtime metrics unavailable: ${String(err).replace(/\s+/g, ' ')}\n`;
  }
}
