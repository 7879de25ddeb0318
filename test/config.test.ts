import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ConfigError,
  apiAccessOf,
  isLoopbackHost,
  loadConfig,
  parseDuration,
} from '../src/config/env.ts';
import {
  WEBHOOK_ATTEMPT_MARGIN_MS,
  retryBudgetIssues,
  retryBudgetsOf,
  webhookTimeoutOf,
} from '../src/config/retry-budgets.ts';
import { temporalConnectSettings } from '../src/config/temporal.ts';
import { defaultRetryPolicies } from '../src/shared/steps.ts';

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 3000,
      TEMPORAL_ADDRESS: '127.0.0.1:7233',
      KAFKA_BROKERS: ['127.0.0.1:9092'],
      WEBHOOK_RATE_PER_SECOND: 20,
      WORKFLOW_START_MODE: 'async',
    });
    expect(c.RETRY_WEBHOOKS).toEqual(defaultRetryPolicies.webhooks);
  });

  it('lets webhooks reach public addresses only by default, disables an endpoint after 5 permanent failures and allows 20 per event type', () => {
    expect(loadConfig({})).toMatchObject({
      WEBHOOK_ALLOWED_TARGETS: 'public',
      WEBHOOK_DISABLE_AFTER_FAILURES: 5,
      WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE: 20,
    });
    expect(loadConfig({ WEBHOOK_ALLOWED_TARGETS: 'loopback' }).WEBHOOK_ALLOWED_TARGETS).toBe(
      'loopback',
    );
    for (const [name, value] of [
      ['WEBHOOK_ALLOWED_TARGETS', 'anything'],
      ['WEBHOOK_DISABLE_AFTER_FAILURES', '0'],
      ['WEBHOOK_MAX_ENDPOINTS_PER_EVENT_TYPE', 'many'],
    ] as const)
      expect(() => loadConfig({ [name]: value }), name).toThrow(name);
  });

  it('leaves 100 ms of every second to the webhook rate gate by default; 0 to 1000 accepted', () => {
    expect(loadConfig({}).WEBHOOK_RATE_MARGIN_MS).toBe(100);
    expect(loadConfig({ WEBHOOK_RATE_MARGIN_MS: '0' }).WEBHOOK_RATE_MARGIN_MS).toBe(0);
    for (const bad of ['-1', '1001', '50ms'])
      expect(() => loadConfig({ WEBHOOK_RATE_MARGIN_MS: bad }), bad).toThrow(
        /WEBHOOK_RATE_MARGIN_MS/,
      );
  });

  it('calls a consumer stalled after 60 s by default; a duration of at least 1 s', () => {
    expect(loadConfig({}).CONSUMER_STALL_TIMEOUT).toBe(60_000);
    expect(loadConfig({ CONSUMER_STALL_TIMEOUT: '2m' }).CONSUMER_STALL_TIMEOUT).toBe(120_000);
    for (const bad of ['500ms', 'soon'])
      expect(() => loadConfig({ CONSUMER_STALL_TIMEOUT: bad }), bad).toThrow(
        /CONSUMER_STALL_TIMEOUT/,
      );
  });

  it('bounds the orders in flight at 200 by default; 0 turns the bound off; a negative bound stops', () => {
    expect(loadConfig({}).OUTBOX_MAX_IN_FLIGHT).toBe(200);
    expect(loadConfig({ OUTBOX_MAX_IN_FLIGHT: '0' }).OUTBOX_MAX_IN_FLIGHT).toBe(0);
    expect(() => loadConfig({ OUTBOX_MAX_IN_FLIGHT: '-1' })).toThrow(/OUTBOX_MAX_IN_FLIGHT/);
  });

  it('counts an order toward the bound for 60 s after its start by default; under a second stops', () => {
    expect(loadConfig({}).OUTBOX_IN_FLIGHT_WINDOW_MS).toBe(60_000);
    expect(loadConfig({ OUTBOX_IN_FLIGHT_WINDOW_MS: '5000' }).OUTBOX_IN_FLIGHT_WINDOW_MS).toBe(
      5000,
    );
    expect(() => loadConfig({ OUTBOX_IN_FLIGHT_WINDOW_MS: '10' })).toThrow(
      /OUTBOX_IN_FLIGHT_WINDOW_MS/,
    );
  });

  it('reconciles terminated workflows every 30 s by default; 0 turns it off, under a second stops', () => {
    expect(loadConfig({}).WORKFLOW_RECONCILE_INTERVAL_MS).toBe(30_000);
    expect(loadConfig({ WORKFLOW_RECONCILE_INTERVAL_MS: '0' }).WORKFLOW_RECONCILE_INTERVAL_MS).toBe(
      0,
    );
    expect(() => loadConfig({ WORKFLOW_RECONCILE_INTERVAL_MS: '10' })).toThrow(
      /WORKFLOW_RECONCILE_INTERVAL_MS/,
    );
  });

  it('stops with a message naming each bad variable', () => {
    const attempt = () =>
      loadConfig({
        PORT: 'eighty',
        DATABASE_URL: 'mysql://x',
        RETRY_EMAIL: 'initial=soon',
        WORKFLOW_START_MODE: 'later',
      });
    expect(attempt).toThrow(ConfigError);
    const message = (() => {
      try {
        attempt();
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    for (const name of ['PORT', 'DATABASE_URL', 'RETRY_EMAIL', 'WORKFLOW_START_MODE'])
      expect(message).toContain(name);
  });

  it('reads retry budgets, keeping defaults for keys left out', () => {
    const c = loadConfig({ RETRY_WEBHOOKS: 'initial=1s, total=2h, attempts=5' });
    expect(c.RETRY_WEBHOOKS).toEqual({
      ...defaultRetryPolicies.webhooks,
      initialIntervalMs: 1000,
      totalTimeoutMs: 7_200_000,
      maximumAttempts: 5,
    });
    expect(() => loadConfig({ RETRY_EVENTS: 'backoff=0.5' })).toThrow(/backoff must be >= 1/);
    expect([
      parseDuration('250ms'),
      parseDuration('1.5s'),
      parseDuration('2m'),
      parseDuration('1h'),
      parseDuration('5 parsecs'),
    ]).toEqual([250, 1500, 120_000, 3_600_000, undefined]);
  });

  it('connects to Temporal by the SDK’s conventions: API key implies TLS, explicit variables win', () => {
    const local = temporalConnectSettings(loadConfig({}), {});
    expect(local).toEqual({
      connectionOptions: { address: '127.0.0.1:7233' },
      namespace: 'default',
    });
    const env = {
      TEMPORAL_ADDRESS: 'orders.abcd.tmprl.cloud:7233',
      TEMPORAL_NAMESPACE: 'orders.abcd',
      TEMPORAL_API_KEY: 'secret',
    };
    const cloud = temporalConnectSettings(loadConfig(env), env);
    expect(cloud).toEqual({
      connectionOptions: { address: 'orders.abcd.tmprl.cloud:7233', apiKey: 'secret', tls: true },
      namespace: 'orders.abcd',
    });
  });
});

describe('API access (secure defaults)', () => {
  const accessOf = (env: Record<string, string>) => apiAccessOf(loadConfig(env));
  const refusal = (env: Record<string, string>) => {
    try {
      accessOf(env);
      return '';
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
  };

  it('stays keyless on loopback in development, as npm start and the tests run', () => {
    for (const HOST of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1'])
      expect(accessOf({ HOST }), HOST).toEqual({ apiKeys: [], anonymous: true, metrics: 'open' });
  });

  it('refuses to start without API_KEYS in production or on a non-loopback address, saying why', () => {
    expect(refusal({ NODE_ENV: 'production' })).toMatch(
      /API_KEYS: is required because NODE_ENV=production/,
    );
    for (const HOST of ['0.0.0.0', '::', '192.168.1.10', 'api.internal'])
      expect(refusal({ HOST }), HOST).toMatch(
        new RegExp(`API_KEYS: .*HOST=${HOST.replace(/\./g, '\\.')} is not a loopback`),
      );
    expect(refusal({ NODE_ENV: 'production', HOST: '0.0.0.0' })).toMatch(
      /API_ALLOW_ANONYMOUS=true/,
    );
  });

  it('starts with keys, or open when API_ALLOW_ANONYMOUS=true says so (never both)', () => {
    expect(accessOf({ NODE_ENV: 'production', HOST: '0.0.0.0', API_KEYS: 'a,b' })).toMatchObject({
      apiKeys: ['a', 'b'],
      anonymous: false,
    });
    expect(accessOf({ NODE_ENV: 'production', API_ALLOW_ANONYMOUS: 'TRUE' }).anonymous).toBe(true);
    expect(refusal({ API_KEYS: 'a', API_ALLOW_ANONYMOUS: 'true' })).toMatch(/API_ALLOW_ANONYMOUS/);
    expect(() => loadConfig({ API_ALLOW_ANONYMOUS: 'yes' })).toThrow(/API_ALLOW_ANONYMOUS/);
  });

  it('reads keys from API_KEYS_FILE (a Docker secret), one per line or comma', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-keys-'));
    try {
      const file = path.join(dir, 'keys');
      fs.writeFileSync(file, 'first-key\nsecond-key, third-key\n');
      expect(accessOf({ NODE_ENV: 'production', API_KEYS_FILE: file }).apiKeys).toEqual([
        'first-key',
        'second-key',
        'third-key',
      ]);
      fs.writeFileSync(file, '\n  \n');
      expect(refusal({ API_KEYS_FILE: file })).toMatch(/API_KEYS_FILE: .* holds no key/);
      expect(refusal({ API_KEYS_FILE: path.join(dir, 'missing') })).toMatch(
        /API_KEYS_FILE: cannot read .*ENOENT/,
      );
      expect(refusal({ API_KEYS_FILE: file, API_KEYS: 'x' })).toMatch(/not both/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves /metrics open, behind a key, or on a listener of its own', () => {
    expect(accessOf({ API_KEYS: 'k', API_METRICS_REQUIRE_KEY: 'true' }).metrics).toBe('key');
    expect(accessOf({ API_METRICS_PORT: '9464' }).metrics).toBe('elsewhere');
    expect(refusal({ API_METRICS_REQUIRE_KEY: 'true' })).toMatch(
      /API_METRICS_REQUIRE_KEY: .*API_KEYS/,
    );
  });

  it('tells loopback hosts from others', () => {
    expect(['127.0.0.1', '::1', 'LOCALHOST'].map(isLoopbackHost)).toEqual([true, true, true]);
    expect(
      ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'localhost.example'].map(isLoopbackHost),
    ).toEqual([false, false, false, false, false]);
  });
});

describe('retry budgets', () => {
  /** The ConfigError message `fn` stops with ('' when it does not). */
  const stopsWith = (fn: () => unknown): string => {
    try {
      fn();
      return '';
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
  };

  it('hands the API and the relay every step’s budget, the defaults fitting WEBHOOK_TIMEOUT_MS', () => {
    expect(retryBudgetsOf(loadConfig({}))).toEqual(defaultRetryPolicies);
    expect(webhookTimeoutOf(loadConfig({}))).toBe(10_000);
    const c = loadConfig({ RETRY_EMAIL: 'attempts=3', RETRY_EVENTS: 'attempt=5s' });
    expect(retryBudgetsOf(c)).toEqual({
      email: { ...defaultRetryPolicies.email, maximumAttempts: 3 },
      webhooks: defaultRetryPolicies.webhooks,
      events: { ...defaultRetryPolicies.events, attemptTimeoutMs: 5000 },
    });
  });

  it('refuses a webhook attempt that cannot hold WEBHOOK_TIMEOUT_MS plus the margin, naming both variables', () => {
    const short = loadConfig({ RETRY_WEBHOOKS: 'attempt=8s' });
    for (const check of [() => retryBudgetsOf(short), () => webhookTimeoutOf(short)]) {
      const message = stopsWith(check);
      expect(message).toContain('RETRY_WEBHOOKS: attempt=8000ms');
      expect(message).toContain('WEBHOOK_TIMEOUT_MS=10000');
      expect(message).toContain(`attempt=${10_000 + WEBHOOK_ATTEMPT_MARGIN_MS}ms or more`);
    }
    const longRequest = loadConfig({ WEBHOOK_TIMEOUT_MS: '29000' });
    expect(stopsWith(() => webhookTimeoutOf(longRequest))).toMatch(
      /RETRY_WEBHOOKS: attempt=30000ms .*WEBHOOK_TIMEOUT_MS=29000/,
    );
  });

  it('accepts an attempt of exactly WEBHOOK_TIMEOUT_MS plus the margin, and a lower timeout for a short attempt', () => {
    const exact = loadConfig({
      WEBHOOK_TIMEOUT_MS: '3000',
      RETRY_WEBHOOKS: `attempt=${3000 + WEBHOOK_ATTEMPT_MARGIN_MS}ms`,
    });
    expect(webhookTimeoutOf(exact)).toBe(3000);
    expect(retryBudgetsOf(exact).webhooks.attemptTimeoutMs).toBe(3000 + WEBHOOK_ATTEMPT_MARGIN_MS);
    expect(
      retryBudgetIssues({
        ...loadConfig({}),
        WEBHOOK_TIMEOUT_MS: 3001,
        RETRY_WEBHOOKS: exact.RETRY_WEBHOOKS,
      }),
    ).toHaveLength(1);
  });

  it('stops the relay and the webhooks worker at start-up, before they connect anywhere', () => {
    const env = {
      ...process.env,
      RETRY_WEBHOOKS: 'attempt=5s',
      // Nothing listens there: a process that got as far as connecting would not stop at once.
      DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
      TEMPORAL_ADDRESS: '127.0.0.1:1',
    };
    for (const entry of ['src/api/relay.ts', 'src/workers/webhooks.ts']) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', entry], {
        cwd: path.resolve(import.meta.dirname, '..'),
        env,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(run.status, `${entry}: ${run.stderr}`).toBe(1);
      expect(run.stderr, entry).toMatch(
        /RETRY_WEBHOOKS: attempt=5000ms .*WEBHOOK_TIMEOUT_MS=10000/,
      );
    }
  });
});
