//! The audit log: who did what, when, from where, to which org.

use crate::{from_json_text, json_text, Page, PageRequest, Result, Store};
use mimamori_core::{new_id, now_millis, OrgPath, Principal, Scope, UnixMillis};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Who performed an audited action.
#[derive(Debug, Clone)]
pub struct AuditActor {
    /// `token:<id>` for API callers, `cli:<user>` for local operators, or
    /// `anonymous` for unauthenticated calls such as login.
    pub actor: String,
    pub role: Option<String>,
    pub org_id: Option<String>,
    pub remote_addr: Option<String>,
}

impl AuditActor {
    /// An API caller.
    pub fn principal(p: &Principal, remote_addr: Option<String>) -> Self {
        AuditActor {
            actor: match &p.user_id {
                Some(u) => format!("user:{u} token:{}", p.token_id),
                None => format!("token:{}", p.token_id),
            },
            role: Some(p.role.as_str().to_string()),
            org_id: Some(p.org_id.to_string()),
            remote_addr,
        }
    }

    /// A local operator using the CLI on the data directory (they hold the
    /// database file, so they are as powerful as soc-admin).
    pub fn local_operator() -> Self {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        AuditActor {
            actor: format!("cli:{user}"),
            role: Some("local-operator".into()),
            org_id: None,
            remote_addr: None,
        }
    }

    /// An unauthenticated caller (e.g. a login attempt).
    pub fn anonymous(remote_addr: Option<String>) -> Self {
        AuditActor {
            actor: "anonymous".into(),
            role: None,
            org_id: None,
            remote_addr,
        }
    }
}

/// One audit record as read back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: UnixMillis,
    /// The org the action concerned.
    pub org_id: String,
    pub actor: String,
    pub actor_role: Option<String>,
    pub actor_org_id: Option<String>,
    pub remote_addr: Option<String>,
    /// Dotted verb, e.g. `org.create`, `token.revoke`, `auth.login`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// The record of one action, written in the caller's transaction.
pub(crate) struct AuditRecord<'a> {
    pub org_id: &'a str,
    pub org_path: &'a OrgPath,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<&'a str>,
    pub detail: serde_json::Value,
}

pub(crate) async fn write(
    tx: &mut Transaction<'_, Any>,
    actor: &AuditActor,
    rec: AuditRecord<'_>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, org_id, org_path, actor, actor_role, actor_org_id, remote_addr, action, target_type, target_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(new_id())
    .bind(now_millis())
    .bind(rec.org_id)
    .bind(rec.org_path.as_str())
    .bind(&actor.actor)
    .bind(actor.role.as_deref())
    .bind(actor.org_id.as_deref())
    .bind(actor.remote_addr.as_deref())
    .bind(rec.action)
    .bind(rec.target_type)
    .bind(rec.target_id)
    .bind(json_text(&rec.detail)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn entry(row: &AnyRow) -> Result<AuditEntry> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        org_id: row.try_get("org_id")?,
        actor: row.try_get("actor")?,
        actor_role: row.try_get("actor_role")?,
        actor_org_id: row.try_get("actor_org_id")?,
        remote_addr: row.try_get("remote_addr")?,
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        detail: from_json_text("detail", &detail)?,
    })
}

impl Store {
    /// Audit records about orgs in `scope`, newest first.
    pub async fn audit_list(&self, scope: &Scope, page: &PageRequest) -> Result<Page<AuditEntry>> {
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let sql =
            format!("SELECT * FROM audit_log WHERE {pred} AND id < $2 ORDER BY id DESC LIMIT $3");
        let rows = sqlx::query(&sql)
            .bind(bound)
            .bind(page.after.as_deref().unwrap_or("~"))
            .bind(page.limit() + 1)
            .fetch_all(&self.pool)
            .await?;
        let items = rows.iter().map(entry).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(items, |e| &e.id))
    }

    /// The audit entries about one target (an alert's workflow, say),
    /// oldest first, if they are in `scope`; at most `limit`.
    pub async fn audit_for_target(
        &self,
        scope: &Scope,
        target_type: &str,
        target_id: &str,
        limit: u32,
    ) -> Result<Vec<AuditEntry>> {
        let (pred, bound) = scope.sql_predicate("org_path", 1);
        let sql = format!(
            "SELECT * FROM audit_log WHERE {pred} AND target_type = $2 AND target_id = $3 \
             ORDER BY id LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(bound)
            .bind(target_type)
            .bind(target_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry).collect()
    }

    /// Records an action that changes nothing else (e.g. a failed login).
    pub async fn audit_standalone(
        &self,
        actor: &AuditActor,
        org_id: &str,
        org_path: &OrgPath,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        write(
            &mut tx,
            actor,
            AuditRecord {
                org_id,
                org_path,
                action,
                target_type: "org",
                target_id: Some(org_id),
                detail,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
