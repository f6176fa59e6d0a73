//! Indicator matching: the intel hub's active indicators against each
//! event's normalized fields (domains with parent-domain matching,
//! addresses by longest prefix, URLs, file hashes, file names).
//!
//! The matcher holds an immutable [`IntelSnapshot`] behind a lock that is
//! only taken to clone an `Arc`: a reload builds the next snapshot beside
//! the current one and swaps it in, so ingestion never pauses for it.
//! [`watch`] polls the store and reloads within its interval of a change.
//!
//! Which indicators protect which org: an org's own, its ancestors' (the
//! central SOC's and its supervisor's intel protects everyone below), and
//! those visible to it by TLP (CLEAR/GREEN from anyone, AMBER shared with
//! it). An alert shows an indicator's sources, tags and relations only
//! where the indicator is visible to the alerted org; otherwise just that
//! an indicator of that TLP matched.

use crate::{Engine, Finding};
use mimamori_event::Event;
use mimamori_intel::{IndicatorIndex, IndicatorKind, Tlp};
use mimamori_store::{ActiveIndicator, AlertKind, Severity, Store};
use serde_json::json;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
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
}

impl Owner {
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

/// `(count, newest change)` of the indicators and of the org tree: a
/// snapshot is rebuilt when either changes (a new org must be protected
/// by its ancestors' indicators at once).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotVersion {
    pub indicators: (i64, i64),
    pub orgs: (i64, i64),
}

impl SnapshotVersion {
    pub async fn of(store: &Store) -> Result<SnapshotVersion, mimamori_store::StoreError> {
        Ok(SnapshotVersion {
            indicators: store.intel_version().await?,
            orgs: store.org_version().await?,
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
        Ok(tokio::task::spawn_blocking(move || {
            IntelSnapshot::build(indicators, org_paths, version)
        })
        .await
        .unwrap_or_default())
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
        if self.entries.is_empty() {
            return;
        }
        let Some(org_path) = self.org_paths.get(&event.org_id) else {
            return;
        };
        let f = &event.body.fields;
        let mut hits: Vec<(u32, &'static str, &str)> = vec![];
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
        for (id, field, observed) in hits {
            let Some(entry) = self.entries.get(id as usize) else {
                continue;
            };
            let owners: Vec<&Owner> = entry
                .owners
                .iter()
                .filter(|o| o.protects(&event.org_id, org_path))
                .collect();
            if owners.is_empty() {
                continue;
            }
            out.push(finding(entry, &owners, &event.org_id, field, observed));
        }
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

/// The current snapshot, shared by the detection engine and its reloader.
#[derive(Clone, Default)]
pub struct IntelMatcher {
    current: Arc<RwLock<Arc<IntelSnapshot>>>,
}

impl IntelMatcher {
    pub fn new(snapshot: IntelSnapshot) -> Self {
        IntelMatcher {
            current: Arc::new(RwLock::new(Arc::new(snapshot))),
        }
    }

    pub fn snapshot(&self) -> Arc<IntelSnapshot> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The org tree's paths as of the current snapshot.
    pub fn snapshot_org_paths(&self) -> HashMap<String, String> {
        self.snapshot().org_paths.clone()
    }

    pub fn replace(&self, snapshot: IntelSnapshot) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }

    /// The detection engine over this matcher's current snapshot.
    pub fn engine(&self) -> IndicatorEngine {
        IndicatorEngine {
            matcher: self.clone(),
        }
    }

    /// Reloads from the store when it changed; returns whether it did.
    pub async fn reload_if_changed(
        &self,
        store: &Store,
    ) -> Result<bool, mimamori_store::StoreError> {
        let version = SnapshotVersion::of(store).await?;
        if version == self.snapshot().version {
            return Ok(false);
        }
        let started = Instant::now();
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
        self.matcher.snapshot().evaluate(event, out);
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
