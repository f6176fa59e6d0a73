-- The last `updated_at` stamp an intel writer took (see 0005). Each writer
-- stamps max(now, last + 1): stamps strictly increase in commit order even
-- when the wall clock steps back or two writers share a millisecond, so a
-- matcher that has seen stamp T reads exactly the rows stamped after T.
ALTER TABLE intel_clock ADD COLUMN stamp BIGINT NOT NULL DEFAULT 0;
