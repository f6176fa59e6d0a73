//! The org tree.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::{from_json_text, json_text, Page, PageRequest, Result, Store, StoreError};
use mimamori_core::org::OrgProfile;
use mimamori_core::{now_millis, InvalidInput, Org, OrgId, OrgKind, OrgPath, Scope};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Optional narrowing of an org listing.
#[derive(Debug, Clone, Default)]
pub struct OrgFilter {
    /// Only the direct children of this org.
    pub parent_id: Option<OrgId>,
}

fn org_from_row(row: &AnyRow) -> Result<Org> {
    let kind: String = row.try_get("kind")?;
    let contacts: String = row.try_get("contacts")?;
    let networks: String = row.try_get("networks")?;
    let domains: String = row.try_get("domains")?;
    let parent: Option<String> = row.try_get("parent_id")?;
    Ok(Org {
        id: OrgId(row.try_get("id")?),
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        kind: OrgKind::parse(&kind).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        parent_id: parent.map(OrgId),
        sector: row.try_get("sector")?,
        contacts: from_json_text("contacts", &contacts)?,
        networks: from_json_text("networks", &networks)?,
        domains: from_json_text("domains", &domains)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        path: OrgPath(row.try_get("path")?),
    })
}

fn profile_json(p: &OrgProfile) -> serde_json::Value {
    json!({
        "name": p.name, "sector": p.sector, "contacts": p.contacts,
        "networks": p.networks, "domains": p.domains,
    })
}

impl Store {
    /// Creates the root org (the central SOC). Fails if one exists.
    /// Unscoped: used only by `mimamori init`.
    pub async fn bootstrap_root(
        &self,
        actor: &AuditActor,
        slug: &str,
        profile: &OrgProfile,
    ) -> Result<Org> {
        let mut tx = self.begin_write().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs WHERE parent_id IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        if existing > 0 {
            return Err(StoreError::Conflict(
                "a root org already exists; this data directory is initialized".into(),
            ));
        }
        let id = OrgId::generate();
        let path = OrgPath::root(&id);
        let org = insert_org(&mut tx, &id, slug, OrgKind::Soc, None, &path, profile).await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: id.as_str(),
                org_path: &path,
                action: "org.create",
                target_type: "org",
                target_id: Some(id.as_str()),
                detail: json!({"slug": slug, "kind": "soc", "profile": profile_json(profile)}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// The root org, if the store is initialized. Unscoped (the root's
    /// existence is no secret; its data is still read through scoped calls).
    pub async fn root_org(&self) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT * FROM orgs WHERE parent_id IS NULL")
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(org_from_row).transpose()
    }

    /// One org by id, if it exists and is in `scope`.
    pub async fn org_get(&self, scope: &Scope, id: &str) -> Result<Org> {
        let (pred, bound) = scope.sql_predicate("path", 2);
        let row = sqlx::query(&format!("SELECT * FROM orgs WHERE id = $1 AND {pred}"))
            .bind(id)
            .bind(bound)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(org_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// One org by slug or id, if it exists and is in `scope`.
    pub async fn org_find(&self, scope: &Scope, slug_or_id: &str) -> Result<Org> {
        let (pred, bound) = scope.sql_predicate("path", 2);
        let row = sqlx::query(&format!(
            "SELECT * FROM orgs WHERE (slug = $1 OR id = $1) AND {pred}"
        ))
        .bind(slug_or_id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(org_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Orgs in `scope`, in creation order.
    pub async fn org_list(
        &self,
        scope: &Scope,
        filter: &OrgFilter,
        page: &PageRequest,
    ) -> Result<Page<Org>> {
        let (pred, bound) = scope.sql_predicate("path", 1);
        let parent_clause = if filter.parent_id.is_some() {
            " AND parent_id = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT * FROM orgs WHERE {pred} AND id > $2{parent_clause} ORDER BY id LIMIT $3"
        );
        let mut q = sqlx::query(&sql)
            .bind(bound)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(page.limit() + 1);
        if let Some(p) = &filter.parent_id {
            q = q.bind(p.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let items = rows.iter().map(org_from_row).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(items, |o| o.id.as_str()))
    }

    /// `(count, newest update)` of the whole org tree: cheap change
    /// detection for caches of it (the indicator matcher's org paths).
    pub async fn org_version(&self) -> Result<(i64, i64)> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS m FROM orgs")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        let m: Option<i64> = row.try_get("m")?;
        Ok((n, m.unwrap_or(0)))
    }

    /// Every org in `scope` (for tree views and small exports).
    pub async fn org_all(&self, scope: &Scope) -> Result<Vec<Org>> {
        let (pred, bound) = scope.sql_predicate("path", 1);
        let rows = sqlx::query(&format!("SELECT * FROM orgs WHERE {pred} ORDER BY path"))
            .bind(bound)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Creates an org under `parent`. The caller has checked that `parent`
    /// is in its scope and that it may create orgs.
    pub async fn org_create(
        &self,
        actor: &AuditActor,
        parent: &Org,
        slug: &str,
        kind: OrgKind,
        profile: &OrgProfile,
    ) -> Result<Org> {
        if kind == OrgKind::Soc {
            return Err(StoreError::Invalid(InvalidInput::new(
                "kind",
                "only the root org is of kind soc; use supervisor or member",
            )));
        }
        let mut tx = self.begin_write().await?;
        let id = OrgId::generate();
        let path = parent.path.child(&id);
        let org = insert_org(&mut tx, &id, slug, kind, Some(&parent.id), &path, profile).await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: id.as_str(),
                org_path: &path,
                action: "org.create",
                target_type: "org",
                target_id: Some(id.as_str()),
                detail: json!({"slug": slug, "kind": kind.as_str(), "parent_id": parent.id, "profile": profile_json(profile)}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(org)
    }

    /// Replaces an org's profile.
    pub async fn org_update(
        &self,
        actor: &AuditActor,
        org: &Org,
        profile: &OrgProfile,
    ) -> Result<Org> {
        let mut tx = self.begin_write().await?;
        let now = now_millis();
        let n = sqlx::query(
            "UPDATE orgs SET name = $1, sector = $2, contacts = $3, networks = $4, domains = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&profile.name)
        .bind(profile.sector.as_deref())
        .bind(json_text(&profile.contacts)?)
        .bind(json_text(&profile.networks)?)
        .bind(json_text(&profile.domains)?)
        .bind(now)
        .bind(org.id.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "org.update",
                target_type: "org",
                target_id: Some(org.id.as_str()),
                detail: json!({"before": profile_json(&OrgProfile {
                    name: org.name.clone(), sector: org.sector.clone(), contacts: org.contacts.clone(),
                    networks: org.networks.clone(), domains: org.domains.clone(),
                }), "after": profile_json(profile)}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(Org {
            name: profile.name.clone(),
            sector: profile.sector.clone(),
            contacts: profile.contacts.clone(),
            networks: profile.networks.clone(),
            domains: profile.domains.clone(),
            updated_at: now,
            ..org.clone()
        })
    }

    /// Deletes a leaf org with its users and tokens. Refuses the root and
    /// any org that still has children.
    pub async fn org_delete(&self, actor: &AuditActor, org: &Org) -> Result<()> {
        if org.parent_id.is_none() {
            return Err(StoreError::Conflict(
                "the root org cannot be deleted".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        let children: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs WHERE parent_id = $1")
            .bind(org.id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if children > 0 {
            return Err(StoreError::Conflict(format!(
                "org {} has {children} child org(s); delete or move them first",
                org.slug
            )));
        }
        // The org's detection results go with it (the audit log keeps the
        // record of the deletion); comments first, for their foreign key.
        sqlx::query(
            "DELETE FROM alert_comments WHERE alert_id IN (SELECT id FROM alerts WHERE org_id = $1)",
        )
        .bind(org.id.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM notify_outbox WHERE channel_id IN (SELECT id FROM notify_channels WHERE org_id = $1)",
        )
        .bind(org.id.as_str())
        .execute(&mut *tx)
        .await?;
        // Its intel: shares with it or of its indicators and reports, its
        // group memberships and its groups, then the rest.
        for sql in [
            "DELETE FROM indicator_shares WHERE org_id = $1 OR indicator_id IN (SELECT id FROM indicators WHERE owner_org_id = $1)",
            "DELETE FROM indicator_group_shares WHERE indicator_id IN (SELECT id FROM indicators WHERE owner_org_id = $1) OR group_id IN (SELECT id FROM sharing_groups WHERE owner_org_id = $1)",
            "DELETE FROM report_shares WHERE org_id = $1 OR report_id IN (SELECT id FROM intel_reports WHERE owner_org_id = $1)",
            "DELETE FROM report_group_shares WHERE report_id IN (SELECT id FROM intel_reports WHERE owner_org_id = $1) OR group_id IN (SELECT id FROM sharing_groups WHERE owner_org_id = $1)",
            "DELETE FROM sharing_group_members WHERE org_id = $1 OR group_id IN (SELECT id FROM sharing_groups WHERE owner_org_id = $1)",
            "DELETE FROM intel_report_pages WHERE report_id IN (SELECT id FROM intel_reports WHERE owner_org_id = $1)",
            "DELETE FROM intel_report_proposals WHERE report_id IN (SELECT id FROM intel_reports WHERE owner_org_id = $1)",
        ] {
            sqlx::query(sql)
                .bind(org.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for table in [
            "sharing_groups",
            "indicators",
            "intel_objects",
            "intel_feeds",
            "intel_reports",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE owner_org_id = $1"))
                .bind(org.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for table in [
            "alerts",
            "suppressions",
            "notify_channels",
            "dns_policy",
            "tokens",
            "users",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE org_id = $1"))
                .bind(org.id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM orgs WHERE id = $1")
            .bind(org.id.as_str())
            .execute(&mut *tx)
            .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: org.id.as_str(),
                org_path: &org.path,
                action: "org.delete",
                target_type: "org",
                target_id: Some(org.id.as_str()),
                detail: json!({"slug": org.slug, "name": org.name}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_org(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &OrgId,
    slug: &str,
    kind: OrgKind,
    parent: Option<&OrgId>,
    path: &OrgPath,
    profile: &OrgProfile,
) -> Result<Org> {
    let now = now_millis();
    sqlx::query(
        "INSERT INTO orgs (id, slug, name, kind, parent_id, path, sector, contacts, networks, domains, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id.as_str())
    .bind(slug)
    .bind(&profile.name)
    .bind(kind.as_str())
    .bind(parent.map(|p| p.as_str()))
    .bind(path.as_str())
    .bind(profile.sector.as_deref())
    .bind(json_text(&profile.contacts)?)
    .bind(json_text(&profile.networks)?)
    .bind(json_text(&profile.domains)?)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| StoreError::unique(e, || format!("an org with slug {slug:?} already exists")))?;
    Ok(Org {
        id: id.clone(),
        slug: slug.to_string(),
        name: profile.name.clone(),
        kind,
        parent_id: parent.cloned(),
        sector: profile.sector.clone(),
        contacts: profile.contacts.clone(),
        networks: profile.networks.clone(),
        domains: profile.domains.clone(),
        created_at: now,
        updated_at: now,
        path: path.clone(),
    })
}
