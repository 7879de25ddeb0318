/**
 * RFC 9457 problem details. Every error the API answers with is one of these
 * kinds, with a stable `type`; nothing else (no stack trace) reaches a client.
 */
import type { ErrorRequestHandler, Response } from 'express';
import { UNREACHABLE_ADAPTER_KINDS } from '../db/errors.ts';
import type { Logger } from '../shared/logger.ts';

export interface FieldError {
  field: string;
  message: string;
}

const kinds = {
  'validation-error': { status: 400, title: 'The request is invalid' },
  'malformed-json': { status: 400, title: 'The body is not valid JSON' },
  unauthorized: { status: 401, title: 'Missing or invalid API key' },
  'not-found': { status: 404, title: 'Not found' },
  'not-parked': { status: 409, title: 'The order is not in a state that allows this' },
  'endpoint-limit-reached': {
    status: 409,
    title: 'An event type already has the most webhook endpoints allowed',
  },
  'payload-too-large': { status: 413, title: 'The body is too large' },
  'unsupported-media-type': { status: 415, title: 'The body must be application/json' },
  'idempotency-key-reused': {
    status: 422,
    title: 'The Idempotency-Key was used with a different request',
  },
  'service-unavailable': { status: 503, title: 'A dependency is unavailable; retry later' },
  internal: { status: 500, title: 'Internal error' },
} as const;

export type ProblemKind = keyof typeof kinds;

export const problemTypeUri = (kind: ProblemKind): string => `urn:orderflow:problem:${kind}`;
export const problemKinds = Object.keys(kinds) as ProblemKind[];

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

/** body-parser's errors carry a `type`; map them to their problems. */
function fromBodyParser(err: { type?: string; message?: string }): ProblemError | undefined {
  switch (err.type) {
    case 'entity.parse.failed':
      return new ProblemError('malformed-json', 'The body could not be parsed as JSON');
    case 'entity.too.large':
      return new ProblemError('payload-too-large', 'The body exceeds the 64 KiB limit');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ProblemError('unsupported-media-type', err.message);
    default:
      return undefined;
  }
}

/** The one error middleware: typed errors become problems, anything else a logged 500. */
export function problemMiddleware(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    const problem =
      err instanceof ProblemError
        ? err
        : (fromBodyParser(err as { type?: string }) ?? asUnavailable(err));
    if (problem) return sendProblem(res, problem, req.originalUrl);
    ((req as { log?: Logger }).log ?? log).error({ err }, 'unhandled error');
    sendProblem(res, new ProblemError('internal'), req.originalUrl);
  };
}

/**
 * Database connectivity failures (Prisma/pg) are 503, so clients retry. 57P0x: PostgreSQL is
 * shutting down or restarting and ends the connection; P1017: the socket was reset (the driver
 * adapter's ConnectionClosed), both found by the chaos run's PostgreSQL stop.
 */
function asUnavailable(err: unknown): ProblemError | undefined {
  const e = err as {
    code?: string;
    name?: string;
    message?: string;
    cause?: unknown;
    meta?: { driverAdapterError?: { cause?: { kind?: string } } };
  };
  const text = `${e?.name ?? ''} ${e?.code ?? ''} ${e?.message ?? ''}`;
  // A raw query's failure (P2010) names the driver adapter's error kind only in meta.
  const adapterKind = e?.meta?.driverAdapterError?.cause?.kind ?? '';
  if (
    UNREACHABLE_ADAPTER_KINDS.has(adapterKind) ||
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|timeout exceeded when trying to connect|Connection terminated|P1001|P1002|P1008|P1017|P2024|P2037|DatabaseNotReachable|ConnectionClosed|SocketTimeout|TooManyConnections|Server has closed the connection|57P0[123]|terminating connection due to administrator command|the database system is (starting up|shutting down)/i.test(
      text,
    )
  ) {
    return new ProblemError('service-unavailable', 'The database is unreachable', undefined, {
      'Retry-After': '1',
    });
  }
  return e?.cause && e.cause !== err ? asUnavailable(e.cause) : undefined;
}
