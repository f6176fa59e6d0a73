-- Sharing groups (named sets of orgs an AMBER indicator or report can be
-- shared with) and the report library (documents, their pages, the
-- indicator proposals an analyst accepts or rejects).

-- A group is owned by one org (its owner manages it); its members see what
-- is shared with the group. Members may be anywhere in the tree.
CREATE TABLE sharing_groups (
    id            TEXT PRIMARY KEY,
    owner_org_id  TEXT NOT NULL REFERENCES orgs (id),
    owner_path    TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (owner_org_id, name)
);

CREATE TABLE sharing_group_members (
    group_id  TEXT NOT NULL REFERENCES sharing_groups (id),
    org_id    TEXT NOT NULL REFERENCES orgs (id),
    added_at  BIGINT NOT NULL,
    PRIMARY KEY (group_id, org_id)
);
CREATE INDEX sharing_group_members_org ON sharing_group_members (org_id);

-- AMBER / AMBER+STRICT indicators shared with a group are visible to its
-- members (beside the orgs in indicator_shares).
CREATE TABLE indicator_group_shares (
    indicator_id  TEXT NOT NULL REFERENCES indicators (id),
    group_id      TEXT NOT NULL REFERENCES sharing_groups (id),
    PRIMARY KEY (indicator_id, group_id)
);
CREATE INDEX indicator_group_shares_group ON indicator_group_shares (group_id);

-- 0003's intel_reports was never written: it is replaced by a document
-- with its pages and proposals in their own tables.
DROP TABLE intel_reports;

-- document holds the uploaded file, base64 (one TEXT type on both
-- databases; uploads are capped).
CREATE TABLE intel_reports (
    id            TEXT PRIMARY KEY,
    owner_org_id  TEXT NOT NULL REFERENCES orgs (id),
    owner_path    TEXT NOT NULL,
    title         TEXT NOT NULL,
    source        TEXT NOT NULL,
    tlp           TEXT NOT NULL,
    format        TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    size          BIGINT NOT NULL,
    page_count    BIGINT NOT NULL,
    document      TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX intel_reports_owner ON intel_reports (owner_org_id);

-- folded is the text lower-cased (Unicode) for case-insensitive search.
CREATE TABLE intel_report_pages (
    report_id  TEXT NOT NULL REFERENCES intel_reports (id),
    page       BIGINT NOT NULL,
    text       TEXT NOT NULL,
    folded     TEXT NOT NULL,
    PRIMARY KEY (report_id, page)
);

CREATE TABLE intel_report_proposals (
    id            TEXT PRIMARY KEY,
    report_id     TEXT NOT NULL REFERENCES intel_reports (id),
    ord           BIGINT NOT NULL,
    kind          TEXT NOT NULL,
    value         TEXT NOT NULL,
    occurrences   TEXT NOT NULL,
    status        TEXT NOT NULL,
    indicator_id  TEXT,
    decided_by    TEXT,
    decided_at    BIGINT
);
CREATE INDEX intel_report_proposals_report ON intel_report_proposals (report_id, ord);

CREATE TABLE report_shares (
    report_id  TEXT NOT NULL REFERENCES intel_reports (id),
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    PRIMARY KEY (report_id, org_id)
);
CREATE INDEX report_shares_org ON report_shares (org_id);

CREATE TABLE report_group_shares (
    report_id  TEXT NOT NULL REFERENCES intel_reports (id),
    group_id   TEXT NOT NULL REFERENCES sharing_groups (id),
    PRIMARY KEY (report_id, group_id)
);
CREATE INDEX report_group_shares_group ON report_group_shares (group_id);
