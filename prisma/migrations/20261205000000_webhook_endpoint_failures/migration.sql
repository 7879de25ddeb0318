-- A subscriber's blast radius: permanent failures in a row (reset by a
-- delivery) disable an endpoint at WEBHOOK_DISABLE_AFTER_FAILURES, and when.
ALTER TABLE "webhook_endpoints" ADD COLUMN "consecutive_failures" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "webhook_endpoints" ADD COLUMN "disabled_at" TIMESTAMPTZ(3);
UPDATE "webhook_endpoints" SET "disabled_at" = "updated_at" WHERE "status" = 'DISABLED';

-- Receivers' response bodies no longer reach API callers: drop the ones
-- recorded before ("HTTP 404: <body>" in the delivery log, "... answered
-- HTTP 404: <body>" in a parked order's error), keeping the status.
UPDATE "webhook_deliveries"
SET "last_error" = substring("last_error" FROM '^HTTP [0-9]{3}')
WHERE "last_error" ~ '^HTTP [0-9]{3}: ';
UPDATE "orders"
SET "last_error" = regexp_replace("last_error", '(answered HTTP [0-9]{3}): .*$', '\1')
WHERE "last_error" ~ 'answered HTTP [0-9]{3}: ';
