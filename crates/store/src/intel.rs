//! Threat-intelligence storage: indicators owned by orgs, shared by TLP.
//!
//! Visibility (what an org may read, export or receive over TAXII) is the
//! TLP 2.0 rule, checked in SQL for the viewer's org:
//! - CLEAR and GREEN: every org;
//! - AMBER and AMBER+STRICT: the owner and the orgs it was shared with
//!   (`indicator_shares`);
//! - RED: the owner only.
//!
//! Protection is a separate question: detection and Protective DNS apply an
//! org's own indicators and its ancestors' (the central SOC's and the
//! supervisor's intel protects everyone below them) plus what is visible to
//! it. [`Store::intel_active`] returns what they need for that
//! (`owner_path`, `shared_with`), and alerts reveal an indicator's details
//! only where it is visible.

use crate::audit::{self, AuditActor, AuditRecord};
use crate::sharing::{check_sharing, Sharing};
use crate::{
    from_json_text, json_text, Backend, Page, PageRequest, Params, Result, Store, StoreError,
};
use mimamori_core::{new_id, now_millis, InvalidInput, Org, UnixMillis};
use mimamori_intel::{Indicator, Tlp};
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::borrow::Cow;
use std::collections::HashMap;

/// The stored spelling of a TLP label.
pub fn tlp_str(t: Tlp) -> &'static str {
    match t {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber-strict",
        Tlp::Red => "red",
    }
}

fn ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// An indicator as stored: who owns it, with whom it is shared, how often
/// it was sighted.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StoredIndicator {
    pub id: String,
    pub owner_org_id: String,
    #[schema(value_type = Object)]
    pub indicator: Indicator,
    /// For a domain: whether it also covers every sub-domain (matched on
    /// label boundaries, in detection, retro-hunt and Protective DNS
    /// alike); absent for other kinds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdomains: Option<bool>,
    /// Orgs an AMBER indicator is shared with (only shown to its owner).
    pub shared_with: Vec<String>,
    /// Sharing groups it is shared with (only shown to its owner).
    pub shared_with_groups: Vec<String>,
    pub sightings: i64,
    pub sighting_orgs: Vec<String>,
    pub last_sighting: Option<UnixMillis>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// What detection and Protective DNS need of an active indicator.
#[derive(Debug, Clone)]
pub struct ActiveIndicator {
    pub id: String,
    pub owner_org_id: String,
    pub owner_path: String,
    pub indicator: Indicator,
    pub shared_with: Vec<String>,
}

/// Rows per page of [`Store::intel_active_each`]: a few MB of JSON bodies.
const ACTIVE_PAGE: i64 = 5_000;

/// Whether an indicator may be used on an org's telemetry and DNS: it is
/// CLEAR or GREEN, or the org is in the owner's sub-tree (the central SOC's
/// and a supervisor's intel protects everyone below them), or an AMBER /
/// AMBER+STRICT indicator was shared with the org. The one statement of the
/// rule, for detection and Protective DNS alike.
pub fn protects(
    tlp: Tlp,
    owner_path: &str,
    shared_with: &[String],
    org_id: &str,
    org_path: &str,
) -> bool {
    tlp <= Tlp::Green
        || org_path.starts_with(owner_path)
        || (tlp <= Tlp::AmberStrict && shared_with.iter().any(|o| o == org_id))
}

impl ActiveIndicator {
    /// See [`protects`].
    pub fn protects(&self, org_id: &str, org_path: &str) -> bool {
        protects(
            self.indicator.tlp,
            &self.owner_path,
            &self.shared_with,
            org_id,
            org_path,
        )
    }
}

/// Indicator rows changed since some time: see [`Store::intel_changed_since`].
#[derive(Debug, Clone, Default)]
pub struct IntelChanges {
    /// The changed rows that can match now.
    pub active: Vec<ActiveIndicator>,
    /// Every changed row, active or not (revoked, expired, not for
    /// detection): their older versions must stop matching.
    pub changed_ids: Vec<String>,
    /// `(kind_key, value)` of every changed row (a row's value never
    /// changes), for matchers keyed by value rather than by row.
    pub changed_values: Vec<(String, String)>,
}

/// What an import wrote.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct UpsertReport {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Ids of the rows inserted or changed (what a retro-hunt should look for).
    pub changed_ids: Vec<String>,
}

/// Narrowing of an indicator listing.
#[derive(Debug, Clone, Default)]
pub struct IndicatorFilter {
    /// The kind's stable name (`domain`, `ipv4`, `sha256`, …).
    pub kind: Option<String>,
    /// Substring of the value.
    pub contains: Option<String>,
    /// Only indicators that match now (not revoked, not expired, used for
    /// detection).
    pub active_only: bool,
}

/// Largest import accepted in one call.
pub const MAX_IMPORT: usize = 5_000_000;

fn stored_from_row(
    row: &AnyRow,
    shares: Vec<String>,
    groups: Vec<String>,
) -> Result<StoredIndicator> {
    let body: String = row.try_get("body")?;
    let orgs: String = row.try_get("sighting_orgs")?;
    let indicator: Indicator = from_json_text("body", &body)?;
    Ok(StoredIndicator {
        id: row.try_get("id")?,
        owner_org_id: row.try_get("owner_org_id")?,
        subdomains: indicator.subdomains(),
        indicator,
        shared_with: shares,
        shared_with_groups: groups,
        sightings: row.try_get("sightings")?,
        sighting_orgs: from_json_text("sighting_orgs", &orgs)?,
        last_sighting: row.try_get("last_sighting")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Starts a write to `indicators` in `tx`: takes the intel write lock (see
/// migrations 0005 and 0007) and returns the stamp for `updated_at`: the
/// wall clock, or one more than the last stamp if that is not behind it.
/// Every transaction that writes indicator rows calls this first, so
/// stamps strictly increase in commit order, and a reader that has seen
/// stamp T finds every later change with `updated_at > T`.
pub(crate) async fn intel_write_begun(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "UPDATE intel_clock SET writes = writes + 1, stamp = CASE WHEN stamp + 1 > $1 THEN stamp + 1 ELSE $1 END WHERE id = 1 RETURNING stamp",
    )
    .bind(now_millis())
    .fetch_one(&mut **tx)
    .await?)
}

/// The owner's stored rows for the (kind, value) keys of a sorted batch,
/// looked up through the owner's unique index (owner, kind_key, value) in
/// chunks, a bound list per chunk under every driver's parameter limit.
/// The kind must be in the condition: with the owner alone, SQLite scans
/// every row the owner has for each chunk.
async fn existing_rows<'b>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    owner_id: &str,
    batch: &'b [(&'static str, Cow<'_, Indicator>)],
) -> Result<HashMap<(&'static str, &'b str), (String, Indicator)>> {
    let mut out = HashMap::new();
    for group in batch.chunk_by(|a, b| a.0 == b.0) {
        let key = group[0].0;
        for chunk in group.chunks(500) {
            let mut p = Params::new(backend);
            let sql = format!(
                "SELECT id, value, body FROM indicators WHERE owner_org_id = {} AND kind_key = {} AND value IN {}",
                p.one(),
                p.one(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(owner_id).bind(key);
            for (_, ind) in chunk {
                q = q.bind(ind.value.as_str());
            }
            let rows = q.fetch_all(&mut **tx).await?;
            if rows.is_empty() {
                continue;
            }
            // Keys borrowed from the batch (the rows' own strings would not
            // outlive this loop).
            let by_value: HashMap<&str, &'b str> = chunk
                .iter()
                .map(|(_, ind)| (ind.value.as_str(), ind.value.as_str()))
                .collect();
            for row in rows {
                let value: String = row.try_get("value")?;
                let Some(v) = by_value.get(value.as_str()) else {
                    continue;
                };
                let body: String = row.try_get("body")?;
                out.insert(
                    (key, *v),
                    (row.try_get("id")?, from_json_text("body", &body)?),
                );
            }
        }
    }
    Ok(out)
}

/// SQL for `(indicator_id, org_id)`: every org an indicator is shared
/// with, its org shares and each member of the groups it is shared with (a
/// group share counts as a share with every member, for detection,
/// Protective DNS and alerts alike). `rest(id)` gives what follows each
/// arm's `FROM` (joins, `WHERE`), `id` being that arm's indicator-id
/// column; it is called for the org-share arm first.
fn shares_sql(mut rest: impl FnMut(&str) -> String) -> String {
    let direct = rest("s.indicator_id");
    let grouped = rest("gs.indicator_id");
    format!(
        "SELECT s.indicator_id, s.org_id FROM indicator_shares s {direct} UNION \
         SELECT gs.indicator_id, gm.org_id FROM indicator_group_shares gs JOIN sharing_group_members gm ON gm.group_id = gs.group_id {grouped}"
    )
}

/// `(indicator_id, org_id)` share rows grouped by indicator.
fn shares_by_indicator(rows: &[AnyRow]) -> Result<HashMap<String, Vec<String>>> {
    let mut by_ind: HashMap<String, Vec<String>> = HashMap::new();
    for s in rows {
        by_ind
            .entry(s.try_get("indicator_id")?)
            .or_default()
            .push(s.try_get("org_id")?);
    }
    Ok(by_ind)
}

/// An indicator row (`id`, `owner_org_id`, `owner_path`, `body`) as
/// detection and Protective DNS load it, taking its shares from `by_ind`.
fn active_from_row(
    row: &AnyRow,
    by_ind: &mut HashMap<String, Vec<String>>,
) -> Result<ActiveIndicator> {
    let body: String = row.try_get("body")?;
    let id: String = row.try_get("id")?;
    Ok(ActiveIndicator {
        shared_with: by_ind.remove(&id).unwrap_or_default(),
        id,
        owner_org_id: row.try_get("owner_org_id")?,
        owner_path: row.try_get("owner_path")?,
        indicator: from_json_text("body", &body)?,
    })
}

/// The SQL condition "indicator `i` is visible to org `$n`".
fn visible_to(n: usize) -> String {
    visible_sql(
        "i",
        "indicator_shares",
        "indicator_group_shares",
        "indicator_id",
        n,
    )
}

/// The TLP rule in SQL for any shared thing (indicators, reports): the row
/// aliased `alias` (with `id`, `owner_org_id`, `tlp`) is visible to org
/// `$n` when the org owns it, it is CLEAR/GREEN, or it is AMBER /
/// AMBER+STRICT and shared with the org directly (`shares`) or with a
/// sharing group the org is a member of (`group_shares`). RED: owner only.
pub(crate) fn visible_sql(
    alias: &str,
    shares: &str,
    group_shares: &str,
    key: &str,
    n: usize,
) -> String {
    format!(
        "({alias}.owner_org_id = ${n} OR {alias}.tlp IN ('clear', 'green') OR ({alias}.tlp IN ('amber', 'amber-strict') AND (\
         EXISTS (SELECT 1 FROM {shares} s WHERE s.{key} = {alias}.id AND s.org_id = ${n}) OR \
         EXISTS (SELECT 1 FROM {group_shares} gs JOIN sharing_group_members gm ON gm.group_id = gs.group_id WHERE gs.{key} = {alias}.id AND gm.org_id = ${n}))))"
    )
}

impl Store {
    /// Imports indicators owned by `owner`, merging each into the owner's
    /// existing row of the same kind and value, and shares AMBER ones with
    /// `share_with`. All or nothing: one transaction.
    pub async fn intel_upsert(
        &self,
        actor: &AuditActor,
        owner: &Org,
        indicators: &[Indicator],
        share_with: &[String],
        source: &str,
    ) -> Result<UpsertReport> {
        let sharing = Sharing {
            orgs: share_with.to_vec(),
            groups: vec![],
        };
        self.intel_upsert_with(actor, owner, indicators, &sharing, source)
            .await
    }

    /// [`Store::intel_upsert`] sharing AMBER indicators with orgs and with
    /// sharing groups (that `owner` owns or is a member of).
    pub async fn intel_upsert_with(
        &self,
        actor: &AuditActor,
        owner: &Org,
        indicators: &[Indicator],
        sharing: &Sharing,
        source: &str,
    ) -> Result<UpsertReport> {
        let mut tx = self.begin_write().await?;
        let report = upsert_tx(
            &mut tx,
            self.backend,
            actor,
            owner,
            indicators,
            sharing,
            source,
        )
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// The body of an import, in the caller's write transaction (a report's
/// accepted proposal is stored in the same transaction as its decision).
pub(crate) async fn upsert_tx(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    actor: &AuditActor,
    owner: &Org,
    indicators: &[Indicator],
    sharing: &Sharing,
    source: &str,
) -> Result<UpsertReport> {
    let share_with = &sharing.orgs;
    if indicators.len() > MAX_IMPORT {
        return Err(StoreError::Invalid(InvalidInput::new(
            "indicators",
            format!(
                "{} indicators in one import; the most is {MAX_IMPORT}",
                indicators.len()
            ),
        )));
    }
    let now = intel_write_begun(tx).await?;
    check_sharing(tx, owner, sharing).await?;
    // The batch in (kind, value) order with repeats merged: the lookups
    // below then walk the owner's unique index in order, and new rows
    // (ids are time-ordered) land at the end of every index instead of
    // at random pages, which is what keeps a bulk import of a million
    // rows at seconds rather than minutes.
    let mut order: Vec<usize> = (0..indicators.len()).collect();
    order.sort_by(|&a, &b| {
        (kind_key_static(&indicators[a]), &indicators[a].value)
            .cmp(&(kind_key_static(&indicators[b]), &indicators[b].value))
    });
    let mut batch: Vec<(&'static str, Cow<'_, Indicator>)> = Vec::with_capacity(order.len());
    for i in order {
        let ind = &indicators[i];
        let key = kind_key_static(ind);
        match batch.last_mut() {
            Some((k, last)) if *k == key && last.value == ind.value => {
                last.to_mut().merge(ind.clone())
            }
            _ => batch.push((key, Cow::Borrowed(ind))),
        }
    }
    let mut report = UpsertReport {
        unchanged: indicators.len() - batch.len(),
        ..Default::default()
    };
    let existing = existing_rows(tx, backend, owner.id.as_str(), &batch).await?;
    // Sized up front: a million-row import otherwise spends a tenth of its
    // time growing these (copying, and faulting in fresh pages each time).
    report.changed_ids.reserve(batch.len());
    let mut changed: Vec<(&str, Indicator)> = Vec::with_capacity(existing.len());
    let mut fresh: Vec<(String, &'static str, &Indicator)> =
        Vec::with_capacity(batch.len() - existing.len().min(batch.len()));
    for (key, ind) in &batch {
        match existing.get(&(*key, ind.value.as_str())) {
            Some((id, old)) => {
                let mut merged = old.clone();
                merged.merge(ind.as_ref().clone());
                if merged == *old {
                    report.unchanged += 1;
                } else {
                    changed.push((id.as_str(), merged));
                }
            }
            None => fresh.push((new_id(), key, ind.as_ref())),
        }
    }
    // Changed rows, many per statement (`UPDATE … FROM (VALUES …)`,
    // whose columns both SQLite and PostgreSQL name column1, column2…).
    const UPDATE_COLS: usize = 11;
    for chunk in changed.chunks(500) {
        let sql = format!(
            "UPDATE indicators SET kind = v.column2, tlp = v.column3, detection = v.column4, revoked = v.column5, confidence = v.column6, first_seen = v.column7, last_seen = v.column8, valid_until = v.column9, body = v.column10, updated_at = v.column11 FROM (VALUES {}) AS v WHERE indicators.id = v.column1",
            Params::new(backend).rows(chunk.len(), UPDATE_COLS)
        );
        let mut q = sqlx::query(&sql);
        for (id, ind) in chunk {
            q = q
                .bind(*id)
                .bind(ind.kind.name())
                .bind(tlp_str(ind.tlp))
                .bind(i64::from(ind.detection))
                .bind(i64::from(ind.revoked))
                .bind(i64::from(ind.confidence))
                .bind(ms(ind.first_seen))
                .bind(ms(ind.last_seen))
                .bind(ind.valid_until.map(ms))
                .bind(json_text(ind)?)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
        report.updated += chunk.len();
        report
            .changed_ids
            .extend(chunk.iter().map(|(id, _)| id.to_string()));
    }
    // New rows, many per statement.
    const COLS: usize = 19;
    for chunk in fresh.chunks(500) {
        let sql = format!(
            "INSERT INTO indicators (id, owner_org_id, owner_path, kind, kind_key, value, tlp, detection, revoked, confidence, first_seen, last_seen, valid_until, body, sightings, sighting_orgs, last_sighting, created_at, updated_at) VALUES {}",
            Params::new(backend).rows(chunk.len(), COLS)
        );
        let mut q = sqlx::query(&sql);
        for (id, key, ind) in chunk {
            q = q
                .bind(id.as_str())
                .bind(owner.id.as_str())
                .bind(owner.path.as_str())
                .bind(ind.kind.name())
                .bind(*key)
                .bind(ind.value.as_str())
                .bind(tlp_str(ind.tlp))
                .bind(i64::from(ind.detection))
                .bind(i64::from(ind.revoked))
                .bind(i64::from(ind.confidence))
                .bind(ms(ind.first_seen))
                .bind(ms(ind.last_seen))
                .bind(ind.valid_until.map(ms))
                .bind(json_text(ind)?)
                .bind(0i64)
                .bind("[]")
                .bind(None::<i64>)
                .bind(now)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
        report.inserted += chunk.len();
    }
    report
        .changed_ids
        .extend(fresh.into_iter().map(|(id, ..)| id));
    for (table, column, targets) in [
        ("indicator_shares", "org_id", share_with),
        ("indicator_group_shares", "group_id", &sharing.groups),
    ] {
        let rows: Vec<(&str, &str)> = report
            .changed_ids
            .iter()
            .flat_map(|id| targets.iter().map(move |t| (id.as_str(), t.as_str())))
            .collect();
        for chunk in rows.chunks(1000) {
            let sql = format!(
                "INSERT INTO {table} (indicator_id, {column}) VALUES {} ON CONFLICT DO NOTHING",
                Params::new(backend).rows(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for (id, to) in chunk {
                q = q.bind(*id).bind(*to);
            }
            q.execute(&mut **tx).await?;
        }
    }
    audit::write(
        tx,
        actor,
        AuditRecord {
            org_id: owner.id.as_str(),
            org_path: &owner.path,
            action: "intel.import",
            target_type: "indicators",
            target_id: None,
            detail: json!({"source": source, "inserted": report.inserted, "updated": report.updated,
                "unchanged": report.unchanged, "share_with": share_with, "share_groups": sharing.groups}),
        },
    )
    .await?;
    Ok(report)
}

impl Store {
    /// Indicators visible to the org `viewer_org_id`, newest change first.
    pub async fn intel_list(
        &self,
        viewer_org_id: &str,
        filter: &IndicatorFilter,
        page: &PageRequest,
    ) -> Result<Page<StoredIndicator>> {
        let mut sql = format!(
            "SELECT i.* FROM indicators i WHERE {} AND i.id < $2",
            visible_to(1)
        );
        let mut binds: Vec<String> = vec![];
        if let Some(k) = &filter.kind {
            binds.push(k.clone());
            sql.push_str(&format!(" AND i.kind = ${}", binds.len() + 3));
        }
        if let Some(c) = &filter.contains {
            binds.push(format!("%{}%", c.to_lowercase().replace(['%', '_'], "")));
            sql.push_str(&format!(" AND i.value LIKE ${}", binds.len() + 3));
        }
        if filter.active_only {
            binds.push(now_millis().to_string());
            let n = binds.len() + 3;
            // Compared as a number on both databases.
            sql.push_str(&format!(
                " AND i.detection = 1 AND i.revoked = 0 AND (i.valid_until IS NULL OR i.valid_until > CAST(${n} AS BIGINT))"
            ));
        }
        sql.push_str(" ORDER BY i.id DESC LIMIT $3");
        let mut q = sqlx::query(&sql)
            .bind(viewer_org_id)
            .bind(page.after.as_deref().unwrap_or("~"))
            .bind(page.limit() + 1);
        for b in &binds {
            q = q.bind(b.as_str());
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut items = vec![];
        for row in &rows {
            items.push(self.with_shares(viewer_org_id, row).await?);
        }
        Ok(page.finish(items, |i| &i.id))
    }

    /// One indicator, if visible to `viewer_org_id`.
    pub async fn intel_get(&self, viewer_org_id: &str, id: &str) -> Result<StoredIndicator> {
        let row = sqlx::query(&format!(
            "SELECT i.* FROM indicators i WHERE i.id = $2 AND {}",
            visible_to(1)
        ))
        .bind(viewer_org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => self.with_shares(viewer_org_id, &row).await,
            None => Err(StoreError::NotFound),
        }
    }

    /// Visible indicators changed after `after_ms` (exclusive), oldest
    /// change first, at most `limit`: the TAXII `added_after` feed.
    pub async fn intel_changed_after(
        &self,
        viewer_org_id: &str,
        after_ms: i64,
        after_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredIndicator>> {
        let rows = sqlx::query(&format!(
            "SELECT i.* FROM indicators i WHERE {} AND (i.updated_at > $2 OR (i.updated_at = $2 AND i.id > $3)) ORDER BY i.updated_at, i.id LIMIT $4",
            visible_to(1)
        ))
        .bind(viewer_org_id)
        .bind(after_ms)
        // Without an id, strictly after the time: "~" sorts after every id.
        .bind(after_id.unwrap_or("~"))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![];
        for row in &rows {
            out.push(self.with_shares(viewer_org_id, row).await?);
        }
        Ok(out)
    }

    async fn with_shares(&self, viewer_org_id: &str, row: &AnyRow) -> Result<StoredIndicator> {
        let owner: String = row.try_get("owner_org_id")?;
        let id: String = row.try_get("id")?;
        // Who else may see it is the owner's business.
        let (shares, groups) = if owner == viewer_org_id {
            (
                sqlx::query_scalar(
                    "SELECT org_id FROM indicator_shares WHERE indicator_id = $1 ORDER BY org_id",
                )
                .bind(&id)
                .fetch_all(&self.pool)
                .await?,
                sqlx::query_scalar(
                    "SELECT group_id FROM indicator_group_shares WHERE indicator_id = $1 ORDER BY group_id",
                )
                .bind(&id)
                .fetch_all(&self.pool)
                .await?,
            )
        } else {
            (vec![], vec![])
        };
        stored_from_row(row, shares, groups)
    }

    /// Every indicator that can match now (used for detection, not revoked,
    /// not expired), with owner and sharing: what the detection engine and
    /// Protective DNS load. Unscoped by design: they decide per event org.
    pub async fn intel_active(&self) -> Result<Vec<ActiveIndicator>> {
        let mut out = Vec::new();
        self.intel_active_each(|a| out.push(a)).await?;
        Ok(out)
    }

    /// [`Store::intel_active`] one row at a time, read in pages of
    /// [`ACTIVE_PAGE`] rows (keyset pagination on the primary key): what a
    /// matcher of millions of rows loads through, holding one page at a
    /// time rather than every row's JSON body and every parsed indicator at
    /// once (at 1M indicators that was over a gigabyte, twice over when
    /// detection and Protective DNS loaded together).
    ///
    /// Each page comes back as **one** database row, a JSON array of the
    /// page's rows built by the database: the SQLite driver hands every
    /// result row from its worker thread to the caller separately, a
    /// thread wake-up per row, which on a busy machine made a 1M load take
    /// 15–20 s instead of a few.
    pub async fn intel_active_each(&self, mut f: impl FnMut(ActiveIndicator)) -> Result<()> {
        /// One row of a page: id, owner, owner path, body.
        type PageRow = (String, String, String, Indicator);
        let now = now_millis();
        let mut by_ind = self.intel_shares().await?;
        // The body is spliced in as the JSON text it is (the database does
        // not parse it); the other columns are quoted.
        let page_sql = match self.backend {
            Backend::Sqlite => {
                "SELECT '[' || COALESCE(group_concat('[' || json_quote(id) || ',' || json_quote(owner_org_id) || ',' \
                 || json_quote(owner_path) || ',' || body || ']', ','), '') || ']' AS page, \
                 MAX(id) AS last, COUNT(*) AS n FROM (SELECT id, owner_org_id, owner_path, body FROM indicators \
                 WHERE id > $1 AND detection = 1 AND revoked = 0 AND (valid_until IS NULL OR valid_until > $2) \
                 ORDER BY id LIMIT $3)"
            }
            Backend::Postgres => {
                "SELECT '[' || COALESCE(string_agg('[' || to_json(id)::text || ',' || to_json(owner_org_id)::text || ',' \
                 || to_json(owner_path)::text || ',' || body || ']', ','), '') || ']' AS page, \
                 MAX(id) AS last, COUNT(*) AS n FROM (SELECT id, owner_org_id, owner_path, body FROM indicators \
                 WHERE id > $1 AND detection = 1 AND revoked = 0 AND (valid_until IS NULL OR valid_until > $2) \
                 ORDER BY id LIMIT $3) p"
            }
        };
        // Pipelined: the next page's query runs (on the database's side: the
        // SQLite worker thread, or the PostgreSQL server) while this page
        // is parsed and handed to `f`, so start-up at 1M rows uses two
        // cores instead of alternating between them.
        let fetch = |after: String| {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                let row = sqlx::query(page_sql)
                    .bind(after)
                    .bind(now)
                    .bind(ACTIVE_PAGE)
                    .fetch_one(&pool)
                    .await?;
                let n: i64 = row.try_get("n")?;
                if n == 0 {
                    return Ok(None);
                }
                let page: String = row.try_get("page")?;
                let last: String = row.try_get("last")?;
                Ok::<_, sqlx::Error>(Some((n, page, last)))
            })
        };
        let mut pending = Some(fetch(String::new()));
        while let Some(handle) = pending.take() {
            // A panicked or cancelled page task (the runtime shutting down)
            // ends the read like a lost connection would.
            let page = handle.await.map_err(|_| sqlx::Error::WorkerCrashed)??;
            let Some((n, page, last)) = page else {
                break;
            };
            if n >= ACTIVE_PAGE {
                pending = Some(fetch(last));
            }
            let rows: Vec<PageRow> = from_json_text("page", &page)?;
            drop(page);
            for (id, owner_org_id, owner_path, body) in rows {
                f(ActiveIndicator {
                    shared_with: by_ind.remove(&id).unwrap_or_default(),
                    id,
                    owner_org_id,
                    owner_path,
                    indicator: body,
                });
            }
        }
        Ok(())
    }

    /// Every indicator row's shares, by indicator id: the orgs it is shared
    /// with directly and through sharing groups (see
    /// [`ActiveIndicator::shared_with`]). What a matcher re-reads when a
    /// sharing group changes, instead of every indicator.
    pub async fn intel_shares(&self) -> Result<HashMap<String, Vec<String>>> {
        let shares = sqlx::query(&shares_sql(|_| String::new()))
            .fetch_all(&self.pool)
            .await?;
        shares_by_indicator(&shares)
    }

    /// Indicators changed at or after `since_ms`: those still able to match
    /// (as in [`Store::intel_active`]) and the ids of every changed row, so
    /// a matcher built before `since_ms` can be patched (the changed rows
    /// replace their old versions) instead of rebuilt from every row.
    ///
    /// `None` when more than `max_rows` rows changed (a bulk import, for
    /// which a full reload is cheaper than a patch); counted first, so that
    /// case reads no rows.
    pub async fn intel_changed_since(
        &self,
        since_ms: i64,
        max_rows: usize,
    ) -> Result<Option<IntelChanges>> {
        let now = now_millis();
        let changed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM indicators WHERE updated_at >= $1")
                .bind(since_ms)
                .fetch_one(&self.pool)
                .await?;
        if changed > max_rows as i64 {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, owner_org_id, owner_path, kind_key, value, body, detection, revoked, valid_until FROM indicators WHERE updated_at >= $1 ORDER BY id",
        )
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let shares = sqlx::query(&shares_sql(|id| {
            format!("JOIN indicators i ON i.id = {id} WHERE i.updated_at >= $1")
        }))
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut by_ind = shares_by_indicator(&shares)?;
        let mut out = IntelChanges::default();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let detection: i64 = row.try_get("detection")?;
            let revoked: i64 = row.try_get("revoked")?;
            let valid_until: Option<i64> = row.try_get("valid_until")?;
            out.changed_ids.push(id);
            out.changed_values
                .push((row.try_get("kind_key")?, row.try_get("value")?));
            if detection != 1 || revoked != 0 || valid_until.is_some_and(|v| v <= now) {
                continue;
            }
            out.active.push(active_from_row(row, &mut by_ind)?);
        }
        Ok(Some(out))
    }

    /// The rows among `ids` that can match now, as [`Store::intel_active`]
    /// gives them: what a retro-hunt for those indicators needs, without
    /// reading every active row.
    pub async fn intel_active_among(&self, ids: &[String]) -> Result<Vec<ActiveIndicator>> {
        let now = now_millis();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut p = Params::new(self.backend);
            let rows_sql = format!(
                "SELECT id, owner_org_id, owner_path, body FROM indicators WHERE detection = 1 AND revoked = 0 AND (valid_until IS NULL OR valid_until > {}) AND id IN {} ORDER BY id",
                p.one(),
                p.list(chunk.len())
            );
            let mut p = Params::new(self.backend);
            let shares_sql = shares_sql(|id| format!("WHERE {id} IN {}", p.list(chunk.len())));
            let mut rows = sqlx::query(&rows_sql).bind(now);
            let mut shares = sqlx::query(&shares_sql);
            for id in chunk {
                rows = rows.bind(id.as_str());
                shares = shares.bind(id.as_str());
            }
            for id in chunk {
                shares = shares.bind(id.as_str());
            }
            let rows = rows.fetch_all(&self.pool).await?;
            let mut by_ind = shares_by_indicator(&shares.fetch_all(&self.pool).await?)?;
            for row in &rows {
                out.push(active_from_row(row, &mut by_ind)?);
            }
        }
        Ok(out)
    }

    /// Every row of kind `kind_key` (`domain`, `ipv4`, `sha256`, …) whose
    /// value is among `values` and that can match now, whoever owns it, as
    /// [`Store::intel_active`] gives them: what a matcher keyed by value
    /// needs to decide those values again after a change.
    pub async fn intel_active_with_values(
        &self,
        kind_key: &str,
        values: &[String],
    ) -> Result<Vec<ActiveIndicator>> {
        let mut ids: Vec<String> = Vec::with_capacity(values.len());
        for chunk in values.chunks(500) {
            let mut p = Params::new(self.backend);
            let sql = format!(
                "SELECT id FROM indicators WHERE kind_key = {} AND value IN {}",
                p.one(),
                p.list(chunk.len())
            );
            let mut q = sqlx::query_scalar(&sql).bind(kind_key);
            for v in chunk {
                q = q.bind(v.as_str());
            }
            ids.extend(q.fetch_all(&self.pool).await?);
        }
        self.intel_active_among(&ids).await
    }

    /// The newest change to any indicator (ms), for cheap change polling.
    pub async fn intel_version(&self) -> Result<(i64, i64)> {
        let row = sqlx::query("SELECT COUNT(*) AS n, MAX(updated_at) AS m FROM indicators")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        let m: Option<i64> = row.try_get("m")?;
        Ok((n, m.unwrap_or(0)))
    }

    /// `(members, newest change)` of the sharing groups, for change
    /// polling. A membership change moves no indicator row, yet changes
    /// whom AMBER indicators protect: matchers rebuild in full when this
    /// moves (a patch reads only changed indicator rows).
    pub async fn sharing_version(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM sharing_group_members) + (SELECT COUNT(*) FROM sharing_groups) AS n, \
             (SELECT MAX(updated_at) FROM sharing_groups) AS m",
        )
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get("n")?;
        let m: Option<i64> = row.try_get("m")?;
        Ok((n, m.unwrap_or(0)))
    }

    /// Records sightings: the indicators matched in `org_id`'s telemetry at
    /// `time`. A sighting extends nothing by itself; callers decide.
    pub async fn intel_sighted(&self, ids: &[String], org_id: &str, time: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for id in ids {
            let row = sqlx::query("SELECT sighting_orgs FROM indicators WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { continue };
            let orgs: String = row.try_get("sighting_orgs")?;
            let mut orgs: Vec<String> = from_json_text("sighting_orgs", &orgs)?;
            if !orgs.iter().any(|o| o == org_id) {
                orgs.push(org_id.to_string());
            }
            sqlx::query(
                "UPDATE indicators SET sightings = sightings + 1, sighting_orgs = $1, last_sighting = CASE WHEN last_sighting IS NULL OR last_sighting < $2 THEN $2 ELSE last_sighting END WHERE id = $3",
            )
            .bind(json_text(&orgs)?)
            .bind(time)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The kind without the exact flag, as stored in `kind_key`: two reports of
/// one domain, one exact, are one row.
fn kind_key_static(i: &Indicator) -> &'static str {
    use mimamori_intel::IndicatorKind as K;
    match i.kind {
        K::Domain { .. } => "domain",
        other => other.name(),
    }
}

/// The formats a feed can have.
pub const FEED_FORMATS: [&str; 6] = ["plain", "hosts", "csv", "stix", "misp", "taxii"];

/// A feed subscription: polled on a schedule, imported as owned by its org.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Feed {
    pub id: String,
    pub owner_org_id: String,
    pub name: String,
    pub url: String,
    /// `plain`, `hosts`, `csv`, `stix`, `misp` or `taxii` (a TAXII 2.1
    /// collection, polled page by page for what was added since the last
    /// poll).
    pub format: String,
    pub interval_secs: i64,
    /// TLP for what the feed does not mark (`clear` … `red`).
    pub tlp: String,
    pub confidence: i64,
    /// Whether domains cover their sub-domains when the feed does not say.
    pub subdomains: bool,
    pub enabled: bool,
    /// The `Authorization` header the poll sends; never serialized (the
    /// API shows only [`Feed::authenticated`]).
    #[serde(skip)]
    pub auth_header: Option<String>,
    /// Whether the poll sends an `Authorization` header.
    pub authenticated: bool,
    pub etag: Option<String>,
    /// The `Last-Modified` of the last download; for a `taxii` feed, the
    /// server's `X-TAXII-Date-Added-Last` of the last page, which the next
    /// poll asks from (`added_after`).
    pub last_modified: Option<String>,
    pub last_polled: Option<UnixMillis>,
    /// `imported`, `not-modified` or `error`.
    pub last_status: Option<String>,
    pub last_error: Option<String>,
    /// Indicators in the last import.
    pub last_count: Option<i64>,
    pub created_at: UnixMillis,
}

/// A new feed subscription.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFeed {
    pub org_id: String,
    pub name: String,
    pub url: String,
    pub format: String,
    #[serde(default = "default_interval")]
    pub interval_secs: i64,
    #[serde(default = "default_feed_tlp")]
    pub tlp: String,
    #[serde(default = "default_feed_confidence")]
    pub confidence: i64,
    /// Whether domains cover their sub-domains when the feed does not say
    /// (default true).
    #[serde(default = "default_feed_subdomains")]
    pub subdomains: bool,
    /// The `Authorization` header value each poll sends (e.g. `Bearer …`
    /// for a TAXII server, `Basic …`); stored for the poller, never shown.
    #[serde(default)]
    pub auth_header: Option<String>,
}

fn default_feed_subdomains() -> bool {
    true
}

fn default_interval() -> i64 {
    3600
}
fn default_feed_tlp() -> String {
    "amber".into()
}
fn default_feed_confidence() -> i64 {
    50
}

fn feed_from_row(row: &AnyRow) -> Result<Feed> {
    let enabled: i64 = row.try_get("enabled")?;
    let subdomains: i64 = row.try_get("subdomains")?;
    let auth_header: Option<String> = row.try_get("auth_header")?;
    Ok(Feed {
        id: row.try_get("id")?,
        owner_org_id: row.try_get("owner_org_id")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        format: row.try_get("format")?,
        interval_secs: row.try_get("interval_secs")?,
        tlp: row.try_get("tlp")?,
        confidence: row.try_get("confidence")?,
        subdomains: subdomains != 0,
        enabled: enabled != 0,
        authenticated: auth_header.is_some(),
        auth_header,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
        last_polled: row.try_get("last_polled")?,
        last_status: row.try_get("last_status")?,
        last_error: row.try_get("last_error")?,
        last_count: row.try_get("last_count")?,
        created_at: row.try_get("created_at")?,
    })
}

/// What one poll of a feed found.
#[derive(Debug, Clone)]
pub struct FeedPoll {
    pub status: &'static str,
    pub error: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub count: Option<i64>,
}

impl Store {
    /// Subscribes `owner` to a feed.
    pub async fn feed_create(
        &self,
        actor: &AuditActor,
        owner: &Org,
        new: &NewFeed,
    ) -> Result<Feed> {
        let invalid = |f: &str, r: String| StoreError::Invalid(InvalidInput::new(f, r));
        if new.name.trim().is_empty() || new.name.chars().count() > 200 {
            return Err(invalid("name", "must be 1 to 200 characters".into()));
        }
        let url = new.url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.contains(char::is_whitespace)
        {
            return Err(invalid("url", format!("{url:?} is not an http(s) URL")));
        }
        if !FEED_FORMATS.contains(&new.format.as_str()) {
            return Err(invalid(
                "format",
                format!("{:?} is not one of {}", new.format, FEED_FORMATS.join(", ")),
            ));
        }
        let auth_header = new.auth_header.as_deref().map(str::trim);
        if let Some(a) = auth_header {
            // A header value: visible ASCII and spaces, no line breaks (which
            // would inject headers), and something after the scheme.
            if a.is_empty()
                || a.len() > 4096
                || !a.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            {
                return Err(invalid(
                    "auth_header",
                    "must be 1 to 4096 visible ASCII characters, e.g. \"Bearer TOKEN\"".into(),
                ));
            }
        }
        if !(60..=7 * 86_400).contains(&new.interval_secs) {
            return Err(invalid(
                "interval_secs",
                "must be 60 to 604800 seconds".into(),
            ));
        }
        if Tlp::parse_label(&new.tlp).is_none() {
            return Err(invalid("tlp", format!("{:?} is not a TLP label", new.tlp)));
        }
        if !(0..=100).contains(&new.confidence) {
            return Err(invalid("confidence", "must be 0 to 100".into()));
        }
        let id = new_id();
        let now = now_millis();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO intel_feeds (id, owner_org_id, owner_path, name, url, format, interval_secs, tlp, confidence, subdomains, enabled, etag, last_modified, last_polled, last_status, last_error, last_count, created_at, auth_header) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, NULL, NULL, NULL, NULL, NULL, NULL, $11, $12)",
        )
        .bind(&id)
        .bind(owner.id.as_str())
        .bind(owner.path.as_str())
        .bind(new.name.trim())
        .bind(url)
        .bind(&new.format)
        .bind(new.interval_secs)
        .bind(tlp_str(Tlp::parse_label(&new.tlp).unwrap_or_default()))
        .bind(new.confidence)
        .bind(i64::from(new.subdomains))
        .bind(now)
        .bind(auth_header)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::unique(e, || format!("the org already has a feed named {:?}", new.name)))?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: "intel.feed.create",
                target_type: "feed",
                target_id: Some(&id),
                detail: json!({"name": new.name, "url": url, "format": new.format, "interval_secs": new.interval_secs, "subdomains": new.subdomains, "authenticated": auth_header.is_some()}),
            },
        )
        .await?;
        tx.commit().await?;
        self.feed_get_unscoped(&id).await
    }

    async fn feed_get_unscoped(&self, id: &str) -> Result<Feed> {
        let row = sqlx::query("SELECT * FROM intel_feeds WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(feed_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Feeds of the orgs in `scope`.
    pub async fn feed_list(&self, scope: &mimamori_core::Scope) -> Result<Vec<Feed>> {
        let (pred, bound) = scope.sql_predicate("owner_path", 1);
        let rows = sqlx::query(&format!(
            "SELECT * FROM intel_feeds WHERE {pred} ORDER BY id"
        ))
        .bind(bound)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(feed_from_row).collect()
    }

    /// One feed, if in `scope`.
    pub async fn feed_get(&self, scope: &mimamori_core::Scope, id: &str) -> Result<Feed> {
        let (pred, bound) = scope.sql_predicate("owner_path", 2);
        let row = sqlx::query(&format!(
            "SELECT * FROM intel_feeds WHERE id = $1 AND {pred}"
        ))
        .bind(id)
        .bind(bound)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(feed_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    /// Unsubscribes (the feed's indicators stay).
    pub async fn feed_delete(&self, actor: &AuditActor, owner: &Org, feed: &Feed) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM intel_feeds WHERE id = $1")
            .bind(&feed.id)
            .execute(&mut *tx)
            .await?;
        audit::write(
            &mut tx,
            actor,
            AuditRecord {
                org_id: owner.id.as_str(),
                org_path: &owner.path,
                action: "intel.feed.delete",
                target_type: "feed",
                target_id: Some(&feed.id),
                detail: json!({"name": feed.name, "url": feed.url}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Enabled feeds whose interval has passed since their last poll.
    pub async fn feeds_due(&self, now: UnixMillis) -> Result<Vec<Feed>> {
        let rows = sqlx::query(
            "SELECT * FROM intel_feeds WHERE enabled = 1 AND (last_polled IS NULL OR last_polled + interval_secs * 1000 <= $1) ORDER BY id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(feed_from_row).collect()
    }

    /// Records a poll's outcome; a 304 or an error keeps the validators.
    pub async fn feed_polled(&self, id: &str, poll: &FeedPoll) -> Result<()> {
        sqlx::query(
            "UPDATE intel_feeds SET last_polled = $1, last_status = $2, last_error = $3, \
             etag = COALESCE($4, etag), last_modified = COALESCE($5, last_modified), last_count = COALESCE($6, last_count) WHERE id = $7",
        )
        .bind(now_millis())
        .bind(poll.status)
        .bind(poll.error.as_deref())
        .bind(poll.etag.as_deref())
        .bind(poll.last_modified.as_deref())
        .bind(poll.count)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// What an analyst's verdict on an indicator alert does to the indicators
/// that raised it (those of the alert's kind and value that protect the
/// alert's org): a true positive (`resolved`) keeps them valid for
/// `extend_ms` after now at least (an indicator without an end keeps
/// none) and counts as a re-observation; a false positive lowers their
/// confidence by `false_positive_drop` points (not below 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerdictPolicy {
    pub extend_ms: i64,
    pub false_positive_drop: u8,
}

impl Default for VerdictPolicy {
    fn default() -> Self {
        VerdictPolicy {
            extend_ms: 30 * 86_400_000,
            false_positive_drop: 20,
        }
    }
}

/// Applies a verdict on the indicator alert `rule_id` (`<kind>:<value>`)
/// in org `org_id` to the indicators that raised it, in the alert
/// update's transaction; each change is audited under the indicator's
/// owner. Returns the ids changed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply_verdict(
    tx: &mut Transaction<'_, Any>,
    actor: &AuditActor,
    alert_id: &str,
    org_id: &str,
    org_path: &str,
    rule_id: &str,
    true_positive: bool,
    policy: &VerdictPolicy,
) -> Result<Vec<String>> {
    let Some((key, value)) = rule_id.split_once(':') else {
        return Ok(vec![]);
    };
    // The intel write lock before reading: the rows read are the rows
    // written, and `updated_at` follows commit order (migration 0005).
    let now = intel_write_begun(tx).await?;
    let rows = sqlx::query(
        "SELECT id, owner_org_id, owner_path, body FROM indicators WHERE kind_key = $1 AND value = $2 ORDER BY id",
    )
    .bind(key)
    .bind(value)
    .fetch_all(&mut **tx)
    .await?;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut changed = vec![];
    for row in &rows {
        let id: String = row.try_get("id")?;
        let owner_id: String = row.try_get("owner_org_id")?;
        let owner_path: String = row.try_get("owner_path")?;
        let body: String = row.try_get("body")?;
        let mut ind: Indicator = from_json_text("body", &body)?;
        let shared: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT org_id FROM ({}) shared",
            shares_sql(|id| format!("WHERE {id} = $1"))
        ))
        .bind(&id)
        .fetch_all(&mut **tx)
        .await?;
        if !protects(ind.tlp, &owner_path, &shared, org_id, org_path) {
            continue;
        }
        let before = (ind.valid_until.map(ms), ind.confidence);
        if true_positive {
            ind.confirm(at, time::Duration::milliseconds(policy.extend_ms));
        } else {
            ind.confidence = ind.confidence.saturating_sub(policy.false_positive_drop);
        }
        sqlx::query(
            "UPDATE indicators SET confidence = $1, first_seen = $2, last_seen = $3, valid_until = $4, body = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(i64::from(ind.confidence))
        .bind(ms(ind.first_seen))
        .bind(ms(ind.last_seen))
        .bind(ind.valid_until.map(ms))
        .bind(json_text(&ind)?)
        .bind(now)
        .bind(&id)
        .execute(&mut **tx)
        .await?;
        let owner_path = mimamori_core::OrgPath(owner_path);
        audit::write(
            tx,
            actor,
            AuditRecord {
                org_id: &owner_id,
                org_path: &owner_path,
                action: if true_positive {
                    "intel.verdict.true_positive"
                } else {
                    "intel.verdict.false_positive"
                },
                target_type: "indicator",
                target_id: Some(&id),
                detail: json!({"alert_id": alert_id, "alert_org_id": org_id,
                    "before": {"valid_until": before.0, "confidence": before.1},
                    "after": {"valid_until": ind.valid_until.map(ms), "confidence": ind.confidence}}),
            },
        )
        .await?;
        changed.push(id);
    }
    Ok(changed)
}
