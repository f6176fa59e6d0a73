//! The report library: threat reports (PDF, HTML, text) kept with their
//! extracted text per page, searchable, and the indicators they mention as
//! proposals that an analyst accepts (the indicator is created, owned by
//! the report's org, with the report's TLP and sharing) or rejects.
//!
//! A report is shared like an indicator (the same SQL rule, see
//! `intel::visible_sql`): CLEAR/GREEN to everyone, AMBER/AMBER+STRICT to its
//! owner and the orgs and sharing groups it was shared with, RED to its
//! owner only.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::intel::{tlp_str, upsert_tx, visible_sql, UpsertReport};
use crate::sharing::{check_sharing, Sharing};
use crate::{from_json_text, json_text, Page, PageRequest, Result, Store, StoreError};
use base64::Engine;
use mimamori_core::{new_id, now_millis, InvalidInput, Org, UnixMillis};
use mimamori_intel::{Indicator, IndicatorKind, Tlp};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Most pages kept of one report.
pub const MAX_REPORT_PAGES: usize = 500;

/// Most proposals kept of one report (the first ones, in order of mention).
pub const MAX_PROPOSALS: usize = 5000;

/// Most search hits returned.
pub const MAX_HITS: i64 = 200;

/// Characters of context on each side of a search hit.
const SNIPPET: usize = 80;

/// A report to store: the document and what was read from it.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub title: String,
    pub source: String,
    pub tlp: Tlp,
    /// `pdf`, `html` or `text`.
    pub format: String,
    pub document: Vec<u8>,
    pub pages: Vec<String>,
    pub proposals: Vec<mimamori_intel::Proposal>,
}

/// Where a proposal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Proposed,
    Accepted,
    Rejected,
}

impl ProposalStatus {
    fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Proposed => "proposed",
            ProposalStatus::Accepted => "accepted",
            ProposalStatus::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Option<ProposalStatus> {
        [
            ProposalStatus::Proposed,
            ProposalStatus::Accepted,
            ProposalStatus::Rejected,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// An indicator a report mentions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Proposal {
    pub id: String,
    pub report_id: String,
    /// `{"type": "domain", "exact": false}`, `{"type": "ipv4"}`, …
    #[schema(value_type = Object)]
    pub kind: IndicatorKind,
    /// The normalized value (refanged: `evil[.]example` → `evil.example`).
    pub value: String,
    /// Each place it is mentioned: page, the text as written, a snippet.
    #[schema(value_type = Vec<Object>)]
    pub occurrences: serde_json::Value,
    pub status: ProposalStatus,
    /// The indicator created when it was accepted.
    pub indicator_id: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<UnixMillis>,
}

/// A report as read back (without its pages and document).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub id: String,
    pub owner_org_id: String,
    pub title: String,
    pub source: String,
    /// `clear`, `green`, `amber`, `amber-strict` or `red`.
    pub tlp: String,
    /// `pdf`, `html` or `text`.
    pub format: String,
    pub sha256: String,
    pub size: i64,
    pub page_count: i64,
    pub created_by: String,
    pub created_at: UnixMillis,
    /// Orgs and sharing groups it is shared with (only shown to its owner).
    pub shared_with: Vec<String>,
    pub shared_with_groups: Vec<String>,
}

/// One page's text.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportPage {
    /// 1-based.
    pub page: i64,
    pub text: String,
}

/// A page of a visible report that matches a search.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReportHit {
    pub report_id: String,
    pub title: String,
    pub tlp: String,
    pub page: i64,
    /// The text around the first match on the page.
    pub snippet: String,
}

fn report_from_row(row: &AnyRow) -> Result<Report> {
    Ok(Report {
        id: row.try_get("id")?,
        owner_org_id: row.try_get("owner_org_id")?,
        title: row.try_get("title")?,
        source: row.try_get("source")?,
        tlp: row.try_get("tlp")?,
        format: row.try_get("format")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        page_count: row.try_get("page_count")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        shared_with: vec![],
        shared_with_groups: vec![],
    })
}

fn proposal_from_row(row: &AnyRow) -> Result<Proposal> {
    let kind: String = row.try_get("kind")?;
    let occ: String = row.try_get("occurrences")?;
    let status: String = row.try_get("status")?;
    Ok(Proposal {
        id: row.try_get("id")?,
        report_id: row.try_get("report_id")?,
        kind: from_json_text("kind", &kind)?,
        value: row.try_get("value")?,
        occurrences: from_json_text("occurrences", &occ)?,
        status: ProposalStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("column status: {status:?}")))?,
        indicator_id: row.try_get("indicator_id")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
    })
}

/// The SQL condition "report `r` is visible to org `$n`".
fn visible(n: usize) -> String {
    visible_sql("r", "report_shares", "report_group_shares", "report_id", n)
}

/// `%…%` for LIKE with the wildcards in `q` escaped (`ESCAPE '\'`).
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The text around the first case-insensitive occurrence of `q` in `text`,
/// whitespace collapsed.
fn snippet(text: &str, q: &str) -> String {
    let qchars: Vec<char> = q.to_lowercase().chars().collect();
    // Compared char by char from each position so the offset is one in
    // `text`, whatever lower-casing does to lengths.
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    let hit = starts
        .iter()
        .position(|&i| {
            let mut folded = text[i..].chars().flat_map(char::to_lowercase);
            qchars.iter().all(|c| folded.next() == Some(*c))
        })
        .unwrap_or(0);
    let from = starts[hit.saturating_sub(SNIPPET)..]
        .first()
        .copied()
        .unwrap_or(0);
    let to = starts
        .get(hit + q.chars().count() + SNIPPET)
        .copied()
        .unwrap_or(text.len());
    text[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// Stores a report owned by `owner`, with its pages and proposals,
    /// shared as `sharing` says. One transaction.
    pub async fn report_create(
        &self,
        actor: &AuditActor,
        owner: &Org,
        new: &NewReport,
        sharing: &Sharing,
    ) -> Result<Report> {
        let invalid = |f: &str, r: String| StoreError::Invalid(InvalidInput::new(f, r));
        let title = mimamori_core::validate::display_name("title", &new.title)?;
        let source = mimamori_core::validate::display_name("source", &new.source)?;
        if !["pdf", "html", "text"].contains(&new.format.as_str()) {
            return Err(invalid(
                "format",
                format!("{:?} is not one of pdf, html, text", new.format),
            ));
        }
        if new.pages.len() > MAX_REPORT_PAGES {
            return Err(invalid(
                "document",
                format!(
                    "{} pages; at most {MAX_REPORT_PAGES} are kept",
                    new.pages.len()
                ),
            ));
        }
        if new.tlp == Tlp::Red && !sharing.is_empty() {
            return Err(invalid(
                "share_with",
                "a RED report never leaves its owner; it cannot be shared".into(),
            ));
        }
        let id = new_id();
        let now = now_millis();
        let sha = hex::encode(Sha256::digest(&new.document));
        let mut tx = self.begin_write().await?;
        check_sharing(&mut tx, owner, sharing).await?;
        sqlx::query(
            "INSERT INTO intel_reports (id, owner_org_id, owner_path, title, source, tlp, format, sha256, size, page_count, document, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&id)
        .bind(owner.id.as_str())
        .bind(owner.path.as_str())
        .bind(&title)
        .bind(&source)
        .bind(tlp_str(new.tlp))
        .bind(&new.format)
        .bind(&sha)
        .bind(new.document.len() as i64)
        .bind(new.pages.len() as i64)
        .bind(base64::engine::general_purpose::STANDARD.encode(&new.document))
        .bind(&actor.actor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (n, text) in new.pages.iter().enumerate() {
            // NUL cannot be stored in PostgreSQL text; it carries nothing.
            let text = text.replace('\0', "");
            sqlx::query(
                "INSERT INTO intel_report_pages (report_id, page, text, folded) VALUES ($1, $2, $3, $4)",
            )
            .bind(&id)
            .bind(n as i64 + 1)
            .bind(&text)
            .bind(text.to_lowercase())
            .execute(&mut *tx)
            .await?;
        }
        for (n, p) in new.proposals.iter().take(MAX_PROPOSALS).enumerate() {
            sqlx::query(
                "INSERT INTO intel_report_proposals (id, report_id, ord, kind, value, occurrences, status, indicator_id, decided_by, decided_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'proposed', NULL, NULL, NULL)",
            )
            .bind(new_id())
            .bind(&id)
            .bind(n as i64)
            .bind(json_text(&p.kind)?)
            .bind(&p.value)
            .bind(json_text(&p.occurrences)?.replace('\0', ""))
            .execute(&mut *tx)
            .await?;
        }
        for org in &sharing.orgs {
            sqlx::query("INSERT INTO report_shares (report_id, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
        }
        for g in &sharing.groups {
            sqlx::query("INSERT INTO report_group_shares (report_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&id)
                .bind(g)
                .execute(&mut *tx)
                .await?;
        }
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: "intel.report.create",
                target_type: "report",
                target_id: Some(&id),
                detail: json!({"title": title, "source": source, "tlp": tlp_str(new.tlp), "format": new.format,
                    "sha256": sha, "pages": new.pages.len(), "proposals": new.proposals.len().min(MAX_PROPOSALS),
                    "share_with": sharing.orgs, "share_groups": sharing.groups}),
            },
        )
        .await?;
        tx.commit().await?;
        self.report_get(owner.id.as_str(), &id).await
    }

    /// Reports visible to `viewer_org_id`, newest first.
    pub async fn report_list(
        &self,
        viewer_org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Report>> {
        let rows = sqlx::query(&format!(
            "SELECT r.* FROM intel_reports r WHERE {} AND r.id < $2 ORDER BY r.id DESC LIMIT $3",
            visible(1)
        ))
        .bind(viewer_org_id)
        .bind(page.after.as_deref().unwrap_or("~"))
        .bind(page.limit() + 1)
        .fetch_all(&self.pool)
        .await?;
        let items: Vec<Report> = rows.iter().map(report_from_row).collect::<Result<_>>()?;
        Ok(page.finish(items, |r: &Report| &r.id))
    }

    /// Pages of visible reports whose text contains `q` (case-insensitive),
    /// newest report first, each with a snippet around the match.
    pub async fn report_search(&self, viewer_org_id: &str, q: &str) -> Result<Vec<ReportHit>> {
        let rows = sqlx::query(&format!(
            "SELECT r.id, r.title, r.tlp, p.page, p.text FROM intel_reports r JOIN intel_report_pages p ON p.report_id = r.id \
             WHERE {} AND p.folded LIKE $2 ESCAPE '\\' ORDER BY r.id DESC, p.page LIMIT $3",
            visible(1)
        ))
        .bind(viewer_org_id)
        .bind(like_pattern(q))
        .bind(MAX_HITS)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let text: String = row.try_get("text")?;
            out.push(ReportHit {
                report_id: row.try_get("id")?,
                title: row.try_get("title")?,
                tlp: row.try_get("tlp")?,
                page: row.try_get("page")?,
                snippet: snippet(&text, q),
            });
        }
        Ok(out)
    }

    /// One report, if visible to `viewer_org_id`; its sharing is shown to
    /// its owner only.
    pub async fn report_get(&self, viewer_org_id: &str, id: &str) -> Result<Report> {
        let row = sqlx::query(&format!(
            "SELECT r.* FROM intel_reports r WHERE r.id = $2 AND {}",
            visible(1)
        ))
        .bind(viewer_org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let mut r = report_from_row(&row)?;
        if r.owner_org_id == viewer_org_id {
            r.shared_with = sqlx::query_scalar(
                "SELECT org_id FROM report_shares WHERE report_id = $1 ORDER BY org_id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            r.shared_with_groups = sqlx::query_scalar(
                "SELECT group_id FROM report_group_shares WHERE report_id = $1 ORDER BY group_id",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        }
        Ok(r)
    }

    /// One report whose owner is in `scope` (who may act for the owner:
    /// decide its proposals), whatever its TLP.
    pub async fn report_get_scoped(
        &self,
        scope: &mimamori_core::Scope,
        id: &str,
    ) -> Result<Report> {
        let (pred, bound) = scope.sql_predicate("r.owner_path", 2);
        let row = sqlx::query(&format!(
            "SELECT r.* FROM intel_reports r WHERE r.id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        report_from_row(&row)
    }

    /// The pages of a report the caller has read through `report_get`.
    pub async fn report_pages(&self, report: &Report) -> Result<Vec<ReportPage>> {
        let rows = sqlx::query(
            "SELECT page, text FROM intel_report_pages WHERE report_id = $1 ORDER BY page",
        )
        .bind(&report.id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReportPage {
                    page: r.try_get("page")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }

    /// The proposals of a report the caller has read, in order of mention.
    pub async fn report_proposals(&self, report: &Report) -> Result<Vec<Proposal>> {
        let rows =
            sqlx::query("SELECT * FROM intel_report_proposals WHERE report_id = $1 ORDER BY ord")
                .bind(&report.id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(proposal_from_row).collect()
    }

    /// The uploaded document of a report the caller has read.
    pub async fn report_document(&self, report: &Report) -> Result<Vec<u8>> {
        let b64: String = sqlx::query_scalar("SELECT document FROM intel_reports WHERE id = $1")
            .bind(&report.id)
            .fetch_one(&self.pool)
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| StoreError::Corrupt(format!("column document: {e}")))
    }

    /// Accepts (`accept` = the indicator to create, with the report as
    /// source and its TLP) or rejects a proposal of `report`, owned by
    /// `owner`. The indicator gets the report's sharing. One transaction:
    /// the decision, the indicator and both audit records. A proposal is
    /// decided once (409 after).
    pub async fn report_decide(
        &self,
        actor: &AuditActor,
        owner: &Org,
        report: &Report,
        proposal_id: &str,
        accept: Option<Indicator>,
    ) -> Result<(Proposal, Option<UpsertReport>)> {
        let mut tx = self.begin_write().await?;
        let row =
            sqlx::query("SELECT * FROM intel_report_proposals WHERE id = $1 AND report_id = $2")
                .bind(proposal_id)
                .bind(&report.id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        let p = proposal_from_row(&row)?;
        if p.status != ProposalStatus::Proposed {
            return Err(StoreError::Conflict(format!(
                "the proposal was already {}",
                p.status.as_str()
            )));
        }
        let now = now_millis();
        let (status, upsert, indicator_id) = match accept {
            Some(ind) => {
                let sharing = Sharing {
                    orgs: sqlx::query_scalar(
                        "SELECT org_id FROM report_shares WHERE report_id = $1 ORDER BY org_id",
                    )
                    .bind(&report.id)
                    .fetch_all(&mut *tx)
                    .await?,
                    groups: sqlx::query_scalar(
                        "SELECT group_id FROM report_group_shares WHERE report_id = $1 ORDER BY group_id",
                    )
                    .bind(&report.id)
                    .fetch_all(&mut *tx)
                    .await?,
                };
                let kind_key = match ind.kind {
                    IndicatorKind::Domain { .. } => "domain",
                    k => k.name(),
                };
                let value = ind.value.clone();
                let source = format!("report:{}", report.id);
                let r = upsert_tx(
                    &mut tx,
                    self.backend,
                    actor,
                    owner,
                    &[ind],
                    &sharing,
                    &source,
                )
                .await?;
                let id: String = sqlx::query_scalar(
                    "SELECT id FROM indicators WHERE owner_org_id = $1 AND kind_key = $2 AND value = $3",
                )
                .bind(owner.id.as_str())
                .bind(kind_key)
                .bind(&value)
                .fetch_one(&mut *tx)
                .await?;
                (ProposalStatus::Accepted, Some(r), Some(id))
            }
            None => (ProposalStatus::Rejected, None, None),
        };
        let n = sqlx::query(
            "UPDATE intel_report_proposals SET status = $1, indicator_id = $2, decided_by = $3, decided_at = $4 WHERE id = $5 AND status = 'proposed'",
        )
        .bind(status.as_str())
        .bind(indicator_id.as_deref())
        .bind(&actor.actor)
        .bind(now)
        .bind(proposal_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(
                "the proposal was decided meanwhile; read it again".into(),
            ));
        }
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: match status {
                    ProposalStatus::Accepted => "intel.report.proposal.accept",
                    _ => "intel.report.proposal.reject",
                },
                target_type: "report_proposal",
                target_id: Some(proposal_id),
                detail: json!({"report_id": report.id, "kind": p.kind, "value": p.value, "indicator_id": indicator_id}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok((
            Proposal {
                status,
                indicator_id,
                decided_by: Some(actor.actor.clone()),
                decided_at: Some(now),
                ..p
            },
            upsert,
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn snippets_and_patterns() {
        let text = "Intro.\n\nThe actor used  EVIL[.]example for C2 and more text follows here.";
        let s = super::snippet(text, "evil[.]example");
        assert!(s.contains("used EVIL[.]example for C2"), "{s}");
        assert_eq!(super::like_pattern("a_b%c"), "%a\\_b\\%c%");
        // Non-ASCII text does not break char boundaries.
        let s = super::snippet("日本語のレポート: 悪性ドメイン evil.example を観測", "悪性");
        assert!(s.contains("悪性ドメイン"), "{s}");
    }
}
