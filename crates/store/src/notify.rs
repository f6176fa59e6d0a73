//! Notification channels and the outbox of deliveries owed.
//!
//! An alert's notifications are written to `notify_outbox` in the same
//! transaction that opens the alert (see [`crate::Store::alert_record`]),
//! so they survive a crash; a delivery worker (`mimamori-notify`) sends
//! them and marks them done, retrying with backoff.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::{Result, Severity, Store, StoreError};
use mimamori_core::{new_id, now_millis, InvalidInput, Org, Scope, UnixMillis};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

/// How a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// HTTP(S) POST of JSON, signed with HMAC-SHA256 of the body.
    Webhook,
    /// A CEF line in an RFC 5424 syslog message over `tcp://` or `udp://`.
    Syslog,
    /// E-mail through the SOC's SMTP relay to the listed addresses.
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Syslog => "syslog",
            ChannelKind::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        [
            ChannelKind::Webhook,
            ChannelKind::Syslog,
            ChannelKind::Email,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A channel as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NotifyChannel {
    pub id: String,
    pub org_id: String,
    pub kind: ChannelKind,
    pub target: String,
    /// Whether a secret (HMAC key) is set.
    pub has_secret: bool,
    pub min_severity: Severity,
    /// Also the alerts of the orgs below, and campaigns touching them.
    pub subtree: bool,
    pub created_by: String,
    pub created_at: UnixMillis,
}

/// A new channel.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    pub org_id: String,
    pub kind: ChannelKind,
    /// Webhook: `https://…` or `http://…`; syslog: `tcp://host:port` or
    /// `udp://host:port`; email: addresses separated by commas.
    pub target: String,
    /// Webhook HMAC key (at least 16 characters). Required for webhooks.
    pub secret: Option<String>,
    #[serde(default = "default_min")]
    pub min_severity: Severity,
    #[serde(default)]
    pub subtree: bool,
}

fn default_min() -> Severity {
    Severity::Medium
}

/// One delivery owed.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: String,
    pub attempts: i64,
    pub payload: serde_json::Value,
    pub channel_id: String,
    pub kind: ChannelKind,
    pub target: String,
    pub secret: Option<String>,
}

/// Deliveries given up after this many attempts (kept, with the error).
pub const MAX_ATTEMPTS: i64 = 10;

fn channel_from_row(row: &AnyRow) -> Result<NotifyChannel> {
    let kind: String = row.try_get("kind")?;
    let secret: Option<String> = row.try_get("secret")?;
    let rank: i64 = row.try_get("min_rank")?;
    let subtree: i64 = row.try_get("subtree")?;
    Ok(NotifyChannel {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        kind: ChannelKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("column kind: unknown value {kind:?}")))?,
        target: row.try_get("target")?,
        has_secret: secret.is_some(),
        min_severity: rank_severity(rank),
        subtree: subtree != 0,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn severity_rank(s: Severity) -> i64 {
    s as i64
}

fn rank_severity(r: i64) -> Severity {
    Severity::ALL
        .get(r.clamp(0, 4) as usize)
        .copied()
        .unwrap_or(Severity::Medium)
}

/// Checks a channel's target for its kind, precisely.
pub fn validate_target(kind: ChannelKind, target: &str) -> std::result::Result<(), String> {
    let t = target.trim();
    match kind {
        ChannelKind::Webhook => {
            let rest = t
                .strip_prefix("https://")
                .or_else(|| t.strip_prefix("http://"))
                .ok_or("a webhook target must start with https:// or http://")?;
            if rest.is_empty() || rest.starts_with('/') {
                return Err("the webhook URL has no host".into());
            }
            if t.chars().any(char::is_whitespace) {
                return Err("the webhook URL contains whitespace".into());
            }
            Ok(())
        }
        ChannelKind::Syslog => {
            let rest = t
                .strip_prefix("tcp://")
                .or_else(|| t.strip_prefix("udp://"))
                .ok_or("a syslog target is tcp://HOST:PORT or udp://HOST:PORT")?;
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or("a syslog target needs a port: tcp://HOST:PORT")?;
            if host.is_empty() {
                return Err("the syslog target has no host".into());
            }
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .map(|_| ())
                .ok_or_else(|| format!("{port:?} is not a port number"))
        }
        ChannelKind::Email => {
            let addrs: Vec<&str> = t.split(',').map(str::trim).collect();
            if addrs.is_empty() || addrs.len() > 20 {
                return Err("give 1 to 20 addresses separated by commas".into());
            }
            for a in addrs {
                let ok = a
                    .split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !a.contains(' '));
                if !ok {
                    return Err(format!("{a:?} is not an e-mail address"));
                }
            }
            Ok(())
        }
    }
}

impl Store {
    /// Adds a channel to `org` (which the caller has read through its scope).
    pub async fn channel_create(
        &self,
        actor: &AuditActor,
        org: &Org,
        new: &NewChannel,
    ) -> Result<NotifyChannel> {
        validate_target(new.kind, &new.target)
            .map_err(|e| StoreError::Invalid(InvalidInput::new("target", e)))?;
        match (&new.secret, new.kind) {
            (None, ChannelKind::Webhook) => {
                return Err(StoreError::Invalid(InvalidInput::new(
                    "secret",
                    "a webhook needs a secret: receivers check the HMAC signature with it",
                )))
            }
            (Some(s), _) if s.chars().count() < 16 || s.len() > 512 => {
                return Err(StoreError::Invalid(InvalidInput::new(
                    "secret",
                    "must be 16 to 512 characters",
                )))
            }
            _ => {}
        }
        let c = NotifyChannel {
            id: new_id(),
            org_id: org.id.to_string(),
            kind: new.kind,
            target: new.target.trim().to_string(),
            has_secret: new.secret.is_some(),
            min_severity: new.min_severity,
            subtree: new.subtree,
            created_by: actor.actor.clone(),
            created_at: now_millis(),
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO notify_channels (id, org_id, org_path, kind, target, secret, min_rank, subtree, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(&c.org_id)
        .bind(org.path.as_str())
        .bind(c.kind.as_str())
        .bind(&c.target)
        .bind(new.secret.as_deref())
        .bind(severity_rank(c.min_severity))
        .bind(i64::from(c.subtree))
        .bind(&c.created_by)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: &c.org_id,
                org_path: &org.path,
                action: "notify.channel.create",
                target_type: "notify_channel",
                target_id: Some(&c.id),
                detail: json!({"kind": c.kind, "target": c.target, "min_severity": c.min_severity, "subtree": c.subtree}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Channels of the orgs in `scope`.
    pub async fn channel_list(&self, scope: &Scope) -> Result<Vec<NotifyChannel>> {
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let rows = sqlx::query(&format!(
            "SELECT * FROM notify_channels WHERE {pred} ORDER BY id"
        ))
        .bind(bound)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_from_row).collect()
    }

    /// One channel, if in `scope`.
    pub async fn channel_get(&self, scope: &Scope, id: &str) -> Result<NotifyChannel> {
        let (pred, bound) = scope.sql_predicate("org_path", 2);
        let row = sqlx::query(&format!(
            "SELECT * FROM notify_channels WHERE id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(channel_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a channel the caller has read through its scope; deliveries
    /// still owed to it are dropped.
    pub async fn channel_delete(&self, actor: &AuditActor, c: &NotifyChannel) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let path: Option<String> =
            sqlx::query_scalar("SELECT org_path FROM notify_channels WHERE id = $1")
                .bind(&c.id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(path) = path else {
            return Err(StoreError::NotFound);
        };
        sqlx::query("DELETE FROM notify_outbox WHERE channel_id = $1 AND done_at IS NULL")
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM notify_channels WHERE id = $1")
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: &c.org_id,
                org_path: &mimamori_core::OrgPath(path),
                action: "notify.channel.delete",
                target_type: "notify_channel",
                target_id: Some(&c.id),
                detail: json!({"kind": c.kind, "target": c.target}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Queues a test message to one channel.
    pub async fn channel_test(&self, c: &NotifyChannel) -> Result<()> {
        let payload = json!({"type": "test", "channel_id": c.id, "org_id": c.org_id,
            "message": "mimamori test notification"});
        let mut tx = self.begin_write().await?;
        enqueue(&mut tx, &c.id, &payload).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deliveries due now, oldest first.
    pub async fn outbox_due(&self, limit: i64) -> Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT o.id, o.attempts, o.payload, o.channel_id, c.kind, c.target, c.secret FROM notify_outbox o \
             JOIN notify_channels c ON c.id = o.channel_id \
             WHERE o.done_at IS NULL AND o.attempts < $1 AND o.next_attempt <= $2 ORDER BY o.id LIMIT $3",
        )
        .bind(MAX_ATTEMPTS)
        .bind(now_millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![];
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let payload: String = row.try_get("payload")?;
            out.push(OutboxItem {
                id: row.try_get("id")?,
                attempts: row.try_get("attempts")?,
                payload: crate::from_json_text("payload", &payload)?,
                channel_id: row.try_get("channel_id")?,
                kind: ChannelKind::parse(&kind).ok_or_else(|| {
                    StoreError::Corrupt(format!("column kind: unknown value {kind:?}"))
                })?,
                target: row.try_get("target")?,
                secret: row.try_get("secret")?,
            });
        }
        Ok(out)
    }

    /// Marks a delivery done.
    pub async fn outbox_done(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE notify_outbox SET done_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(now_millis())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt; the next one is due after `retry_in_ms`.
    pub async fn outbox_failed(&self, id: &str, error: &str, retry_in_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE notify_outbox SET attempts = attempts + 1, last_error = $1, next_attempt = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(now_millis() + retry_in_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deliveries not done, for status displays and tests: (pending, given up).
    pub async fn outbox_backlog(&self) -> Result<(i64, i64)> {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notify_outbox WHERE done_at IS NULL AND attempts < $1",
        )
        .bind(MAX_ATTEMPTS)
        .fetch_one(&self.pool)
        .await?;
        let dead: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM notify_outbox WHERE done_at IS NULL AND attempts >= $1",
        )
        .bind(MAX_ATTEMPTS)
        .fetch_one(&self.pool)
        .await?;
        Ok((pending, dead))
    }
}

pub(crate) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    channel_id: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO notify_outbox (id, channel_id, payload, attempts, next_attempt, last_error, created_at, done_at) VALUES ($1, $2, $3, 0, $4, NULL, $4, NULL)",
    )
    .bind(new_id())
    .bind(channel_id)
    .bind(crate::json_text(payload)?)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues the notification of a new alert to every channel that wants it:
/// the alert's org's own channels, and `subtree` channels of its ancestors,
/// at or above their minimum severity.
pub(crate) async fn enqueue_alert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org_path: &str,
    severity: Severity,
    payload: &serde_json::Value,
) -> Result<()> {
    let channels: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM notify_channels WHERE min_rank <= $1 AND (org_path = $2 OR (subtree = 1 AND $2 LIKE org_path || '%'))",
    )
    .bind(severity_rank(severity))
    .bind(org_path)
    .fetch_all(&mut **tx)
    .await?;
    for c in channels {
        enqueue(tx, &c, payload).await?;
    }
    Ok(())
}

/// Queues the notification of a new campaign to the `subtree` channels that
/// cover at least one of its orgs.
pub(crate) async fn enqueue_campaign(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    campaign_id: &str,
    payload: &serde_json::Value,
) -> Result<()> {
    let channels: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT c.id FROM notify_channels c JOIN alerts a ON a.org_path LIKE c.org_path || '%' WHERE a.campaign_id = $1 AND c.subtree = 1",
    )
    .bind(campaign_id)
    .fetch_all(&mut **tx)
    .await?;
    for c in channels {
        enqueue(tx, &c, payload).await?;
    }
    Ok(())
}
