-- The spine: the org tree, identities and the audit log.
-- Written once for SQLite and PostgreSQL alike: TEXT ids (UUIDv7), BIGINT
-- Unix-millisecond times, JSON kept as TEXT, no booleans.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    parent_id   TEXT REFERENCES orgs (id),
    path        TEXT NOT NULL UNIQUE,
    sector      TEXT,
    contacts    TEXT NOT NULL,
    networks    TEXT NOT NULL,
    domains     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX orgs_parent ON orgs (parent_id);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES orgs (id),
    username       TEXT NOT NULL,
    display_name   TEXT,
    email          TEXT,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    disabled_at    BIGINT,
    UNIQUE (org_id, username)
);
CREATE INDEX users_org ON users (org_id);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    user_id       TEXT REFERENCES users (id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    created_by    TEXT,
    expires_at    BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX tokens_org ON tokens (org_id);

-- No foreign keys: the audit trail outlives the orgs, users and tokens it
-- names. org_path is kept so scoped reads work after an org is deleted.
CREATE TABLE audit_log (
    id              TEXT PRIMARY KEY,
    at              BIGINT NOT NULL,
    org_id          TEXT NOT NULL,
    org_path        TEXT NOT NULL,
    actor           TEXT NOT NULL,
    actor_role      TEXT,
    actor_org_id    TEXT,
    remote_addr     TEXT,
    action          TEXT NOT NULL,
    target_type     TEXT NOT NULL,
    target_id       TEXT,
    detail          TEXT NOT NULL
);
CREATE INDEX audit_org_path ON audit_log (org_path, id);
