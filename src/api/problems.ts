/**
 * RFC 9457 problem details. Every error the API answers with is one of these
 * kinds, with a stable `type`; nothing else (no stack trace) reaches a client.
 */
import type { ErrorRequestHandler, Response } from 'express';
import { TRANSIENT_ADAPTER_KINDS } from '../db/errors.ts';
import { OrderError, type OrderErrorCode } from '../orders/errors.ts';
import type { FieldError } from '../shared/errors.ts';
import { WebhookEndpointError, type WebhookEndpointErrorCode } from '../webhooks/endpoint-rules.ts';
import type { Logger } from '../shared/logger.ts';

const kinds = {
  'validation-error': { status: 400, title: 'The request is invalid' },
  'malformed-json': { status: 400, title: 'The body is not valid JSON' },
  'bad-request': { status: 400, title: 'The request cannot be read' },
  unauthorized: { status: 401, title: 'Missing or invalid API key' },
  'not-found': { status: 404, title: 'Not found' },
  'not-parked': { status: 409, title: 'The order is not in a state that allows this' },
  'endpoint-limit-reached': {
    status: 409,
    title: 'An event type already has the most webhook endpoints allowed',
  },
  'workflow-not-ready': {
    status: 409,
    title: 'The order’s workflow has not started yet, or is still starting',
  },
  'payload-too-large': { status: 413, title: 'The body is too large' },
  'unsupported-media-type': { status: 415, title: 'The body must be application/json' },
  'idempotency-key-reused': {
    status: 422,
    title: 'The Idempotency-Key was used with a different request',
  },
  'service-unavailable': { status: 503, title: 'A dependency is unavailable; retry later' },
  'upstream-timeout': { status: 504, title: 'Temporal or a worker did not answer in time' },
  internal: { status: 500, title: 'Internal error' },
} as const;

export type ProblemKind = keyof typeof kinds;

export const problemTypeUri = (kind: ProblemKind): string => `urn:orderflow:problem:${kind}`;
export const problemKinds = Object.keys(kinds) as ProblemKind[];
export const problemStatus = (kind: ProblemKind): number => kinds[kind].status;

/** A typed API error; the error middleware renders it as a problem document. */
export class ProblemError extends Error {
  readonly status: number;
  constructor(
    readonly kind: ProblemKind,
    readonly detail?: string,
    readonly errors?: FieldError[],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? kinds[kind].title);
    this.name = 'ProblemError';
    this.status = kinds[kind].status;
  }
}

/** The use case errors the API answers with a problem of their own. */
export type KnownDomainError = OrderError | WebhookEndpointError;

/** The problem each use case error code (orders, webhook subscribers) is answered with. */
const domainProblems: Record<OrderErrorCode | WebhookEndpointErrorCode, ProblemKind> = {
  invalid: 'validation-error',
  'not-found': 'not-found',
  'not-parked': 'not-parked',
  'not-cancellable': 'not-parked',
  'workflow-ended': 'not-parked',
  'workflow-not-ready': 'workflow-not-ready',
  'idempotency-key-reused': 'idempotency-key-reused',
  'temporal-unavailable': 'service-unavailable',
  'temporal-timeout': 'upstream-timeout',
  'endpoint-limit-reached': 'endpoint-limit-reached',
  'service-unavailable': 'service-unavailable',
};

/** A use case's error as the problem the API answers with (its message is the detail). */
export function problemOfDomainError(err: KnownDomainError): ProblemError {
  const { fields, retryAfterSeconds } = err.extra;
  return new ProblemError(
    domainProblems[err.code],
    err.message,
    fields,
    retryAfterSeconds === undefined ? {} : { 'Retry-After': String(retryAfterSeconds) },
  );
}

export function sendProblem(res: Response, err: ProblemError, instance?: string): void {
  res
    .status(err.status)
    .set(err.headers)
    .type('application/problem+json')
    .json({
      type: problemTypeUri(err.kind),
      title: kinds[err.kind].title,
      status: err.status,
      ...(err.detail ? { detail: err.detail } : {}),
      ...(instance ? { instance } : {}),
      ...(err.errors ? { errors: err.errors } : {}),
    });
}

/** zlib's codes for a compressed body that does not decompress. */
const ZLIB_DATA_ERRORS: ReadonlySet<string> = new Set(['Z_DATA_ERROR', 'Z_BUF_ERROR']);

/**
 * Errors of body-parser and the router carry their HTTP status (http-errors);
 * a 4xx one is the client's fault and becomes its problem, by the error's `type`
 * where body-parser gives one.
 */
function fromHttpError(err: unknown): ProblemError | undefined {
  const e = err as { status?: unknown; statusCode?: unknown; type?: unknown; code?: unknown };
  const status = typeof e?.status === 'number' ? e.status : e?.statusCode;
  if (typeof status !== 'number' || status < 400 || status > 499) return undefined;
  switch (e.type) {
    case 'entity.parse.failed':
      return new ProblemError('malformed-json', 'The body could not be parsed as JSON');
    case 'entity.too.large':
      return new ProblemError('payload-too-large', 'The body exceeds the 64 KiB limit');
    case 'encoding.unsupported':
      return new ProblemError(
        'unsupported-media-type',
        'Content-Encoding must be gzip, deflate, br or identity',
      );
    case 'charset.unsupported':
      return new ProblemError('unsupported-media-type', 'The body’s charset must be utf-8');
    case 'request.aborted':
      return new ProblemError('bad-request', 'The body ended before Content-Length bytes');
    case 'request.size.invalid':
      return new ProblemError('bad-request', 'The body’s length does not match Content-Length');
  }
  if (err instanceof URIError) {
    return new ProblemError('bad-request', 'The path holds an invalid percent-encoding');
  }
  if (typeof e.code === 'string' && ZLIB_DATA_ERRORS.has(e.code)) {
    return new ProblemError('bad-request', 'The compressed body does not decompress');
  }
  if (status === 413) return new ProblemError('payload-too-large');
  if (status === 415) return new ProblemError('unsupported-media-type');
  return new ProblemError('bad-request');
}

/** The problem a known error is answered with; undefined for anything else (a 500). */
function problemOf(err: unknown): ProblemError | undefined {
  if (err instanceof ProblemError) return err;
  if (err instanceof OrderError || err instanceof WebhookEndpointError)
    return problemOfDomainError(err);
  const fromHttp = fromHttpError(err);
  if (fromHttp) return fromHttp;
  if (isDatabaseUnavailable(err))
    return new ProblemError('service-unavailable', 'The database is unreachable', undefined, {
      'Retry-After': '1',
    });
  return undefined;
}

/** The one error middleware: typed errors become problems, anything else a logged 500. */
export function problemMiddleware(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const problem = problemOf(err);
    if (problem) return sendProblem(res, problem, req.originalUrl);
    ((req as { log?: Logger }).log ?? log).error({ err }, 'unhandled error');
    sendProblem(res, new ProblemError('internal'), req.originalUrl);
  };
}

/** Prisma's codes for "the database cannot answer now" (connection, timeouts, pool). */
const UNAVAILABLE_PRISMA_CODES: ReadonlySet<string> = new Set([
  'P1001', // can't reach the database server
  'P1002', // reached, but timed out
  'P1008', // operation timed out
  'P1017', // the server closed the connection
  'P2024', // timed out fetching a connection from the pool
  'P2037', // too many connections
]);

/** Node.js socket error codes of a database connection that failed or broke. */
const UNAVAILABLE_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * PostgreSQL SQLSTATEs: class 08 (connection exception), class 53 (insufficient
 * resources), 57P01-57P03 (shutting down, crashed, starting up: found by the chaos
 * run's PostgreSQL stop), 57014 (statement timeout) and 40001/40P01 (retry the transaction).
 */
const isUnavailableSqlState = (code: string): boolean =>
  /^(08|53)[0-9A-Z]{3}$/.test(code) ||
  ['57P01', '57P02', '57P03', '57014', '40001', '40P01'].includes(code);

/**
 * pg 8 and pg-pool 3 raise these without any code; they are compared whole, as
 * the constants they are in those libraries, never as patterns over other text.
 */
const PG_CODELESS_CONNECTION_ERRORS: ReadonlySet<string> = new Set([
  'Connection terminated unexpectedly',
  'Connection terminated due to connection timeout',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error and is not queryable',
]);

interface DatabaseErrorShape {
  code?: unknown;
  errorCode?: unknown;
  message?: unknown;
  cause?: unknown;
  meta?: {
    driverAdapterError?: { cause?: { kind?: unknown; originalCode?: unknown; code?: unknown } };
  };
}

/**
 * Database connectivity failures (Prisma, its pg driver adapter, pg) are 503, so
 * clients retry. Told apart by their codes: Prisma's (P1xxx...), the adapter's
 * error kind, PostgreSQL's SQLSTATE and Node's socket codes, along the cause chain.
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false;
  const e = err as DatabaseErrorShape;
  const prismaCode = typeof e.code === 'string' ? e.code : e.errorCode;
  if (typeof prismaCode === 'string' && UNAVAILABLE_PRISMA_CODES.has(prismaCode)) return true;
  const adapter = e.meta?.driverAdapterError?.cause;
  if (adapter) {
    if (typeof adapter.kind === 'string' && TRANSIENT_ADAPTER_KINDS.has(adapter.kind)) return true;
    const sqlState = adapter.originalCode ?? adapter.code;
    if (typeof sqlState === 'string' && isUnavailableSqlState(sqlState)) return true;
  }
  if (typeof e.code === 'string') {
    if (UNAVAILABLE_SOCKET_CODES.has(e.code)) return true;
    // A pg DatabaseError (thrown through as is): its code is the SQLSTATE.
    if (/^[0-9A-Z]{5}$/.test(e.code) && isUnavailableSqlState(e.code)) return true;
  }
  if (
    e.code === undefined &&
    typeof e.message === 'string' &&
    PG_CODELESS_CONNECTION_ERRORS.has(e.message)
  )
    return true;
  return e.cause !== err && isDatabaseUnavailable(e.cause, depth + 1);
}
