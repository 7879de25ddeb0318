/**
 * Kafka SASL and TLS settings (KAFKA_SASL_*, KAFKA_TLS*) against the test
 * stack's broker, which also listens with SASL_PLAINTEXT and SASL_SSL (PLAIN
 * users in the listeners' JAAS entries, SCRAM-SHA-256/512 users written when
 * its storage was formatted, a self-signed certificate for 127.0.0.1): every
 * mechanism produces, consumes in a group and administers topics; TLS works
 * with the broker's CA file and refuses an untrusted certificate; a wrong
 * password is refused; the events worker, a consumer process and the CLI all
 * work through it; the password never reaches a log; bad settings stop the
 * process with a message naming the variable.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { KAFKA_SASL_MECHANISMS, loadConfig } from '../../src/config/env.ts';
import {
  createKafka,
  createOrderEventsProducer,
  ensureTopic,
  kafkaSecurity,
} from '../../src/events/kafka.ts';
import type { KafkaClient } from '../../src/events/kafka-types.ts';
import { ORDERS_PLACED_TOPIC } from '../../src/shared/events.ts';
import { REDACTED, configForLog, createLogger } from '../../src/shared/logger.ts';
import { cli } from '../cli/run-cli.ts';
import { startAppProcess, stackEnvOf } from '../observability/processes.ts';

const stack = inject('stack');
const sasl = inject('kafkaSasl');
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-kafka-security-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** The environment of a process that talks to the SASL listener as `mechanism`'s user. */
function saslEnv(mechanism: (typeof KAFKA_SASL_MECHANISMS)[number], password?: string) {
  const user = sasl.users[mechanism];
  return {
    KAFKA_BROKERS: sasl.brokers,
    // Mechanism names are accepted in any case, as brokers and other clients spell them.
    KAFKA_SASL_MECHANISM: mechanism.toUpperCase(),
    KAFKA_SASL_USERNAME: user.username,
    KAFKA_SASL_PASSWORD: password ?? user.password,
  };
}

/** A logger whose JSON lines are collected. */
function capturedLogger() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return {
    log: createLogger('kafka-security-test', 'info', { format: 'json', destination }),
    lines,
  };
}

/** Timeouts short enough for a refusal that comes as silence. */
const QUICK = { connectionTimeout: 1000, requestTimeout: 2000 };

/** An admin client that tries once (no retries); disconnected after the test. */
function oneTryAdmin(
  config: Parameters<typeof createKafka>[0],
  logger: ReturnType<typeof capturedLogger>['log'],
  timeouts: { connectionTimeout?: number; requestTimeout?: number } = {},
) {
  const admin = createKafka(config, { logger, retry: { retries: 0 }, ...timeouts }).admin();
  cleanups.push(() => admin.disconnect());
  return admin;
}

async function roundTrip(kafka: KafkaClient): Promise<string[]> {
  const topic = `security-test-${randomUUID()}`;
  const admin = kafka.admin();
  await admin.connect();
  cleanups.push(() => admin.disconnect());
  expect(await ensureTopic(admin, topic, 2)).toEqual({ created: true, partitions: 2 });

  const producer = createOrderEventsProducer(kafka);
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  await producer.send({
    topic,
    acks: -1,
    messages: [
      { key: 'a', value: 'one' },
      { key: 'b', value: 'two' },
    ],
  });

  const consumer = kafka.consumer({
    groupId: `security-test-${randomUUID()}`,
    maxWaitTimeInMs: 200,
  });
  await consumer.connect();
  cleanups.push(() => consumer.disconnect());
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const received: string[] = [];
  await consumer.run({
    eachMessage: async ({ message }) => {
      received.push(String(message.value));
    },
  });
  const deadline = Date.now() + 30_000;
  while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return received.sort();
}

describe('SASL against the broker', () => {
  it.each(KAFKA_SASL_MECHANISMS)(
    'produces, consumes in a group and creates topics with %s',
    async (mechanism) => {
      const config = loadConfig(saslEnv(mechanism));
      const { log, lines } = capturedLogger();
      const kafka = createKafka(config, { logger: log, clientId: `security-${mechanism}` });
      expect(await roundTrip(kafka)).toEqual(['one', 'two']);
      expect(lines.join('')).not.toContain(sasl.users[mechanism].password);
    },
    60_000,
  );

  it("connects over TLS (SASL_SSL) trusting the broker's certificate through KAFKA_TLS_CA_FILE", async () => {
    const config = loadConfig({
      ...saslEnv('scram-sha-512'),
      KAFKA_BROKERS: sasl.tlsBrokers,
      KAFKA_TLS: 'true',
      KAFKA_TLS_CA_FILE: sasl.caFile,
    });
    const { log } = capturedLogger();
    expect(await roundTrip(createKafka(config, { logger: log, clientId: 'security-tls' }))).toEqual(
      ['one', 'two'],
    );
  }, 60_000);

  it("refuses the broker's certificate when it is not trusted (the system CAs only), and plaintext on a TLS listener", async () => {
    const { log } = capturedLogger();
    const admin = oneTryAdmin(
      loadConfig({ ...saslEnv('plain'), KAFKA_BROKERS: sasl.tlsBrokers, KAFKA_TLS: 'true' }),
      log,
      { connectionTimeout: 3000 },
    );
    await expect(admin.connect()).rejects.toThrow(/self[- ]signed certificate/i);

    const plainAdmin = oneTryAdmin(
      loadConfig({ ...saslEnv('plain'), KAFKA_BROKERS: sasl.tlsBrokers }),
      log,
      QUICK,
    );
    await expect(plainAdmin.connect()).rejects.toThrow();
  }, 60_000);

  it('is refused with a wrong password, and without credentials, and the password is not logged', async () => {
    const wrong = `wrong-${randomUUID()}`;
    const { log, lines } = capturedLogger();
    const admin = oneTryAdmin(loadConfig(saslEnv('scram-sha-512', wrong)), log);
    await expect(admin.connect()).rejects.toThrow(/SASL SCRAM SHA512 authentication failed/);
    expect(lines.join('')).not.toContain(wrong);

    const anonymousAdmin = oneTryAdmin(loadConfig({ KAFKA_BROKERS: sasl.brokers }), log, QUICK);
    await expect(
      anonymousAdmin.connect().then(() => anonymousAdmin.listTopics()),
    ).rejects.toThrow();
  }, 60_000);

  it('logs the configuration with the password redacted', () => {
    const config = loadConfig(saslEnv('plain'));
    const logged = configForLog(config);
    expect(logged.KAFKA_SASL_PASSWORD).toBe(REDACTED);
    expect(logged.KAFKA_SASL_USERNAME).toBe(sasl.users.plain.username);
    expect(JSON.stringify(logged)).not.toContain(sasl.users.plain.password);
  });
});

describe('every Kafka client of orderflow through SASL', () => {
  it('runs the events worker and a consumer group process, and serves the CLI', async () => {
    const env = { ...stackEnvOf(stack), ...saslEnv('scram-sha-256'), LOG_LEVEL: 'info' };
    const worker = startAppProcess('worker-events', 'src/workers/events.ts', {
      ...env,
      WORKER_METRICS_PORT: '0',
    });
    cleanups.push(() => worker.stop());
    const consumer = startAppProcess('consumer-inventory', 'src/consumers/inventory.ts', {
      ...env,
      CONSUMER_METRICS_PORT: '0',
    });
    cleanups.push(() => consumer.stop());
    // Each one checks the topic through the admin client first, then connects its producer or joins its group.
    await worker.waitForLine('topic ready', (l) => l.msg === 'topic ready', 90_000);
    await worker.waitForLine('running', (l) => l.msg === 'worker running', 90_000);
    await consumer.waitForLine('joined', (l) => l.msg === 'joined consumer group', 90_000);
    await consumer.waitForLine('running', (l) => l.msg === 'consumer running', 90_000);
    for (const proc of [worker, consumer]) {
      expect(proc.output()).not.toContain(sasl.users['scram-sha-256'].password);
      expect(proc.output()).toContain(`"KAFKA_SASL_PASSWORD":"${REDACTED}"`);
    }

    const lag = await cli(['consumers', 'lag', 'inventory', '--json'], saslEnv('scram-sha-512'));
    expect(lag.code, lag.stderr).toBe(0);
    expect(lag.stdout).toContain(ORDERS_PLACED_TOPIC);
    const refused = await cli(['consumers', 'lag', 'inventory'], saslEnv('plain', 'not-it'));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/SASL PLAIN authentication failed/);
    expect(refused.stderr).not.toContain('not-it');
  }, 180_000);
});

describe('configuration', () => {
  const fail = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('expected loadConfig to refuse the configuration');
  };

  it('refuses incomplete or unknown SASL settings, naming the variable', () => {
    expect(fail({ KAFKA_SASL_MECHANISM: 'gssapi' })).toMatch(
      /KAFKA_SASL_MECHANISM: must be one of plain, scram-sha-256, scram-sha-512/,
    );
    expect(fail({ KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_PASSWORD: 'x' })).toMatch(
      /KAFKA_SASL_USERNAME: required when KAFKA_SASL_MECHANISM is set/,
    );
    expect(fail({ KAFKA_SASL_MECHANISM: 'scram-sha-256', KAFKA_SASL_USERNAME: 'u' })).toMatch(
      /KAFKA_SASL_PASSWORD: required when KAFKA_SASL_MECHANISM is set/,
    );
    expect(fail({ KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' })).toMatch(
      /KAFKA_SASL_MECHANISM: required when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set/,
    );
    // A refused configuration does not quote the password.
    expect(fail({ KAFKA_SASL_PASSWORD: 'hunter2-secret' })).not.toContain('hunter2-secret');
  });

  it('refuses TLS files that cannot be read or are given without KAFKA_TLS, naming the variable', () => {
    const ca = path.join(scratch, 'ca.pem');
    fs.writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    expect(
      fail({ KAFKA_TLS: 'true', KAFKA_TLS_CA_FILE: path.join(scratch, 'missing.pem') }),
    ).toMatch(/KAFKA_TLS_CA_FILE: no readable file at this path/);
    expect(fail({ KAFKA_TLS: 'true', KAFKA_TLS_CA_FILE: scratch })).toMatch(/KAFKA_TLS_CA_FILE/);
    expect(fail({ KAFKA_TLS_CA_FILE: ca })).toMatch(
      /KAFKA_TLS_CA_FILE: only used with TLS; set KAFKA_TLS=true/,
    );
    expect(fail({ KAFKA_TLS: 'true', KAFKA_TLS_CERT_FILE: ca })).toMatch(
      /KAFKA_TLS_KEY_FILE: mutual TLS needs both KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE/,
    );
    expect(fail({ KAFKA_TLS: 'yes' })).toMatch(/KAFKA_TLS: must be true or false/);
  });

  it('turns the settings into kafkajs options', () => {
    const ca = path.join(scratch, 'ca-options.pem');
    fs.writeFileSync(ca, 'CA PEM');
    expect(kafkaSecurity(loadConfig({}))).toEqual({});
    expect(kafkaSecurity(loadConfig({ KAFKA_TLS: 'true' }))).toEqual({ ssl: true });
    expect(kafkaSecurity(loadConfig({ KAFKA_TLS: '1', KAFKA_TLS_CA_FILE: ca }))).toEqual({
      ssl: { ca: ['CA PEM'] },
    });
    expect(kafkaSecurity(loadConfig(saslEnv('scram-sha-512')))).toEqual({
      sasl: {
        mechanism: 'scram-sha-512',
        username: sasl.users['scram-sha-512'].username,
        password: sasl.users['scram-sha-512'].password,
      },
    });
  });
});
