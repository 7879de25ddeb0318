-- The relay polls for due, unconfirmed starts (started_at IS NULL AND
-- next_attempt_at <= now()). An index over every row made each poll walk the
-- confirmed starts of all past orders; a partial index holds the pending ones
-- only, so a poll costs the same after a million orders as after ten.
-- (Prisma's schema cannot express the WHERE clause; the @@index there keeps the name.)
DROP INDEX "workflow_starts_pending_idx";
CREATE INDEX "workflow_starts_pending_idx" ON "workflow_starts"("next_attempt_at") WHERE "started_at" IS NULL;
