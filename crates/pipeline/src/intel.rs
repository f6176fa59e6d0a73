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

/// An indicator's context for alerts: the same few lists recur across
/// millions of rows (one feed's name, its tags), so each distinct set is
/// kept once and shared.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Details {
    attack: Vec<String>,
    related: Vec<String>,
    tags: Vec<String>,
    sources: Vec<String>,
}

/// One indicator row that shares a value with others. Who it protects is
/// not stored here but resolved against the view's [`Scoping`] (the
/// owner's current path, the row's current shares), so that a change of
/// the org tree or of a sharing group re-scopes a view without rebuilding
/// its index.
#[derive(Debug, Clone)]
struct Owner {
    row_id: Box<str>,
    /// Interned: one allocation per org, however many rows it owns.
    owner_org_id: Arc<str>,
    tlp: Tlp,
    confidence: u8,
    /// A domain row for that name alone, not its sub-domains.
    exact: bool,
    /// When it stops matching (ms since the epoch), if it expires.
    valid_until: Option<i64>,
    details: Arc<Details>,
}

impl Owner {
    fn active_at(&self, now_ms: i64) -> bool {
        self.valid_until.is_none_or(|v| v > now_ms)
    }
}

/// Who an indicator row reaches: the one statement of the rule is
/// [`mimamori_store::protects`]; this is the same rule over a view's
/// current org paths and shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach<'a> {
    /// CLEAR/GREEN, or the central SOC's own: every org.
    Everyone,
    /// The owner org's sub-tree (the owner's id).
    Subtree(&'a str),
    /// The orgs an AMBER / AMBER+STRICT row is shared with (by id),
    /// besides its owner's sub-tree.
    Shared(&'a [String]),
}

/// The org tree's paths and the rows' shares a view is matched with:
/// swapped on its own when the tree or a sharing group changes.
#[derive(Debug, Default)]
pub struct Scoping {
    org_paths: Arc<HashMap<String, String>>,
    root_id: Option<String>,
    /// Shares of every row, by row id (only rows that have any).
    shares: Arc<HashMap<String, Vec<String>>>,
    /// Rows changed since `shares` was read: their current shares (empty:
    /// none any more), consulted first.
    patched_shares: HashMap<String, Vec<String>>,
}

impl Scoping {
    /// Scoping from the org paths (org id → path) and the shares by row.
    pub fn new(
        org_paths: HashMap<String, String>,
        shares: HashMap<String, Vec<String>>,
    ) -> Scoping {
        // The root is the one org whose path has a single segment.
        let root_id = org_paths
            .iter()
            .find(|(_, p)| p.trim_matches('/').split('/').count() == 1)
            .map(|(id, _)| id.clone());
        Scoping {
            org_paths: Arc::new(org_paths),
            root_id,
            shares: Arc::new(shares.into_iter().filter(|(_, v)| !v.is_empty()).collect()),
            patched_shares: HashMap::new(),
        }
    }

    fn shares_of(&self, row_id: &str) -> &[String] {
        self.patched_shares
            .get(row_id)
            .or_else(|| self.shares.get(row_id))
            .map_or(&[], Vec::as_slice)
    }

    /// May this row be used on `org`'s telemetry and DNS?
    fn protects(&self, o: &Owner, org_id: &str, org_path: &str) -> bool {
        let owner_path = self
            .org_paths
            .get(&*o.owner_org_id)
            .map_or("\u{0}", String::as_str);
        mimamori_store::protects(
            o.tlp,
            owner_path,
            self.shares_of(&o.row_id),
            org_id,
            org_path,
        )
    }

    /// May `org` see this row's details?
    fn visible_to(&self, o: &Owner, org_id: &str) -> bool {
        o.tlp <= Tlp::Green
            || &*o.owner_org_id == org_id
            || (o.tlp <= Tlp::AmberStrict && self.shares_of(&o.row_id).iter().any(|s| s == org_id))
    }

    /// Whom `o` reaches, given to `f` (a row may reach its owner's
    /// sub-tree and some orgs it is shared with).
    fn reach<'s>(&'s self, o: &'s Owner, mut f: impl FnMut(Reach<'s>)) {
        if o.tlp <= Tlp::Green || self.root_id.as_deref() == Some(&*o.owner_org_id) {
            return f(Reach::Everyone);
        }
        f(Reach::Subtree(&o.owner_org_id));
        let shares = self.shares_of(&o.row_id);
        if o.tlp <= Tlp::AmberStrict && !shares.is_empty() {
            f(Reach::Shared(shares));
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    kind: IndicatorKind,
    value: Box<str>,
    owners: Vec<Owner>,
}

/// One intel generation's indicators and their index: immutable, built
/// once, shared (`Arc`) by every view of it, the detection engine and the
/// DNS policy alike.
#[derive(Debug, Default)]
pub struct Indicators {
    index: IndicatorIndex,
    entries: Vec<Entry>,
}

/// Builds [`Indicators`] one row at a time (see [`Store::intel_active_each`]).
// foldhash, not std's SipHash: a million keys of our own store's rows,
// hashed once each at load (SipHash was a few % of a 1M load).
#[derive(Default)]
struct Builder {
    // One entry per (kind, value): the index keeps one id per value, and
    // several orgs may own the same indicator with different sharing.
    slots: HashMap<(IndicatorKind, Box<str>), u32, foldhash::fast::RandomState>,
    entries: Vec<Entry>,
    orgs: HashSet<Arc<str>, foldhash::fast::RandomState>,
    details: HashSet<Arc<Details>, foldhash::fast::RandomState>,
    shares: HashMap<String, Vec<String>>,
}

impl Builder {
    /// For about `rows` rows: sized once, not grown by doubling (each
    /// doubling copies every entry and faults in fresh pages).
    fn with_capacity(rows: usize) -> Builder {
        Builder {
            slots: HashMap::with_capacity_and_hasher(rows, Default::default()),
            entries: Vec::with_capacity(rows),
            ..Default::default()
        }
    }

    fn add(&mut self, a: ActiveIndicator) {
        let i = a.indicator;
        let owner_org_id = intern(&mut self.orgs, a.owner_org_id.as_str(), |o| Arc::from(o));
        let details = Details {
            attack: i.attack_techniques,
            related: i.related,
            tags: i.tags,
            sources: i.sources,
        };
        let details = intern(&mut self.details, &details, |_| Arc::new(details.clone()));
        if !a.shared_with.is_empty() {
            self.shares.insert(a.id.clone(), a.shared_with);
        }
        let owner = Owner {
            row_id: a.id.into_boxed_str(),
            owner_org_id,
            tlp: i.tlp,
            confidence: i.confidence,
            exact: matches!(i.kind, IndicatorKind::Domain { exact: true }),
            valid_until: i
                .valid_until
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64),
            details,
        };
        // A non-exact domain covers more than an exact one of the same
        // name: one entry, the wider kind.
        let key_kind = match i.kind {
            IndicatorKind::Domain { .. } => IndicatorKind::Domain { exact: false },
            k => k,
        };
        use std::collections::hash_map::Entry as Slot;
        match self.slots.entry((key_kind, i.value.into_boxed_str())) {
            Slot::Occupied(s) => {
                let e = &mut self.entries[*s.get() as usize];
                if let (IndicatorKind::Domain { exact: a }, IndicatorKind::Domain { exact: b }) =
                    (e.kind, i.kind)
                {
                    e.kind = IndicatorKind::Domain { exact: a && b };
                }
                e.owners.push(owner);
            }
            Slot::Vacant(s) => {
                let Ok(slot) = u32::try_from(self.entries.len()) else {
                    return;
                };
                let value = s.key().1.clone();
                s.insert(slot);
                self.entries.push(Entry {
                    kind: i.kind,
                    value,
                    owners: vec![owner],
                });
            }
        }
    }

    /// The indicators, and the shares of their rows.
    fn finish(self) -> (Indicators, HashMap<String, Vec<String>>) {
        drop(self.slots);
        let mut entries = self.entries;
        entries.shrink_to_fit();
        for e in &mut entries {
            e.owners.shrink_to_fit();
        }
        let index = IndicatorIndex::build(
            entries
                .iter()
                .enumerate()
                .map(|(n, e)| (n as u32, e.kind, &*e.value)),
        );
        (Indicators { index, entries }, self.shares)
    }
}

/// The one shared copy of `v` in `set`, made with `make` the first time.
fn intern<T: ?Sized + Eq + std::hash::Hash>(
    set: &mut HashSet<Arc<T>, foldhash::fast::RandomState>,
    v: &T,
    make: impl FnOnce(&T) -> Arc<T>,
) -> Arc<T> {
    if let Some(a) = set.get(v) {
        return a.clone();
    }
    let a = make(v);
    set.insert(a.clone());
    a
}

impl Indicators {
    /// Distinct indicator values held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The indicator entries one event's normalized fields hit, as
    /// `(entry, field, observed value, whether the hit is the entry's own
    /// value rather than a sub-domain of it)`, each entry once.
    fn hits<'e>(&self, event: &'e Event) -> Vec<(u32, &'static str, &'e str, bool)> {
        let mut hits: Vec<(u32, &'static str, &str, bool)> = vec![];
        if self.entries.is_empty() {
            return hits;
        }
        let domain_hit = |id: u32, name: &str| {
            let own = self.entries.get(id as usize).is_some_and(|e| {
                e.value
                    .eq_ignore_ascii_case(name.strip_suffix('.').unwrap_or(name))
            });
            (id, own)
        };
        let f = &event.body.fields;
        for (field, v) in [("dns_query", &f.dns_query), ("http_host", &f.http_host)] {
            if let Some(v) = v {
                if let Some(id) = self.index.match_domain(v) {
                    let (id, own) = domain_hit(id, v);
                    hits.push((id, field, v.as_str(), own));
                }
            }
        }
        if let Some(url) = &f.url {
            if let Some(id) = self.index.match_url(url) {
                hits.push((id, "url", url.as_str(), true));
            }
            if let Some(host) = url_host(url) {
                if let Some(id) = self.index.match_domain(host) {
                    let (id, own) = domain_hit(id, host);
                    hits.push((id, "url", host, own));
                }
                // An address as the URL's host is matched as an address.
                if let Ok(ip) = host.parse::<IpAddr>() {
                    if let Some(id) = self.index.match_ip(ip) {
                        hits.push((id, "url", host, true));
                    }
                }
            }
        }
        for (field, v) in [("src_ip", &f.src_ip), ("dst_ip", &f.dst_ip)] {
            if let Some(ip) = v.as_deref().and_then(|s| s.parse::<IpAddr>().ok()) {
                if let Some(id) = self.index.match_ip(ip) {
                    hits.push((id, field, v.as_deref().unwrap_or_default(), true));
                }
            }
        }
        for a in &f.dns_answers {
            if let Ok(ip) = a.parse::<IpAddr>() {
                if let Some(id) = self.index.match_ip(ip) {
                    hits.push((id, "dns_answers", a.as_str(), true));
                }
            } else if let Some(id) = self.index.match_domain(a) {
                let (id, own) = domain_hit(id, a);
                hits.push((id, "dns_answers", a.as_str(), own));
            }
        }
        for (_, h) in &f.file_hashes {
            if let Some(id) = self.index.match_hash(h) {
                hits.push((id, "file_hashes", h.as_str(), true));
            }
        }
        if let Some(name) = &f.file_name {
            if let Some(id) = self.index.match_file_name(name) {
                hits.push((id, "file_name", name.as_str(), true));
            }
        }
        hits.sort_by_key(|h| (h.0, !h.3));
        hits.dedup_by_key(|h| h.0);
        hits
    }

    /// The entry holding exactly this domain, if any.
    fn domain_entry(&self, name: &str) -> Option<&Entry> {
        let id = self.index.match_domain(name)?;
        self.entries
            .get(id as usize)
            .filter(|e| matches!(e.kind, IndicatorKind::Domain { .. }) && &*e.value == name)
    }
}

/// An immutable, matchable view of the active indicators: one intel
/// generation and how it is scoped.
#[derive(Debug, Default, Clone)]
pub struct IntelSnapshot {
    indicators: Arc<Indicators>,
    scoping: Arc<Scoping>,
    /// The store's state this snapshot was built from.
    pub version: SnapshotVersion,
}

/// `(count, newest change)` of the indicators, the org tree and the
/// sharing groups: a view is patched when indicators changed, and
/// re-scoped (new org paths and shares, the same index) when the tree or a
/// group changed.
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
    /// Builds a snapshot from active indicators and the org tree's paths
    /// (the rows' shares are theirs).
    pub fn build(
        indicators: Vec<ActiveIndicator>,
        org_paths: HashMap<String, String>,
        version: SnapshotVersion,
    ) -> IntelSnapshot {
        let mut b = Builder::default();
        for a in indicators {
            b.add(a);
        }
        let (indicators, shares) = b.finish();
        IntelSnapshot {
            indicators: Arc::new(indicators),
            scoping: Arc::new(Scoping::new(org_paths, shares)),
            version,
        }
    }

    /// Loads the active indicators and org paths from the store, streaming
    /// the rows into the index (one row in memory at a time besides what is
    /// built).
    pub async fn load(store: &Store) -> Result<IntelSnapshot, mimamori_store::StoreError> {
        let version = SnapshotVersion::of(store).await?;
        let org_paths = org_paths(store).await?;
        // Every row, active or not: an upper bound.
        let rows = usize::try_from(version.indicators.0).unwrap_or(0);
        let mut b = Builder::with_capacity(rows);
        store.intel_active_each(|a| b.add(a)).await?;
        tokio::task::spawn_blocking(move || {
            let (indicators, shares) = b.finish();
            IntelSnapshot {
                indicators: Arc::new(indicators),
                scoping: Arc::new(Scoping::new(org_paths, shares)),
                version,
            }
        })
        .await
        .map_err(build_failed)
    }

    /// Distinct indicator values held.
    pub fn len(&self) -> usize {
        self.indicators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indicators.is_empty()
    }

    /// The findings for one event.
    pub fn evaluate(&self, event: &Event, out: &mut Vec<Finding>) {
        evaluate_layers(&self.indicators, None, &self.scoping, event, out);
    }
}

/// The findings for one event from a base and an optional patch: an
/// owner row of the base that the patch holds a newer version of (or that
/// changed to inactive) is superseded; the same indicator value in both
/// layers is one finding with the owners of both. A row for a domain
/// alone (exact) counts only when the name itself was seen.
fn evaluate_layers(
    base: &Indicators,
    patch: Option<&Patch>,
    scoping: &Scoping,
    event: &Event,
    out: &mut Vec<Finding>,
) {
    let base_hits = base.hits(event);
    let patch_hits = patch.map(|p| p.indicators.hits(event)).unwrap_or_default();
    if base_hits.is_empty() && patch_hits.is_empty() {
        return;
    }
    let Some(org_path) = scoping.org_paths.get(&event.org_id) else {
        return;
    };
    let now = mimamori_core::now_millis();
    let mut found: Vec<(&Entry, Vec<&Owner>, &'static str, &str)> = vec![];
    let layers = std::iter::once((base, true, base_hits))
        .chain(patch.map(|p| (&p.indicators, false, patch_hits)));
    for (indicators, is_base, hits) in layers {
        for (id, field, observed, own) in hits {
            let Some(entry) = indicators.entries.get(id as usize) else {
                continue;
            };
            let owners = entry.owners.iter().filter(|o| {
                !(is_base && patch.is_some_and(|p| p.superseded.contains(&*o.row_id)))
                    && (own || !o.exact)
                    && o.active_at(now)
                    && scoping.protects(o, &event.org_id, org_path)
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
            out.push(finding(
                scoping,
                entry,
                &owners,
                &event.org_id,
                field,
                observed,
            ));
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

fn finding(
    scoping: &Scoping,
    entry: &Entry,
    owners: &[&Owner],
    org_id: &str,
    field: &str,
    observed: &str,
) -> Finding {
    let confidence = owners.iter().map(|o| o.confidence).max().unwrap_or(0);
    let tlp = owners.iter().map(|o| o.tlp).min().unwrap_or(Tlp::Red);
    let visible: Vec<&&Owner> = owners
        .iter()
        .filter(|o| scoping.visible_to(o, org_id))
        .collect();
    let mut attack: Vec<String> = vec![];
    let mut related: Vec<String> = vec![];
    let mut tags: Vec<String> = vec![];
    let mut sources: Vec<String> = vec![];
    for o in &visible {
        let d = &o.details;
        for (into, from) in [
            (&mut attack, &d.attack),
            (&mut related, &d.related),
            (&mut tags, &d.tags),
            (&mut sources, &d.sources),
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
    let value: &str = &entry.value;
    let rule_id = format!("{key}:{value}");
    Finding {
        kind: AlertKind::Indicator,
        title: format!("Threat-intel match: {kind} {value}"),
        severity: Severity::from_confidence(confidence),
        entity: value.to_string(),
        attack: attack.clone(),
        context: json!({
            "indicator": {"kind": kind, "value": value, "tlp": tlp, "confidence": confidence,
                "sources": sources, "tags": tags, "related": related},
            "observed": {"field": field, "value": observed},
            // Details of indicators the org may not see are withheld.
            "withheld_owners": owners.len() - visible.len(),
        }),
        campaign_key: Some(format!("indicator:{rule_id}")),
        indicator_ids: owners.iter().map(|o| o.row_id.to_string()).collect(),
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

/// The rows changed since a base was built.
#[derive(Debug)]
struct Patch {
    indicators: Indicators,
    /// The changed rows that can match, by id: later changes are folded in
    /// here and the patch rebuilt from them.
    rows: HashMap<String, ActiveIndicator>,
    /// Every row changed since the base, active or not: their versions in
    /// the base no longer count.
    superseded: HashSet<String>,
    /// `(kind_key, value)` of every changed row.
    changed_values: HashSet<(String, String)>,
}

/// What the matcher serves: a base, a patch and how both are scoped (see
/// the module documentation).
#[derive(Debug, Clone, Default)]
pub struct IntelView {
    base: Arc<Indicators>,
    patch: Option<Arc<Patch>>,
    scoping: Arc<Scoping>,
    /// The store's state this view reflects.
    pub version: SnapshotVersion,
    /// The store's state the base was built from.
    base_version: SnapshotVersion,
    /// When the base was built (ms since the epoch), for the age bound.
    base_built_ms: i64,
}

impl IntelView {
    fn full(base: IntelSnapshot) -> IntelView {
        IntelView {
            version: base.version,
            base_version: base.version,
            base: base.indicators,
            scoping: base.scoping,
            patch: None,
            base_built_ms: mimamori_core::now_millis(),
        }
    }

    /// The findings for one event.
    pub fn evaluate(&self, event: &Event, out: &mut Vec<Finding>) {
        evaluate_layers(&self.base, self.patch.as_deref(), &self.scoping, event, out);
    }

    /// Distinct indicator values held (a value in both the base and the
    /// patch counts twice).
    pub fn len(&self) -> usize {
        self.base.len() + self.patch.as_ref().map_or(0, |p| p.indicators.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows changed since the base was built.
    pub fn patch_rows(&self) -> usize {
        self.patch.as_ref().map_or(0, |p| p.superseded.len())
    }

    /// Whether both views are over the same base (one intel generation).
    pub fn same_base(&self, other: &IntelView) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// Whether both views are scoped alike (org tree and shares).
    pub fn same_scoping(&self, other: &IntelView) -> bool {
        Arc::ptr_eq(&self.scoping, &other.scoping)
    }

    /// Whether both views give the rows of their base the same shares as
    /// read with the base (the org tree may differ). Rows changed since
    /// the base carry their current shares in the patch, and a follower
    /// deciding the changed values again from the view sees them.
    pub fn same_shares(&self, other: &IntelView) -> bool {
        let (a, b) = (&self.scoping, &other.scoping);
        Arc::ptr_eq(&a.shares, &b.shares) || a.shares == b.shares
    }

    /// The owners of `entry` (in the base when `in_base`, else in the
    /// patch) that are in force at `now_ms`: not superseded by the patch,
    /// not expired.
    fn in_force<'v>(
        &'v self,
        entry: &'v Entry,
        in_base: bool,
        now_ms: i64,
    ) -> impl Iterator<Item = &'v Owner> {
        let superseded = self
            .patch
            .as_ref()
            .filter(|_| in_base)
            .map(|p| &p.superseded);
        entry.owners.iter().filter(move |o| {
            !superseded.is_some_and(|s| s.contains(&*o.row_id)) && o.active_at(now_ms)
        })
    }

    /// The base, then the patch if any: `(indicators, in_base)`.
    fn layers(&self) -> impl Iterator<Item = (&Indicators, bool)> {
        std::iter::once((&*self.base, true))
            .chain(self.patch.as_ref().map(|p| (&p.indicators, false)))
    }

    /// Every domain row in force at `now_ms`, once per whom it reaches:
    /// `f(name, exact, reach)`. What the DNS policy builds its zones from.
    pub fn for_each_domain(&self, now_ms: i64, mut f: impl FnMut(&str, bool, Reach<'_>)) {
        for (indicators, in_base) in self.layers() {
            for e in &indicators.entries {
                if !matches!(e.kind, IndicatorKind::Domain { .. }) {
                    continue;
                }
                for o in self.in_force(e, in_base, now_ms) {
                    self.scoping.reach(o, |r| f(&e.value, o.exact, r));
                }
            }
        }
    }

    /// The domain rows in force for exactly `name` (not its parents), as
    /// [`IntelView::for_each_domain`] gives them.
    pub fn domain_rows(&self, name: &str, now_ms: i64, mut f: impl FnMut(bool, Reach<'_>)) {
        for (indicators, in_base) in self.layers() {
            let Some(e) = indicators.domain_entry(name) else {
                continue;
            };
            for o in self.in_force(e, in_base, now_ms) {
                self.scoping.reach(o, |r| f(o.exact, r));
            }
        }
    }

    /// The domains of every row changed since the base was built.
    pub fn changed_domains(&self) -> Vec<&str> {
        self.patch.as_ref().map_or(vec![], |p| {
            p.changed_values
                .iter()
                .filter(|(k, _)| k == "domain")
                .map(|(_, v)| v.as_str())
                .collect()
        })
    }

    /// The first time a row stops by time alone (its `valid_until`, ms),
    /// after `now_ms`: in the whole view, or (`patch_only`) among the rows
    /// changed since the base, for a follower that already knows the
    /// base's.
    pub fn next_expiry(&self, now_ms: i64, patch_only: bool) -> Option<i64> {
        self.layers()
            .filter(|(_, in_base)| !(patch_only && *in_base))
            .flat_map(|(i, _)| i.entries.iter())
            .flat_map(|e| e.owners.iter())
            .filter_map(|o| o.valid_until)
            .filter(|&v| v > now_ms)
            .min()
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

/// The current view, shared by the detection engine, the DNS policy and
/// their reloader.
#[derive(Clone)]
pub struct IntelMatcher {
    current: Arc<ArcSwap<IntelView>>,
    /// One reload at a time (the watcher and the intel hub both reload).
    reloading: Arc<tokio::sync::Mutex<()>>,
    /// A background rebuild of the base is under way.
    rebasing: Arc<std::sync::atomic::AtomicBool>,
    /// Bumped on every view installed, for followers (the DNS policy).
    installed: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for IntelMatcher {
    fn default() -> Self {
        IntelMatcher::new(IntelSnapshot::default())
    }
}

impl IntelMatcher {
    pub fn new(snapshot: IntelSnapshot) -> Self {
        IntelMatcher {
            current: Arc::new(ArcSwap::from_pointee(IntelView::full(snapshot))),
            reloading: Default::default(),
            rebasing: Default::default(),
            installed: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// The view served now.
    pub fn view(&self) -> Arc<IntelView> {
        self.current.load_full()
    }

    /// Wakes when a new view is installed.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.installed.subscribe()
    }

    fn install(&self, view: IntelView) {
        self.current.store(Arc::new(view));
        self.installed.send_modify(|n| *n += 1);
    }

    /// The org tree's paths as of the current view.
    pub fn snapshot_org_paths(&self) -> HashMap<String, String> {
        (*self.current.load().scoping.org_paths).clone()
    }

    /// Serves `snapshot` from now on, with no patch.
    pub fn replace(&self, snapshot: IntelSnapshot) {
        self.install(IntelView::full(snapshot));
    }

    /// The detection engine over this matcher's current view.
    pub fn engine(&self) -> IndicatorEngine {
        IndicatorEngine {
            matcher: self.clone(),
            refresh: None,
        }
    }

    /// [`IntelMatcher::engine`] that, meeting an event of an org its view
    /// does not know (one created since the last poll), brings the view up
    /// to date from `store` before matching it, waiting on `runtime`. Only
    /// for an engine evaluated outside the runtime's threads (the ingest
    /// consumer's thread), as `serve` runs it.
    pub fn engine_refreshing(
        &self,
        store: Store,
        runtime: tokio::runtime::Handle,
    ) -> IndicatorEngine {
        IndicatorEngine {
            matcher: self.clone(),
            refresh: Some(Refresh {
                store,
                runtime,
                last: None,
            }),
        }
    }

    /// Brings the view up to the store's state when it changed: a patch of
    /// the changed rows and a re-scoping when that suffices, otherwise a
    /// full reload. Returns whether the view changed.
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
            self.install(view);
            tracing::debug!(
                changed_rows = rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "indicator matcher patched"
            );
            if rows > REBASE_AT_ROWS || (old && rows > 0) {
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
                        matcher.install(view);
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

/// `current` brought to `version`: re-scoped when the org tree or a
/// sharing group changed (the tree's paths and every row's shares read
/// again; the index kept), and patched with the rows changed since it; or
/// `None` when a patch cannot do it: rows disappeared, or more than
/// [`PATCH_MAX_ROWS`] changed.
async fn patched(
    store: &Store,
    current: &IntelView,
    version: SnapshotVersion,
) -> Result<Option<IntelView>, mimamori_store::StoreError> {
    // Rows are deleted only with their org: then reload in full.
    if version.indicators.0 < current.base_version.indicators.0 {
        return Ok(None);
    }
    let mut scoping = current.scoping.clone();
    if version.groups != current.version.groups {
        // Group members count as shared-with orgs: every row's shares are
        // read again (the share rows, not the indicators).
        let (org_paths, shares) = (org_paths(store).await?, store.intel_shares().await?);
        scoping = Arc::new(Scoping::new(org_paths, shares));
    } else if version.orgs != current.version.orgs {
        // The tree alone: the paths; shares do not depend on it (an org
        // deleted takes its rows with it, which reloads in full above).
        let mut s = Scoping::new(org_paths(store).await?, HashMap::new());
        s.shares = scoping.shares.clone();
        s.patched_shares = scoping.patched_shares.clone();
        scoping = Arc::new(s);
    }
    if version.indicators == current.version.indicators {
        return Ok(Some(IntelView {
            scoping,
            version,
            ..current.clone()
        }));
    }
    // Stamps strictly increase in commit order (store migration 0007):
    // what the view has seen ends at its version's newest stamp.
    let since = current.version.indicators.1 + 1;
    let Some(changes) = store.intel_changed_since(since, PATCH_MAX_ROWS).await? else {
        return Ok(None);
    };
    let (mut rows, mut superseded, mut changed_values) = match &current.patch {
        Some(p) => (
            p.rows.clone(),
            p.superseded.clone(),
            p.changed_values.clone(),
        ),
        None => Default::default(),
    };
    let mut patched_shares = scoping.patched_shares.clone();
    for id in changes.changed_ids {
        rows.remove(&id);
        patched_shares.insert(id.clone(), vec![]);
        superseded.insert(id);
    }
    changed_values.extend(changes.changed_values);
    for a in changes.active {
        patched_shares.insert(a.id.clone(), a.shared_with.clone());
        rows.insert(a.id.clone(), a);
    }
    if superseded.len() > PATCH_MAX_ROWS {
        return Ok(None);
    }
    let scoping = Arc::new(Scoping {
        org_paths: scoping.org_paths.clone(),
        root_id: scoping.root_id.clone(),
        shares: scoping.shares.clone(),
        patched_shares,
    });
    let patch = tokio::task::spawn_blocking(move || {
        let mut b = Builder::default();
        for a in rows.values() {
            b.add(a.clone());
        }
        Patch {
            indicators: b.finish().0,
            rows,
            superseded,
            changed_values,
        }
    })
    .await
    .map_err(build_failed)?;
    Ok(Some(IntelView {
        base: current.base.clone(),
        patch: Some(Arc::new(patch)),
        scoping,
        version,
        base_version: current.base_version,
        base_built_ms: current.base_built_ms,
    }))
}

/// Polls the store every `every` and reloads the matcher on change, until
/// the returned task is aborted or the store is closed (at shutdown).
pub fn watch(matcher: IntelMatcher, store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if store.is_closed() {
                break;
            }
            if let Err(e) = matcher.reload_if_changed(&store).await {
                if store.is_closed() {
                    break;
                }
                tracing::error!(error = %e, "cannot reload indicators; keeping the current set");
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The indicator-matching engine.
pub struct IndicatorEngine {
    matcher: IntelMatcher,
    refresh: Option<Refresh>,
}

/// How an engine reads a newer view for an org it does not know.
struct Refresh {
    store: Store,
    runtime: tokio::runtime::Handle,
    /// The last time it did: at most one read per [`REFRESH_EVERY`], so a
    /// stream of events for an org that no longer exists cannot turn every
    /// event into a database round trip.
    last: Option<Instant>,
}

const REFRESH_EVERY: Duration = Duration::from_millis(100);

impl Engine for IndicatorEngine {
    fn name(&self) -> &str {
        "indicators"
    }

    fn evaluate(&mut self, event: &Event, out: &mut Vec<Finding>) {
        // An org created after the view was built is in no scope of it:
        // its events would match nothing until the watcher's next poll,
        // and streaming detection evaluates an event once. Read the tree
        // again first.
        if let Some(r) = &mut self.refresh {
            let known = self
                .matcher
                .current
                .load()
                .scoping
                .org_paths
                .contains_key(&event.org_id);
            if !known && r.last.is_none_or(|t| t.elapsed() >= REFRESH_EVERY) {
                r.last = Some(Instant::now());
                if let Err(e) = r.runtime.block_on(self.matcher.reload_if_changed(&r.store)) {
                    tracing::warn!(error = %e, org = %event.org_id, "cannot read the indicators for a new org");
                }
            }
        }
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
