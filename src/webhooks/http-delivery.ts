/**
 * One webhook POST over node:http/https (not fetch: the socket's `lookup` is
 * the SSRF guard). No redirects are followed, the whole exchange has one
 * deadline, and at most 4 KiB of the response body is read; the body is only
 * ever logged (truncated and sanitized), never stored or returned to callers.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import {
  TargetForbiddenError,
  classifyAddress,
  guardedLookup,
  hostOf,
  isAllowedAddress,
  type Resolver,
  type TargetPolicy,
} from './ssrf-guard.ts';

export const MAX_RESPONSE_BODY_BYTES = 4096;
/** How much of a receiver's response body a log line carries. */
export const LOGGED_BODY_CHARS = 200;

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Connect, send and receive the response head and (capped) body within this time. */
  timeoutMs: number;
  policy: TargetPolicy;
  /** DNS for the guarded lookup (default: the system's, as any HTTP client). */
  resolve?: Resolver;
  signal?: AbortSignal;
  /**
   * Asked once the connection is up, right before the request is written: false
   * sends nothing and rejects with SendTimeMissedError (the rate gate's last check).
   */
  onTime?: () => boolean;
}

export interface WebhookResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The first 4 KiB of the body, as UTF-8: for logs only, through `bodyForLog`. */
  body: string;
}

/** `onTime` said no: the connection was closed before a byte of the request was written. */
export class SendTimeMissedError extends Error {
  override name = 'SendTimeMissedError';
}

/** The request did not complete in time; worth retrying. */
export class DeliveryTimeoutError extends Error {
  override name = 'DeliveryTimeoutError';
}

/**
 * POSTs the body and resolves with the response (any status); rejects with a
 * TargetForbiddenError, a DeliveryTimeoutError or the network error.
 */
export function postWebhook(req: WebhookRequest): Promise<WebhookResponse> {
  const url = new URL(req.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return Promise.reject(new TypeError(`${url.protocol} is not http: or https:`));
  // A literal IP never reaches `lookup`, so it is checked here.
  const host = hostOf(url);
  if (isIP(host) && !isAllowedAddress(host, req.policy))
    return Promise.reject(new TargetForbiddenError(host, host, classifyAddress(host), req.policy));

  return new Promise((resolve, reject) => {
    const client = url.protocol === 'https:' ? https : http;
    const request = client.request(url, {
      method: 'POST',
      headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
      lookup: guardedLookup(req.policy, req.resolve),
      // A fresh connection per delivery: pooled sockets would skip the guarded lookup's re-check.
      agent: false,
      signal: req.signal,
    });
    const deadline = setTimeout(() => {
      request.destroy(new DeliveryTimeoutError(`no complete response within ${req.timeoutMs} ms`));
    }, req.timeoutMs);
    const fail = (err: Error) => {
      clearTimeout(deadline);
      reject(err);
    };
    request.on('error', fail);
    request.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => {
        clearTimeout(deadline);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BODY_BYTES).toString('utf8'),
        });
        // The rest of a large body is not worth reading.
        request.destroy();
      };
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= MAX_RESPONSE_BODY_BYTES) done();
      });
      res.on('end', done);
      res.on('error', fail);
    });
    if (!req.onTime) {
      request.end(req.body);
      return;
    }
    const onTime = req.onTime;
    // Nothing is written before end(): the check comes after the connect (and TLS handshake).
    request.once('socket', (socket) => {
      const connected = url.protocol === 'https:' ? 'secureConnect' : 'connect';
      const go = () => {
        if (onTime()) request.end(req.body);
        else request.destroy(new SendTimeMissedError('too late for its send time; nothing sent'));
      };
      if (socket.connecting) socket.once(connected, go);
      else go();
    });
  });
}

/**
 * A Retry-After value (delta-seconds or HTTP-date) as milliseconds from `now`;
 * undefined when absent, malformed or not in the future.
 */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+$/.test(text)) {
    const ms = Number(text) * 1000;
    return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
  }
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  const ms = at - now.getTime();
  return ms > 0 ? ms : undefined;
}

/**
 * A receiver's response body as a log may carry it: control and format
 * characters (newlines, ANSI escapes, bidi overrides) become spaces, runs of
 * whitespace one space, and at most LOGGED_BODY_CHARS characters are kept.
 */
export function bodyForLog(body: string): string {
  const flat = body
    .replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  const chars = [...flat];
  return chars.length > LOGGED_BODY_CHARS
    ? `${chars.slice(0, LOGGED_BODY_CHARS).join('')}… (${chars.length} characters)`
    : flat;
}
