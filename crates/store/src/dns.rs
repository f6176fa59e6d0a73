//! Protective DNS policy kept in the database: each org's own allow and
//! block lists, and the DNS client tokens (role `dns-client`) that select an
//! org over DoH. The resolver reads them whole ([`Store::dns_policy_all`],
//! [`Store::dns_client_tokens`]) and rebuilds its policy when
//! [`Store::dns_policy_version`] changes.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::{Page, PageRequest, Result, Store, StoreError};
use mimamori_core::{new_id, now_millis, validate, InvalidInput, Org, Role, Scope, UnixMillis};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

/// Most entries one org may hold (a bound on the resolver's memory; feeds
/// of millions of names belong in RPZ zones or the intel hub).
pub const MAX_DNS_POLICY_ENTRIES: i64 = 10_000;

/// Which list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DnsListKind {
    /// Never blocked for this org by intel, the configured zones or the
    /// org's own blocks; still blocked by an ancestor's block.
    Allow,
    /// Blocked (NXDOMAIN) for this org and every org beneath it.
    Block,
}

impl DnsListKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsListKind::Allow => "allow",
            DnsListKind::Block => "block",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "allow" => Ok(DnsListKind::Allow),
            "block" => Ok(DnsListKind::Block),
            other => Err(StoreError::Corrupt(format!("dns_policy kind {other:?}"))),
        }
    }
}

/// One entry: a domain and everything under it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DnsPolicyEntry {
    pub id: String,
    pub org_id: String,
    pub kind: DnsListKind,
    /// Lower-case, no trailing dot; covers the name and all its sub-domains.
    pub domain: String,
    pub comment: Option<String>,
    pub created_at: UnixMillis,
    pub created_by: Option<String>,
}

/// What is needed to add an entry.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDnsPolicyEntry {
    pub org_id: String,
    pub kind: DnsListKind,
    /// A domain; a leading `*.` is accepted and means the same (entries
    /// always cover sub-domains).
    pub domain: String,
    /// Why, for the people who read the list later.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An entry as the resolver needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsListItem {
    pub org_id: String,
    pub kind: DnsListKind,
    pub domain: String,
}

/// A live DNS client token, as the resolver needs it: the SHA-256 of the
/// secret (hex, as stored) and the org it selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsClientToken {
    pub org_id: String,
    pub secret_hash: String,
    pub expires_at: Option<UnixMillis>,
}

/// Changes whenever a list entry or a DNS client token is added, removed or
/// revoked: `(entries, newest entry id, dns tokens, newest token id,
/// revoked dns tokens)`.
pub type DnsPolicyVersion = (i64, String, i64, String, i64);

fn entry_from_row(row: &AnyRow) -> Result<DnsPolicyEntry> {
    let kind: String = row.try_get("kind")?;
    Ok(DnsPolicyEntry {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        kind: DnsListKind::parse(&kind)?,
        domain: row.try_get("domain")?,
        comment: row.try_get("comment")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

impl Store {
    /// Entries of orgs in `scope` (of one org when `org_id` is given),
    /// oldest first.
    pub async fn dns_policy_list(
        &self,
        scope: &Scope,
        org_id: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<DnsPolicyEntry>> {
        let (pred, bound) = scope.sql_predicate("o.path", 1);
        let rows = sqlx::query(&format!(
            "SELECT d.* FROM dns_policy d JOIN orgs o ON o.id = d.org_id \
             WHERE {pred} AND d.id > $2 AND ($3 = '' OR d.org_id = $3) ORDER BY d.id LIMIT $4"
        ))
        .bind(bound)
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(org_id.unwrap_or(""))
        .bind(page.limit() + 1)
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.finish(items, |e| &e.id))
    }

    /// One entry, if its org is in `scope`.
    pub async fn dns_policy_get(&self, scope: &Scope, id: &str) -> Result<DnsPolicyEntry> {
        let (pred, bound) = scope.sql_predicate("o.path", 2);
        let row = sqlx::query(&format!(
            "SELECT d.* FROM dns_policy d JOIN orgs o ON o.id = d.org_id WHERE d.id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(entry_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Adds an entry to `org`'s list (the caller has checked the org is in
    /// its scope). A domain is on at most one of an org's lists.
    pub async fn dns_policy_add(
        &self,
        actor: &AuditActor,
        org: &Org,
        new: &NewDnsPolicyEntry,
    ) -> Result<DnsPolicyEntry> {
        let raw = new.domain.trim();
        let raw = raw.strip_prefix("*.").unwrap_or(raw);
        let domain = validate::domain(raw).map_err(|reason| InvalidInput::new("domain", reason))?;
        let comment = match new.comment.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) if c.chars().count() > 500 => {
                return Err(InvalidInput::new("comment", "is longer than 500 characters").into())
            }
            Some(c) => Some(c.to_string()),
        };
        let entry = DnsPolicyEntry {
            id: new_id(),
            org_id: org.id.to_string(),
            kind: new.kind,
            domain,
            comment,
            created_at: now_millis(),
            created_by: Some(actor.actor.clone()),
        };
        let mut tx = self.begin_write().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dns_policy WHERE org_id = $1")
            .bind(&entry.org_id)
            .fetch_one(&mut *tx)
            .await?;
        if n >= MAX_DNS_POLICY_ENTRIES {
            return Err(StoreError::Conflict(format!(
                "org {} already has {n} DNS policy entries, the most allowed; remove some first",
                org.slug
            )));
        }
        sqlx::query(
            "INSERT INTO dns_policy (id, org_id, kind, domain, comment, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&entry.id)
        .bind(&entry.org_id)
        .bind(entry.kind.as_str())
        .bind(&entry.domain)
        .bind(entry.comment.as_deref())
        .bind(entry.created_at)
        .bind(entry.created_by.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::unique(e, || {
                format!(
                    "{} is already on org {}'s DNS policy; remove that entry first",
                    entry.domain, org.slug
                )
            })
        })?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "dns_policy.add",
                target_type: "dns_policy",
                target_id: Some(&entry.id),
                detail: json!({"kind": entry.kind, "domain": entry.domain, "comment": entry.comment}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Removes an entry (found through the caller's scope) of `org`.
    pub async fn dns_policy_remove(
        &self,
        actor: &AuditActor,
        org: &Org,
        entry: &DnsPolicyEntry,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM dns_policy WHERE id = $1")
            .bind(&entry.id)
            .execute(&mut *tx)
            .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "dns_policy.remove",
                target_type: "dns_policy",
                target_id: Some(&entry.id),
                detail: json!({"kind": entry.kind, "domain": entry.domain}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every org's entries, for the resolver (which serves every org: no
    /// scope applies, as with `intel_active`).
    pub async fn dns_policy_all(&self) -> Result<Vec<DnsListItem>> {
        let rows = sqlx::query("SELECT org_id, kind, domain FROM dns_policy ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(DnsListItem {
                    org_id: r.try_get("org_id")?,
                    kind: DnsListKind::parse(&kind)?,
                    domain: r.try_get("domain")?,
                })
            })
            .collect()
    }

    /// The DNS client tokens neither revoked nor expired, for the resolver.
    pub async fn dns_client_tokens(&self) -> Result<Vec<DnsClientToken>> {
        let rows = sqlx::query(
            "SELECT org_id, secret_hash, expires_at FROM tokens WHERE role = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(Role::DnsClient.as_str())
        .bind(now_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DnsClientToken {
                    org_id: r.try_get("org_id")?,
                    secret_hash: r.try_get("secret_hash")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Cheap change detection for the resolver's policy (see
    /// [`DnsPolicyVersion`]); ids are time-ordered, so an add shows as a
    /// new maximum and a removal as a smaller count.
    pub async fn dns_policy_version(&self) -> Result<DnsPolicyVersion> {
        let p = sqlx::query("SELECT COUNT(*) AS n, MAX(id) AS m FROM dns_policy")
            .fetch_one(&self.pool)
            .await?;
        let t = sqlx::query(
            "SELECT COUNT(*) AS n, MAX(id) AS m, COUNT(revoked_at) AS r FROM tokens WHERE role = $1",
        )
        .bind(Role::DnsClient.as_str())
        .fetch_one(&self.pool)
        .await?;
        let pm: Option<String> = p.try_get("m")?;
        let tm: Option<String> = t.try_get("m")?;
        Ok((
            p.try_get("n")?,
            pm.unwrap_or_default(),
            t.try_get("n")?,
            tm.unwrap_or_default(),
            t.try_get("r")?,
        ))
    }
}
