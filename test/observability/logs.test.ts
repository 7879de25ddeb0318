/**
 * Logs never carry secrets: the real loggers' output is captured (the API's
 * through a destination stream, a worker's from its stdout) while requests
 * with API keys, a webhook endpoint's creation (its signing secret) and a
 * process start with credentials in DATABASE_URL and SMTP_URL happen; the
 * secrets must be absent and the redaction marker present where they were.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createLogger, REDACTED } from '../../src/shared/logger.ts';
import { postOrder, registerEndpoint, startApi, validOrder, type TestApi } from '../support/api.ts';
import { stackEnvOf, startAppProcess } from './processes.ts';

const stack = inject('stack');

/** A destination stream that keeps what the logger wrote. */
function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return {
    stream,
    text: () => text,
    lines: () =>
      text
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, any>), // eslint-disable-line @typescript-eslint/no-explicit-any
  };
}

const apiKey = `key-${randomBytes(12).toString('hex')}`;
const wrongKey = `wrong-${randomBytes(12).toString('hex')}`;
const out = capture();
let api: TestApi;
const endpointIds: string[] = [];

beforeAll(async () => {
  api = await startApi({
    databaseUrl: stack.DATABASE_URL,
    temporalAddress: stack.TEMPORAL_ADDRESS,
    apiKeys: [apiKey],
    relay: { run: false },
    // The process's own logger at its most verbose level, so every request line is written.
    log: createLogger('api', 'trace', { format: 'json', destination: out.stream }),
  });
});
afterAll(async () => {
  if (endpointIds.length)
    await api?.db.webhookEndpoint.deleteMany({ where: { id: { in: endpointIds } } });
  await api?.close();
});

describe('API logs', () => {
  it('redact the Authorization header (valid and invalid keys) and carry the request id', async () => {
    const requestId = `req-${randomUUID()}`;
    const created = await postOrder(api.url, validOrder(), {
      authorization: `Bearer ${apiKey}`,
      'x-request-id': requestId,
    });
    expect(created.status).toBe(201);
    const refused = await postOrder(api.url, validOrder(), { authorization: `Bearer ${wrongKey}` });
    expect(refused.status).toBe(401);

    const text = out.text();
    expect(text).not.toContain(apiKey);
    expect(text).not.toContain(wrongKey);
    const line = out.lines().find((l) => l.requestId === requestId && l.req);
    expect(
      line,
      `a request line with requestId ${requestId} in:\n${text.slice(-3000)}`,
    ).toBeDefined();
    expect(line!.req.headers.authorization).toBe(REDACTED);
    expect(line!.res.statusCode).toBe(201);
  });

  it('never show a webhook signing secret, returned once at creation', async () => {
    const body = await registerEndpoint(api.url, 'http://127.0.0.1:9/hook', {
      authorization: `Bearer ${apiKey}`,
    });
    endpointIds.push(body.id);
    expect(body.secret).toMatch(/^whsec_/);
    expect(out.text()).not.toContain(body.secret);
    expect(out.text()).not.toContain(body.secret.slice('whsec_'.length));
    expect(out.lines().some((l) => l.req?.url === '/webhook-endpoints')).toBe(true);
  });
});

describe('the shared logger', () => {
  it('censors signing secrets, signatures, SMTP auth, Kafka SASL and URL passwords wherever logged', () => {
    const sink = capture();
    const log = createLogger('test', 'info', { format: 'json', destination: sink.stream });
    const secrets = {
      signing: `whsec_${randomBytes(24).toString('base64')}`,
      signature: `v1,${randomBytes(32).toString('base64')}`,
      smtp: `smtp-${randomUUID()}`,
      sasl: `sasl-${randomUUID()}`,
      db: `db-${randomUUID()}`,
      token: `tok-${randomUUID()}`,
    };
    log.info(
      {
        endpoint: { id: 'e1', secret: secrets.signing },
        request: { headers: { 'webhook-signature': secrets.signature } },
        transport: { auth: { user: 'mailer', pass: secrets.smtp } },
        kafka: { sasl: { mechanism: 'plain', username: 'u', password: secrets.sasl } },
        err: new Error(`connect failed: postgresql://app:${secrets.db}@db.internal:5432/orderflow`),
        callback: `https://hooks.example/x?token=${secrets.token}`,
      },
      `connecting to postgresql://app:${secrets.db}@db.internal:5432/orderflow`,
    );
    const text = sink.text();
    for (const [what, secret] of Object.entries(secrets))
      expect(text, `${what} leaked: ${text}`).not.toContain(secret);
    const [line] = sink.lines();
    expect(line).toMatchObject({
      endpoint: { id: 'e1', secret: REDACTED },
      request: { headers: { 'webhook-signature': REDACTED } },
      transport: { auth: { user: 'mailer', pass: REDACTED } },
      kafka: { sasl: { username: 'u', password: REDACTED } },
      err: {
        type: 'Error',
        message: `connect failed: postgresql://app:${REDACTED}@db.internal:5432/orderflow`,
      },
      callback: `https://hooks.example/x?token=${REDACTED}`,
      msg: `connecting to postgresql://app:${REDACTED}@db.internal:5432/orderflow`,
    });
  });

  it('writes readable lines with LOG_FORMAT=pretty, still redacted', () => {
    const sink = capture();
    const log = createLogger('test', 'info', { format: 'pretty', destination: sink.stream });
    log.info({ password: 'hunter2', smtp: 'smtp://u:hunter3@h:25' }, 'hello');
    const text = sink.text();
    expect(text).toContain('INFO');
    expect(text).toContain('hello');
    expect(text.trimStart().startsWith('{')).toBe(false);
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('hunter3');
    expect(text).toContain(REDACTED);
  });
});

describe('a worker process', () => {
  it('logs its configuration at start without passwords, API keys or SMTP credentials', async () => {
    const dbPassword = `dbpw-${randomBytes(8).toString('hex')}`;
    const smtpPassword = `smtppw-${randomBytes(8).toString('hex')}`;
    const keys = [`k1-${randomBytes(8).toString('hex')}`, `k2-${randomBytes(8).toString('hex')}`];
    const env = stackEnvOf(stack);
    // The test database trusts local connections, so any password is accepted.
    const databaseUrl = env.DATABASE_URL!.replace('://postgres@', `://postgres:${dbPassword}@`);
    expect(databaseUrl).toContain(dbPassword);
    const smtpUrl = env.SMTP_URL!.replace('smtp://', `smtp://mailer:${smtpPassword}@`);
    const worker = startAppProcess('worker-email', 'src/workers/email.ts', {
      ...env,
      DATABASE_URL: databaseUrl,
      SMTP_URL: smtpUrl,
      API_KEYS: keys.join(','),
      LOG_LEVEL: 'debug',
      WORKER_METRICS_PORT: '0',
    });
    try {
      await worker.waitForLine('"worker running"', (l) => l.msg === 'worker running', 150_000);
    } finally {
      await worker.stop();
    }
    const output = worker.output();
    for (const secret of [dbPassword, smtpPassword, ...keys])
      expect(output, `${secret} leaked`).not.toContain(secret);

    const config = worker.lines.find((l) => l.msg === 'configuration')?.config as
      Record<string, unknown> | undefined;
    expect(config, output.slice(0, 3000)).toBeDefined();
    expect(config!.API_KEYS).toBe(REDACTED);
    expect(config!.DATABASE_URL).toBe(databaseUrl.replace(dbPassword, REDACTED));
    expect(config!.SMTP_URL).toBe(smtpUrl.replace(smtpPassword, REDACTED));
    const smtpLine = worker.lines.find((l) => l.msg === 'SMTP transport ready');
    expect(smtpLine?.smtp).toContain(`mailer:${REDACTED}@`);
  });
});
