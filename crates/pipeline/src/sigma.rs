//! Sigma rules as a streaming engine (on `mimamori-detect`).
//!
//! One detector serves every org. Correlation rules keep state (counts per
//! group within a window), and that state must never mix orgs' events:
//! each event is evaluated in its org's partition
//! ([`Detector::evaluate_in`]), so one org's failed logons never add up
//! with another's.

use crate::{Engine, Finding};
use mimamori_detect::{Detector, Level, RuleSet};
use mimamori_event::Event;
use mimamori_store::{AlertKind, Severity};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

pub struct SigmaEngine {
    detector: Arc<Detector>,
}

impl SigmaEngine {
    /// Loads the rules in `dirs`; logs what cannot be used.
    pub fn load(dirs: &[PathBuf]) -> Result<SigmaEngine, mimamori_detect::LoadError> {
        let (rules, report) = RuleSet::load(dirs)?;
        tracing::info!(
            rules = report.rules,
            correlations = report.correlations,
            unsupported = report.failures.len(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "Sigma rules loaded"
        );
        for f in report.failures.iter().take(20) {
            tracing::warn!(rule = %f, "Sigma rule not used");
        }
        Ok(SigmaEngine {
            detector: Arc::new(Detector::new(rules)),
        })
    }

    pub fn rule_count(&self) -> usize {
        self.detector.rule_count()
    }
}

fn severity(level: Option<Level>) -> Severity {
    match level {
        Some(Level::Critical) => Severity::Critical,
        Some(Level::High) => Severity::High,
        Some(Level::Medium) | None => Severity::Medium,
        Some(Level::Low) => Severity::Low,
        Some(Level::Informational) => Severity::Informational,
    }
}

/// `attack.t1059.001` → `T1059.001`; tactic tags (`attack.execution`) are
/// not techniques.
fn technique(tag: &str) -> Option<String> {
    let t = tag.strip_prefix("attack.")?;
    let digits = t.strip_prefix('t')?;
    digits
        .chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| format!("T{}", digits.to_ascii_uppercase()))
}

/// What a Sigma alert is about: the host, else the source address, else the
/// user.
fn entity(event: &Event) -> String {
    let f = &event.body.fields;
    f.hostname
        .clone()
        .or_else(|| {
            event
                .body
                .raw
                .get("Computer")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .or_else(|| f.src_ip.clone())
        .or_else(|| f.user.clone())
        .unwrap_or_else(|| "-".into())
}

impl Engine for SigmaEngine {
    fn name(&self) -> &str {
        "sigma"
    }

    fn evaluate(&mut self, event: &Event, out: &mut Vec<Finding>) {
        for d in self.detector.evaluate_in(&event.org_id, &event.body) {
            let sev = severity(d.level);
            let attack: Vec<String> = d.tags.iter().filter_map(|t| technique(t)).collect();
            let kind = if d.correlation.is_some() {
                AlertKind::Correlation
            } else {
                AlertKind::Sigma
            };
            out.push(Finding {
                kind,
                title: d.rule_title.clone(),
                severity: sev,
                entity: entity(event),
                attack,
                context: json!({
                    "rule": {"id": d.rule_id, "title": d.rule_title, "level": d.level, "tags": d.tags},
                    "matched": d.matched,
                    "correlation": d.correlation,
                    "source": event.body.source,
                }),
                // The same serious rule firing at several orgs is worth a
                // campaign; noisy low-level rules are not.
                campaign_key: (sev >= Severity::High).then(|| format!("sigma:{}", d.rule_id)),
                indicator_ids: vec![],
                rule_id: d.rule_id,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_tags_become_technique_ids() {
        assert_eq!(technique("attack.t1059.001").as_deref(), Some("T1059.001"));
        assert_eq!(technique("attack.t1003").as_deref(), Some("T1003"));
        assert_eq!(technique("attack.execution"), None);
        assert_eq!(technique("cve.2021-44228"), None);
    }
}
