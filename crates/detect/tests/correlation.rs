//! Correlation rules over hand-written events, through the streaming
//! `Detector::evaluate` and through the offline hunt.

mod common;

use mimamori_detect::{Detection, Detector, RuleSet};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{json, Value};
use std::path::Path;

const RULES: &str = r#"
title: Failed Logon
id: 0e5a0000-0000-4000-8000-000000004625
name: failed_logon
status: test
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4625
    condition: selection
level: low
---
title: Brute Force Against One Account
id: 0e5a0000-0000-4000-8000-0000000bf001
status: test
correlation:
    type: event_count
    rules:
        - failed_logon
    group-by:
        - TargetUserName
    timespan: 5m
    condition:
        gte: 3
level: high
tags:
    - attack.credential-access
    - attack.t1110
---
title: Successful Logon
id: 0e5a0000-0000-4000-8000-000000004624
name: logon
status: test
logsource:
    product: windows
    service: security
detection:
    selection:
        EventID: 4624
    condition: selection
level: informational
---
title: Failures Then Success
id: 0e5a0000-0000-4000-8000-0000000bf002
status: test
correlation:
    type: temporal_ordered
    rules:
        - failed_logon
        - logon
    group-by:
        - TargetUserName
    timespan: 10m
level: critical
"#;

const T0: i64 = 1_700_000_000_000;

fn logon(id: u64, user: &str, secs: i64) -> EventBody {
    let Value::Object(raw) = json!({
        "Channel": "Security",
        "EventID": id,
        "TargetUserName": user,
        "Computer": "dc1",
    }) else {
        unreachable!()
    };
    EventBody {
        time: Some(T0 + secs * 1000),
        class: OcsfClass::Authentication,
        source: "windows.security".into(),
        fields: Normalized::default(),
        raw,
    }
}

fn detector() -> Detector {
    let (rules, report) = RuleSet::from_yaml(Path::new("test.yml"), RULES);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.rules, 2);
    assert_eq!(report.correlations, 2);
    Detector::new(rules)
}

fn correlations(d: &[Detection]) -> Vec<&Detection> {
    d.iter().filter(|d| d.correlation.is_some()).collect()
}

#[test]
fn event_count_by_group_within_timespan() {
    let det = detector();
    // alice: three failures within 5 minutes (t = 0, 60, 120 s) → fires on
    // the third. bob: two failures only → never.
    let seq = [
        (logon(4625, "alice", 0), 0),
        (logon(4625, "bob", 30), 0),
        (logon(4625, "alice", 60), 0),
        (logon(4625, "bob", 90), 0),
        (logon(4625, "alice", 120), 1),
    ];
    for (i, (ev, want)) in seq.iter().enumerate() {
        let out = det.evaluate(ev);
        assert!(
            out.iter().any(|d| d.rule_title == "Failed Logon"),
            "event {i}: the base rule fires too"
        );
        let c = correlations(&out);
        assert_eq!(c.len(), *want, "event {i}: {c:?}");
        if let Some(c) = c.first() {
            assert_eq!(c.rule_id, "0e5a0000-0000-4000-8000-0000000bf001");
            assert_eq!(c.level, Some(mimamori_detect::Level::High));
            assert!(c.tags.contains(&"attack.t1110".to_string()));
            let m = c.correlation.as_ref().expect("correlation");
            assert_eq!(m.kind, "event_count");
            assert_eq!(
                m.group,
                vec![("TargetUserName".to_string(), "alice".to_string())]
            );
            assert_eq!(m.value, 3.0);
            assert_eq!(m.timespan_secs, 300);
        }
    }
}

#[test]
fn partitions_keep_correlation_state_apart() {
    let det = detector();
    // The same account fails twice in org a and once in org b: no org saw
    // three. The third failure in org a fires.
    for (org, secs) in [("a", 0), ("a", 10), ("b", 20)] {
        let out = det.evaluate_in(org, &logon(4625, "admin", secs));
        assert!(correlations(&out).is_empty(), "{org} at {secs}: {out:?}");
    }
    let out = det.evaluate_in("a", &logon(4625, "admin", 30));
    let c = correlations(&out);
    assert_eq!(c.len(), 1, "{out:?}");
    // The partition is not shown as a group-by field.
    assert_eq!(
        c[0].correlation.as_ref().map(|m| m.group.clone()),
        Some(vec![("TargetUserName".to_string(), "admin".to_string())])
    );
}

#[test]
fn events_spread_wider_than_timespan_do_not_fire() {
    let det = detector();
    // carol fails every 200 s: never 3 within 300 s.
    for i in 0..5 {
        let out = det.evaluate(&logon(4625, "carol", i * 200));
        assert!(correlations(&out).is_empty(), "failure {i}: {out:?}");
    }
}

#[test]
fn temporal_ordered_needs_the_order() {
    let det = detector();
    // dave: success before failure → no; erin: failure then success → yes.
    assert!(correlations(&det.evaluate(&logon(4624, "dave", 0))).is_empty());
    assert!(correlations(&det.evaluate(&logon(4625, "dave", 10))).is_empty());
    assert!(correlations(&det.evaluate(&logon(4625, "erin", 20))).is_empty());
    let out = det.evaluate(&logon(4624, "erin", 30));
    let c = correlations(&out);
    assert_eq!(c.len(), 1, "{out:?}");
    assert_eq!(c[0].rule_title, "Failures Then Success");
    assert_eq!(
        c[0].correlation.as_ref().map(|m| m.kind),
        Some("temporal_ordered")
    );
}

/// The hunt correlates in event-time order across files, whatever order the
/// files are read in.
#[test]
fn hunt_correlates_across_files_in_time_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, evs: &[(u64, &str, i64)]| {
        let mut s = String::new();
        for (i, (id, user, secs)) in evs.iter().enumerate() {
            let t = mimamori_detect::hunt::rfc3339(T0 + secs * 1000).expect("time");
            s.push_str(
                &json!({"Event": {"System": {
                    "EventID": id, "Channel": "Security", "Computer": "dc1",
                    "EventRecordID": i + 1,
                    "TimeCreated": {"#attributes": {"SystemTime": t}}},
                    "EventData": {"TargetUserName": user}}})
                .to_string(),
            );
            s.push('\n');
        }
        let p = dir.path().join(name);
        std::fs::write(&p, s).expect("write");
        p
    };
    // File a holds the *later* failures; file b the earlier one.
    let a = write("a.json", &[(4625, "alice", 60), (4625, "alice", 120)]);
    let b = write("b.json", &[(4625, "alice", 0)]);
    let det = detector();
    let mut hits = Vec::new();
    let mut progress = Vec::new();
    let summary = mimamori_detect::hunt::hunt(
        &det,
        &[a.clone(), b],
        &Default::default(),
        &mut |h| {
            hits.push(h.clone());
            Ok(())
        },
        &mut |p| progress.push((p.files_done, p.files_total, p.records)),
    )
    .expect("hunt");
    assert_eq!(progress, [(1, 2, 2), (2, 2, 3)]);
    assert_eq!(summary.records, 3);
    assert_eq!(summary.correlations, 1, "{hits:?}");
    let c = hits.last().expect("hits");
    assert_eq!(c.detection.rule_title, "Brute Force Against One Account");
    // The third failure in time is record 2 of a.json.
    assert_eq!(c.source, a);
    assert_eq!(c.record_id, 2);
    assert_eq!(c.timestamp, Some(T0 + 120_000));
}

/// Every correlation example of the Sigma specification (seven types)
/// compiles once the rules it refers to exist.
#[test]
fn specification_correlation_examples_compile() {
    let dir = common::corpora().join("sigma/specification/tests/schema/correlation");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("spec correlation examples")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 8);
    let mut types = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read");
        let doc: serde_json::Value = yaml_serde::from_str(&text).expect("yaml");
        types.insert(
            doc["correlation"]["type"]
                .as_str()
                .expect("type")
                .to_string(),
        );
        // One stub rule per referenced id or name.
        let mut yaml = String::new();
        for (i, r) in doc["correlation"]["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .enumerate()
        {
            let r = r.as_str().expect("rule ref");
            let key = if r.len() == 36 && r.chars().filter(|c| *c == '-').count() == 4 {
                format!("id: {r}")
            } else {
                format!("name: {r}")
            };
            yaml.push_str(&format!(
                "title: stub {i}\n{key}\nlogsource:\n    product: windows\ndetection:\n    sel:\n        EventID: {i}\n    condition: sel\n---\n"
            ));
        }
        yaml.push_str(&text);
        let (_, report) = RuleSet::from_yaml(&f, &yaml);
        assert!(
            report.failures.is_empty(),
            "{}: {:?}",
            f.display(),
            report.failures
        );
        assert_eq!(report.correlations, 1, "{}", f.display());
    }
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        [
            "event_count",
            "temporal",
            "temporal_ordered",
            "value_avg",
            "value_count",
            "value_percentile",
            "value_sum"
        ]
    );
}
