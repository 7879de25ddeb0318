-- CreateTable
CREATE TABLE "processed_events" (
    "group_id" TEXT NOT NULL,
    "event_source" TEXT NOT NULL,
    "event_id" TEXT NOT NULL,
    "topic" TEXT NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    "processed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "processed_events_pkey" PRIMARY KEY ("group_id","event_source","event_id")
);

-- CreateTable
CREATE TABLE "analytics_daily" (
    "day" DATE NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "order_count" INTEGER NOT NULL,
    "revenue_cents" BIGINT NOT NULL,

    CONSTRAINT "analytics_daily_pkey" PRIMARY KEY ("day","currency")
);

-- CreateTable
CREATE TABLE "stock_reservations" (
    "sku" TEXT NOT NULL,
    "reserved_quantity" BIGINT NOT NULL,
    "order_count" INTEGER NOT NULL,

    CONSTRAINT "stock_reservations_pkey" PRIMARY KEY ("sku")
);
