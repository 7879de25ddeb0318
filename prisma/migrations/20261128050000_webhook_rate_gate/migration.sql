-- The next free send time of each webhook rate gate (src/webhooks/rate-gate.ts):
-- every send reserves it with one UPDATE, so the limit holds across all workers.
CREATE TABLE "webhook_rate_gates" (
    "name" TEXT NOT NULL,
    "next_at" TIMESTAMPTZ(6) NOT NULL,

    CONSTRAINT "webhook_rate_gates_pkey" PRIMARY KEY ("name")
);

INSERT INTO "webhook_rate_gates" ("name", "next_at") VALUES ('deliveries', clock_timestamp());
