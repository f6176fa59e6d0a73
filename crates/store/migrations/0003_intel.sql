-- Threat intelligence: indicators with their owner and sharing, kept STIX
-- objects, feed subscriptions and threat reports.

-- One row per (owner org, kind, value): the same indicator from two orgs is
-- two rows, each with its own TLP and sharing. body holds the whole
-- normalized indicator (sources, tags, ATT&CK, related, …) as JSON; the
-- columns beside it are what queries filter on.
CREATE TABLE indicators (
    id             TEXT PRIMARY KEY,
    owner_org_id   TEXT NOT NULL REFERENCES orgs (id),
    owner_path     TEXT NOT NULL,
    kind           TEXT NOT NULL,
    kind_key       TEXT NOT NULL,
    value          TEXT NOT NULL,
    tlp            TEXT NOT NULL,
    detection      BIGINT NOT NULL,
    revoked        BIGINT NOT NULL,
    confidence     BIGINT NOT NULL,
    first_seen     BIGINT NOT NULL,
    last_seen      BIGINT NOT NULL,
    valid_until    BIGINT,
    body           TEXT NOT NULL,
    sightings      BIGINT NOT NULL,
    sighting_orgs  TEXT NOT NULL,
    last_sighting  BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (owner_org_id, kind_key, value)
);
CREATE INDEX indicators_value ON indicators (value);
CREATE INDEX indicators_updated ON indicators (updated_at, id);

-- AMBER / AMBER+STRICT indicators are visible to the orgs listed here (and
-- their owner); RED ones to their owner only; CLEAR / GREEN to everyone.
CREATE TABLE indicator_shares (
    indicator_id  TEXT NOT NULL REFERENCES indicators (id),
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    PRIMARY KEY (indicator_id, org_id)
);
CREATE INDEX indicator_shares_org ON indicator_shares (org_id);

-- STIX domain objects kept beside the indicators (malware, campaign,
-- attack-pattern, intrusion-set, …) and relationships, for TAXII.
CREATE TABLE intel_objects (
    id            TEXT NOT NULL,
    owner_org_id  TEXT NOT NULL REFERENCES orgs (id),
    owner_path    TEXT NOT NULL,
    type          TEXT NOT NULL,
    tlp           TEXT NOT NULL,
    body          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (owner_org_id, id)
);
CREATE INDEX intel_objects_updated ON intel_objects (updated_at);

CREATE TABLE intel_feeds (
    id             TEXT PRIMARY KEY,
    owner_org_id   TEXT NOT NULL REFERENCES orgs (id),
    owner_path     TEXT NOT NULL,
    name           TEXT NOT NULL,
    url            TEXT NOT NULL,
    format         TEXT NOT NULL,
    interval_secs  BIGINT NOT NULL,
    tlp            TEXT NOT NULL,
    confidence     BIGINT NOT NULL,
    enabled        BIGINT NOT NULL,
    etag           TEXT,
    last_modified  TEXT,
    last_polled    BIGINT,
    last_status    TEXT,
    last_error     TEXT,
    last_count     BIGINT,
    created_at     BIGINT NOT NULL,
    UNIQUE (owner_org_id, name)
);

CREATE TABLE intel_reports (
    id            TEXT PRIMARY KEY,
    owner_org_id  TEXT NOT NULL REFERENCES orgs (id),
    owner_path    TEXT NOT NULL,
    title         TEXT NOT NULL,
    tlp           TEXT NOT NULL,
    pages         TEXT NOT NULL,
    proposals     TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
