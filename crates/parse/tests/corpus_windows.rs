//! Windows events from the shared corpora: EVTX attack samples and Sigma's
//! regression data (EVTX plus the same events as JSON).

mod common;

use common::{corpora, files};
use mimamori_event::OcsfClass;
use mimamori_parse::{detect, parse_file, Format};
use std::collections::BTreeMap;
use std::time::Instant;

#[test]
fn every_attack_sample_evtx_parses_without_rejects() {
    let dir = corpora().join("evtx/attack-samples");
    let paths = files(&dir, ".evtx");
    assert_eq!(paths.len(), 277, "attack-sample EVTX files");
    let start = Instant::now();
    let mut events = 0usize;
    let mut rejects = Vec::new();
    let mut classes: BTreeMap<OcsfClass, usize> = BTreeMap::new();
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    for p in &paths {
        let head = std::fs::read(p).unwrap();
        assert_eq!(
            detect(&p.to_string_lossy(), &head[..64]),
            Some(Format::Evtx),
            "{}",
            p.display()
        );
        let parsed = parse_file(p, None).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(!parsed.events.is_empty(), "{}: no events", p.display());
        events += parsed.events.len();
        for e in &parsed.events {
            *classes.entry(e.class).or_default() += 1;
            *sources.entry(e.source.clone()).or_default() += 1;
            assert!(e.raw.contains_key("EventID"), "{}: no EventID", p.display());
            assert!(e.time.is_some(), "{}: no time", p.display());
            assert!(e.fields.hostname.is_some(), "{}: no Computer", p.display());
        }
        rejects.extend(parsed.rejects.into_iter().map(|r| (p.clone(), r)));
    }
    eprintln!(
        "277 attack-sample EVTX files: {events} events, {} rejects in {:?}; classes {classes:?}; sources {sources:?}",
        rejects.len(),
        start.elapsed()
    );
    assert!(rejects.is_empty(), "rejects: {rejects:#?}");
    assert_eq!(events, 8_255);
    // Every class the Windows mapping produces shows up in this corpus.
    for c in [
        OcsfClass::ProcessActivity,
        OcsfClass::NetworkActivity,
        OcsfClass::DnsActivity,
        OcsfClass::Authentication,
        OcsfClass::FileActivity,
        OcsfClass::BaseEvent,
    ] {
        assert!(classes.contains_key(&c), "no {c:?} event");
    }
}

#[test]
fn sigma_regression_json_and_evtx_agree() {
    let dir = corpora().join("sigma/regression_data");
    let evtx = files(&dir, ".evtx");
    assert_eq!(evtx.len(), 202);
    let mut json_files = 0;
    let mut total = 0;
    for e in &evtx {
        let from_evtx = parse_file(e, None).unwrap();
        assert!(
            from_evtx.rejects.is_empty(),
            "{}: {:?}",
            e.display(),
            from_evtx.rejects
        );
        assert!(!from_evtx.events.is_empty(), "{}", e.display());
        total += from_evtx.events.len();
        let j = e.with_extension("json");
        if !j.exists() {
            continue;
        }
        json_files += 1;
        let head = std::fs::read(&j).unwrap();
        assert_eq!(
            detect(&j.to_string_lossy(), &head),
            Some(Format::WindowsJson),
            "{}",
            j.display()
        );
        let from_json = parse_file(&j, None).unwrap();
        assert!(
            from_json.rejects.is_empty(),
            "{}: {:?}",
            j.display(),
            from_json.rejects
        );
        assert_eq!(
            from_json.events.len(),
            from_evtx.events.len(),
            "{}",
            j.display()
        );
        let ids = |p: &mimamori_parse::Parsed| -> Vec<u64> {
            p.events
                .iter()
                .map(|e| e.raw["EventID"].as_u64().unwrap())
                .collect()
        };
        assert_eq!(ids(&from_json), ids(&from_evtx), "{}", j.display());
        // The JSON was rendered from the same records by another version of
        // the evtx crate: the same fields, classes and normalized values
        // (values differ only in rendering details such as GUID braces and
        // the seventh digit of TimeCreated).
        for (a, b) in from_json.events.iter().zip(&from_evtx.events) {
            let keys = |e: &mimamori_event::EventBody| e.raw.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(a), keys(b), "{}", j.display());
            assert_eq!(
                (a.class, &a.source, a.time),
                (b.class, &b.source, b.time),
                "{}",
                j.display()
            );
            assert_eq!(a.fields, b.fields, "{}", j.display());
        }
    }
    assert_eq!(json_files, 202);
    eprintln!("sigma regression: {total} events in 202 EVTX/JSON pairs");
}

#[test]
fn sigma_regression_multi_object_json() {
    // 13 of the JSON files hold several pretty-printed objects back to back.
    let dir = corpora().join("sigma/regression_data");
    let mut multi = 0;
    for j in files(&dir, ".json") {
        let p = parse_file(&j, Some(Format::WindowsJson)).unwrap();
        assert!(p.rejects.is_empty());
        if p.events.len() > 1 {
            multi += 1;
        }
    }
    assert_eq!(multi, 13);
}
