-- Protective DNS: each org's own allow and block lists. A block applies to
-- the org and every org beneath it; an allow exempts the org (and, below
-- it, from intel) but never from a block an ancestor set (see
-- ARCHITECTURE.md, "Protective DNS policy precedence"). DNS client tokens
-- (role dns-client) live in the tokens table like every other token.

CREATE TABLE dns_policy (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    kind        TEXT NOT NULL,
    domain      TEXT NOT NULL,
    comment     TEXT,
    created_at  BIGINT NOT NULL,
    created_by  TEXT,
    UNIQUE (org_id, domain)
);
CREATE INDEX dns_policy_org ON dns_policy (org_id, id);
