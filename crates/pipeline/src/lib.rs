//! Streaming detection: every acknowledged event goes through the
//! detection engines as it arrives, and what they find becomes alerts for
//! the event's org and, across orgs, campaigns.
//!
//! ```text
//! ingest WAL ──▶ DetectionConsumer (a mimamori_ingest::Consumer)
//!                  │  for each event: every Engine → Findings
//!                  ▼
//!                Store::alert_record ──▶ alerts (grouped, suppressed) ──▶ campaigns
//! ```
//!
//! Engines are plain synchronous code behind the [`Engine`] trait (the
//! indicator matcher, Sigma); this crate owns what surrounds them: grouping
//! findings into alert records, writing them durably before the ingest
//! checkpoint moves, and retro-hunting the archive ([`retro`]).
//!
//! Invariants:
//! - Detection is streaming, not scheduled queries: an event is evaluated
//!   once, when it is acknowledged (and again only on crash replay, which
//!   the alert store absorbs: event ids are stable and not counted twice).
//! - A finding is never dropped because the database is briefly down: the
//!   consumer retries, which holds back the ingest checkpoint and, when it
//!   lasts, makes ingestion push back on senders.

pub mod feeds;
pub mod hub;
pub mod intel;
pub mod retro;
pub mod sigma;

use mimamori_event::Event;
use mimamori_store::{AlertKind, CampaignPolicy, Detection, Recorded, Severity, Store};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What an engine found in one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: AlertKind,
    /// Sigma rule id, or `<kind>:<value>` of the indicator.
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    /// What it is about within the org (host, domain, address, user).
    pub entity: String,
    pub attack: Vec<String>,
    pub context: serde_json::Value,
    /// Findings with the same key at several orgs form a campaign.
    pub campaign_key: Option<String>,
    /// For indicator matches: the stored indicators that matched (their
    /// sightings are recorded).
    pub indicator_ids: Vec<String>,
}

/// A detection engine. Engines run on the detection thread, one event at a
/// time, and must not block on I/O.
pub trait Engine: Send {
    fn name(&self) -> &str;
    /// Appends what `event` matches to `out`.
    fn evaluate(&mut self, event: &Event, out: &mut Vec<Finding>);
}

/// Alert grouping and campaign settings.
#[derive(Debug, Clone, Copy)]
pub struct DetectionConfig {
    /// Detections of one rule on one entity in one org within this window
    /// (ms) are one alert.
    pub group_window_ms: i64,
    pub campaigns: CampaignPolicy,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            group_window_ms: 3600 * 1000,
            campaigns: CampaignPolicy::default(),
        }
    }
}

/// Counters exposed as metrics.
#[derive(Debug, Default)]
pub struct DetectionStats {
    pub events_evaluated: AtomicU64,
    pub findings: AtomicU64,
    pub alerts_opened: AtomicU64,
    pub alerts_grouped: AtomicU64,
    pub suppressed: AtomicU64,
    pub campaigns_formed: AtomicU64,
    pub store_retries: AtomicU64,
}

/// Something that wants to hear about new alerts and campaigns
/// (notifications). Called on the detection thread: must return quickly
/// (hand the work to a queue).
pub trait AlertSink: Send {
    fn alert_opened(&mut self, alert_id: &str, detection: &Detection);
    fn campaign_formed(&mut self, campaign_id: &str, detection: &Detection, org_count: usize);
}

/// The streaming detection consumer of the ingest pipeline.
pub struct DetectionConsumer {
    engines: Vec<Box<dyn Engine>>,
    store: Store,
    runtime: tokio::runtime::Handle,
    config: DetectionConfig,
    stats: Arc<DetectionStats>,
    sinks: Vec<Box<dyn AlertSink>>,
    findings: Vec<Finding>,
}

impl DetectionConsumer {
    /// `runtime` runs the store's queries; the consumer itself lives on the
    /// ingest pipeline's consumer thread, outside the runtime.
    pub fn new(
        engines: Vec<Box<dyn Engine>>,
        store: Store,
        runtime: tokio::runtime::Handle,
        config: DetectionConfig,
    ) -> Self {
        DetectionConsumer {
            engines,
            store,
            runtime,
            config,
            stats: Arc::default(),
            sinks: vec![],
            findings: vec![],
        }
    }

    pub fn with_sink(mut self, sink: Box<dyn AlertSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    pub fn stats(&self) -> Arc<DetectionStats> {
        self.stats.clone()
    }
}

/// Groups one batch's findings by (org, rule, entity): one alert record per
/// group and batch instead of one per matching event.
pub(crate) fn group(
    found: impl IntoIterator<Item = (Finding, String, String, i64)>,
    retro: bool,
) -> Vec<Detection> {
    let mut groups: BTreeMap<(String, String, String), Detection> = BTreeMap::new();
    for (f, org_id, event_id, time) in found {
        let key = (org_id.clone(), f.rule_id.clone(), f.entity.clone());
        match groups.get_mut(&key) {
            Some(d) => {
                if !d.event_ids.contains(&event_id) {
                    d.event_ids.push(event_id);
                }
                d.time = d.time.max(time);
            }
            None => {
                groups.insert(
                    key,
                    Detection {
                        org_id,
                        kind: f.kind,
                        rule_id: f.rule_id,
                        title: f.title,
                        severity: f.severity,
                        entity: f.entity,
                        attack: f.attack,
                        context: f.context,
                        event_ids: vec![event_id],
                        time,
                        retro,
                        campaign_key: f.campaign_key,
                    },
                );
            }
        }
    }
    groups.into_values().collect()
}

/// The indicators sighted in a batch, per (org, latest time).
pub(crate) fn sightings(
    found: &[(Finding, String, String, i64)],
) -> BTreeMap<(String, i64), Vec<String>> {
    let mut per_org: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    for (f, org, _, time) in found {
        if f.indicator_ids.is_empty() {
            continue;
        }
        let e = per_org.entry(org.clone()).or_insert((*time, vec![]));
        e.0 = e.0.max(*time);
        for id in &f.indicator_ids {
            if !e.1.contains(id) {
                e.1.push(id.clone());
            }
        }
    }
    per_org
        .into_iter()
        .map(|(org, (time, ids))| ((org, time), ids))
        .collect()
}

/// Writes detections to the store, retrying (with backoff up to 5 s) until
/// the store takes them: a finding is never dropped for a transient
/// database error. Errors that retrying cannot fix (the org was deleted)
/// are logged and the detection skipped.
pub(crate) async fn record_all(
    store: &Store,
    detections: &[Detection],
    config: &DetectionConfig,
    stats: &DetectionStats,
    sinks: &mut [Box<dyn AlertSink>],
) {
    for d in detections {
        let mut backoff = Duration::from_millis(50);
        loop {
            match store
                .alert_record(d, config.group_window_ms, &config.campaigns)
                .await
            {
                Ok((recorded, campaign)) => {
                    match &recorded {
                        Recorded::Opened { alert_id } => {
                            stats.alerts_opened.fetch_add(1, Ordering::Relaxed);
                            for s in sinks.iter_mut() {
                                s.alert_opened(alert_id, d);
                            }
                        }
                        Recorded::Grouped { .. } => {
                            stats.alerts_grouped.fetch_add(1, Ordering::Relaxed);
                        }
                        Recorded::Suppressed => {
                            stats.suppressed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if let Some(c) = campaign.filter(|c| c.formed) {
                        stats.campaigns_formed.fetch_add(1, Ordering::Relaxed);
                        for s in sinks.iter_mut() {
                            s.campaign_formed(&c.campaign_id, d, c.org_count);
                        }
                    }
                    break;
                }
                Err(mimamori_store::StoreError::NotFound) => {
                    tracing::warn!(org = %d.org_id, rule = %d.rule_id, "detection for an org that no longer exists; skipped");
                    break;
                }
                Err(mimamori_store::StoreError::Invalid(e)) => {
                    tracing::error!(error = %e, rule = %d.rule_id, "detection the store refuses; skipped");
                    break;
                }
                Err(e) => {
                    stats.store_retries.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot record a detection; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

impl mimamori_ingest::Consumer for DetectionConsumer {
    fn name(&self) -> &str {
        "detection"
    }

    fn consume(&mut self, events: &[Event]) {
        let mut found = vec![];
        for event in events {
            self.findings.clear();
            for engine in &mut self.engines {
                engine.evaluate(event, &mut self.findings);
            }
            for f in self.findings.drain(..) {
                found.push((f, event.org_id.clone(), event.id.clone(), event.time()));
            }
        }
        self.stats
            .events_evaluated
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        if found.is_empty() {
            return;
        }
        self.stats
            .findings
            .fetch_add(found.len() as u64, Ordering::Relaxed);
        let sightings = sightings(&found);
        let detections = group(found, false);
        let (store, config, stats) = (&self.store, &self.config, &self.stats);
        let sinks = &mut self.sinks;
        self.runtime.block_on(async {
            record_all(store, &detections, config, stats, sinks).await;
            for ((org, time), ids) in sightings {
                // Sightings are bookkeeping: a failure is logged, not retried.
                if let Err(e) = store.intel_sighted(&ids, &org, time).await {
                    tracing::warn!(error = %e, "cannot record indicator sightings");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, entity: &str) -> Finding {
        Finding {
            kind: AlertKind::Sigma,
            rule_id: rule.into(),
            title: rule.into(),
            severity: Severity::High,
            entity: entity.into(),
            attack: vec![],
            context: serde_json::json!({}),
            campaign_key: None,
            indicator_ids: vec![],
        }
    }

    #[test]
    fn grouping_is_per_org_rule_and_entity() {
        let found = vec![
            (finding("r1", "h1"), "o1".to_string(), "e1".to_string(), 10),
            (finding("r1", "h1"), "o1".to_string(), "e2".to_string(), 30),
            (finding("r1", "h1"), "o1".to_string(), "e2".to_string(), 30),
            (finding("r1", "h2"), "o1".to_string(), "e3".to_string(), 20),
            (finding("r1", "h1"), "o2".to_string(), "e4".to_string(), 20),
            (finding("r2", "h1"), "o1".to_string(), "e1".to_string(), 10),
        ];
        let ds = group(found, false);
        assert_eq!(ds.len(), 4);
        let g = ds
            .iter()
            .find(|d| d.org_id == "o1" && d.rule_id == "r1" && d.entity == "h1")
            .unwrap();
        assert_eq!(g.event_ids, vec!["e1", "e2"]);
        assert_eq!(g.time, 30);
    }
}
