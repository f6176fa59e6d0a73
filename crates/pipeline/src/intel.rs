//! Indicator matching: the intel hub's active indicators against each
//! event's normalized fields (domains with parent-domain matching,
//! addresses by longest prefix, URLs, file hashes, file names).
//!
//! The matcher serves an immutable [`IntelView`] through an `ArcSwap`: a
//! change builds the next view beside the current one and swaps it in, so
//! ingestion never pauses for it. A view is a full [`IntelSnapshot`] (the
//! *base*) plus a *patch*: a small snapshot of the rows changed since the
//! base was built, whose older versions in the base no longer count. A
//! change is enforced as fast as the patch is built (milliseconds for the
//! size of a feed update), not as fast as millions of rows are reloaded;
//! the base is rebuilt in full only when the org tree changes, the patch
//! grows large, or it is old (a bound on anything the patch could miss).
//! [`watch`] polls the store and patches within its interval of a change.
//!
//! Which indicators protect which org: an org's own, its ancestors' (the
//! central SOC's and its supervisor's intel protects everyone below), and
//! those visible to it by TLP (CLEAR/GREEN from anyone, AMBER shared with
//! it). An alert shows an indicator's sources, tags and relations only
//! where the indicator is visible to the alerted org; otherwise just that
//! an indicator of that TLP matched.

use crate::{Engine, Finding};
use arc_swap::ArcSwap;
use mimamori_event::Event;
use mimamori_intel::{IndicatorIndex, IndicatorKind, Tlp};
use mimamori_store::{ActiveIndicator, AlertKind, Severity, Store};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One indicator row that shares a value with others.
#[derive(Debug, Clone)]
struct Owner {
    row_id: String,
    owner_org_id: String,
    owner_path: String,
    tlp: Tlp,
    shared_with: Vec<String>,
    confidence: u8,
    attack: Vec<String>,
    related: Vec<String>,
    tags: Vec<String>,
    sources: Vec<String>,
    /// When it stops matching (ms since the epoch), if it expires.
    valid_until: Option<i64>,
}

impl Owner {
    fn active_at(&self, now_ms: i64) -> bool {
        self.valid_until.is_none_or(|v| v > now_ms)
    }

    /// May this indicator be used on `org`'s telemetry?
    fn protects(&self, org_id: &str, org_path: &str) -> bool {
        mimamori_store::protects(
            self.tlp,
            &self.owner_path,
            &self.shared_with,
            org_id,
            org_path,
        )
    }

    /// May `org` see this indicator's details?
    fn visible_to(&self, org_id: &str) -> bool {
        self.tlp <= Tlp::Green
            || self.owner_org_id == org_id
            || (self.tlp <= Tlp::AmberStrict && self.shared_with.iter().any(|o| o == org_id))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    kind: IndicatorKind,
    value: String,
    owners: Vec<Owner>,
}

/// An immutable, matchable view of the active indicators.
#[derive(Debug, Default)]
pub struct IntelSnapshot {
    index: IndicatorIndex,
    entries: Vec<Entry>,
    org_paths: HashMap<String, String>,
    /// The store's state this snapshot was built from.
    pub version: SnapshotVersion,
}

/// `(count, newest change)` of the indicators, the org tree and the
/// sharing groups: a snapshot is patched when only indicators changed, and
/// rebuilt when the tree or a group changed (a new org must be protected
/// by its ancestors' indicators at once, a new group member by what was
/// shared with the group).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotVersion {
    pub indicators: (i64, i64),
    pub orgs: (i64, i64),
    pub groups: (i64, i64),
}

impl SnapshotVersion {
    pub async fn of(store: &Store) -> Result<SnapshotVersion, mimamori_store::StoreError> {
        Ok(SnapshotVersion {
            indicators: store.intel_version().await?,
            orgs: store.org_version().await?,
            groups: store.sharing_version().await?,
        })
    }
}

impl IntelSnapshot {
    /// Builds a snapshot from active indicators and the org tree's paths.
    pub fn build(
        indicators: Vec<ActiveIndicator>,
        org_paths: HashMap<String, String>,
        version: SnapshotVersion,
    ) -> IntelSnapshot {
        // One entry per (kind, value): the index keeps one id per value, and
        // several orgs may own the same indicator with different sharing.
        let mut slots: HashMap<(IndicatorKind, String), usize> = HashMap::new();
        let mut entries: Vec<Entry> = vec![];
        for a in indicators {
            let i = a.indicator;
            let owner = Owner {
                row_id: a.id,
                owner_org_id: a.owner_org_id,
                owner_path: a.owner_path,
                tlp: i.tlp,
                shared_with: a.shared_with,
                confidence: i.confidence,
                attack: i.attack_techniques,
                related: i.related,
                tags: i.tags,
                sources: i.sources,
                valid_until: i
                    .valid_until
                    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
            };
            // A non-exact domain covers more than an exact one of the same
            // name: one entry, the wider kind.
            let key_kind = match i.kind {
                IndicatorKind::Domain { .. } => IndicatorKind::Domain { exact: false },
                k => k,
            };
            match slots.get(&(key_kind, i.value.clone())) {
                Some(&s) => {
                    let e = &mut entries[s];
                    if let (
                        IndicatorKind::Domain { exact: a },
                        IndicatorKind::Domain { exact: b },
                    ) = (e.kind, i.kind)
                    {
                        e.kind = IndicatorKind::Domain { exact: a && b };
                    }
                    e.owners.push(owner);
                }
                None => {
                    slots.insert((key_kind, i.value.clone()), entries.len());
                    entries.push(Entry {
                        kind: i.kind,
                        value: i.value,
                        owners: vec![owner],
                    });
                }
            }
        }
        let index = IndicatorIndex::build(
            entries
                .iter()
                .enumerate()
                .map(|(n, e)| (n as u32, e.kind, e.value.as_str())),
        );
        IntelSnapshot {
            index,
            entries,
            org_paths,
            version,
        }
    }

    /// Loads the active indicators and org paths from the store.
    pub async fn load(store: &Store) -> Result<IntelSnapshot, mimamori_store::StoreError> {
        let version = SnapshotVersion::of(store).await?;
        let indicators = store.intel_active().await?;
        let org_paths = org_paths(store).await?;
        tokio::task::spawn_blocking(move || IntelSnapshot::build(indicators, org_paths, version))
            .await
            .map_err(build_failed)
    }

    /// Distinct indicator values held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The findings for one event.
    pub fn evaluate(&self, event: &Event, out: &mut Vec<Finding>) {
        evaluate_layers(self, None, event, out);
    }

    /// The indicator entries one event's normalized fields hit, as
    /// `(entry, field, observed value)`, each entry once.
    fn hits<'e>(&self, event: &'e Event) -> Vec<(u32, &'static str, &'e str)> {
        let mut hits: Vec<(u32, &'static str, &str)> = vec![];
        if self.entries.is_empty() {
            return hits;
        }
        let f = &event.body.fields;
        for (field, v) in [("dns_query", &f.dns_query), ("http_host", &f.http_host)] {
            if let Some(v) = v {
                if let Some(id) = self.index.match_domain(v) {
                    hits.push((id, field, v.as_str()));
                }
            }
        }
        if let Some(url) = &f.url {
            if let Some(id) = self.index.match_url(url) {
                hits.push((id, "url", url.as_str()));
            }
            if let Some(host) = url_host(url) {
                if let Some(id) = self.index.match_domain(host) {
                    hits.push((id, "url", host));
                }
                // An address as the URL's host is matched as an address.
                if let Ok(ip) = host.parse::<IpAddr>() {
                    if let Some(id) = self.index.match_ip(ip) {
                        hits.push((id, "url", host));
                    }
                }
            }
        }
        for (field, v) in [("src_ip", &f.src_ip), ("dst_ip", &f.dst_ip)] {
            if let Some(ip) = v.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
                if let Some(id) = self.index.match_ip(ip) {
                    hits.push((id, field, v.as_deref().unwrap_or_default()));
                }
            }
        }
        for a in &f.dns_answers {
            if let Ok(ip) = a.parse::<IpAddr>() {
                if let Some(id) = self.index.match_ip(ip) {
                    hits.push((id, "dns_answers", a.as_str()));
                }
            } else if let Some(id) = self.index.match_domain(a) {
                hits.push((id, "dns_answers", a.as_str()));
            }
        }
        for (_, h) in &f.file_hashes {
            if let Some(id) = self.index.match_hash(h) {
                hits.push((id, "file_hashes", h.as_str()));
            }
        }
        if let Some(name) = &f.file_name {
            if let Some(id) = self.index.match_file_name(name) {
                hits.push((id, "file_name", name.as_str()));
            }
        }
        hits.sort_by_key(|h| h.0);
        hits.dedup_by_key(|h| h.0);
        hits
    }
}

/// The findings for one event from a base snapshot and an optional patch:
/// an owner row of the base that the patch holds a newer version of (or
/// that changed to inactive) is superseded; the same indicator value in
/// both layers is one finding with the owners of both.
fn evaluate_layers(
    base: &IntelSnapshot,
    patch: Option<&Patch>,
    event: &Event,
    out: &mut Vec<Finding>,
) {
    let base_hits = base.hits(event);
    let patch_hits = patch.map(|p| p.snapshot.hits(event)).unwrap_or_default();
    if base_hits.is_empty() && patch_hits.is_empty() {
        return;
    }
    let Some(org_path) = base.org_paths.get(&event.org_id) else {
        return;
    };
    let now = mimamori_core::now_millis();
    let mut found: Vec<(&Entry, Vec<&Owner>, &'static str, &str)> = vec![];
    let layers = std::iter::once((base, true, base_hits))
        .chain(patch.map(|p| (&p.snapshot, false, patch_hits)));
    for (snapshot, is_base, hits) in layers {
        for (id, field, observed) in hits {
            let Some(entry) = snapshot.entries.get(id as usize) else {
                continue;
            };
            let owners = entry.owners.iter().filter(|o| {
                !(is_base && patch.is_some_and(|p| p.superseded.contains(o.row_id.as_str())))
                    && o.active_at(now)
                    && o.protects(&event.org_id, org_path)
            });
            match found
                .iter_mut()
                .find(|f| f.0.value == entry.value && same_kind(f.0.kind, entry.kind))
            {
                Some(f) => f.1.extend(owners),
                None => found.push((entry, owners.collect(), field, observed)),
            }
        }
    }
    for (entry, owners, field, observed) in found {
        if !owners.is_empty() {
            out.push(finding(entry, &owners, &event.org_id, field, observed));
        }
    }
}

/// A build that panicked: reported as an error so that the caller keeps
/// the view it has (and the watcher retries) rather than matching nothing.
fn build_failed(e: tokio::task::JoinError) -> mimamori_store::StoreError {
    mimamori_store::StoreError::Corrupt(format!("building the indicator matcher failed: {e}"))
}

/// Kinds that share one matcher entry (an exact and a non-exact domain).
fn same_kind(a: IndicatorKind, b: IndicatorKind) -> bool {
    match (a, b) {
        (IndicatorKind::Domain { .. }, IndicatorKind::Domain { .. }) => true,
        (a, b) => a == b,
    }
}

fn finding(entry: &Entry, owners: &[&Owner], org_id: &str, field: &str, observed: &str) -> Finding {
    let confidence = owners.iter().map(|o| o.confidence).max().unwrap_or(0);
    let tlp = owners.iter().map(|o| o.tlp).min().unwrap_or(Tlp::Red);
    let visible: Vec<&&Owner> = owners.iter().filter(|o| o.visible_to(org_id)).collect();
    let mut attack: Vec<String> = vec![];
    let mut related: Vec<String> = vec![];
    let mut tags: Vec<String> = vec![];
    let mut sources: Vec<String> = vec![];
    for o in &visible {
        for (into, from) in [
            (&mut attack, &o.attack),
            (&mut related, &o.related),
            (&mut tags, &o.tags),
            (&mut sources, &o.sources),
        ] {
            for v in from {
                if !into.contains(v) {
                    into.push(v.clone());
                }
            }
        }
    }
    let kind = entry.kind.name();
    let key = match entry.kind {
        IndicatorKind::Domain { .. } => "domain",
        k => k.name(),
    };
    let rule_id = format!("{key}:{}", entry.value);
    Finding {
        kind: AlertKind::Indicator,
        title: format!("Threat-intel match: {kind} {}", entry.value),
        severity: Severity::from_confidence(confidence),
        entity: entry.value.clone(),
        attack: attack.clone(),
        context: json!({
            "indicator": {"kind": kind, "value": entry.value, "tlp": tlp, "confidence": confidence,
                "sources": sources, "tags": tags, "related": related},
            "observed": {"field": field, "value": observed},
            // Details of indicators the org may not see are withheld.
            "withheld_owners": owners.len() - visible.len(),
        }),
        campaign_key: Some(format!("indicator:{rule_id}")),
        indicator_ids: owners.iter().map(|o| o.row_id.clone()).collect(),
        rule_id,
    }
}

/// The host of an `http(s)://host[:port]/…` URL, without allocating.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split_once(']').map(|(h, _)| &h[1..])?
    } else {
        host.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

async fn org_paths(store: &Store) -> Result<HashMap<String, String>, mimamori_store::StoreError> {
    let Some(root) = store.root_org().await? else {
        return Ok(HashMap::new());
    };
    let orgs = store
        .org_all(&mimamori_core::Scope::Subtree(root.path.clone()))
        .await?;
    Ok(orgs
        .into_iter()
        .map(|o| (o.id.to_string(), o.path.as_str().to_string()))
        .collect())
}

/// The rows changed since a base snapshot was built.
#[derive(Debug)]
struct Patch {
    snapshot: IntelSnapshot,
    /// The changed rows that can match, by id: later changes are folded in
    /// here and the snapshot rebuilt from them.
    rows: HashMap<String, ActiveIndicator>,
    /// Every row changed since the base, active or not: their versions in
    /// the base no longer count.
    superseded: HashSet<String>,
}

/// What the matcher serves: a base snapshot and a patch (see the module
/// documentation).
#[derive(Debug, Default)]
pub struct IntelView {
    base: Arc<IntelSnapshot>,
    patch: Option<Patch>,
    /// The store's state this view reflects.
    pub version: SnapshotVersion,
    /// When the base was built (ms since the epoch), for the age bound.
    base_built_ms: i64,
}

impl IntelView {
    fn full(base: IntelSnapshot) -> IntelView {
        IntelView {
            version: base.version,
            base: Arc::new(base),
            patch: None,
            base_built_ms: mimamori_core::now_millis(),
        }
    }

    /// The findings for one event.
    pub fn evaluate(&self, event: &Event, out: &mut Vec<Finding>) {
        evaluate_layers(&self.base, self.patch.as_ref(), event, out);
    }

    /// Distinct indicator values held (a value in both the base and the
    /// patch counts twice).
    pub fn len(&self) -> usize {
        self.base.len() + self.patch.as_ref().map_or(0, |p| p.snapshot.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows changed since the base was built.
    pub fn patch_rows(&self) -> usize {
        self.patch.as_ref().map_or(0, |p| p.superseded.len())
    }
}

/// When a patch is no longer worth it: past this many changed rows the
/// base is rebuilt instead, inline (a bulk import). Reading and indexing
/// this many rows takes well under a second, which is what makes a big
/// feed's change still a patch.
pub const PATCH_MAX_ROWS: usize = 200_000;
/// Past this many patched rows, or with a base older than
/// [`BASE_MAX_AGE`], a new base is built in the background while patches
/// keep applying: every change re-indexes the whole patch, so the patch is
/// kept small.
pub const REBASE_AT_ROWS: usize = 20_000;
pub const BASE_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// The current view, shared by the detection engine and its reloader.
#[derive(Clone, Default)]
pub struct IntelMatcher {
    current: Arc<ArcSwap<IntelView>>,
    /// One reload at a time (the watcher and the intel hub both reload).
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// A background rebuild of the base is under way.
    rebasing: Arc<std::sync::atomic::AtomicBool>,
}

impl IntelMatcher {
    pub fn new(snapshot: IntelSnapshot) -> Self {
        IntelMatcher {
            current: Arc::new(ArcSwap::from_pointee(IntelView::full(snapshot))),
            reloading: Default::default(),
            rebasing: Default::default(),
        }
    }

    /// The view served now.
    pub fn view(&self) -> Arc<IntelView> {
        self.current.load_full()
    }

    /// The org tree's paths as of the current view.
    pub fn snapshot_org_paths(&self) -> HashMap<String, String> {
        self.current.load().base.org_paths.clone()
    }

    /// Serves `snapshot` from now on, with no patch.
    pub fn replace(&self, snapshot: IntelSnapshot) {
        self.current.store(Arc::new(IntelView::full(snapshot)));
    }

    /// The detection engine over this matcher's current view.
    pub fn engine(&self) -> IndicatorEngine {
        IndicatorEngine {
            matcher: self.clone(),
        }
    }

    /// Brings the view up to the store's state when it changed: a patch of
    /// the changed rows when that suffices, otherwise a full reload.
    /// Returns whether the view changed.
    pub async fn reload_if_changed(
        &self,
        store: &Store,
    ) -> Result<bool, mimamori_store::StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let version = SnapshotVersion::of(store).await?;
        let current = self.current.load_full();
        if version == current.version {
            return Ok(false);
        }
        let started = Instant::now();
        if let Some(view) = patched(store, &current, version).await? {
            let rows = view.patch_rows();
            let old =
                mimamori_core::now_millis() - view.base_built_ms >= BASE_MAX_AGE.as_millis() as i64;
            self.current.store(Arc::new(view));
            tracing::debug!(
                changed_rows = rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "indicator matcher patched"
            );
            if rows > REBASE_AT_ROWS || old {
                self.rebase_in_background(store.clone());
            }
            return Ok(true);
        }
        let snap = IntelSnapshot::load(store).await?;
        let n = snap.len();
        self.replace(snap);
        tracing::info!(
            indicators = n,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "indicator matcher reloaded"
        );
        Ok(true)
    }

    /// Builds a new base from the store without holding up reloads, then
    /// swaps it in with the changes made meanwhile patched onto it (never
    /// serving a view older than the one it replaces).
    fn rebase_in_background(&self, store: Store) {
        use std::sync::atomic::Ordering;
        if self.rebasing.swap(true, Ordering::SeqCst) {
            return;
        }
        let matcher = self.clone();
        tokio::spawn(async move {
            // Patches onto the new base can still be big (a bulk change
            // while it was built): then build once more.
            for attempt in 0..3 {
                let started = Instant::now();
                let result = async {
                    let fresh = IntelView::full(IntelSnapshot::load(&store).await?);
                    let _one_at_a_time = matcher.reloading.lock().await;
                    let version = SnapshotVersion::of(&store).await?;
                    let view = if version == fresh.version {
                        Some(fresh)
                    } else {
                        patched(&store, &fresh, version).await?
                    };
                    // None: too much changed meanwhile; the next reload
                    // rebuilds in full.
                    let rows = view.as_ref().map(IntelView::patch_rows);
                    if let Some(view) = view {
                        matcher.current.store(Arc::new(view));
                    }
                    Ok::<Option<usize>, mimamori_store::StoreError>(rows)
                }
                .await;
                match result {
                    Ok(rows) => {
                        tracing::info!(
                            installed = rows.is_some(),
                            patch_rows = rows.unwrap_or(0),
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "indicator matcher base rebuilt in the background"
                        );
                        if rows.is_none_or(|r| r <= REBASE_AT_ROWS) {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::error!(attempt, error = %e, "cannot rebuild the indicator base; patches go on");
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            matcher.rebasing.store(false, Ordering::SeqCst);
        });
    }
}

/// `current` brought to `version` by a patch of the rows changed since it,
/// or `None` when a patch cannot do it: the org tree or a sharing group
/// changed, rows disappeared, or more than [`PATCH_MAX_ROWS`] changed.
async fn patched(
    store: &Store,
    current: &IntelView,
    version: SnapshotVersion,
) -> Result<Option<IntelView>, mimamori_store::StoreError> {
    let patchable = version.orgs == current.version.orgs
        && version.groups == current.version.groups
        // Rows are deleted only with their org, but be sure.
        && version.indicators.0 >= current.base.version.indicators.0;
    if !patchable {
        return Ok(None);
    }
    // Stamps strictly increase in commit order (store migration 0007):
    // what the view has seen ends at its version's newest stamp.
    let since = current.version.indicators.1 + 1;
    let Some(changes) = store.intel_changed_since(since, PATCH_MAX_ROWS).await? else {
        return Ok(None);
    };
    let (mut rows, mut superseded) = match &current.patch {
        Some(p) => (p.rows.clone(), p.superseded.clone()),
        None => Default::default(),
    };
    for id in changes.changed_ids {
        rows.remove(&id);
        superseded.insert(id);
    }
    for a in changes.active {
        rows.insert(a.id.clone(), a);
    }
    if superseded.len() > PATCH_MAX_ROWS {
        return Ok(None);
    }
    let org_paths = current.base.org_paths.clone();
    let patch = tokio::task::spawn_blocking(move || Patch {
        snapshot: IntelSnapshot::build(rows.values().cloned().collect(), org_paths, version),
        rows,
        superseded,
    })
    .await
    .map_err(build_failed)?;
    Ok(Some(IntelView {
        base: current.base.clone(),
        patch: Some(patch),
        version,
        base_built_ms: current.base_built_ms,
    }))
}

/// Polls the store every `every` and reloads the matcher on change, until
/// the returned task is aborted.
pub fn watch(matcher: IntelMatcher, store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = matcher.reload_if_changed(&store).await {
                tracing::error!(error = %e, "cannot reload indicators; keeping the current set");
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The indicator-matching engine.
pub struct IndicatorEngine {
    matcher: IntelMatcher,
}

impl Engine for IndicatorEngine {
    fn name(&self) -> &str {
        "indicators"
    }

    fn evaluate(&mut self, event: &Event, out: &mut Vec<Finding>) {
        self.matcher.current.load().evaluate(event, out);
    }
}

/// An engine over a fixed snapshot (retro-hunting with new indicators).
pub struct SnapshotEngine(pub Arc<IntelSnapshot>);

impl Engine for SnapshotEngine {
    fn name(&self) -> &str {
        "indicators"
    }

    fn evaluate(&mut self, event: &Event, out: &mut Vec<Finding>) {
        self.0.evaluate(event, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("http://a.example/x"), Some("a.example"));
        assert_eq!(url_host("https://u:p@b.example:8443/?q"), Some("b.example"));
        assert_eq!(url_host("http://[2001:db8::1]:80/"), Some("2001:db8::1"));
        assert_eq!(url_host("nope"), None);
        assert_eq!(url_host("http:///x"), None);
    }
}
