//! MISP events (corpora `misp/events`) and feeds.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use common::{corpora, files, now, prov};
use mimamori_intel::{
    export_misp_feed, import_misp_event, import_misp_feed, import_misp_feed_dir, IndicatorKind,
    Kind, MispError, MispFeedExport, MispOptions, Tlp,
};
use serde_json::{json, Value};

fn opts() -> MispOptions {
    MispOptions::new(prov("misp-test"))
}

fn event(rel: &str) -> mimamori_intel::ImportBatch {
    let bytes = std::fs::read(corpora().join("misp/events").join(rel)).unwrap();
    import_misp_event(&bytes, &opts()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_event_document_imports_or_is_refused_cleanly() {
    let all = files(&corpora().join("misp/events"), ".json");
    assert!(all.len() >= 29, "{}", all.len());
    let mut indicators = 0;
    let mut rejects = Vec::new();
    for p in &all {
        let bytes = std::fs::read(p).unwrap();
        match import_misp_event(&bytes, &opts()) {
            Ok(b) => {
                indicators += b.indicators.len();
                rejects.extend(b.rejects);
            }
            // Object templates, galaxies and sightings are not events.
            Err(MispError::NotMisp(_)) => {
                let name = p.file_name().unwrap().to_string_lossy();
                assert!(
                    [
                        "definition.json",
                        "galaxy.json",
                        "sighting.json",
                        "simple.json"
                    ]
                    .contains(&name.as_ref())
                        || p.to_string_lossy().contains("test_object_template"),
                    "{}",
                    p.display()
                );
            }
            Err(e) => panic!("{}: {e}", p.display()),
        }
    }
    assert!(indicators > 500, "{indicators}");
    // The only bad values in the corpus: two `url` attributes of
    // long_event.json that are relative paths (`Data/dtl.dat`).
    assert_eq!(rejects.len(), 2, "{rejects:?}");
    assert!(rejects
        .iter()
        .all(|r| r.path.starts_with("$.Event.Attribute[")
            && r.reason.starts_with("url: invalid URL \"Data/")));
}

#[test]
fn long_event_types_to_ids_and_tlp() {
    let b = event("reportlab_testfiles/long_event.json");
    // Counted per type: reference links, YARA, vulnerabilities, …
    assert_eq!(b.unsupported_types.get("link"), Some(&64));
    assert_eq!(b.unsupported_types.get("yara"), Some(&1));
    assert_eq!(b.unsupported_types.get("vulnerability"), Some(&4));
    assert!(!b.unsupported_types.contains_key("md5"));
    // Event tag tlp:white → CLEAR on everything.
    assert!(b.indicators.iter().all(|i| i.tlp == Tlp::Clear));
    assert!(b
        .indicators
        .iter()
        .all(|i| i.tags.contains(&"type:OSINT".to_owned())));
    assert!(b.indicators.iter().all(|i| i
        .sources
        .contains(&"misp-event:57153590-f73c-49fa-be4b-4737950d210f".to_owned())));
    // to_ids false → context only, true → detection. Hostnames cover
    // their sub-domains by default, as every domain does.
    let hostnames: Vec<_> = b
        .indicators
        .iter()
        .filter(|i| i.kind == IndicatorKind::Domain { exact: false })
        .collect();
    assert!(hostnames.iter().any(|i| i.detection));
    assert!(hostnames.iter().any(|i| !i.detection));
    let files: Vec<_> = b
        .indicators
        .iter()
        .filter(|i| i.kind == IndicatorKind::FileName)
        .collect();
    assert!(!files.is_empty());
    // filename|sha256 contributes its hash.
    assert!(
        b.indicators
            .iter()
            .filter(|i| i.kind == IndicatorKind::Sha256)
            .count()
            >= 40
    );
}

#[test]
fn galaxy_tags_give_related_threats() {
    let b = event("mispevent_testfiles/existing_event.json");
    let d = b
        .indicators
        .iter()
        .find(|i| matches!(i.kind, IndicatorKind::Domain { exact: false }))
        .expect("a domain attribute");
    assert!(
        d.related.contains(&"threat-actor:Sofacy".to_owned()),
        "{:?}",
        d.related
    );
    assert!(d.related.contains(&"mitre-malware:CHOPSTICK".to_owned()));
    assert_eq!(d.tlp, Tlp::Clear);
    // Object attributes (ip-dst inside objects) are imported too.
    assert!(b.indicators.iter().any(|i| i.kind == IndicatorKind::Ipv4));
}

#[test]
fn tlp_precedence_and_distribution() {
    let doc = json!({"Event": {
        "uuid": "5b1e8a3c-0000-4000-8000-000000000001", "info": "t", "date": "2024-05-01",
        "distribution": "1",
        "Attribute": [
            {"type": "domain", "value": "a.example", "to_ids": true},
            {"type": "ip-dst", "value": "192.0.2.1", "to_ids": true, "distribution": "0"},
            {"type": "url", "value": "hxxp://b[.]example/x", "to_ids": "1",
             "Tag": [{"name": "tlp:red"}]},
            {"type": "ip-src|port", "value": "198.51.100.7|8080", "to_ids": true, "distribution": "5"},
            {"type": "md5", "value": "not-a-hash", "to_ids": true},
            {"type": "comment", "value": "x"},
            {"type": "domain", "value": "gone.example", "deleted": true}
        ],
        "Object": [{"name": "domain-ip", "distribution": "3", "Attribute": [
            {"type": "domain", "value": "c.example", "to_ids": false},
            {"type": "ip-dst", "value": "10.0.0.0/8", "to_ids": true}
        ]}]
    }});
    let b = import_misp_event(doc.to_string().as_bytes(), &opts()).unwrap();
    let tlp = |k: Kind, v: &str| b.get(k, v).unwrap_or_else(|| panic!("{v}")).tlp;
    assert_eq!(tlp(Kind::Domain, "a.example"), Tlp::Amber);
    assert_eq!(tlp(Kind::Ipv4, "192.0.2.1"), Tlp::AmberStrict);
    assert_eq!(tlp(Kind::Url, "http://b.example/x"), Tlp::Red);
    assert_eq!(tlp(Kind::Ipv4, "198.51.100.7"), Tlp::Amber);
    assert_eq!(tlp(Kind::Domain, "c.example"), Tlp::Green);
    assert_eq!(tlp(Kind::Cidr, "10.0.0.0/8"), Tlp::Green);
    assert!(!b.get(Kind::Domain, "c.example").unwrap().detection);
    assert!(b.get(Kind::Domain, "gone.example").is_none());
    assert_eq!(
        b.get(Kind::Domain, "c.example").unwrap().tags,
        vec!["misp-object:domain-ip"]
    );
    assert_eq!(b.rejects.len(), 1);
    assert_eq!(b.rejects[0].path, "$.Event.Attribute[4].value");
    assert!(
        b.rejects[0].reason.starts_with("md5: invalid MD5 hash"),
        "{}",
        b.rejects[0].reason
    );
    assert_eq!(b.unsupported_types.get("comment"), Some(&1));
    // The event date is the first sighting when attributes have none.
    assert_eq!(
        b.get(Kind::Domain, "a.example").unwrap().first_seen,
        time::macros::datetime!(2024-05-01 0:00 UTC)
    );

    let strict = MispOptions {
        strict: true,
        ..opts()
    };
    assert!(matches!(
        import_misp_event(doc.to_string().as_bytes(), &strict),
        Err(MispError::Strict(r)) if r.len() == 1
    ));
}

fn export_opts(max: Tlp) -> MispFeedExport {
    MispFeedExport {
        feed_name: "mimamori test feed".into(),
        org_name: "SOC".into(),
        org_uuid: uuid::Uuid::nil(),
        max_tlp: max,
        now: now(),
    }
}

#[test]
fn feed_export_round_trips_and_respects_tlp() {
    let src = event("reportlab_testfiles/long_event.json");
    let mut inds = src.indicators.clone();
    inds[0].tlp = Tlp::Red;
    inds[1].tlp = Tlp::Green;
    inds[1].attack_techniques = vec!["T1566.001".into()];
    inds[1].related = vec!["malware:PlugX".into()];
    let feed = export_misp_feed(&inds, &export_opts(Tlp::Amber));
    // manifest.json + hashes.csv + one event per TLP present (clear, green).
    assert_eq!(feed.len(), 4, "{:?}", feed.keys().collect::<Vec<_>>());
    let manifest: Value = serde_json::from_slice(&feed["manifest.json"]).unwrap();
    assert_eq!(manifest.as_object().unwrap().len(), 2);
    for (uuid, meta) in manifest.as_object().unwrap() {
        assert!(feed.contains_key(&format!("{uuid}.json")));
        for k in ["info", "Orgc", "timestamp", "date", "integrity:sha256"] {
            assert!(meta.get(k).is_some(), "{k}");
        }
    }
    let hashes = String::from_utf8(feed["hashes.csv"].clone()).unwrap();
    assert_eq!(hashes.lines().count(), inds.len() - 1);

    let back = import_misp_feed(&feed, &opts()).unwrap();
    assert!(back.rejects.is_empty(), "{:?}", back.rejects);
    assert_eq!(
        back.indicators.len(),
        inds.len() - 1,
        "the TLP:RED one stays home"
    );
    for orig in inds.iter().filter(|i| i.tlp <= Tlp::Amber) {
        let got = back.get(orig.kind.key(), &orig.value).unwrap();
        assert_eq!(got.kind, orig.kind);
        assert_eq!(got.tlp, orig.tlp);
        assert_eq!(got.detection, orig.detection);
        assert_eq!(got.first_seen, orig.first_seen);
        assert_eq!(got.attack_techniques, orig.attack_techniques);
        assert_eq!(got.related, orig.related);
        for t in &orig.tags {
            assert!(got.tags.contains(t));
        }
    }
    assert!(back.get(inds[0].kind.key(), &inds[0].value).is_none());
    // Deterministic.
    assert_eq!(feed, export_misp_feed(&inds, &export_opts(Tlp::Amber)));
}

#[test]
fn feed_integrity_and_missing_files_are_rejected() {
    let p = prov("x");
    let ind = p.indicator(
        IndicatorKind::Domain { exact: false },
        "evil.example".into(),
    );
    let mut feed = export_misp_feed(&[ind], &export_opts(Tlp::Red));
    let event_name = feed
        .keys()
        .find(|k| k.ends_with(".json") && *k != "manifest.json")
        .unwrap()
        .clone();
    // Tamper with the event: the manifest's SHA-256 no longer matches.
    let mut tampered = feed[&event_name].clone();
    tampered.extend_from_slice(b" ");
    feed.insert(event_name.clone(), tampered);
    feed.get_mut("hashes.csv")
        .unwrap()
        .extend_from_slice(b"zz,unknown\n");
    let b = import_misp_feed(&feed, &opts()).unwrap();
    assert!(b.indicators.is_empty());
    assert_eq!(b.rejects.len(), 2, "{:?}", b.rejects);
    assert_eq!(b.rejects[0].path, event_name);
    assert!(b.rejects[0].reason.contains("does not match"));
    assert_eq!(b.rejects[1].path, "hashes.csv:line 2");

    feed.remove(&event_name);
    let b = import_misp_feed(&feed, &opts()).unwrap();
    assert!(b.rejects[0].reason.contains("missing"));
    let strict = MispOptions {
        strict: true,
        ..opts()
    };
    assert!(matches!(
        import_misp_feed(&feed, &strict),
        Err(MispError::Strict(_))
    ));
    feed.remove("manifest.json");
    assert!(matches!(
        import_misp_feed(&feed, &opts()),
        Err(MispError::NoManifest)
    ));
}

#[test]
fn feed_directory_with_gzip_and_a_bomb() {
    let p = prov("x");
    let ind = p.indicator(IndicatorKind::Ipv4, "192.0.2.9".into());
    let feed = export_misp_feed(&[ind], &export_opts(Tlp::Red));
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in &feed {
        if name.ends_with(".json") && name != "manifest.json" {
            // Event files may be stored gzipped.
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(bytes).unwrap();
            std::fs::write(dir.path().join(format!("{name}.gz")), e.finish().unwrap()).unwrap();
        } else {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
    }
    let b = import_misp_feed_dir(dir.path(), &opts()).unwrap();
    assert!(b.rejects.is_empty(), "{:?}", b.rejects);
    assert_eq!(b.indicators.len(), 1);

    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![b' '; 32 << 20]).unwrap();
    let mut files: BTreeMap<String, Vec<u8>> = feed.clone();
    files.insert("bomb.json.gz".into(), e.finish().unwrap());
    assert!(matches!(
        import_misp_feed(&files, &opts()),
        Err(MispError::Inflate(_))
    ));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Mutated events never panic the importer.
    #[test]
    fn mutated_events_never_panic(pos in 0usize..100_000, byte in proptest::prelude::any::<u8>()) {
        let mut bytes = std::fs::read(
            corpora().join("misp/events/reportlab_testfiles/to_delete3.json"),
        ).unwrap();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let _ = import_misp_event(&bytes, &opts());
    }
}
