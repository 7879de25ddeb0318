import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseDuration } from '../src/config/env.ts';
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
