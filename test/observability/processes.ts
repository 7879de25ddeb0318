/**
 * Real orderflow processes (`node --import tsx <entry>`, as `npm start` runs
 * them) against the suite's stack, with their JSON log lines captured from
 * stdout, for the observability tests.
 */
import otlpProto from '@opentelemetry/otlp-transformer/build/src/generated/root.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { StackEnv } from '../../scripts/lib/stack.ts';

const root = path.resolve(import.meta.dirname, '..', '..');

export interface AppProcess {
  name: string;
  child: ChildProcess;
  /** Parsed JSON log lines written so far. */
  readonly lines: Record<string, unknown>[];
  /** Everything written to stdout and stderr so far. */
  readonly output: () => string;
  exited: Promise<{ code: number | null; signal: string | null }>;
  /** Resolves with the first log line `match` accepts (bounded wait; names the process and its output tail on failure). */
  waitForLine(
    what: string,
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it exited. */
  stop(graceMs?: number): Promise<void>;
}

/** The stack's addresses as an app process's environment (webhooks may target the tests' loopback receivers). */
export const stackEnvOf = (stack: StackEnv): Record<string, string> => ({
  DATABASE_URL: stack.DATABASE_URL,
  TEMPORAL_ADDRESS: stack.TEMPORAL_ADDRESS,
  TEMPORAL_NAMESPACE: stack.TEMPORAL_NAMESPACE,
  KAFKA_BROKERS: stack.KAFKA_BROKERS,
  SMTP_URL: stack.SMTP_URL,
  WEBHOOK_ALLOWED_TARGETS: 'loopback',
});

/**
 * Starts `entry` (relative to the repository) with `env` on top of this
 * process's environment; `compiledIn` runs `node <entry>` in that folder
 * instead (compiled JavaScript, no tsx: test/e2e/compiled.test.ts).
 */
export function startAppProcess(
  name: string,
  entry: string,
  env: Record<string, string>,
  compiledIn?: string,
): AppProcess {
  const args = compiledIn ? [entry] : ['--import', 'tsx', entry];
  const child = spawn(process.execPath, args, {
    cwd: compiledIn ?? root,
    env: { ...process.env, LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let raw = '';
  let buffered = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const line of parts) {
      if (!line.trim()) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ unparsed: line });
      }
    }
    for (const w of waiters) w();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    raw += chunk.toString();
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    for (const w of waiters) w();
    return { code: code as number | null, signal: signal as string | null };
  });
  const tail = () => raw.split('\n').slice(-30).join('\n');

  return {
    name,
    child,
    lines,
    output: () => raw,
    exited,
    waitForLine(what, match, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.find(match);
          if (found) {
            done();
            resolve(found);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`${name} exited before logging ${what}; output:\n${tail()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`${name} did not log ${what} within ${timeoutMs} ms; output:\n${tail()}`),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(graceMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killed = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(killed);
    },
  };
}

/** GETs a Prometheus endpoint's text (bounded), failing with the URL and status. */
export async function scrape(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return res.text();
}

/**
 * The value of the sample `name` whose labels include all of `labels`
 * (undefined when there is none); label order in the text does not matter.
 */
export function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries(
      [...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** Series names in a Prometheus text (without labels), for error messages and presence checks. */
export const seriesNames = (text: string): Set<string> =>
  new Set(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => /^[a-zA-Z_:][\w:]*/.exec(l)?.[0] ?? ''),
  );

/** Polls `check` every 250 ms until it returns true (bounded), failing with `what`. */
export async function waitUntil(
  what: string | (() => string),
  check: () => Promise<boolean> | boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Scrapes `url` every 250 ms until `ready(text)` (bounded, failing with `what` and the text); returns that text. */
export async function scrapeUntil(
  url: string,
  what: string,
  ready: (text: string) => boolean,
  timeoutMs = 60_000,
): Promise<string> {
  let text = '';
  await waitUntil(
    () => `${what} (metrics:\n${text.slice(0, 2000)})`,
    async () => ready((text = await scrape(url))),
    timeoutMs,
  );
  return text;
}

export interface ExportedSpan {
  service: string;
  name: string;
  traceId: string;
  /** How the span was sent: the OTLP/HTTP encoding of its request. */
  protocol: 'http/protobuf' | 'http/json';
}

/** An OTLP traces request, decoded: as JSON, or from protobuf with the same field names. */
interface TracesRequest {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value?: { stringValue?: string | null } | null }[] };
    scopeSpans?: { spans?: { name: string; traceId: string | Uint8Array }[] }[];
  }[];
}

/** The protobuf message of an OTLP traces request, from the code generated in @opentelemetry/otlp-transformer. */
const ExportTraceServiceRequest = (
  otlpProto as unknown as {
    opentelemetry: {
      proto: {
        collector: {
          trace: { v1: { ExportTraceServiceRequest: { decode(body: Uint8Array): TracesRequest } } };
        };
      };
    };
  }
).opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

/** The spans of one export request, with protobuf's byte ids as the hex JSON uses. */
function exportedSpans(body: Buffer, protobuf: boolean): ExportedSpan[] {
  const request = protobuf
    ? ExportTraceServiceRequest.decode(body)
    : (JSON.parse(body.toString('utf8')) as TracesRequest);
  const protocol = protobuf ? 'http/protobuf' : 'http/json';
  return (request.resourceSpans ?? []).flatMap((rs) => {
    const service =
      rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue ?? '?';
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        service,
        name: s.name,
        traceId: typeof s.traceId === 'string' ? s.traceId : Buffer.from(s.traceId).toString('hex'),
        protocol,
      })),
    );
  });
}

/**
 * An OTLP/HTTP traces receiver that keeps every span it is sent, protobuf
 * (application/x-protobuf) or JSON, and answers each in the request's encoding.
 */
export async function startCollector() {
  const spans: ExportedSpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const protobuf = req.headers['content-type'] === 'application/x-protobuf';
      if (req.url === '/v1/traces') spans.push(...exportedSpans(Buffer.concat(chunks), protobuf));
      // An empty ExportTraceServiceResponse: no body in protobuf, {} in JSON.
      if (protobuf) res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
