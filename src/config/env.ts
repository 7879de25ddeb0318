import fs from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { z } from 'zod';
import { WORKFLOW_START_MODES } from '../orders/workflow-start.ts';
import { TARGET_POLICIES } from '../webhooks/ssrf-guard.ts';
import { ConfigError, invalidConfiguration, parseDuration } from './parsing.ts';
import { retryBudgetVariables } from './retry-budgets.ts';

export { ConfigError, parseDuration };

const port = z.coerce.number().int().min(0).max(65535);

/** Permanent webhook failures in a row after which an endpoint is disabled (WEBHOOK_DISABLE_AFTER_FAILURES). */
export const WEBHOOK_DISABLE_AFTER_FAILURES_DEFAULT = 5;
/**
 * Endpoints one event type may have (WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE): each is one delivery
 * per order, so 20 keep an order's fan-out within a second of the default WEBHOOK_RATE_PER_SECOND.
 */
export const WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE_DEFAULT = 20;
const csv = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.string()).min(1));
/** "true" or "false" (any case); unset is `byDefault`. */
const trueOrFalse = (byDefault: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['true', 'false'], { error: 'must be true or false' }))
    .transform((v) => v === 'true')
    .default(byDefault);
const flag = trueOrFalse(false);
const flagOn = trueOrFalse(true);

/** The SASL mechanisms kafkajs offers that a broker's SASL listener may ask for. */
export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];

/** A path to a file this process can read (checked at start-up, read by the client that needs it). */
const readableFile = z.string().refine(
  (file) => {
    try {
      fs.accessSync(file, fs.constants.R_OK);
      return fs.statSync(file).isFile();
    } catch {
      return false;
    }
  },
  { message: 'no readable file at this path' },
);

/** What the Kafka SASL/TLS variables require of each other: each problem with the variable it names. */
function kafkaSecurityIssues(c: Config): string[] {
  const issues: string[] = [];
  const hasCredentials = c.KAFKA_SASL_USERNAME !== undefined || c.KAFKA_SASL_PASSWORD !== undefined;
  if (c.KAFKA_SASL_MECHANISM) {
    if (!c.KAFKA_SASL_USERNAME)
      issues.push('KAFKA_SASL_USERNAME: required when KAFKA_SASL_MECHANISM is set');
    if (!c.KAFKA_SASL_PASSWORD)
      issues.push('KAFKA_SASL_PASSWORD: required when KAFKA_SASL_MECHANISM is set');
  } else if (hasCredentials) {
    issues.push(
      `KAFKA_SASL_MECHANISM: required when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set (${KAFKA_SASL_MECHANISMS.join(', ')})`,
    );
  }
  for (const key of ['KAFKA_TLS_CA_FILE', 'KAFKA_TLS_CERT_FILE', 'KAFKA_TLS_KEY_FILE'] as const) {
    if (c[key] && !c.KAFKA_TLS) issues.push(`${key}: only used with TLS; set KAFKA_TLS=true`);
  }
  if (!c.KAFKA_TLS_CERT_FILE !== !c.KAFKA_TLS_KEY_FILE) {
    const missing = c.KAFKA_TLS_CERT_FILE ? 'KAFKA_TLS_KEY_FILE' : 'KAFKA_TLS_CERT_FILE';
    issues.push(`${missing}: mutual TLS needs both KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE`);
  }
  return issues;
}

/** The OTLP transports the tracing exporter has: HTTP with protobuf (the spec's default) or JSON bodies. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
/** A duration like 200ms, 5s or 2m (parseDuration), in ms; `message` says what is wanted when it is not one or below `minMs`. */
const duration = (defaultText: string, minMs: number, message: string) =>
  z
    .string()
    .default(defaultText)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined || ms < minMs) ctx.addIssue({ code: 'custom', message });
      return ms ?? 0;
    });

const otlpProtocol = z.enum(
  OTLP_PROTOCOLS,
  'http/protobuf (the default) or http/json; grpc is not built in',
);

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** json: one JSON object per line; pretty: readable lines; auto: pretty when stdout is a terminal. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** Port of a worker process's /metrics and /healthz; 0 picks a free one (logged at start). */
  WORKER_METRICS_PORT: port.default(0),
  /** Port of the relay process's /metrics and /healthz; 0 picks a free one (logged at start). */
  RELAY_METRICS_PORT: port.default(0),
  PORT: port.default(3000),
  HOST: z.string().default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgresql:// URL')
    .default('postgresql://postgres@127.0.0.1:5432/orderflow'),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  KAFKA_BROKERS: csv.default(['127.0.0.1:9092']),
  KAFKA_CLIENT_ID: z.string().default('orderflow'),
  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .default('smtp://127.0.0.1:1025'),
  MAIL_FROM: z.string().default('orderflow <orders@orderflow.local>'),
  /** Bearer keys of the API (comma list); API_KEYS_FILE reads them from a file (a Docker secret). */
  API_KEYS: csv.optional(),
  API_KEYS_FILE: z.string().min(1).optional(),
  /** Serve every route without a key although NODE_ENV=production or HOST is not loopback. */
  API_ALLOW_ANONYMOUS: flag,
  /** The API's /metrics on a listener of its own (API_METRICS_HOST:API_METRICS_PORT) instead of PORT. */
  API_METRICS_PORT: port.optional(),
  API_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** /metrics on PORT needs an API key like the order routes. */
  API_METRICS_REQUIRE_KEY: flag,
  /** How long POST /orders/{id}/retry and /cancel wait for Temporal and a worker before answering 504. */
  ORDER_ACTION_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  WEBHOOK_RATE_PER_SECOND: z.coerce.number().positive().default(20),
  /**
   * Of every second, how much the webhook rate gate leaves unused for delays after its last
   * check (the sender descheduled, the network, the receiver), so the receiver too never counts
   * more than WEBHOOK_RATE_PER_SECOND in a second; the rate effectively sent is
   * rate * 1000 / (1025 + margin).
   */
  WEBHOOK_RATE_MARGIN_MS: z.coerce.number().int().min(0).max(1000).default(100),
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /**
   * Which webhook targets the SSRF guard lets through besides public addresses. `npm start`
   * and the tests set loopback; everywhere else only public addresses are reachable.
   */
  WEBHOOK_ALLOWED_TARGETS: z.enum(TARGET_POLICIES).default('public'),
  /**
   * An endpoint whose deliveries fail permanently (a 4xx, a refused target) this many times
   * in a row is disabled, so one broken subscriber parks at most this many orders less one.
   */
  WEBHOOK_DISABLE_AFTER_FAILURES: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(WEBHOOK_DISABLE_AFTER_FAILURES_DEFAULT),
  WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE: z.coerce
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE_DEFAULT),
  KAFKA_TOPIC_PARTITIONS: z.coerce.number().int().min(1).max(1000).default(6),
  ORDERS_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(100),
  EMAIL_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(20),
  WEBHOOKS_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(50),
  EVENTS_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(50),
  EVENTS_BULK_WORKER_CONCURRENCY: z.coerce.number().int().min(1).default(4),
  // Parsed and checked by their owner, retry-budgets.ts.
  ...retryBudgetVariables,
  /** Workflow starts the API's relay runs at once: a small number keeps the Temporal load of a spike off the request path (the outbox holds the rest). */
  OUTBOX_START_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(32),
  /**
   * How POST /orders hands the workflow start on. async: answers at the commit and starts it
   * right after, in the API process; inline: starts it before answering; relay: answers at the
   * commit and leaves the start to the relay process (`npm run relay`), so the API's event loop
   * only serves requests (what `npm start` and docker-compose.yml run).
   */
  WORKFLOW_START_MODE: z.enum(WORKFLOW_START_MODES).default('async'),
  /**
   * Relay process: how often it looks for due starts while the outbox is empty or the in-flight
   * bound holds starts back (ms); a committed order wakes it at once. Each poll is a statement
   * (the idle relay: 15 ms of CPU a second at 100, most of what it used).
   */
  OUTBOX_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(250),
  /**
   * Started-but-unfinished orders (RECEIVED or PROCESSING, workflow started) above which the relay
   * starts no more: a spike waits in the outbox, not inside Temporal; 0: no bound. 200 is ~7-10 s
   * of work at the measured 20-30 orders/s (an order takes 0.3-1 s), so the workers never starve
   * between sweeps, and it is what the sustained bench keeps in flight without a collapse.
   */
  OUTBOX_MAX_IN_FLIGHT: z.coerce.number().int().min(0).max(1_000_000).default(200),
  /**
   * How long after its workflow start an unfinished order counts toward OUTBOX_MAX_IN_FLIGHT (ms).
   * A healthy order finishes in well under 10 s even with 200 in flight at ~25 orders/s; one that
   * takes longer is waiting on a retry timer (a subscriber down), which costs Temporal and the
   * workers nothing, so it stops holding a place. Past the window the bound caps the start rate
   * instead: at most OUTBOX_MAX_IN_FLIGHT starts per window.
   */
  OUTBOX_IN_FLIGHT_WINDOW_MS: z.coerce.number().int().min(1000).max(3_600_000).default(60_000),
  /**
   * Relay process: how often it looks in Temporal for order workflows closed without their code
   * running (terminated, timed out) whose row still says RECEIVED/PROCESSING/PARKED, and marks
   * those orders CANCELLED (ms); 0: never.
   */
  WORKFLOW_RECONCILE_INTERVAL_MS: z.coerce
    .number()
    .int()
    .max(86_400_000)
    .refine((ms) => ms === 0 || ms >= 1000, 'must be 0 (off) or at least 1000')
    .default(30_000),
  /** Port of a consumer process's /metrics; 0 picks a free one (logged at start). */
  CONSUMER_METRICS_PORT: port.default(0),
  /** per-batch: one transaction per fetch, shared by its partitions' batches (each up to CONSUMER_BATCH_MAX_EVENTS); per-event: one per event. */
  CONSUMER_TRANSACTION: z.enum(['per-batch', 'per-event']).default('per-batch'),
  CONSUMER_BATCH_MAX_EVENTS: z.coerce.number().int().min(1).max(10_000).default(500),
  /** Partitions a consumer process works on at once; defaults to KAFKA_TOPIC_PARTITIONS. */
  CONSUMER_CONCURRENCY: z.coerce.number().int().min(1).max(1000).optional(),
  /** Attempts at an event that keeps failing (database reachable) before it is dead-lettered. */
  CONSUMER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  /** First retry delay of a failing event; doubles per attempt, at most 30 s. */
  CONSUMER_RETRY_INITIAL: duration('200ms', 0, 'a duration like 200ms or 1s'),
  /** How often the consumer lag gauge is refreshed from the broker. */
  CONSUMER_LAG_INTERVAL: duration('5s', 100, 'a duration of at least 100ms, like 5s'),
  /**
   * How long a consumer's fetch waits for more records before it answers (0: as soon as one is
   * there): what arrives within it is one fetch and one transaction. Each fetch costs the consumer
   * and the broker CPU whether it brings one record or hundreds: at 20 events/s a consumer
   * process used 2.0 ms of CPU per event with 100ms, 1.1-1.4 with 250ms, 0.8 with 500ms.
   */
  CONSUMER_FETCH_WAIT: duration('500ms', 0, 'a duration like 500ms (0: no wait)'),
  /**
   * A consumer process whose partitions have records waiting, whose committed offsets have not
   * moved and that has made no progress on them for this long is stalled: it exits non-zero so
   * its supervisor starts a fresh one (src/consumers/runtime/stall-watch.ts).
   */
  CONSUMER_STALL_TIMEOUT: duration('60s', 1000, 'a duration of at least 1s, like 60s'),
  // Tracing (src/observability/tracing.ts): the standard OpenTelemetry variables. On when an
  // OTLP endpoint is set or OTEL_TRACES_EXPORTER=otlp; off otherwise or with OTEL_SDK_DISABLED=true.
  OTEL_SDK_DISABLED: z
    .string()
    .optional()
    .transform((v) => v?.trim().toLowerCase() === 'true'),
  OTEL_TRACES_EXPORTER: z.enum(['otlp', 'none']).optional(),
  /** Base URL; traces go to <endpoint>/v1/traces. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  /** Full URL of the traces endpoint (wins over OTEL_EXPORTER_OTLP_ENDPOINT). */
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url().optional(),
  /** OTLP over HTTP: protobuf (the spec's default) or JSON; grpc is not built in and refused, not ignored. */
  OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol.optional(),
  /** Wins over OTEL_EXPORTER_OTLP_PROTOCOL for traces. */
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol.optional(),
  /** Defaults per process: orderflow-api, orderflow-relay, orderflow-worker-orders, ... */
  OTEL_SERVICE_NAME: z.string().min(1).optional(),
  // Timeouts and Kafka security: one statement's limit on the services' database connections,
  // and SASL/TLS for every Kafka client (workers, consumers, CLI); cross-checked in loadConfig.
  /** PostgreSQL cancels a statement of the pooled connections after this long (ms); 0: no limit. */
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  /**
   * Named prepared statements on the services' pooled connections (each distinct
   * statement parsed and planned once per connection); false behind a pooler that
   * cannot carry them (PgBouncer in transaction mode before 1.21).
   */
  DATABASE_PREPARED_STATEMENTS: flagOn,
  KAFKA_SASL_MECHANISM: z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .pipe(
      z.enum(
        KAFKA_SASL_MECHANISMS,
        `must be one of ${KAFKA_SASL_MECHANISMS.join(', ')} (case does not matter)`,
      ),
    )
    .optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),
  /** TLS to the brokers (SASL_SSL or SSL listeners); off by default. */
  KAFKA_TLS: z
    .enum(['true', 'false', '1', '0'], 'must be true or false')
    .optional()
    .transform((v) => v === 'true' || v === '1'),
  /** PEM CA bundle that signed the brokers' certificates (default: the system's CAs). */
  KAFKA_TLS_CA_FILE: readableFile.optional(),
  /** PEM client certificate and key, for brokers that require mutual TLS (both or neither). */
  KAFKA_TLS_CERT_FILE: readableFile.optional(),
  KAFKA_TLS_KEY_FILE: readableFile.optional(),
});

export type Config = z.infer<typeof envSchema>;

/** Parses the environment once at start-up; a bad value throws naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    throw invalidConfiguration(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const config = parsed.data;
  const issues = kafkaSecurityIssues(config);
  if (issues.length) throw invalidConfiguration(issues);
  if (config.API_KEYS_FILE) {
    if (config.API_KEYS) invalid('API_KEYS_FILE', 'set API_KEYS or API_KEYS_FILE, not both');
    config.API_KEYS = readKeysFile(config.API_KEYS_FILE);
  }
  return config;
}

const invalid = (variable: string, why: string): never => {
  throw invalidConfiguration([`${variable}: ${why}`]);
};

/** Keys separated by commas, spaces or new lines (a Docker secret file). */
function readKeysFile(file: string): string[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    invalid(
      'API_KEYS_FILE',
      `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const keys = text.split(/[\s,]+/).filter(Boolean);
  return keys.length ? keys : invalid('API_KEYS_FILE', `${file} holds no key`);
}

/** Addresses that only this machine reaches: 127.0.0.0/8, ::1 (also IPv4-mapped) and "localhost". */
const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');
loopback.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && loopback.check(h, family === 4 ? 'ipv4' : 'ipv6');
}

/** Who may call the API: the keys it asks for, or nobody asked (anonymous). */
export interface ApiAccess {
  apiKeys: readonly string[];
  /** True when every route is open; never by default in production or off loopback. */
  anonymous: boolean;
  /** Where the API serves /metrics: open on PORT, behind a key on PORT, or on its own listener. */
  metrics: 'open' | 'key' | 'elsewhere';
}

/**
 * The API's access rules, refused at start-up when they are not safe: in production
 * (NODE_ENV=production) or bound to a non-loopback HOST, the API needs API_KEYS unless
 * API_ALLOW_ANONYMOUS=true says open access is meant.
 */
export function apiAccessOf(config: Config): ApiAccess {
  const apiKeys = config.API_KEYS ?? [];
  if (apiKeys.length && config.API_ALLOW_ANONYMOUS)
    invalid('API_ALLOW_ANONYMOUS', 'is true while API_KEYS is set: choose one');
  if (config.API_METRICS_REQUIRE_KEY && !apiKeys.length)
    invalid('API_METRICS_REQUIRE_KEY', 'is true but API_KEYS is not set');
  if (config.API_METRICS_REQUIRE_KEY && config.API_METRICS_PORT !== undefined)
    invalid(
      'API_METRICS_REQUIRE_KEY',
      'applies to /metrics on PORT; API_METRICS_PORT moves it away',
    );
  const exposedBy = [
    config.NODE_ENV === 'production' ? 'NODE_ENV=production' : '',
    isLoopbackHost(config.HOST) ? '' : `HOST=${config.HOST} is not a loopback address`,
  ].filter(Boolean);
  if (!apiKeys.length && exposedBy.length && !config.API_ALLOW_ANONYMOUS) {
    invalid(
      'API_KEYS',
      `is required because ${exposedBy.join(' and ')}: set API_KEYS (or API_KEYS_FILE) to one or more keys, or API_ALLOW_ANONYMOUS=true to serve every route without a key`,
    );
  }
  return {
    apiKeys,
    anonymous: !apiKeys.length,
    metrics:
      config.API_METRICS_PORT !== undefined
        ? 'elsewhere'
        : config.API_METRICS_REQUIRE_KEY
          ? 'key'
          : 'open',
  };
}
