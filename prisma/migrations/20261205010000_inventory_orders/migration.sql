-- What the inventory projection did per order (src/consumers/projections/inventory.ts):
-- RESERVED (with the lines it reserved), RELEASED (reserved, then released by
-- order.cancelled) or CANCELLED (the cancel came first: order.placed reserves nothing).
CREATE TABLE "inventory_orders" (
    "order_id" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "items" JSONB,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "inventory_orders_pkey" PRIMARY KEY ("order_id")
);
