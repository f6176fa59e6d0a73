-- Detection results: alerts per org, their comments, per-entity
-- suppressions, and cross-org campaigns. Same conventions as 0001.

-- One alert groups the detections of one rule (or indicator) on one entity
-- in one org within the grouping window. org_path is kept for scoped reads.
CREATE TABLE alerts (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    org_path     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    rule_id      TEXT NOT NULL,
    title        TEXT NOT NULL,
    severity     TEXT NOT NULL,
    entity       TEXT NOT NULL,
    status       TEXT NOT NULL,
    assignee     TEXT,
    attack       TEXT NOT NULL,
    context      TEXT NOT NULL,
    event_ids    TEXT NOT NULL,
    event_count  BIGINT NOT NULL,
    first_seen   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    retro        BIGINT NOT NULL,
    campaign_key TEXT,
    campaign_id  TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX alerts_org_path ON alerts (org_path, id);
CREATE INDEX alerts_group ON alerts (org_id, rule_id, entity, last_seen);
CREATE INDEX alerts_campaign ON alerts (campaign_id);
CREATE INDEX alerts_campaign_key ON alerts (campaign_key, last_seen);

CREATE TABLE alert_comments (
    id         TEXT PRIMARY KEY,
    alert_id   TEXT NOT NULL REFERENCES alerts (id),
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, id);

-- A false-positive verdict can silence a rule for one entity of one org
-- until expires_at.
CREATE TABLE suppressions (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    org_path    TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    entity      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX suppressions_lookup ON suppressions (org_id, rule_id, entity);

-- The same indicator, rule or infrastructure seen at several orgs. Which
-- orgs: those of the alerts that point at it (alerts.campaign_id).
CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE,
    title       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Where an org wants its alerts delivered: a webhook (HMAC-signed JSON), a
-- syslog/CEF receiver (its own SIEM) or e-mail. With subtree = 1 the channel
-- also gets the alerts of the orgs below (a supervisor's), and campaigns.
CREATE TABLE notify_channels (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    org_path    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    target      TEXT NOT NULL,
    secret      TEXT,
    min_rank    BIGINT NOT NULL,
    subtree     BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX notify_channels_org ON notify_channels (org_path);

-- Deliveries owed, written in the transaction that opens the alert, so a
-- crash between the alert and its notification loses neither.
CREATE TABLE notify_outbox (
    id            TEXT PRIMARY KEY,
    channel_id    TEXT NOT NULL,
    payload       TEXT NOT NULL,
    attempts      BIGINT NOT NULL,
    next_attempt  BIGINT NOT NULL,
    last_error    TEXT,
    created_at    BIGINT NOT NULL,
    done_at       BIGINT
);
CREATE INDEX notify_outbox_due ON notify_outbox (done_at, next_attempt);
