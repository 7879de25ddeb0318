import type { Request } from 'express';
import { ProblemError } from './problems.ts';

/** The media types express.json() parses (see app.ts). */
export const JSON_MEDIA_TYPES = ['application/json', 'application/*+json'];

/** A body is framed by Transfer-Encoding or a non-zero Content-Length (type-is's rule, less the empty one). */
const hasContent = (req: Request): boolean =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

/**
 * The parsed JSON body of a request that needs one. express.json() leaves
 * `req.body` undefined for a body it did not parse: then there was no body (or
 * an empty one), a 400 whatever the Content-Type says, or it was not JSON, a 415.
 */
export function requireJsonBody(req: Request): unknown {
  if (req.body !== undefined) return req.body;
  if (!hasContent(req) || req.is(JSON_MEDIA_TYPES)) {
    throw new ProblemError('validation-error', 'The request has no body', [
      { field: '(body)', message: 'is required: send it as application/json' },
    ]);
  }
  throw new ProblemError(
    'unsupported-media-type',
    `Content-Type ${req.get('content-type') ?? '(none)'} is not application/json`,
  );
}
