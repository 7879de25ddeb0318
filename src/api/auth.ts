import type { RequestHandler } from 'express';
import { createHash, timingSafeEqual } from 'node:crypto';
import { ProblemError } from './problems.ts';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * Bearer API keys. Keys are compared as SHA-256 digests with timingSafeEqual,
 * so neither the content nor the length of a key leaks through timing.
 * Sets `res.locals.principal` (a digest prefix, never the key) for scoping.
 */
export function requireApiKey(keys: readonly string[]): RequestHandler {
  const digests = keys.map(digest);
  return (req, res, next) => {
    const match = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '');
    const presented = match?.[1] ? digest(match[1]) : undefined;
    // Compare against every key, so the time does not depend on which one matches.
    let ok = false;
    for (const d of digests) ok = (presented !== undefined && timingSafeEqual(d, presented)) || ok;
    if (!ok || !presented) {
      return next(
        new ProblemError('unauthorized', 'Send Authorization: Bearer <API key>', undefined, {
          'WWW-Authenticate': 'Bearer',
        }),
      );
    }
    res.locals.principal = presented.subarray(0, 12).toString('hex');
    next();
  };
}
