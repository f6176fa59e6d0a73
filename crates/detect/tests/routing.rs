//! Logsource routing end to end: hand-written rules against hand-written
//! events, checking which rules may and may not see which events.

use mimamori_detect::{Detector, RuleSet};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{json, Value};
use std::path::Path;

fn rule(title: &str, logsource: &str, detection: &str) -> String {
    format!(
        "title: {title}\nstatus: test\nlogsource:\n{logsource}\ndetection:\n{detection}\nlevel: medium\n---\n"
    )
}

fn detector() -> Detector {
    let whoami = "    sel:\n        Image|endswith: '\\whoami.exe'\n    condition: sel";
    let yaml = [
        rule(
            "pc whoami",
            "    product: windows\n    category: process_creation",
            whoami,
        ),
        rule(
            "security 4688 whoami",
            "    product: windows\n    service: security",
            "    sel:\n        EventID: 4688\n        NewProcessName|endswith: '\\whoami.exe'\n    condition: sel",
        ),
        rule(
            "sysmon any event 1",
            "    product: windows\n    service: sysmon",
            "    sel:\n        EventID: 1\n    condition: sel",
        ),
        rule(
            "sysmon any image whoami",
            "    product: windows\n    service: sysmon",
            whoami,
        ),
        rule(
            "network whoami",
            "    product: windows\n    category: network_connection",
            whoami,
        ),
        rule(
            "linux whoami",
            "    product: linux\n    category: process_creation",
            whoami,
        ),
        rule(
            "registry_set run key",
            "    product: windows\n    category: registry_set",
            "    sel:\n        TargetObject|contains: '\\CurrentVersion\\Run\\'\n    condition: sel",
        ),
        rule(
            "registry_event run key",
            "    product: windows\n    category: registry_event",
            "    sel:\n        TargetObject|contains: '\\CurrentVersion\\Run\\'\n    condition: sel",
        ),
        rule(
            "zeek dns to sinkhole",
            "    product: zeek\n    service: dns",
            "    sel:\n        id.resp_h: 192.0.2.53\n        query|endswith: '.evil.example'\n    condition: sel",
        ),
        rule(
            "okta admin",
            "    product: okta\n    service: okta",
            "    sel:\n        eventType: user.account.privilege.grant\n    condition: sel",
        ),
    ]
    .concat();
    let (rules, report) = RuleSet::from_yaml(Path::new("routing.yml"), &yaml);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.rules, 10);
    Detector::new(rules)
}

fn ev(source: &str, raw: Value) -> EventBody {
    let Value::Object(raw) = raw else {
        unreachable!()
    };
    EventBody {
        time: None,
        class: OcsfClass::BaseEvent,
        source: source.into(),
        fields: Normalized::default(),
        raw,
    }
}

fn fired(d: &Detector, e: &EventBody) -> Vec<String> {
    let mut t: Vec<String> = d.detect(e).into_iter().map(|d| d.rule_title).collect();
    t.sort();
    t
}

const SYSMON: &str = "Microsoft-Windows-Sysmon/Operational";

#[test]
fn sysmon_process_creation() {
    let d = detector();
    let e = ev(
        "windows.sysmon",
        json!({"Channel": SYSMON, "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe"}),
    );
    assert_eq!(
        fired(&d, &e),
        ["pc whoami", "sysmon any event 1", "sysmon any image whoami"]
    );
}

#[test]
fn sysmon_network_event_does_not_reach_process_creation_rules() {
    let d = detector();
    let e = ev(
        "windows.sysmon",
        json!({"Channel": SYSMON, "EventID": 3, "Image": "C:\\Windows\\System32\\whoami.exe"}),
    );
    assert_eq!(fired(&d, &e), ["network whoami", "sysmon any image whoami"]);
}

#[test]
fn security_4688_is_process_creation_through_aliases() {
    let d = detector();
    let e = ev(
        "windows.security",
        json!({"Channel": "Security", "EventID": 4688,
               "NewProcessName": "C:\\Windows\\System32\\whoami.exe"}),
    );
    assert_eq!(fired(&d, &e), ["pc whoami", "security 4688 whoami"]);
}

#[test]
fn registry_value_set_is_both_categories_and_reported_once() {
    let d = detector();
    let e = ev(
        "windows.sysmon",
        json!({"Channel": SYSMON, "EventID": 13,
               "TargetObject": "HKU\\S-1\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\evil",
               "Image": "C:\\x\\whoami.exe"}),
    );
    // The service-only Sysmon rule matches both category alternatives; it is
    // reported once.
    assert_eq!(
        fired(&d, &e),
        [
            "registry_event run key",
            "registry_set run key",
            "sysmon any image whoami"
        ]
    );
}

#[test]
fn unknown_sources_are_matched_only_by_their_declared_logsource() {
    let d = detector();
    let okta = json!({"eventType": "user.account.privilege.grant"});
    // A record that says nothing about its log runs no rules: otherwise
    // every rule whose fields it lacks could fire on it.
    assert!(fired(&d, &ev("ndjson", okta.clone())).is_empty());
    let mut declared = okta.clone();
    declared["product"] = json!("okta");
    assert_eq!(fired(&d, &ev("ndjson", declared)), ["okta admin"]);
    let mut other = okta;
    other["product"] = json!("aws");
    assert!(fired(&d, &ev("ndjson", other)).is_empty());
}

#[test]
fn zeek_dotted_and_underscore_names() {
    let d = detector();
    let dotted = json!({"id.resp_h": "192.0.2.53", "query": "a.evil.example"});
    let underscore = json!({"id_resp_h": "192.0.2.53", "query": "a.evil.example"});
    assert_eq!(
        fired(&d, &ev("zeek.dns", dotted.clone())),
        ["zeek dns to sinkhole"]
    );
    assert_eq!(
        fired(&d, &ev("zeek.dns", underscore)),
        ["zeek dns to sinkhole"]
    );
    // Another Zeek log is another service.
    assert!(fired(&d, &ev("zeek.http", dotted)).is_empty());
}
