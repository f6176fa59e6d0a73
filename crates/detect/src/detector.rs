//! The streaming detector: one event in, the rules it fires out.
//!
//! Detection is stateless and runs concurrently from any number of threads.
//! Correlation rules keep state (counts and windows per group), which lives
//! behind one mutex; it is taken only for events that fired a rule some
//! correlation refers to, so the common path never locks.
//!
//! Correlation windows are driven by *event* time, so events must arrive in
//! time order (per correlation group) for windows to mean what the rule
//! says. The server feeds events as they arrive; the offline hunt sorts the
//! candidate events by time before correlating (see [`crate::hunt`]).

use crate::event::{RawEvent, PARTITION_FIELD};
use crate::routing::{route_with_aliases, Route};
use crate::rules::RuleSet;
use crate::shards::{LogsourceCheck, Shards};
use mimamori_event::EventBody;
use rsigma_eval::result::{EvaluationResult, ResultBody};
use rsigma_eval::{CorrelationConfig, CorrelationEngine, TimestampFallback};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Mutex;

/// A rule's severity, as the rule states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Informational,
        Level::Low,
        Level::Medium,
        Level::High,
        Level::Critical,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Level::Informational => "informational",
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
            Level::Critical => "critical",
        }
    }

    fn from_rsigma(l: rsigma_parser::Level) -> Level {
        match l {
            rsigma_parser::Level::Informational => Level::Informational,
            rsigma_parser::Level::Low => Level::Low,
            rsigma_parser::Level::Medium => Level::Medium,
            rsigma_parser::Level::High => Level::High,
            rsigma_parser::Level::Critical => Level::Critical,
        }
    }
}

/// A field value that made a rule match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MatchedField {
    pub field: String,
    pub value: Value,
}

/// What made a correlation rule fire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrelationMatch {
    /// `event_count`, `value_count`, `temporal`, `temporal_ordered`, …
    pub kind: &'static str,
    /// The group-by fields and their values.
    pub group: Vec<(String, String)>,
    /// The count (or sum, average, …) that met the condition.
    pub value: f64,
    pub timespan_secs: u64,
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The rule's `id`, or its title when it has none.
    pub rule_id: String,
    pub rule_title: String,
    pub level: Option<Level>,
    /// The rule's tags (`attack.t1059.001`, `attack.execution`, `cve.…`).
    pub tags: Vec<String>,
    /// The fields that matched (empty for keyword rules and correlations).
    pub matched: Vec<MatchedField>,
    /// Set when this is a correlation rule firing.
    pub correlation: Option<CorrelationMatch>,
}

impl Detection {
    pub(crate) fn from_result(r: EvaluationResult) -> Detection {
        let h = r.header;
        let (matched, correlation) = match r.body {
            ResultBody::Detection(d) => {
                let mut m: Vec<MatchedField> = d
                    .matched_fields
                    .into_iter()
                    .map(|m| MatchedField {
                        field: m.field,
                        value: m.value,
                    })
                    .collect();
                // RSigma keeps a rule's selections in a HashMap, so the
                // order differs from one load to the next; sort it so the
                // same input always gives the same output.
                m.sort_by_cached_key(|f| (f.field.clone(), f.value.to_string()));
                (m, None)
            }
            ResultBody::Correlation(c) => (
                Vec::new(),
                Some(CorrelationMatch {
                    kind: c.correlation_type.as_str(),
                    group: c
                        .group_key
                        .into_iter()
                        .filter(|(k, _)| k != PARTITION_FIELD)
                        .collect(),
                    value: c.aggregated_value,
                    timespan_secs: c.timespan_secs,
                }),
            ),
        };
        Detection {
            rule_id: h.rule_id.unwrap_or_else(|| h.rule_title.clone()),
            rule_title: h.rule_title,
            level: h.level.map(Level::from_rsigma),
            tags: h.tags,
            matched,
            correlation,
        }
    }

    /// The ATT&CK tags (`attack.*`): techniques and tactics.
    pub fn attack_tags(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .map(String::as_str)
            .filter(|t| t.starts_with("attack."))
    }
}

/// Evaluates events against a [`RuleSet`]. `Send + Sync`: share one detector
/// (in an `Arc`) between all ingest threads.
pub struct Detector {
    shards: Shards,
    correlation: Option<Mutex<CorrelationEngine>>,
    /// Ids and names of the rules correlations refer to: only events that
    /// fire one of these need the correlation lock.
    correlated: HashSet<String>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("rules", &self.rule_count())
            .field("correlations", &self.correlation.is_some())
            .finish()
    }
}

impl Detector {
    /// A detector with every rule engine's index built now, in parallel
    /// (the server's: no event waits for an index build).
    pub fn new(rules: RuleSet) -> Detector {
        rules.build_indexes();
        Detector::lazy(rules)
    }

    /// A detector that builds each rule engine's index when an event first
    /// needs it (the offline hunt's: engines for logsources the input lacks
    /// are never built). Detections are the same as with [`Detector::new`].
    pub fn lazy(rules: RuleSet) -> Detector {
        let RuleSet {
            shards,
            correlations,
            correlated_rules,
        } = rules;
        let mut correlated = HashSet::new();
        let correlation = if correlations.is_empty() {
            None
        } else {
            let config = CorrelationConfig {
                // We pass each event's own time; an event without one is
                // not correlated rather than placed at "now".
                timestamp_fallback: TimestampFallback::Skip,
                ..CorrelationConfig::default()
            };
            let mut ce = CorrelationEngine::new(config);
            for r in &correlated_rules {
                // Only the rule's id and name are used; it compiled once
                // already in `RuleSet::load`.
                if let Err(e) = ce.add_rule(r) {
                    tracing::warn!(rule = %r.title, error = %e, "correlated rule not added");
                }
                correlated.extend([r.id.clone(), r.name.clone()].into_iter().flatten());
            }
            for c in &correlations {
                // Correlation state is kept per partition (an org, say):
                // group every correlation by it too.
                let mut c = c.clone();
                c.group_by.push(PARTITION_FIELD.to_string());
                if let Err(e) = ce.add_correlation(&c) {
                    // Checked in RuleSet::load; kept as a log line only.
                    tracing::warn!(rule = %c.title, error = %e, "correlation not added");
                }
                // Correlations of correlations: a firing feeds its parents.
                correlated.extend([c.id.clone(), c.name.clone()].into_iter().flatten());
            }
            Some(Mutex::new(ce))
        };
        Detector {
            shards,
            correlation,
            correlated,
        }
    }

    pub fn rule_count(&self) -> usize {
        self.shards.rule_count()
    }

    pub fn has_correlations(&self) -> bool {
        self.correlation.is_some()
    }

    /// Detection rules only (no correlation state), routed by logsource.
    pub fn detect(&self, event: &EventBody) -> Vec<Detection> {
        self.detect_raw(event)
            .into_iter()
            .map(Detection::from_result)
            .collect()
    }

    /// Detection and correlation, with all events in one correlation
    /// partition. Correlation windows use the event's time, or the wall
    /// clock for an event without one. See [`Detector::evaluate_in`].
    pub fn evaluate(&self, event: &EventBody) -> Vec<Detection> {
        self.evaluate_in("", event)
    }

    /// Detection and correlation, what the server calls for each event in
    /// arrival order. Correlation state is kept apart per `partition`
    /// (pass the org id): five failed logons for `administrator` in two
    /// orgs are not one brute force. Correlation windows use the event's
    /// time, or the wall clock for an event without one.
    pub fn evaluate_in(&self, partition: &str, event: &EventBody) -> Vec<Detection> {
        let raw = self.detect_raw(event);
        let ts = event.time.unwrap_or_else(now_ms);
        self.correlate_raw(partition, event, raw, ts)
            .into_iter()
            .map(Detection::from_result)
            .collect()
    }

    pub(crate) fn detect_raw(&self, event: &EventBody) -> Vec<EvaluationResult> {
        let (route, aliases) = route_with_aliases(event);
        let ev = RawEvent::new(&event.raw, aliases);
        match route {
            Route::Loose(ls) => {
                let ls = ls.to_rsigma();
                self.shards
                    .all()
                    .flat_map(|i| self.shards.evaluate(i, &ev, &ls, LogsourceCheck::Loose))
                    .collect()
            }
            Route::Strict(alts) => {
                let mut out: Vec<EvaluationResult> = Vec::new();
                for (i, alt) in alts.iter().enumerate() {
                    let ls = alt.to_rsigma();
                    let engines = self
                        .shards
                        .for_event(alt.product.as_deref(), alt.category.as_deref());
                    for e in engines {
                        for r in self.shards.evaluate(e, &ev, &ls, LogsourceCheck::Strict) {
                            // A rule that names no category matches every
                            // alternative: report it once.
                            let dup = i > 0
                                && out.iter().any(|o| {
                                    o.header.rule_id == r.header.rule_id
                                        && o.header.rule_title == r.header.rule_title
                                });
                            if !dup {
                                out.push(r);
                            }
                        }
                    }
                }
                out
            }
        }
    }

    /// Whether any of these detections feeds a correlation rule.
    pub(crate) fn feeds_correlation(&self, results: &[EvaluationResult]) -> bool {
        self.correlation.is_some()
            && results.iter().any(|r| {
                r.header
                    .rule_id
                    .as_ref()
                    .is_some_and(|id| self.correlated.contains(id))
                    || self.correlated.contains(&r.header.rule_title)
            })
    }

    /// Feed an event's detections to the correlation engine at `ts_ms`;
    /// returns the detections followed by any correlation firings.
    pub(crate) fn correlate_raw(
        &self,
        partition: &str,
        event: &EventBody,
        results: Vec<EvaluationResult>,
        ts_ms: i64,
    ) -> Vec<EvaluationResult> {
        if !self.feeds_correlation(&results) {
            return results;
        }
        let Some(ce) = &self.correlation else {
            return results;
        };
        let (_, aliases) = route_with_aliases(event);
        let ev = RawEvent::new(&event.raw, aliases).with_partition(partition);
        // A poisoned lock only means another thread panicked mid-update;
        // the windows are still usable.
        let mut ce = ce.lock().unwrap_or_else(|p| p.into_inner());
        ce.process_with_detections(&ev, results, ts_ms.div_euclid(1000))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn detector_is_send_and_sync() {
        assert_send_sync::<Detector>();
    }

    const RULES: &str = "title: pc whoami
id: 00000000-0000-0000-0000-000000000001
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
---
title: net whoami
logsource: {product: windows, category: network_connection}
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
---
title: linux whoami
logsource: {product: linux, category: process_creation}
detection:
    sel:
        Image|endswith: '/whoami'
    condition: sel
---
title: not from the admin
filter:
    rules: [00000000-0000-0000-0000-000000000001]
    selection:
        User: admin
    condition: not selection
";

    fn sysmon(image: &str, user: &str) -> EventBody {
        let raw = serde_json::json!({
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": 1,
            "Image": image,
            "User": user,
        });
        let Value::Object(raw) = raw else {
            unreachable!("an object literal")
        };
        EventBody {
            time: None,
            class: mimamori_event::OcsfClass::BaseEvent,
            source: "windows.sysmon".into(),
            fields: Default::default(),
            raw,
        }
    }

    fn titles(d: &Detector, e: &EventBody) -> Vec<String> {
        d.detect(e).into_iter().map(|d| d.rule_title).collect()
    }

    /// A lazy detector builds only the engines its events need, applies
    /// filters to them, and fires exactly what an eager one fires.
    #[test]
    fn lazy_detector_builds_only_the_engines_events_need() {
        let load = || {
            let (rules, report) = RuleSet::from_yaml(std::path::Path::new("t.yml"), RULES);
            assert!(report.failures.is_empty(), "{:?}", report.failures);
            assert_eq!((report.rules, report.filters), (3, 1));
            rules
        };
        let lazy = Detector::lazy(load());
        let eager = Detector::new(load());
        assert_eq!(lazy.shards.built(), 0);
        assert_eq!(eager.shards.built(), eager.shards.slots_len());
        let user = sysmon("C:\\Windows\\System32\\whoami.exe", "bob");
        let admin = sysmon("C:\\Windows\\System32\\whoami.exe", "admin");
        for d in [&lazy, &eager] {
            assert_eq!(titles(d, &user), ["pc whoami"]);
            assert!(titles(d, &admin).is_empty(), "the filter applies");
        }
        // process_creation holds a rule; the Windows engine without a
        // category and the one without a product hold none, so they are
        // not built; nor are network_connection's and linux's.
        assert_eq!(lazy.shards.built(), 1);
    }
}
