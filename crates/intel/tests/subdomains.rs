//! Sub-domain coverage (issue 22): a domain indicator covers its
//! sub-domains by default for every source format, a source can say
//! otherwise, an indicator's own marker wins, and the matcher index never
//! takes a look-alike (`notbad.example`) for a sub-domain.

mod common;

use common::{now, prov, schemas};
use mimamori_intel::{
    export_misp_feed, export_stix, import_list, import_misp_event, import_misp_feed, import_stix,
    ImportBatch, IndicatorIndex, Kind, ListFormat, ListOptions, MispFeedExport, MispOptions,
    Provenance, StixExportOptions, StixOptions, Tlp,
};
use serde_json::json;

fn source(subdomains: bool) -> Provenance {
    let mut p = prov("t");
    p.subdomains = subdomains;
    p
}

fn covers(b: &ImportBatch, value: &str) -> Option<bool> {
    b.get(Kind::Domain, value)
        .unwrap_or_else(|| panic!("{value} not imported: {:?}", b.rejects))
        .subdomains()
}

fn stix_bundle() -> Vec<u8> {
    let ind = |id: u32, pattern: &str, extra: serde_json::Value| {
        let mut o = json!({
            "type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--00000000-0000-4000-8000-{id:012}"),
            "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-02T00:00:00.000Z",
            "pattern": pattern, "pattern_type": "stix",
            "indicator_types": ["malicious-activity"],
            "valid_from": "2026-01-01T00:00:00.000Z",
            "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"],
        });
        if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        o
    };
    json!({
        "type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001",
        "objects": [
            ind(1, "[domain-name:value = 'bad.example']", json!({})),
            ind(2, "[domain-name:value = 'only.example']", json!({"x_mimamori_subdomains": false})),
            ind(3, "[domain-name:value LIKE '%.wide.example']", json!({})),
            ind(4, "[domain-name:value = 'forced.example']", json!({"x_mimamori_subdomains": true})),
        ]
    })
    .to_string()
    .into_bytes()
}

#[test]
fn stix_domains_cover_sub_domains_unless_told() {
    let b = import_stix(&stix_bundle(), schemas(), &StixOptions::new(source(true))).unwrap();
    assert!(b.rejects.is_empty(), "{:?}", b.rejects);
    assert_eq!(
        b.get(Kind::Domain, "bad.example").map(|i| i.tlp),
        Some(Tlp::Green)
    );
    assert_eq!(covers(&b, "bad.example"), Some(true));
    assert_eq!(covers(&b, "only.example"), Some(false));
    assert_eq!(covers(&b, "wide.example"), Some(true));
    assert_eq!(covers(&b, "forced.example"), Some(true));

    // A source of exact names: `=` is exact, `LIKE '%.name'` and the
    // property still widen.
    let b = import_stix(&stix_bundle(), schemas(), &StixOptions::new(source(false))).unwrap();
    assert_eq!(covers(&b, "bad.example"), Some(false));
    assert_eq!(covers(&b, "only.example"), Some(false));
    assert_eq!(covers(&b, "wide.example"), Some(true));
    assert_eq!(covers(&b, "forced.example"), Some(true));

    // Export → import keeps each indicator's coverage whatever the
    // importing source's default.
    let inds = import_stix(&stix_bundle(), schemas(), &StixOptions::new(source(true)))
        .unwrap()
        .indicators;
    let out = export_stix(
        &inds,
        &[],
        &[],
        &StixExportOptions {
            max_tlp: Tlp::Red,
            now: now(),
        },
    );
    let bytes = serde_json::to_vec(&out).unwrap();
    for sub in [true, false] {
        let back = import_stix(&bytes, schemas(), &StixOptions::new(source(sub))).unwrap();
        assert_eq!(covers(&back, "bad.example"), Some(true));
        assert_eq!(covers(&back, "only.example"), Some(false));
    }
}

#[test]
fn stix_observables_follow_the_same_rule() {
    let doc = json!({
        "type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000002",
        "objects": [
            {"type": "domain-name", "spec_version": "2.1",
             "id": "domain-name--00000000-0000-4000-8000-000000000001", "value": "seen.example"},
            {"type": "domain-name", "spec_version": "2.1",
             "id": "domain-name--00000000-0000-4000-8000-000000000002", "value": "host.example",
             "x_mimamori_subdomains": false},
        ]
    });
    let b = import_stix(
        doc.to_string().as_bytes(),
        schemas(),
        &StixOptions::new(source(true)),
    )
    .unwrap();
    assert_eq!(covers(&b, "seen.example"), Some(true));
    assert_eq!(covers(&b, "host.example"), Some(false));
}

fn misp_event() -> Vec<u8> {
    json!({"Event": {
        "uuid": "5b0e3c8a-0000-4000-8000-000000000001",
        "info": "x", "date": "2026-01-01", "distribution": "1",
        "Attribute": [
            {"type": "domain", "value": "bad.example", "to_ids": true},
            {"type": "hostname", "value": "c2.evil.example", "to_ids": true},
            {"type": "domain", "value": "only.example", "to_ids": true,
             "Tag": [{"name": "mimamori:subdomains=\"false\""}]},
            {"type": "domain|ip", "value": "pair.example|192.0.2.7", "to_ids": true},
        ]
    }})
    .to_string()
    .into_bytes()
}

#[test]
fn misp_domains_and_hostnames_cover_sub_domains_unless_tagged() {
    let b = import_misp_event(&misp_event(), &MispOptions::new(source(true))).unwrap();
    assert_eq!(covers(&b, "bad.example"), Some(true));
    assert_eq!(covers(&b, "c2.evil.example"), Some(true));
    assert_eq!(covers(&b, "only.example"), Some(false));
    assert_eq!(covers(&b, "pair.example"), Some(true));
    // The marker is a setting, not a tag kept on the indicator.
    assert!(b
        .get(Kind::Domain, "only.example")
        .is_some_and(|i| i.tags.iter().all(|t| !t.starts_with("mimamori:"))));

    let b = import_misp_event(&misp_event(), &MispOptions::new(source(false))).unwrap();
    assert_eq!(covers(&b, "bad.example"), Some(false));
    assert_eq!(covers(&b, "c2.evil.example"), Some(false));

    // An event-level tag covers every attribute; an attribute's own wins.
    let doc = json!({"Event": {
        "info": "x", "date": "2026-01-01",
        "Tag": [{"name": "mimamori:subdomains=\"false\""}],
        "Attribute": [
            {"type": "domain", "value": "a.example", "to_ids": true},
            {"type": "domain", "value": "b.example", "to_ids": true,
             "Tag": [{"name": "mimamori:subdomains=\"true\""}]},
        ]
    }});
    let b = import_misp_event(doc.to_string().as_bytes(), &MispOptions::new(source(true))).unwrap();
    assert_eq!(covers(&b, "a.example"), Some(false));
    assert_eq!(covers(&b, "b.example"), Some(true));

    // A feed exported and read back keeps each attribute's coverage.
    let inds = import_misp_event(&misp_event(), &MispOptions::new(source(true)))
        .unwrap()
        .indicators;
    let files = export_misp_feed(
        &inds,
        &MispFeedExport {
            feed_name: "f".into(),
            org_name: "o".into(),
            org_uuid: uuid::Uuid::nil(),
            max_tlp: Tlp::Red,
            now: now(),
        },
    );
    let back = import_misp_feed(&files, &MispOptions::new(source(false))).unwrap();
    assert_eq!(covers(&back, "bad.example"), Some(true));
    assert_eq!(covers(&back, "only.example"), Some(false));
}

#[test]
fn lists_cover_sub_domains_unless_marked() {
    let text = "bad.example\n=only.example\n*.wide.example\n";
    for format in [ListFormat::Plain, ListFormat::Csv] {
        let b = import_list(text, format, &ListOptions::new(source(true)));
        assert!(b.rejects.is_empty(), "{format:?}: {:?}", b.rejects);
        assert_eq!(covers(&b, "bad.example"), Some(true));
        assert_eq!(covers(&b, "only.example"), Some(false));
        assert_eq!(covers(&b, "wide.example"), Some(true));
        let b = import_list(text, format, &ListOptions::new(source(false)));
        assert_eq!(covers(&b, "bad.example"), Some(false));
        assert_eq!(covers(&b, "only.example"), Some(false));
        assert_eq!(covers(&b, "wide.example"), Some(true));
    }
    let b = import_list(
        "0.0.0.0 bad.example =only.example\n",
        ListFormat::Hosts,
        &ListOptions::new(source(true)),
    );
    assert_eq!(covers(&b, "bad.example"), Some(true));
    assert_eq!(covers(&b, "only.example"), Some(false));
}

/// What the importers make, the index matches on label boundaries only.
#[test]
fn the_index_matches_sub_domains_and_never_a_look_alike() {
    let b = import_list(
        "bad.example\n=only.example\n",
        ListFormat::Plain,
        &ListOptions::new(source(true)),
    );
    let ix = IndicatorIndex::build(
        b.indicators
            .iter()
            .enumerate()
            .map(|(i, ind)| (i as u32, ind.kind, ind.value.as_str())),
    );
    assert_eq!(ix.match_domain("bad.example"), Some(0));
    assert_eq!(ix.match_domain("update.bad.example"), Some(0));
    assert_eq!(ix.match_domain("cdn7.bad.example"), Some(0));
    assert_eq!(ix.match_domain("a.b.c.bad.example"), Some(0));
    assert_eq!(ix.match_domain("notbad.example"), None);
    assert_eq!(ix.match_domain("x.notbad.example"), None);
    assert_eq!(ix.match_domain("bad.example.evil"), None);
    assert_eq!(ix.match_domain("only.example"), Some(1));
    assert_eq!(ix.match_domain("www.only.example"), None);
    assert_eq!(ix.match_domain("example"), None);
}
