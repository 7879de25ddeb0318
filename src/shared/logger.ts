import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/** `json`: one JSON object per line; `pretty`: readable lines (pino-pretty); `auto`: pretty on a terminal. */
export type LogFormat = 'json' | 'pretty' | 'auto';

/** What replaces a secret in a log line. */
export const REDACTED = '[redacted]';

/**
 * Paths pino censors wherever they occur in a log object: credentials in
 * request headers (API keys, Standard Webhooks signatures), webhook signing
 * secrets, SMTP auth, Kafka SASL, and secret-bearing configuration keys.
 * (A `*` matches one level, so each shape is listed at the depths it is logged.)
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'req.headers["webhook-signature"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers["webhook-signature"]',
  '*.headers.authorization',
  '*.headers["webhook-signature"]',
  'authorization',
  'apiKey',
  'apiKeys',
  'secret',
  'signingSecret',
  'password',
  'pass',
  'auth.pass',
  'sasl.password',
  '*.apiKey',
  '*.apiKeys',
  '*.secret',
  '*.signingSecret',
  '*.password',
  '*.pass',
  '*.auth.pass',
  '*.sasl.password',
  '*.API_KEYS',
  '*.TEMPORAL_API_KEY',
  '*.KAFKA_SASL_PASSWORD',
  '*.SMTP_PASSWORD',
];

// scheme://user:password@host → scheme://user:[redacted]@host (a user-only URL has nothing to hide).
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*):[^\s/?#@]+@/gi;
// ?password=…, &api_key=… and the like in query strings.
const QUERY_SECRETS = /([?&](?:password|pass|pwd|secret|token|api[_-]?key|sslpassword)=)[^&\s#]+/gi;

/** `text` with credentials in any URLs it contains replaced by `[redacted]`. */
export function scrubUrlCredentials(text: string): string {
  if (!text.includes('://') && !text.includes('=')) return text;
  return text.replace(URL_CREDENTIALS, `$1:${REDACTED}@`).replace(QUERY_SECRETS, `$1${REDACTED}`);
}

const isPlain = (v: object): boolean => {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
};

/**
 * Strings in a log object (plain objects, arrays and errors, a few levels
 * deep) with URL credentials scrubbed; the same object when nothing changed.
 * Other objects (requests, responses) are left to their serializers.
 */
function scrubValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubUrlCredentials(value);
  if (depth > 4 || typeof value !== 'object' || value === null) return value;
  if (value instanceof Error) {
    const message = scrubUrlCredentials(value.message);
    const stack = value.stack === undefined ? undefined : scrubUrlCredentials(value.stack);
    const cause = scrubValue(value.cause, depth + 1);
    if (message === value.message && stack === value.stack && cause === value.cause) return value;
    // A copy of the same class, so the err serializer still names its type.
    const copy = Object.assign(
      Object.create(Object.getPrototypeOf(value) as object),
      value,
    ) as Error;
    return Object.assign(copy, { message, stack, cause });
  }
  if (Array.isArray(value)) {
    let changed = false;
    const out = value.map((v: unknown) => {
      const s = scrubValue(v, depth + 1);
      if (s !== v) changed = true;
      return s;
    });
    return changed ? out : value;
  }
  if (!isPlain(value)) return value;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const s = scrubValue(v, depth + 1);
    if (s !== v) (out ??= { ...(value as Record<string, unknown>) })[k] = s;
  }
  return out ?? value;
}

/** The options every orderflow logger shares: redaction and URL scrubbing. */
export function loggerOptions(name: string, level: string): LoggerOptions {
  return {
    name,
    level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    formatters: {
      log: (obj) => scrubValue(obj, 0) as Record<string, unknown>,
    },
    hooks: {
      // The message (and format arguments) may quote a connection string too.
      logMethod(args, method) {
        const scrubbed = args.map((a: unknown) =>
          typeof a === 'string' ? scrubUrlCredentials(a) : a,
        ) as Parameters<typeof method>;
        return method.apply(this, scrubbed);
      },
    },
  };
}

const require = createRequire(import.meta.url);

/** A pino-pretty stream (to `destination`, stdout by default) when the package is installed (a dev dependency). */
function prettyStream(destination?: DestinationStream): DestinationStream | undefined {
  try {
    const pretty = require('pino-pretty') as (opts: object) => DestinationStream;
    return pretty({
      colorize: !destination && process.stdout.isTTY,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      ...(destination ? { destination } : {}),
    });
  } catch {
    return undefined;
  }
}

/**
 * A process's logger: JSON lines (pino), or readable lines on a terminal
 * (`LOG_FORMAT=auto`, the default) or when `LOG_FORMAT=pretty` (falls back to
 * JSON when pino-pretty is not installed). Secrets never reach the output:
 * credentials in headers, secret fields and configuration keys are censored,
 * and URLs have their passwords scrubbed.
 */
export function createLogger(
  name: string,
  level = 'info',
  opts: { format?: LogFormat; destination?: DestinationStream } = {},
): Logger {
  const format = opts.format ?? 'auto';
  const pretty =
    format === 'pretty' || (format === 'auto' && !opts.destination && process.stdout.isTTY)
      ? prettyStream(opts.destination)
      : undefined;
  const destination = pretty ?? opts.destination;
  return destination
    ? pino(loggerOptions(name, level), destination)
    : pino(loggerOptions(name, level));
}

/**
 * The configuration as it may be logged at start-up: secret-bearing keys
 * (passwords, API keys, tokens, secrets, auth, headers such as
 * OTEL_EXPORTER_OTLP_HEADERS) censored and URLs without their
 * passwords, so an operator sees what the process runs with.
 */
export function configForLog(config: object): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(config).map(([k, v]) => [
      k,
      /PASSWORD|SECRET|TOKEN|API_KEY|CREDENTIAL|HEADERS|AUTH/i.test(k) && v !== undefined
        ? REDACTED
        : typeof v === 'string'
          ? scrubUrlCredentials(v)
          : v,
    ]),
  );
}
