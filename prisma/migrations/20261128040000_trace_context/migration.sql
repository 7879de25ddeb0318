-- W3C trace context of the request that accepted the order (only written while
-- tracing is on), so the relay starts the workflow inside that trace.
ALTER TABLE "workflow_starts" ADD COLUMN "traceparent" TEXT;
ALTER TABLE "workflow_starts" ADD COLUMN "tracestate" TEXT;
