//! Alerts, their workflow, suppressions and cross-org campaigns.
//!
//! Detection engines produce detections; [`Store::alert_record`] turns each
//! into an alert or folds it into the open alert of the same rule on the
//! same entity in the same org (grouping window), and checks whether the
//! same campaign key (an indicator, a rule) is now seen at enough distinct
//! orgs to become a campaign. Detection is the only writer of new alerts
//! and runs on one thread, so grouping needs no locking beyond the
//! transaction.
//!
//! Machine-made alerts are not audited (they are the record themselves);
//! every human action on them — status, assignee, comments, suppressions —
//! is.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::{from_json_text, json_text, Page, PageRequest, Result, Store, StoreError};
use mimamori_core::{new_id, now_millis, InvalidInput, OrgPath, Scope, UnixMillis};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

/// How urgent an alert is. Ordered: `Critical` is the highest.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// From an indicator's confidence (0–100).
    pub fn from_confidence(confidence: u8) -> Severity {
        match confidence {
            90.. => Severity::High,
            60..=89 => Severity::Medium,
            30..=59 => Severity::Low,
            _ => Severity::Informational,
        }
    }
}

/// Where an alert is in the analysts' workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    New,
    Acknowledged,
    Investigating,
    Resolved,
    FalsePositive,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 5] = [
        AlertStatus::New,
        AlertStatus::Acknowledged,
        AlertStatus::Investigating,
        AlertStatus::Resolved,
        AlertStatus::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::New => "new",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Investigating => "investigating",
            AlertStatus::Resolved => "resolved",
            AlertStatus::FalsePositive => "false_positive",
        }
    }

    pub fn parse(s: &str) -> Option<AlertStatus> {
        AlertStatus::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Closed alerts take no new detections; a new detection opens a new
    /// alert instead.
    pub fn is_closed(self) -> bool {
        matches!(self, AlertStatus::Resolved | AlertStatus::FalsePositive)
    }

    /// The workflow: forward only (new → acknowledged → investigating →
    /// resolved / false positive), any step may be skipped, and a closed
    /// alert may be reopened into investigating.
    pub fn can_move_to(self, next: AlertStatus) -> bool {
        use AlertStatus::*;
        match (self, next) {
            (a, b) if a == b => false,
            (New, _) => true,
            (Acknowledged, Investigating | Resolved | FalsePositive) => true,
            (Investigating, Resolved | FalsePositive) => true,
            (Resolved | FalsePositive, Investigating) => true,
            _ => false,
        }
    }
}

/// Which engine raised an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A threat-intel indicator matched a normalized field.
    Indicator,
    /// A Sigma detection rule matched.
    Sigma,
    /// A Sigma correlation rule fired.
    Correlation,
    /// mimamori itself found a fault that cost data (WAL damage at start:
    /// acknowledged events lost), raised in the root org.
    System,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Indicator => "indicator",
            AlertKind::Sigma => "sigma",
            AlertKind::Correlation => "correlation",
            AlertKind::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        [
            AlertKind::Indicator,
            AlertKind::Sigma,
            AlertKind::Correlation,
            AlertKind::System,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// One detection, as an engine reports it.
#[derive(Debug, Clone)]
pub struct Detection {
    pub org_id: String,
    pub kind: AlertKind,
    /// Sigma rule id, or `<kind>:<value>` of the indicator.
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    /// What the alert is about within the org: a host, a domain, an address.
    pub entity: String,
    /// ATT&CK technique ids (`T1059.001`).
    pub attack: Vec<String>,
    /// The rule's or indicator's context for the analyst.
    pub context: serde_json::Value,
    pub event_ids: Vec<String>,
    /// When the matched event happened.
    pub time: UnixMillis,
    /// Raised by retro-hunting over stored events rather than live.
    pub retro: bool,
    /// Detections with the same key at enough orgs form a campaign
    /// (`indicator:domain:evil.example`, `sigma:<rule id>`).
    pub campaign_key: Option<String>,
}

/// When detections with one campaign key become a campaign.
#[derive(Debug, Clone, Copy)]
pub struct CampaignPolicy {
    /// Distinct orgs needed.
    pub min_orgs: usize,
    /// Within this window (ms) of the newest detection.
    pub window_ms: i64,
}

impl Default for CampaignPolicy {
    fn default() -> Self {
        CampaignPolicy {
            min_orgs: 3,
            window_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// What [`Store::alert_record`] did with a detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A new alert.
    Opened { alert_id: String },
    /// Folded into an open alert of the same rule and entity.
    Grouped { alert_id: String },
    /// An active suppression covers this rule and entity.
    Suppressed,
}

impl Recorded {
    pub fn alert_id(&self) -> Option<&str> {
        match self {
            Recorded::Opened { alert_id } | Recorded::Grouped { alert_id } => Some(alert_id),
            Recorded::Suppressed => None,
        }
    }
}

/// The campaign a detection joined, if its key reached the policy's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignUpdate {
    pub campaign_id: String,
    /// The campaign was formed by this detection.
    pub formed: bool,
    pub org_count: usize,
}

/// Most event ids kept on one alert (the count goes on).
pub const MAX_ALERT_EVENTS: usize = 50;

/// An alert as read back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Alert {
    pub id: String,
    pub org_id: String,
    pub kind: AlertKind,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    pub entity: String,
    pub status: AlertStatus,
    pub assignee: Option<String>,
    pub attack: Vec<String>,
    #[schema(value_type = Object)]
    pub context: serde_json::Value,
    /// Up to [`MAX_ALERT_EVENTS`] of the matching events' ids.
    pub event_ids: Vec<String>,
    pub event_count: i64,
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    pub retro: bool,
    pub campaign_id: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Alert counts for an overview: see [`Store::alert_summary`].
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct AlertSummary {
    /// One row per (org, status, severity) that has alerts.
    pub by_org: Vec<AlertCount>,
    /// One row per (time bucket, severity) that has alerts, oldest first.
    pub timeline: Vec<TimelineCount>,
}

/// How many alerts one org has in one status and severity.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertCount {
    pub org_id: String,
    pub status: AlertStatus,
    pub severity: Severity,
    pub count: i64,
}

/// How many alerts of one severity were first seen in the time bucket
/// starting at `start`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineCount {
    pub start: UnixMillis,
    pub severity: Severity,
    pub count: i64,
}

/// Narrowing of an alert listing.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub kind: Option<AlertKind>,
    pub campaign_id: Option<String>,
    pub org_id: Option<String>,
    pub severity: Option<Severity>,
    /// Only alerts still open (new, acknowledged or investigating); with
    /// `status` as well, both must hold.
    pub open: bool,
}

/// An analyst's change to an alert.
#[derive(Debug, Clone, Default)]
pub struct AlertChange {
    pub status: Option<AlertStatus>,
    /// `Some(None)` clears the assignee.
    pub assignee: Option<Option<String>>,
    /// Closing an indicator alert as `resolved` (a true positive) or
    /// `false_positive` changes the indicators that raised it this way.
    pub verdicts: crate::intel::VerdictPolicy,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertComment {
    pub id: String,
    pub alert_id: String,
    pub author: String,
    pub body: String,
    pub at: UnixMillis,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Suppression {
    pub id: String,
    pub org_id: String,
    pub rule_id: String,
    pub entity: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// A campaign as one caller sees it: only the orgs in the caller's scope.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: String,
    pub key: String,
    pub title: String,
    pub severity: Severity,
    pub first_seen: UnixMillis,
    pub last_seen: UnixMillis,
    /// The orgs of the caller's scope where it was seen.
    pub org_ids: Vec<String>,
    /// The alerts of the caller's scope that belong to it.
    pub alert_count: i64,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A stored campaign title without the " (seen at N orgs)" that campaigns
/// stored by earlier versions carry: that count was the one at formation,
/// and it disagreed with the members once more orgs joined.
fn campaign_title(stored: String) -> String {
    match stored.rsplit_once(" (seen at ") {
        Some((title, rest))
            if rest
                .strip_suffix(" orgs)")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            title.to_string()
        }
        _ => stored,
    }
}

fn corrupt(column: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("column {column}: unknown value {value:?}"))
}

fn alert_from_row(row: &AnyRow) -> Result<Alert> {
    let kind: String = row.try_get("kind")?;
    let severity: String = row.try_get("severity")?;
    let status: String = row.try_get("status")?;
    let attack: String = row.try_get("attack")?;
    let context: String = row.try_get("context")?;
    let event_ids: String = row.try_get("event_ids")?;
    let retro: i64 = row.try_get("retro")?;
    Ok(Alert {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        kind: AlertKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        rule_id: row.try_get("rule_id")?,
        title: row.try_get("title")?,
        severity: Severity::parse(&severity).ok_or_else(|| corrupt("severity", &severity))?,
        entity: row.try_get("entity")?,
        status: AlertStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        assignee: row.try_get("assignee")?,
        attack: from_json_text("attack", &attack)?,
        context: from_json_text("context", &context)?,
        event_ids: from_json_text("event_ids", &event_ids)?,
        event_count: row.try_get("event_count")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        retro: retro != 0,
        campaign_id: row.try_get("campaign_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn comment_from_row(row: &AnyRow) -> Result<AlertComment> {
    Ok(AlertComment {
        id: row.try_get("id")?,
        alert_id: row.try_get("alert_id")?,
        author: row.try_get("author")?,
        body: row.try_get("body")?,
        at: row.try_get("at")?,
    })
}

fn suppression_from_row(row: &AnyRow) -> Result<Suppression> {
    Ok(Suppression {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        rule_id: row.try_get("rule_id")?,
        entity: row.try_get("entity")?,
        reason: row.try_get("reason")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Longest comment accepted.
pub const MAX_COMMENT_CHARS: usize = 10_000;

impl Store {
    /// Records one detection: suppressed, grouped into the open alert of
    /// the same org, rule and entity whose last detection is within
    /// `window_ms`, or opened as a new alert. Replays of the same events
    /// (ingestion delivers at least once) do not raise the count twice for
    /// ids the alert already lists. Then, if the detection has a campaign
    /// key, checks the campaign policy.
    pub async fn alert_record(
        &self,
        d: &Detection,
        window_ms: i64,
        campaigns: &CampaignPolicy,
    ) -> Result<(Recorded, Option<CampaignUpdate>)> {
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        let org_path: Option<String> = sqlx::query_scalar("SELECT path FROM orgs WHERE id = $1")
            .bind(&d.org_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(org_path) = org_path else {
            return Err(StoreError::NotFound);
        };
        let suppressed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM suppressions WHERE org_id = $1 AND rule_id = $2 AND (entity = $3 OR entity = '*') AND expires_at > $4",
        )
        .bind(&d.org_id)
        .bind(&d.rule_id)
        .bind(&d.entity)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if suppressed > 0 {
            tx.commit().await?;
            return Ok((Recorded::Suppressed, None));
        }
        let open = sqlx::query(
            "SELECT id, event_ids, event_count, first_seen, last_seen FROM alerts \
             WHERE org_id = $1 AND rule_id = $2 AND entity = $3 AND retro = $4 \
             AND status IN ('new', 'acknowledged', 'investigating') AND last_seen >= $5 \
             ORDER BY last_seen DESC LIMIT 1",
        )
        .bind(&d.org_id)
        .bind(&d.rule_id)
        .bind(&d.entity)
        .bind(i64::from(d.retro))
        .bind(d.time - window_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let recorded = if let Some(row) = open {
            let id: String = row.try_get("id")?;
            let ids: String = row.try_get("event_ids")?;
            let mut ids: Vec<String> = from_json_text("event_ids", &ids)?;
            let count: i64 = row.try_get("event_count")?;
            let first: i64 = row.try_get("first_seen")?;
            let last: i64 = row.try_get("last_seen")?;
            let fresh: Vec<&String> = d.event_ids.iter().filter(|e| !ids.contains(e)).collect();
            let added = fresh.len() as i64;
            for e in fresh {
                if ids.len() < MAX_ALERT_EVENTS {
                    ids.push(e.clone());
                }
            }
            sqlx::query(
                "UPDATE alerts SET event_ids = $1, event_count = $2, first_seen = $3, last_seen = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(json_text(&ids)?)
            .bind(count + added)
            .bind(first.min(d.time))
            .bind(last.max(d.time))
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            Recorded::Grouped { alert_id: id }
        } else {
            let id = new_id();
            let ids: Vec<&String> = d.event_ids.iter().take(MAX_ALERT_EVENTS).collect();
            sqlx::query(
                "INSERT INTO alerts (id, org_id, org_path, kind, rule_id, title, severity, entity, status, assignee, attack, context, event_ids, event_count, first_seen, last_seen, retro, campaign_key, campaign_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'new', NULL, $9, $10, $11, $12, $13, $13, $14, $15, NULL, $16, $16)",
            )
            .bind(&id)
            .bind(&d.org_id)
            .bind(&org_path)
            .bind(d.kind.as_str())
            .bind(&d.rule_id)
            .bind(&d.title)
            .bind(d.severity.as_str())
            .bind(&d.entity)
            .bind(json_text(&d.attack)?)
            .bind(json_text(&d.context)?)
            .bind(json_text(&ids)?)
            .bind(d.event_ids.len().max(1) as i64)
            .bind(d.time)
            .bind(i64::from(d.retro))
            .bind(d.campaign_key.as_deref())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let payload = json!({"type": "alert", "alert": {
                "id": id, "org_id": d.org_id, "kind": d.kind, "rule_id": d.rule_id,
                "title": d.title, "severity": d.severity, "entity": d.entity,
                "attack": d.attack, "context": d.context, "event_ids": ids,
                "first_seen": d.time, "retro": d.retro,
            }});
            crate::notify::enqueue_alert(&mut tx, &org_path, d.severity, &payload).await?;
            Recorded::Opened { alert_id: id }
        };
        let campaign = match &d.campaign_key {
            Some(key) => campaign_check(&mut tx, key, d, campaigns, now).await?,
            None => None,
        };
        if let Some(c) = campaign.as_ref().filter(|c| c.formed) {
            // Which orgs is not in the payload: each channel sees the
            // campaign through the API, scoped to its own sub-tree.
            let payload = json!({"type": "campaign", "campaign": {
                "id": c.campaign_id, "key": d.campaign_key, "title": d.title,
                "severity": d.severity.max(Severity::High), "last_seen": d.time,
            }});
            crate::notify::enqueue_campaign(&mut tx, &c.campaign_id, &payload).await?;
        }
        tx.commit().await?;
        Ok((recorded, campaign))
    }

    /// Alerts in `scope`, newest first.
    pub async fn alert_list(
        &self,
        scope: &Scope,
        filter: &AlertFilter,
        page: &PageRequest,
    ) -> Result<Page<Alert>> {
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let mut sql = format!("SELECT * FROM alerts WHERE {pred} AND id < $2");
        let mut binds: Vec<String> = vec![];
        let mut add = |col: &str, v: &str, sql: &mut String| {
            binds.push(v.to_string());
            sql.push_str(&format!(" AND {col} = ${}", binds.len() + 3));
        };
        if let Some(s) = filter.status {
            add("status", s.as_str(), &mut sql);
        }
        if let Some(k) = filter.kind {
            add("kind", k.as_str(), &mut sql);
        }
        if let Some(c) = &filter.campaign_id {
            add("campaign_id", c, &mut sql);
        }
        if let Some(o) = &filter.org_id {
            add("org_id", o, &mut sql);
        }
        if let Some(s) = filter.severity {
            add("severity", s.as_str(), &mut sql);
        }
        if filter.open {
            sql.push_str(" AND status IN ('new', 'acknowledged', 'investigating')");
        }
        sql.push_str(" ORDER BY id DESC LIMIT $3");
        let mut q = sqlx::query(&sql)
            .bind(bound)
            .bind(page.after.as_deref().unwrap_or("~"))
            .bind(page.limit() + 1);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(alert_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(items, |a| &a.id))
    }

    /// The console overview's counts over `scope`: alerts per org, status
    /// and severity, and alerts first seen per `bucket_ms` since `since`
    /// by severity. Two grouped queries, so the cost does not grow with
    /// the page a user looks at.
    pub async fn alert_summary(
        &self,
        scope: &Scope,
        since: UnixMillis,
        bucket_ms: i64,
    ) -> Result<AlertSummary> {
        if bucket_ms <= 0 {
            return Err(StoreError::Invalid(InvalidInput::new(
                "bucket_ms",
                "must be positive",
            )));
        }
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let rows = sqlx::query(&format!(
            "SELECT org_id, status, severity, COUNT(*) AS n FROM alerts WHERE {pred} \
             GROUP BY org_id, status, severity"
        ))
        .bind(&bound)
        .fetch_all(&self.pool)
        .await?;
        let mut by_org = Vec::with_capacity(rows.len());
        for r in &rows {
            let status: String = r.try_get("status")?;
            let severity: String = r.try_get("severity")?;
            by_org.push(AlertCount {
                org_id: r.try_get("org_id")?,
                status: AlertStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("alert status {status:?}")))?,
                severity: Severity::parse(&severity)
                    .ok_or_else(|| StoreError::Corrupt(format!("alert severity {severity:?}")))?,
                count: r.try_get("n")?,
            });
        }
        let rows = sqlx::query(&format!(
            "SELECT first_seen / $2 AS bucket, severity, COUNT(*) AS n FROM alerts \
             WHERE {pred} AND first_seen >= $3 GROUP BY bucket, severity ORDER BY bucket"
        ))
        .bind(&bound)
        .bind(bucket_ms)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut timeline = Vec::with_capacity(rows.len());
        for r in &rows {
            let severity: String = r.try_get("severity")?;
            let bucket: i64 = r.try_get("bucket")?;
            timeline.push(TimelineCount {
                start: bucket * bucket_ms,
                severity: Severity::parse(&severity)
                    .ok_or_else(|| StoreError::Corrupt(format!("alert severity {severity:?}")))?,
                count: r.try_get("n")?,
            });
        }
        Ok(AlertSummary { by_org, timeline })
    }

    /// One alert, if it is in `scope`.
    pub async fn alert_get(&self, scope: &Scope, id: &str) -> Result<Alert> {
        let (pred, bound) = scope.sql_predicate("org_path", 2);
        let row = sqlx::query(&format!("SELECT * FROM alerts WHERE id = $1 AND {pred}"))
            .bind(id)
            .bind(bound)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(alert_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Changes an alert's status and/or assignee, enforcing the workflow.
    /// The caller has read the alert through its scope.
    pub async fn alert_update(
        &self,
        actor: &AuditActor,
        alert: &Alert,
        change: &AlertChange,
    ) -> Result<Alert> {
        if let Some(next) = change.status {
            if !alert.status.can_move_to(next) {
                return Err(StoreError::Invalid(InvalidInput::new(
                    "status",
                    format!(
                        "an alert cannot move from {} to {}",
                        alert.status.as_str(),
                        next.as_str()
                    ),
                )));
            }
        }
        if let Some(Some(a)) = &change.assignee {
            if a.trim().is_empty() || a.chars().count() > 200 {
                return Err(StoreError::Invalid(InvalidInput::new(
                    "assignee",
                    "must be 1 to 200 characters",
                )));
            }
        }
        let status = change.status.unwrap_or(alert.status);
        let assignee = match &change.assignee {
            Some(a) => a.clone(),
            None => alert.assignee.clone(),
        };
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        // The status in the WHERE clause makes concurrent changes safe: the
        // second one finds nothing and reports a conflict.
        let n = sqlx::query(
            "UPDATE alerts SET status = $1, assignee = $2, updated_at = $3 WHERE id = $4 AND status = $5",
        )
        .bind(status.as_str())
        .bind(assignee.as_deref())
        .bind(now)
        .bind(&alert.id)
        .bind(alert.status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(
                "the alert changed meanwhile; read it again".into(),
            ));
        }
        let path = org_path_of(&mut tx, &alert.org_id).await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: &alert.org_id,
                org_path: &path,
                action: "alert.update",
                target_type: "alert",
                target_id: Some(&alert.id),
                detail: json!({
                    "before": {"status": alert.status, "assignee": alert.assignee},
                    "after": {"status": status, "assignee": assignee},
                }),
            },
        )
        .await?;
        if alert.kind == AlertKind::Indicator && status != alert.status && status.is_closed() {
            crate::intel::apply_verdict(
                &mut tx,
                actor,
                &alert.id,
                &alert.org_id,
                path.as_str(),
                &alert.rule_id,
                status == AlertStatus::Resolved,
                &change.verdicts,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(Alert {
            status,
            assignee,
            updated_at: now,
            ..alert.clone()
        })
    }

    /// Adds a comment to an alert the caller has read through its scope.
    pub async fn alert_comment_add(
        &self,
        actor: &AuditActor,
        alert: &Alert,
        body: &str,
    ) -> Result<AlertComment> {
        let body = body.trim();
        if body.is_empty() || body.chars().count() > MAX_COMMENT_CHARS {
            return Err(StoreError::Invalid(InvalidInput::new(
                "body",
                format!("must be 1 to {MAX_COMMENT_CHARS} characters"),
            )));
        }
        let c = AlertComment {
            id: new_id(),
            alert_id: alert.id.clone(),
            author: actor.actor.clone(),
            body: body.to_string(),
            at: now_millis(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO alert_comments (id, alert_id, author, body, at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&c.id)
        .bind(&c.alert_id)
        .bind(&c.author)
        .bind(&c.body)
        .bind(c.at)
        .execute(&mut *tx)
        .await?;
        let path = org_path_of(&mut tx, &alert.org_id).await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: &alert.org_id,
                org_path: &path,
                action: "alert.comment",
                target_type: "alert",
                target_id: Some(&alert.id),
                detail: json!({"comment_id": c.id, "body": c.body}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// The comments of an alert the caller has read through its scope,
    /// oldest first.
    pub async fn alert_comments(&self, alert: &Alert) -> Result<Vec<AlertComment>> {
        let rows = sqlx::query("SELECT * FROM alert_comments WHERE alert_id = $1 ORDER BY id")
            .bind(&alert.id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(comment_from_row).collect()
    }

    /// Silences the alert's rule for its entity (or every entity with
    /// `entity = "*"`) in its org until `expires_at`.
    pub async fn suppression_add(
        &self,
        actor: &AuditActor,
        alert: &Alert,
        entity: &str,
        expires_at: UnixMillis,
        reason: &str,
    ) -> Result<Suppression> {
        let now = now_millis();
        if expires_at <= now {
            return Err(StoreError::Invalid(InvalidInput::new(
                "expires_at",
                "must be in the future",
            )));
        }
        if entity != "*" && entity != alert.entity {
            return Err(StoreError::Invalid(InvalidInput::new(
                "entity",
                format!("must be the alert's entity {:?} or \"*\"", alert.entity),
            )));
        }
        let mut tx = self.begin_write().await?;
        let path = org_path_of(&mut tx, &alert.org_id).await?;
        let s = Suppression {
            id: new_id(),
            org_id: alert.org_id.clone(),
            rule_id: alert.rule_id.clone(),
            entity: entity.to_string(),
            reason: reason.trim().to_string(),
            created_by: actor.actor.clone(),
            created_at: now,
            expires_at,
        };
        sqlx::query(
            "INSERT INTO suppressions (id, org_id, org_path, rule_id, entity, reason, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&s.id)
        .bind(&s.org_id)
        .bind(path.as_str())
        .bind(&s.rule_id)
        .bind(&s.entity)
        .bind(&s.reason)
        .bind(&s.created_by)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: &alert.org_id,
                org_path: &path,
                action: "alert.suppress",
                target_type: "alert",
                target_id: Some(&alert.id),
                detail: json!({"suppression_id": s.id, "rule_id": s.rule_id, "entity": s.entity, "expires_at": s.expires_at, "reason": s.reason}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(s)
    }

    /// Active suppressions in `scope`.
    pub async fn suppression_list(&self, scope: &Scope) -> Result<Vec<Suppression>> {
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let rows = sqlx::query(&format!(
            "SELECT * FROM suppressions WHERE {pred} AND expires_at > $2 ORDER BY id"
        ))
        .bind(bound)
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(suppression_from_row).collect()
    }

    /// Campaigns with at least one alert in `scope`, newest activity first.
    pub async fn campaign_list(&self, scope: &Scope) -> Result<Vec<Campaign>> {
        let (pred, bound) = scope.sql_predicate("a.org_path", 1);
        let rows = sqlx::query(&format!(
            "SELECT c.* FROM campaigns c WHERE EXISTS (SELECT 1 FROM alerts a WHERE a.campaign_id = c.id AND {pred}) ORDER BY c.last_seen DESC, c.id"
        ))
        .bind(&bound)
        .fetch_all(&self.pool)
        .await?;
        // Every campaign's orgs and alert count in the scope from one
        // grouped query, not two per campaign (1,000 campaigns took 0.5 s).
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let counts = sqlx::query(&format!(
            "SELECT campaign_id, org_id, COUNT(*) AS n FROM alerts \
             WHERE campaign_id IS NOT NULL AND {pred} GROUP BY campaign_id, org_id ORDER BY org_id"
        ))
        .bind(&bound)
        .fetch_all(&self.pool)
        .await?;
        let mut members: std::collections::HashMap<String, (Vec<String>, i64)> =
            std::collections::HashMap::new();
        for r in &counts {
            let e = members.entry(r.try_get("campaign_id")?).or_default();
            e.0.push(r.try_get("org_id")?);
            e.1 += r.try_get::<i64, _>("n")?;
        }
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                let (org_ids, alert_count) = members.remove(&id).unwrap_or_default();
                campaign_from_row(row, id, org_ids, alert_count)
            })
            .collect()
    }

    /// One campaign, if it has an alert in `scope`.
    pub async fn campaign_get(&self, scope: &Scope, id: &str) -> Result<Campaign> {
        let (pred, bound) = scope.sql_predicate("a.org_path", 2);
        let row = sqlx::query(&format!(
            "SELECT c.* FROM campaigns c WHERE c.id = $1 AND EXISTS (SELECT 1 FROM alerts a WHERE a.campaign_id = c.id AND {pred})"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => self.campaign_scoped(scope, &row).await,
            None => Err(StoreError::NotFound),
        }
    }

    async fn campaign_scoped(&self, scope: &Scope, row: &AnyRow) -> Result<Campaign> {
        let id: String = row.try_get("id")?;
        let (pred, bound) = scope.sql_predicate("org_path", 2);
        let org_ids: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT org_id FROM alerts WHERE campaign_id = $1 AND {pred} ORDER BY org_id"
        ))
        .bind(&id)
        .bind(&bound)
        .fetch_all(&self.pool)
        .await?;
        let alert_count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM alerts WHERE campaign_id = $1 AND {pred}"
        ))
        .bind(&id)
        .bind(&bound)
        .fetch_one(&self.pool)
        .await?;
        campaign_from_row(row, id, org_ids, alert_count)
    }
}

/// A campaign row with its members in the reader's scope.
fn campaign_from_row(
    row: &AnyRow,
    id: String,
    org_ids: Vec<String>,
    alert_count: i64,
) -> Result<Campaign> {
    let severity: String = row.try_get("severity")?;
    Ok(Campaign {
        id,
        key: row.try_get("key")?,
        title: campaign_title(row.try_get("title")?),
        severity: Severity::parse(&severity).ok_or_else(|| corrupt("severity", &severity))?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        org_ids,
        alert_count,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn org_path_of(tx: &mut sqlx::Transaction<'_, sqlx::Any>, org_id: &str) -> Result<OrgPath> {
    // Alerts keep their org's path; an org is deleted only when it has no
    // alerts (foreign key), so the lookup cannot miss for a live alert.
    let path: Option<String> = sqlx::query_scalar("SELECT path FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_optional(&mut **tx)
        .await?;
    path.map(OrgPath).ok_or(StoreError::NotFound)
}

/// After recording a detection with campaign key `key`: if alerts with that
/// key exist at `policy.min_orgs` distinct orgs within the window, make
/// (or extend) the campaign and attach those alerts to it.
async fn campaign_check(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &str,
    d: &Detection,
    policy: &CampaignPolicy,
    now: UnixMillis,
) -> Result<Option<CampaignUpdate>> {
    let since = d.time - policy.window_ms;
    let orgs: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT org_id) FROM alerts WHERE campaign_key = $1 AND last_seen >= $2",
    )
    .bind(key)
    .bind(since)
    .fetch_one(&mut **tx)
    .await?;
    let existing: Option<String> = sqlx::query_scalar("SELECT id FROM campaigns WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await?;
    if existing.is_none() && (orgs as usize) < policy.min_orgs.max(1) {
        return Ok(None);
    }
    let (id, formed) = match existing {
        Some(id) => {
            sqlx::query(
                "UPDATE campaigns SET last_seen = CASE WHEN last_seen > $1 THEN last_seen ELSE $1 END, first_seen = CASE WHEN first_seen < $1 THEN first_seen ELSE $1 END, updated_at = $2 WHERE id = $3",
            )
            .bind(d.time)
            .bind(now)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
            (id, false)
        }
        None => {
            let id = new_id();
            let first: i64 = sqlx::query_scalar(
                "SELECT MIN(first_seen) FROM alerts WHERE campaign_key = $1 AND last_seen >= $2",
            )
            .bind(key)
            .bind(since)
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO campaigns (id, key, title, severity, first_seen, last_seen, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&id)
            .bind(key)
            // The title names the activity only: how many orgs it was seen
            // at is `org_ids` of each reader's scoped view, which a count
            // frozen into the title at formation would contradict.
            .bind(&d.title)
            .bind(d.severity.max(Severity::High).as_str())
            .bind(first)
            .bind(d.time)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            tracing::warn!(campaign = %id, key, orgs, "a campaign formed: the same activity at several orgs");
            (id, true)
        }
    };
    // Every alert with the key joins; an existing campaign keeps
    // collecting alerts of its key, however old the first ones are.
    sqlx::query(
        "UPDATE alerts SET campaign_id = $1 WHERE campaign_key = $2 AND campaign_id IS NULL",
    )
    .bind(&id)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    let org_count: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT org_id) FROM alerts WHERE campaign_id = $1")
            .bind(&id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(Some(CampaignUpdate {
        campaign_id: id,
        formed,
        org_count: org_count as usize,
    }))
}

#[cfg(test)]
mod tests {
    use super::campaign_title;

    #[test]
    fn legacy_campaign_titles_lose_their_frozen_org_count() {
        assert_eq!(
            campaign_title("Indicator match: evil.example (seen at 3 orgs)".into()),
            "Indicator match: evil.example"
        );
        for kept in [
            "Indicator match: evil.example",
            "Rule (seen at many orgs)",
            "Rule (seen at  orgs)",
            "Rule (seen at 3 orgs) again",
        ] {
            assert_eq!(campaign_title(kept.into()), kept);
        }
    }
}
