/**
 * Secure defaults of the API process (`node --import tsx src/api/server.ts`, as
 * npm start and docker-compose.yml run it) against the suite's stack: it
 * refuses to start without keys in production or off loopback, starts with
 * keys from a file (a Docker secret) or with anonymous access asked for, and
 * its /metrics is open, behind a key or on a port of its own; each time the
 * OpenAPI document says per operation what the server enforces.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { startAppProcess, stackEnvOf, type AppProcess } from '../observability/processes.ts';
import type { Body } from '../support/api.ts';

const stack = inject('stack');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'orderflow-secure-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const running: AppProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

/** The API process with `env` on top of the stack's addresses; loopback, a free port, no keys. */
function startApiProcess(env: Record<string, string>): AppProcess {
  const p = startAppProcess('api', 'src/api/server.ts', {
    ...stackEnvOf(stack),
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: '0',
    API_KEYS: '',
    API_KEYS_FILE: '',
    API_ALLOW_ANONYMOUS: '',
    API_METRICS_PORT: '',
    API_METRICS_REQUIRE_KEY: '',
    ...env,
  });
  running.push(p);
  return p;
}

/** The exit of a process that must refuse to start (bounded wait). */
async function refusal(p: AppProcess): Promise<{ code: number | null; output: string }> {
  const exited = await Promise.race([
    p.exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 45_000)),
  ]);
  expect(exited, `the API started instead of refusing:\n${p.output()}`).toBeDefined();
  return { code: exited!.code, output: p.output() };
}

/** The URL the API logged once listening. */
async function listening(p: AppProcess, what = 'api listening'): Promise<string> {
  const line = await p.waitForLine(what, (l) => l.msg === what, 90_000);
  return String(line.url);
}

const get = async (url: string, key?: string) => {
  const res = await fetch(url, {
    headers: key ? { authorization: `Bearer ${key}` } : {},
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, text: await res.text() };
};

/** `security` of each documented operation, by operationId. */
async function securityByOperation(url: string): Promise<Record<string, unknown>> {
  const doc = JSON.parse((await get(`${url}/openapi.json`)).text) as Body;
  const out: Record<string, unknown> = {};
  for (const item of Object.values(doc.paths as Record<string, Record<string, Body>>))
    for (const op of Object.values(item)) out[op.operationId as string] = op.security;
  return out;
}

describe('the API process refuses to start open where that is not safe', () => {
  it('stops with NODE_ENV=production and no API_KEYS, naming the variable', async () => {
    const { code, output } = await refusal(startApiProcess({ NODE_ENV: 'production' }));
    expect(code).toBe(1);
    expect(output).toMatch(/API_KEYS: is required because NODE_ENV=production/);
    expect(output).toMatch(/API_ALLOW_ANONYMOUS=true/);
  });

  it('stops when bound to a non-loopback address without keys, before it listens', async () => {
    const p = startApiProcess({ HOST: '0.0.0.0' });
    const { code, output } = await refusal(p);
    expect(code).toBe(1);
    expect(output).toMatch(
      /API_KEYS: is required because HOST=0\.0\.0\.0 is not a loopback address/,
    );
    expect(p.lines.some((l) => l.msg === 'api listening')).toBe(false);
  });
});

describe('the API process on a port already taken', () => {
  it('stops with a message naming the address, and never says it listens', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const { port } = taken.address() as net.AddressInfo;
      const p = startApiProcess({ PORT: String(port) });
      const { code, output } = await refusal(p);
      expect(code).toBe(1);
      expect(output).toContain(`cannot listen on 127.0.0.1:${port}: listen EADDRINUSE`);
      expect(p.lines.some((l) => l.msg === 'api listening')).toBe(false);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});

describe('the API process with keys or with anonymous access asked for', () => {
  it('starts in production with keys from API_KEYS_FILE and enforces them where the document says', async () => {
    const file = path.join(dir, 'api-keys');
    fs.writeFileSync(file, 'secure-defaults-key\n');
    const url = await listening(startApiProcess({ NODE_ENV: 'production', API_KEYS_FILE: file }));
    expect((await get(`${url}/orders?limit=1`)).status).toBe(401);
    expect((await get(`${url}/orders?limit=1`, 'wrong')).status).toBe(401);
    expect((await get(`${url}/orders?limit=1`, 'secure-defaults-key')).status).toBe(200);
    for (const open of ['/healthz', '/readyz', '/openapi.json', '/metrics'])
      expect((await get(`${url}${open}`)).status, open).toBe(200);

    const security = await securityByOperation(url);
    expect(security.listOrders).toEqual([{ bearerAuth: [] }]);
    expect(security.createOrder).toEqual([{ bearerAuth: [] }]);
    expect(security.deleteWebhookEndpoint).toEqual([{ bearerAuth: [] }]);
    for (const open of ['health', 'readiness', 'openapi', 'metrics'])
      expect(security[open], open).toEqual([]);
  });

  it('starts in production without keys only with API_ALLOW_ANONYMOUS=true, and says so', async () => {
    const p = startApiProcess({ NODE_ENV: 'production', API_ALLOW_ANONYMOUS: 'true' });
    const url = await listening(p);
    expect((await get(`${url}/orders?limit=1`)).status).toBe(200);
    expect(
      p.lines.some((l) => /API_ALLOW_ANONYMOUS=true: every route is open/.test(String(l.msg))),
    ).toBe(true);
    const security = await securityByOperation(url);
    expect(Object.values(security).every((s) => Array.isArray(s) && s.length === 0)).toBe(true);
  });

  it('puts /metrics behind a key with API_METRICS_REQUIRE_KEY=true', async () => {
    const url = await listening(
      startApiProcess({ API_KEYS: 'metrics-key', API_METRICS_REQUIRE_KEY: 'true' }),
    );
    expect((await get(`${url}/metrics`)).status).toBe(401);
    const scraped = await get(`${url}/metrics`, 'metrics-key');
    expect(scraped.status).toBe(200);
    expect(scraped.text).toContain('orderflow_http_request_duration_seconds');
    expect((await securityByOperation(url)).metrics).toEqual([{ bearerAuth: [] }]);
  });

  it('serves /metrics on a listener of its own with API_METRICS_PORT, and not on PORT', async () => {
    const p = startApiProcess({ API_KEYS: 'k1', API_METRICS_PORT: '0' });
    const url = await listening(p);
    const metricsUrl = await listening(p, 'metrics listening');
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await get(metricsUrl)).text).toContain('orderflow_outbox_pending');
    expect((await get(`${url}/metrics`, 'k1')).status).toBe(404);
    expect(await securityByOperation(url)).not.toHaveProperty('metrics');
  });
});
