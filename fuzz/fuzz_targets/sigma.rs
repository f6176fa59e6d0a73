//! Sigma rule YAML (one or more documents) through `RuleSet::from_yaml`,
//! as rule directories are loaded. Every document either becomes a rule
//! or a failure in the report.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mimamori_detect::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (rules, report) = RuleSet::from_yaml(Path::new("fuzz.yml"), text);
    let _ = (rules.rule_count(), rules.correlation_count(), format!("{report:?}"));
});
