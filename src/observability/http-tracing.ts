/**
 * A server span per API request (no HTTP auto-instrumentation is installed):
 * continues the caller's W3C `traceparent`, is named by the matched route
 * template (`POST /orders`, `GET /orders/:id`), and records the status.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
} from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { RequestHandler } from 'express';
import { tracer } from './tracing.ts';

/** Probes and scrapes would be most of the spans and say nothing. */
const UNTRACED = new Set(['/healthz', '/readyz', '/metrics']);

/** Express middleware; mount it first (only while tracing is on). */
export function httpServerSpans(): RequestHandler {
  return (req, res, next) => {
    if (UNTRACED.has(req.path)) return next();
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer().startSpan(
      req.method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_HTTP_REQUEST_METHOD]: req.method,
          [ATTR_URL_PATH]: req.path,
          [ATTR_URL_SCHEME]: req.protocol,
          ...(req.get('user-agent') ? { [ATTR_USER_AGENT_ORIGINAL]: req.get('user-agent') } : {}),
        },
      },
      parent,
    );
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const pattern = (req.route as { path?: unknown } | undefined)?.path;
      if (typeof pattern === 'string') {
        const route = `${req.baseUrl}${pattern}`;
        span.setAttribute(ATTR_HTTP_ROUTE, route);
        span.updateName(`${req.method} ${route}`);
      }
      if (!res.writableFinished) {
        // The connection closed before the response was sent.
        span.setAttribute(ATTR_ERROR_TYPE, 'aborted');
        span.setStatus({ code: SpanStatusCode.ERROR, message: 'connection closed early' });
      } else {
        span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, res.statusCode);
        if (res.statusCode >= 500) {
          span.setAttribute(ATTR_ERROR_TYPE, String(res.statusCode));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
      }
      span.end();
    };
    res.once('finish', end);
    res.once('close', end);
    context.with(trace.setSpan(parent, span), next);
  };
}
