//! Sharing groups: named sets of orgs ("hospital group", "energy ISAC")
//! owned by one org. An AMBER / AMBER+STRICT indicator or report shared
//! with a group is visible to its members wherever visibility applies (the
//! listings, exports, TAXII, detection and Protective DNS through
//! [`crate::protects`]). RED is never shared.
//!
//! A group is managed by whoever manages its owner org (the API decides
//! who that is); it may be used for sharing by its owner org and by its
//! members. Members may be anywhere in the tree: a group is how intel
//! crosses branches of it.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::{Result, Store, StoreError};
use mimamori_core::{new_id, now_millis, InvalidInput, Org, Scope, UnixMillis};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// Most members one change may add or remove.
pub const MAX_GROUP_CHANGE: usize = 1000;

/// With whom something is shared beyond TLP's defaults: orgs and sharing
/// groups, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sharing {
    pub orgs: Vec<String>,
    pub groups: Vec<String>,
}

impl Sharing {
    pub fn is_empty(&self) -> bool {
        self.orgs.is_empty() && self.groups.is_empty()
    }
}

/// A sharing group as read back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SharingGroup {
    pub id: String,
    pub owner_org_id: String,
    pub name: String,
    pub description: String,
    /// Member org ids, sorted.
    pub members: Vec<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// A new sharing group.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSharingGroup {
    /// The owning org (must be in the caller's scope).
    pub org_id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Initial member org ids.
    #[serde(default)]
    pub members: Vec<String>,
}

/// A change to a sharing group's members (and optionally its name).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingGroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Org ids to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Org ids to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

fn invalid(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid(InvalidInput::new(field, reason))
}

fn check_count(field: &str, n: usize) -> Result<()> {
    if n > MAX_GROUP_CHANGE {
        return Err(invalid(
            field,
            format!("{n} orgs in one change; at most {MAX_GROUP_CHANGE}"),
        ));
    }
    Ok(())
}

async fn check_orgs(tx: &mut Transaction<'_, Any>, field: &str, ids: &[String]) -> Result<()> {
    for (i, org) in ids.iter().enumerate() {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs WHERE id = $1")
            .bind(org)
            .fetch_one(&mut **tx)
            .await?;
        if n == 0 {
            return Err(invalid(&format!("{field}[{i}]"), format!("no org {org}")));
        }
    }
    Ok(())
}

/// Adds `orgs` to the group (those already in it stay as they are).
async fn add_members(
    tx: &mut Transaction<'_, Any>,
    group_id: &str,
    orgs: &[String],
    now: i64,
) -> Result<()> {
    for org in orgs {
        sqlx::query(
            "INSERT INTO sharing_group_members (group_id, org_id, added_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(group_id)
        .bind(org)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Checks that `owner` may share with the orgs and groups of `sharing`:
/// the orgs exist, and each group exists and is owned by `owner` or has it
/// as a member.
pub(crate) async fn check_sharing(
    tx: &mut Transaction<'_, Any>,
    owner: &Org,
    sharing: &Sharing,
) -> Result<()> {
    check_orgs(tx, "share_with", &sharing.orgs).await?;
    for (i, g) in sharing.groups.iter().enumerate() {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sharing_groups g WHERE g.id = $1 AND (g.owner_org_id = $2 OR EXISTS (SELECT 1 FROM sharing_group_members m WHERE m.group_id = g.id AND m.org_id = $2))",
        )
        .bind(g)
        .bind(owner.id.as_str())
        .fetch_one(&mut **tx)
        .await?;
        if n == 0 {
            return Err(invalid(
                &format!("share_groups[{i}]"),
                format!(
                    "no sharing group {g} that {} owns or is a member of",
                    owner.slug
                ),
            ));
        }
    }
    Ok(())
}

impl Store {
    async fn group_members(&self, id: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT org_id FROM sharing_group_members WHERE group_id = $1 ORDER BY org_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn group_from_row(&self, row: &AnyRow) -> Result<SharingGroup> {
        let id: String = row.try_get("id")?;
        Ok(SharingGroup {
            members: self.group_members(&id).await?,
            id,
            owner_org_id: row.try_get("owner_org_id")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    /// Creates a sharing group owned by `owner`.
    pub async fn group_create(
        &self,
        actor: &AuditActor,
        owner: &Org,
        new: &NewSharingGroup,
    ) -> Result<SharingGroup> {
        let name = mimamori_core::validate::display_name("name", &new.name)?;
        let description =
            mimamori_core::validate::optional_text("description", Some(&new.description), 2000)?
                .unwrap_or_default();
        check_count("members", new.members.len())?;
        let id = new_id();
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        check_orgs(&mut tx, "members", &new.members).await?;
        sqlx::query(
            "INSERT INTO sharing_groups (id, owner_org_id, owner_path, name, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(owner.id.as_str())
        .bind(owner.path.as_str())
        .bind(&name)
        .bind(&description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::unique(e, || {
                format!("{} already has a sharing group named {name:?}", owner.slug)
            })
        })?;
        add_members(&mut tx, &id, &new.members, now).await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: "intel.group.create",
                target_type: "sharing_group",
                target_id: Some(&id),
                detail: json!({"name": name, "members": new.members}),
            },
        )
        .await?;
        tx.commit().await?;
        self.group_get_unscoped(&id).await
    }

    async fn group_get_unscoped(&self, id: &str) -> Result<SharingGroup> {
        let row = sqlx::query("SELECT * FROM sharing_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        self.group_from_row(&row).await
    }

    /// The groups a caller sees: owned by an org in `scope`, or having the
    /// caller's org `viewer_org_id` as a member.
    pub async fn group_list(
        &self,
        scope: &Scope,
        viewer_org_id: &str,
    ) -> Result<Vec<SharingGroup>> {
        let (pred, bound) = scope.sql_predicate("g.owner_path", 1);
        let rows = sqlx::query(&format!(
            "SELECT g.* FROM sharing_groups g WHERE {pred} OR EXISTS (SELECT 1 FROM sharing_group_members m WHERE m.group_id = g.id AND m.org_id = $2) ORDER BY g.id"
        ))
        .bind(bound)
        .bind(viewer_org_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.group_from_row(row).await?);
        }
        Ok(out)
    }

    /// One group, if the caller sees it (as in [`Store::group_list`]).
    pub async fn group_get(
        &self,
        scope: &Scope,
        viewer_org_id: &str,
        id: &str,
    ) -> Result<SharingGroup> {
        let (pred, bound) = scope.sql_predicate("g.owner_path", 2);
        let row = sqlx::query(&format!(
            "SELECT g.* FROM sharing_groups g WHERE g.id = $1 AND ({pred} OR EXISTS (SELECT 1 FROM sharing_group_members m WHERE m.group_id = g.id AND m.org_id = $3))"
        ))
        .bind(id)
        .bind(bound)
        .bind(viewer_org_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        self.group_from_row(&row).await
    }

    /// One group whose owner is in `scope` (who may change it), with its
    /// owner org.
    pub async fn group_get_managed(&self, scope: &Scope, id: &str) -> Result<(SharingGroup, Org)> {
        let (pred, bound) = scope.sql_predicate("owner_path", 2);
        let row = sqlx::query(&format!(
            "SELECT * FROM sharing_groups WHERE id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let g = self.group_from_row(&row).await?;
        let owner = self.org_get(scope, &g.owner_org_id).await?;
        Ok((g, owner))
    }

    /// Adds and removes members (and renames); audited with the change.
    pub async fn group_update(
        &self,
        actor: &AuditActor,
        owner: &Org,
        group: &SharingGroup,
        patch: &SharingGroupPatch,
    ) -> Result<SharingGroup> {
        check_count("add", patch.add.len())?;
        check_count("remove", patch.remove.len())?;
        let name = match &patch.name {
            Some(n) => mimamori_core::validate::display_name("name", n)?,
            None => group.name.clone(),
        };
        let description = match &patch.description {
            Some(d) => mimamori_core::validate::optional_text("description", Some(d), 2000)?
                .unwrap_or_default(),
            None => group.description.clone(),
        };
        if patch.name.is_none()
            && patch.description.is_none()
            && patch.add.is_empty()
            && patch.remove.is_empty()
        {
            return Err(invalid("add", "nothing to change"));
        }
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        check_orgs(&mut tx, "add", &patch.add).await?;
        sqlx::query(
            "UPDATE sharing_groups SET name = $1, description = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&name)
        .bind(&description)
        .bind(now)
        .bind(&group.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            StoreError::unique(e, || {
                format!("{} already has a sharing group named {name:?}", owner.slug)
            })
        })?;
        add_members(&mut tx, &group.id, &patch.add, now).await?;
        for org in &patch.remove {
            sqlx::query("DELETE FROM sharing_group_members WHERE group_id = $1 AND org_id = $2")
                .bind(&group.id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
        }
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: "intel.group.update",
                target_type: "sharing_group",
                target_id: Some(&group.id),
                detail: json!({
                    "before": {"name": group.name, "members": group.members},
                    "added": patch.add, "removed": patch.remove, "name": name,
                }),
            },
        )
        .await?;
        tx.commit().await?;
        self.group_get_unscoped(&group.id).await
    }

    /// Deletes a group: what was shared with it is no longer visible to
    /// its members (the indicators and reports stay with their owners).
    pub async fn group_delete(
        &self,
        actor: &AuditActor,
        owner: &Org,
        group: &SharingGroup,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for table in [
            "indicator_group_shares",
            "report_group_shares",
            "sharing_group_members",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE group_id = $1"))
                .bind(&group.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM sharing_groups WHERE id = $1")
            .bind(&group.id)
            .execute(&mut *tx)
            .await?;
        // The matchers rebuild when `Store::sharing_version` moves: deleting
        // the group and its members lowers the count it watches.
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: "intel.group.delete",
                target_type: "sharing_group",
                target_id: Some(&group.id),
                detail: json!({"name": group.name, "members": group.members}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Resolves group names to the ids of groups `owner` may share with
    /// (owned by it or having it as a member): what a MISP event's sharing
    /// group maps onto. Unknown names are returned apart.
    pub async fn group_resolve_names(
        &self,
        owner: &Org,
        names: &[String],
    ) -> Result<(Vec<String>, Vec<String>)> {
        let mut found = vec![];
        let mut unknown = vec![];
        for name in names {
            let id: Option<String> = sqlx::query_scalar(
                "SELECT g.id FROM sharing_groups g WHERE g.name = $1 AND (g.owner_org_id = $2 OR EXISTS (SELECT 1 FROM sharing_group_members m WHERE m.group_id = g.id AND m.org_id = $2)) ORDER BY g.id LIMIT 1",
            )
            .bind(name.trim())
            .bind(owner.id.as_str())
            .fetch_optional(&self.pool)
            .await?;
            match id {
                Some(id) => found.push(id),
                None => unknown.push(name.clone()),
            }
        }
        Ok((found, unknown))
    }
}
