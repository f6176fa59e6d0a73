-- One row that every transaction writing `indicators` updates first. The
-- update serializes intel writers (SQLite's write lock, PostgreSQL's row
-- lock), and a writer stamps `updated_at` only after it: so stamps follow
-- commit order, and "rows with updated_at >= T" read after seeing T holds
-- every change committed since, which is what lets the matchers patch
-- themselves from the rows changed since their last look.
CREATE TABLE intel_clock (
    id      BIGINT PRIMARY KEY,
    writes  BIGINT NOT NULL
);
INSERT INTO intel_clock (id, writes) VALUES (1, 0);
