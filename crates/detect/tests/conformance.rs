//! SigmaHQ conformance: every regression case of `sigma/regression_data`
//! fires its rule on its events (EVTX and the same events as JSON), and
//! nearly all of `sigma/rules` compiles.

mod common;

use mimamori_detect::{Detector, LoadReport, RuleSet};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use yaml_serde::Value;

/// One regression case: the rule, its events, and how often it must fire.
struct Case {
    info: PathBuf,
    rule_id: String,
    evtx: PathBuf,
    /// A minimum, as SigmaHQ's own runner reads it (a few cases understate
    /// the true count).
    match_count: Option<u64>,
}

fn sigma() -> PathBuf {
    common::corpora().join("sigma")
}

fn detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| {
        let (rules, report) = RuleSet::load(&[sigma().join("rules"), sigma().join("rules-extra")])
            .expect("load rules");
        assert!(
            report.failures.is_empty(),
            "rules not usable: {:#?}",
            report.failures
        );
        Detector::new(rules)
    })
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn cases() -> Vec<Case> {
    let root = sigma();
    let mut out = Vec::new();
    for info in common::files(&root.join("regression_data"), "info.yml") {
        let text = std::fs::read_to_string(&info).expect("read info.yml");
        let v: Value =
            yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", info.display()));
        let Some(rule_id) = v
            .get("rule_metadata")
            .and_then(|m| m.get(0))
            .and_then(|m| str_at(m, "id"))
        else {
            panic!("{}: no rule_metadata id", info.display())
        };
        // One case (cisco dot1x) has its regression_tests_info commented out.
        let Some(test) = v.get("regression_tests_info").and_then(|t| t.get(0)) else {
            continue;
        };
        let path = str_at(test, "path").expect("regression test path");
        out.push(Case {
            info: info.clone(),
            rule_id: rule_id.to_string(),
            evtx: root.join(path),
            match_count: test.get("match_count").and_then(Value::as_u64),
        });
    }
    out
}

/// How often each rule fires on the events of one file.
fn fires(detector: &Detector, file: &Path) -> (HashMap<String, u64>, usize) {
    let parsed = mimamori_parse::parse_file(file, None)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(
        parsed.rejects.is_empty(),
        "{}: rejects {:?}",
        file.display(),
        parsed.rejects
    );
    let mut counts = HashMap::new();
    for ev in &parsed.events {
        for d in detector.detect(ev) {
            *counts.entry(d.rule_id).or_insert(0) += 1;
        }
    }
    (counts, parsed.events.len())
}

/// Run every case against `file_of(case)`; returns the failures.
fn run(file_of: impl Fn(&Case) -> PathBuf) -> (usize, Vec<String>, usize) {
    let detector = detector();
    let cases = cases();
    let mut failures = Vec::new();
    let mut above = 0;
    for c in &cases {
        let file = file_of(c);
        let (counts, _) = fires(detector, &file);
        let got = counts.get(&c.rule_id).copied().unwrap_or(0);
        let want = c.match_count.unwrap_or(1);
        if got < want {
            failures.push(format!(
                "{}: rule {} fired {got} times, want at least {want} ({})",
                file.display(),
                c.rule_id,
                c.info.display()
            ));
        } else if c.match_count.is_some_and(|m| got > m) {
            above += 1;
        }
    }
    (cases.len(), failures, above)
}

#[test]
fn regression_cases_fire_on_evtx() {
    let (total, failures, above) = run(|c| c.evtx.clone());
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "sigma regression (EVTX): {}/{total} passed; {above} fired more often than match_count",
        total - failures.len()
    );
    assert_eq!(total, 202, "the corpus has 202 regression cases");
    assert!(failures.is_empty(), "{} cases failed", failures.len());
}

#[test]
fn regression_cases_fire_on_json() {
    let (total, failures, _) = run(|c| c.evtx.with_extension("json"));
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "sigma regression (JSON): {}/{total} passed",
        total - failures.len()
    );
    assert_eq!(total, 202);
    assert!(failures.is_empty(), "{} cases failed", failures.len());
}

/// The JSON files hold the same events as the EVTX, including the 13 that
/// hold several pretty-printed objects back to back.
#[test]
fn json_renderings_hold_the_same_events() {
    let mut multi = 0;
    for c in cases() {
        let evtx = mimamori_parse::parse_file(&c.evtx, None).expect("evtx");
        let json = mimamori_parse::parse_file(&c.evtx.with_extension("json"), None).expect("json");
        assert_eq!(
            evtx.events.len(),
            json.events.len(),
            "{}: EVTX and JSON event counts differ",
            c.evtx.display()
        );
        if json.events.len() > 1 {
            multi += 1;
        }
        let ids = |p: &mimamori_parse::Parsed| -> Vec<String> {
            p.events
                .iter()
                .map(|e| {
                    e.raw
                        .get("EventRecordID")
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                })
                .collect()
        };
        let (mut a, mut b) = (ids(&evtx), ids(&json));
        a.sort();
        b.sort();
        assert_eq!(a, b, "{}: record ids differ", c.evtx.display());
    }
    assert!(multi >= 13, "only {multi} JSON files hold several events");
}

#[test]
fn sigma_rules_compile() {
    let (_, report): (RuleSet, LoadReport) = RuleSet::load(&[sigma().join("rules")]).expect("load");
    for f in &report.failures {
        eprintln!("not usable: {f}");
    }
    eprintln!(
        "sigma/rules: {} files, {} rules compiled, {} not usable, {} warnings, loaded in {} ms",
        report.files,
        report.rules,
        report.failures.len(),
        report.warnings.len(),
        report.elapsed.as_millis()
    );
    assert_eq!(report.files, 3141);
    assert!(
        report.rules * 100 >= report.files * 99,
        "only {} of {} rules compile",
        report.rules,
        report.files
    );
}

/// A rule that cannot compile is reported with its file and skipped; the
/// others in the same load are used.
#[test]
fn broken_rules_are_reported_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("good.yml"),
        "title: Good\nid: 11111111-1111-1111-1111-111111111111\nlogsource:\n  product: windows\n  service: security\ndetection:\n  sel:\n    EventID: 4625\n  condition: sel\nlevel: low\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("bad_condition.yml"),
        "title: Bad\nlogsource:\n  product: windows\ndetection:\n  sel:\n    EventID: 1\n  condition: sel and missing_one\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("not_yaml.yaml"), "title: [unclosed\n").expect("write");
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    std::fs::copy(dir.path().join("good.yml"), sub.join("copy.yml")).expect("copy");
    std::fs::write(dir.path().join("README.md"), "not a rule").expect("write");
    let (rules, report) = RuleSet::load(&[dir.path().to_path_buf()]).expect("load");
    assert_eq!(report.files, 4, "README.md is not read");
    assert_eq!(rules.rule_count(), 1, "the copy is not loaded twice");
    let bad: Vec<_> = report
        .failures
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        bad.contains(&"not_yaml.yaml".to_string()),
        "{:?}",
        report.failures
    );
    assert!(
        bad.contains(&"bad_condition.yml".to_string()),
        "{:?}",
        report.failures
    );
    assert!(RuleSet::load(&[dir.path().join("nope")]).is_err());

    // `mimamori rules check` lists them and fails.
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = mimamori_detect::cli::run_rules_check(
        mimamori_detect::cli::RulesCheckArgs {
            dirs: vec![dir.path().to_path_buf()],
            warnings: false,
        },
        &mut out,
        &mut err,
    );
    assert!(
        matches!(
            r,
            Err(mimamori_detect::cli::CliError::RulesFailed {
                failures: 3,
                files: 4
            })
        ),
        "{r:?}"
    );
    let out = String::from_utf8(out).expect("utf-8");
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.lines().all(|l| l.starts_with("error: ")), "{out}");
    assert!(out.contains("bad_condition.yml"), "{out}");
}
