//! STIX 2.1 import and export over the corpora (`stix/`).

mod common;

use std::time::Instant;

use common::{corpora, files, now, prov, schemas};
use mimamori_intel::{
    export_stix, import_stix, ImportBatch, Indicator, IndicatorKind, Kind, StixError,
    StixExportOptions, StixOptions, StixSchemas, Tlp,
};
use serde_json::{json, Value};

fn opts() -> StixOptions {
    StixOptions::new(prov("test"))
}

fn import(bytes: &[u8]) -> Result<ImportBatch, StixError> {
    import_stix(bytes, schemas(), &opts())
}

fn import_file(rel: &str) -> ImportBatch {
    let p = corpora().join(rel);
    import(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The schemas built into the crate are OASIS's, byte for byte: the
/// folder they are compiled from holds exactly the corpora's copy of
/// cti-stix2-json-schemas, and loading the folder gives the same types.
#[test]
fn bundled_schemas_are_the_upstream_files() {
    let upstream = corpora().join("stix/schemas");
    let ours = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("stix-schemas");
    let rel = |root: &std::path::Path, files: Vec<std::path::PathBuf>| -> Vec<(String, Vec<u8>)> {
        files
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p.strip_prefix(root).unwrap().display().to_string(), bytes)
            })
            .collect()
    };
    let a = rel(&upstream, files(&upstream, ".json"));
    let b = rel(&ours, files(&ours, ".json"));
    assert_eq!(a.len(), 57);
    assert_eq!(
        a.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        b.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    for ((p, x), (_, y)) in a.iter().zip(&b) {
        assert!(x == y, "{p} differs from the upstream schema");
    }
    let loaded = StixSchemas::load(&upstream).unwrap();
    assert_eq!(format!("{loaded:?}"), format!("{:?}", schemas()));
}

#[test]
fn every_example_bundle_validates_and_imports() {
    let mut dirs = files(&corpora().join("stix/examples"), ".json");
    dirs.extend(files(&corpora().join("stix/cti-documentation"), ".json"));
    assert_eq!(dirs.len(), 19);
    let mut total_indicators = 0;
    for p in dirs {
        let bytes = std::fs::read(&p).unwrap();
        let strict = StixOptions {
            strict: true,
            ..opts()
        };
        let b = import_stix(&bytes, schemas(), &strict)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(b.rejects.is_empty(), "{}: {:?}", p.display(), b.rejects);
        total_indicators += b.indicators.len();
    }
    // apt1 and poisonivy appear twice (byte-identical copies).
    assert!(total_indicators > 100, "{total_indicators}");
}

#[test]
fn apt1_patterns_become_indicators() {
    let b = import_file("stix/examples/threat-reports/apt1.json");
    // The APT1 report's domain/IP patterns, the CIDRs among them, and its
    // x509 certificate patterns kept as unsupported.
    let cidr = b.get(Kind::Cidr, "58.246.0.0/15").expect("CIDR indicator");
    assert!(cidr.detection);
    assert_eq!(b.indicators.len(), 10);
    assert!(b.get(Kind::Domain, "hugesoft.org").is_some());
    assert!(b
        .get(Kind::Md5, "00dbb9e1c09dbdafb360f3163ba5a3de")
        .is_some());
    assert!(b
        .unsupported
        .iter()
        .any(|u| u.reason.contains("x509-certificate:issuer not supported")));
    // Indicators that indicate malware carry its name.
    assert!(
        b.indicators
            .iter()
            .any(|i| i.related.iter().any(|r| r.starts_with("malware:"))),
        "{:?}",
        b.indicators.iter().map(|i| &i.related).collect::<Vec<_>>()
    );
    assert_eq!(b.relations.len(), 30);
    assert!(b
        .objects
        .iter()
        .any(|o| o["type"] == "intrusion-set" && o["name"] == "APT1"));
}

#[test]
fn poisonivy_patterns_become_indicators() {
    let b = import_file("stix/examples/threat-reports/poisonivy.json");
    assert!(b.rejects.is_empty(), "{:?}", b.rejects);
    assert!(b.get(Kind::Domain, "www.webserver.fartit.com").is_some());
    assert!(b.get(Kind::Ipv4, "113.10.246.30").is_some());
    // `domain autuo.xicp.net` has a space: that one value is unusable, the
    // rest of its pattern is kept.
    assert!(b
        .unsupported
        .iter()
        .any(|u| u.reason.contains("domain autuo.xicp.net")));
    assert!(b.get(Kind::Ipv4, "60.10.1.115").is_some());
}

#[test]
fn relationships_resolve_to_related_names() {
    let b = import_file("stix/examples/indicator-to-campaign-relationship.json");
    let i = b.get(Kind::Ipv4, "10.0.0.0").unwrap();
    assert_eq!(i.related, vec!["campaign:Operation Omega"]);
    assert_eq!(
        i.stix_id.as_deref(),
        Some("indicator--c43a0a05-e8d2-4f64-ae37-3f3fb153f8d9")
    );
    assert_eq!(i.tags, vec!["malicious-activity"]);

    let b = import_file("stix/cti-documentation/malware-indicator-for-file-hash.json");
    let i = b
        .get(
            Kind::Sha256,
            "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c",
        )
        .unwrap();
    assert_eq!(i.related, vec!["malware:Poison Ivy"]);

    // Poison Ivy: indicator → campaign, and the campaign `uses` malware,
    // so the malware's name reaches the indicator too.
    let b = import_file("stix/examples/threat-reports/poisonivy.json");
    assert!(b.indicators.iter().any(|i| {
        i.related.iter().any(|r| r.starts_with("campaign:"))
            && i.related.iter().any(|r| r.starts_with("malware:"))
    }));
}

#[test]
fn tlp_from_object_marking_refs() {
    let b = import_file("stix/cti-documentation/using-marking-definitions.json");
    assert_eq!(b.get(Kind::Ipv4, "10.0.0.0").unwrap().tlp, Tlp::Amber);
    let b = import_file("stix/cti-documentation/using-granular-markings.json");
    // No object-level TLP: the provenance's default.
    assert!(b.indicators.iter().all(|i| i.tlp == Tlp::Amber));
    let red = json!({
        "type": "bundle", "id": "bundle--0d5b3e6c-4f5a-4f0e-9a53-2b1f5f0f6b11",
        "objects": [{
            "type": "indicator", "spec_version": "2.1",
            "id": "indicator--0d5b3e6c-4f5a-4f0e-9a53-2b1f5f0f6b12",
            "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
            "pattern": "[url:value = 'hxxp://evil.example/x']", "pattern_type": "stix",
            "valid_from": "2020-01-01T00:00:00.000Z",
            "object_marking_refs": [
                "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
                "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
            ]
        }]
    });
    let b = import(red.to_string().as_bytes()).unwrap();
    // Green and red both apply: the stricter wins.
    assert_eq!(
        b.get(Kind::Url, "http://evil.example/x").unwrap().tlp,
        Tlp::Red
    );
}

#[test]
fn validator_cases_have_the_expected_outcomes() {
    let dir = corpora().join("stix/validator-cases/test_examples");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    for ok in [
        "identity.json",
        "identity_unicode.json",
        "identity_custom.json",
    ] {
        let b = import(&read(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(b.rejects.is_empty(), "{ok}: {:?}", b.rejects);
        assert_eq!(b.objects.len(), 1, "{ok}");
    }
    for bad in ["invalid_braces.json", "invalid_comma.json"] {
        assert!(
            matches!(import(&read(bad)), Err(StixError::Json(_))),
            "{bad}"
        );
    }
    let b = import(&read("invalid_identity.json")).unwrap();
    assert_eq!(b.rejects.len(), 1, "{:?}", b.rejects);
    assert_eq!(b.rejects[0].path, "$");
    assert!(b.rejects[0].reason.contains("modified"), "{:?}", b.rejects);
    assert!(b.objects.is_empty());

    let b = import(&read("invalid_timestamp.json")).unwrap();
    assert_eq!(b.rejects.len(), 1, "{:?}", b.rejects);
    assert_eq!(b.rejects[0].path, "$.modified");
    assert!(b.rejects[0].reason.contains("earlier than created"));

    let strict = StixOptions {
        strict: true,
        ..opts()
    };
    assert!(matches!(
        import_stix(&read("invalid_timestamp.json"), schemas(), &strict),
        Err(StixError::Strict(r)) if r.len() == 1
    ));
    // tlp-amber.json: the TLP 2.0 marking definition.
    let b = import(&read("tlp-amber.json")).unwrap();
    assert!(b.rejects.is_empty(), "{:?}", b.rejects);
}

fn indicator_obj(id: u32, pattern: &str) -> Value {
    json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--00000000-0000-4000-8000-{id:012}"),
        "created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-02T00:00:00.000Z",
        "pattern": pattern, "pattern_type": "stix",
        "valid_from": "2020-01-01T00:00:00.000Z",
    })
}

#[test]
fn strict_mode_rejects_the_whole_bundle() {
    let mut missing = indicator_obj(2, "[domain-name:value = 'b.example']");
    missing.as_object_mut().unwrap().remove("valid_from");
    let bundle = json!({
        "type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000",
        "objects": [
            indicator_obj(1, "[domain-name:value = 'a.example']"),
            missing,
            indicator_obj(3, "[domain-name:value = 'c.example'"),
        ]
    });
    let bytes = bundle.to_string();
    let lax = import(bytes.as_bytes()).unwrap();
    assert_eq!(lax.indicators.len(), 1);
    assert_eq!(lax.indicators[0].value, "a.example");
    assert_eq!(lax.rejects.len(), 2, "{:?}", lax.rejects);
    assert!(lax.rejects[0].path.starts_with("$.objects[1]"));
    assert!(lax.rejects[0].reason.contains("valid_from"));
    // A pattern that does not parse is a reject, located at the pattern.
    assert_eq!(lax.rejects[1].path, "$.objects[2].pattern");
    assert!(lax.rejects[1].reason.contains("expected ']'"));

    let strict = StixOptions {
        strict: true,
        ..opts()
    };
    match import_stix(bytes.as_bytes(), schemas(), &strict) {
        Err(StixError::Strict(r)) => assert_eq!(r.len(), 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn limits_are_enforced() {
    let bundle = json!({
        "type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000",
        "objects": [indicator_obj(1, "[ipv4-addr:value = '1.2.3.4']"),
                    indicator_obj(2, "[ipv4-addr:value = '1.2.3.5']")]
    })
    .to_string();
    let small = StixOptions {
        max_objects: 1,
        ..opts()
    };
    assert!(matches!(
        import_stix(bundle.as_bytes(), schemas(), &small),
        Err(StixError::TooManyObjects { count: 2, limit: 1 })
    ));
    let tiny = StixOptions {
        max_bytes: 10,
        ..opts()
    };
    assert!(matches!(
        import_stix(bundle.as_bytes(), schemas(), &tiny),
        Err(StixError::TooLarge { .. })
    ));
}

#[test]
fn observables_become_context_indicators() {
    let b = import_file("stix/examples/infrastructure.json");
    let ip = b
        .indicators
        .iter()
        .find(|i| i.kind == IndicatorKind::Ipv4)
        .expect("ipv4-addr SCO");
    assert!(!ip.detection, "observables are context only by default");
    assert!(b
        .indicators
        .iter()
        .any(|i| matches!(i.kind, IndicatorKind::Domain { exact: false })));
    let with = StixOptions {
        sco_detection: true,
        ..opts()
    };
    let bytes = std::fs::read(corpora().join("stix/examples/infrastructure.json")).unwrap();
    let b = import_stix(&bytes, schemas(), &with).unwrap();
    assert!(b.indicators.iter().all(|i| i.detection));
}

/// Indicators compared without their STIX id (export gives new ids).
fn comparable(b: &ImportBatch) -> Vec<Indicator> {
    let mut v: Vec<Indicator> = b
        .indicators
        .iter()
        .cloned()
        .map(|mut i| {
            i.stix_id = None;
            i
        })
        .collect();
    v.sort_by(|a, b| (a.kind, &a.value).cmp(&(b.kind, &b.value)));
    v
}

#[test]
fn export_round_trips() {
    let export_opts = StixExportOptions {
        max_tlp: Tlp::Red,
        now: now(),
    };
    for rel in [
        "stix/examples/threat-reports/poisonivy.json",
        "stix/examples/threat-reports/apt1.json",
        "stix/cti-documentation/using-marking-definitions.json",
    ] {
        let first = import_file(rel);
        let bundle = export_stix(
            &first.indicators,
            &first.relations,
            &first.objects,
            &export_opts,
        );
        let bytes = serde_json::to_vec(&bundle).unwrap();
        // The export is itself valid STIX 2.1 (strict import succeeds).
        let strict = StixOptions {
            strict: true,
            ..opts()
        };
        let second =
            import_stix(&bytes, schemas(), &strict).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(comparable(&first), comparable(&second), "{rel}");
        // Deterministic: exporting the re-import gives the same bundle.
        let again = export_stix(
            &second.indicators,
            &second.relations,
            &second.objects,
            &export_opts,
        );
        assert_eq!(bundle, again, "{rel}");
        // Every reference in the bundle points into it (or is a TLP marking).
        let ids: std::collections::HashSet<&str> = bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["id"].as_str())
            .collect();
        for o in bundle["objects"].as_array().unwrap() {
            for r in o["object_refs"].as_array().into_iter().flatten() {
                assert!(ids.contains(r.as_str().unwrap()), "{rel}: dangling {r}");
            }
        }
    }
}

#[test]
fn export_respects_tlp_and_non_exact_domains() {
    let p = prov("feed");
    let mut a = p.indicator(
        IndicatorKind::Domain { exact: false },
        "evil.example".into(),
    );
    a.tlp = Tlp::Green;
    let mut b = p.indicator(IndicatorKind::Ipv4, "192.0.2.1".into());
    b.tlp = Tlp::Red;
    let bundle = export_stix(
        &[a.clone(), b],
        &[],
        &[],
        &StixExportOptions {
            max_tlp: Tlp::Amber,
            now: now(),
        },
    );
    let objs = bundle["objects"].as_array().unwrap();
    let inds: Vec<&Value> = objs.iter().filter(|o| o["type"] == "indicator").collect();
    assert_eq!(inds.len(), 1, "the TLP:RED indicator stays home");
    assert_eq!(
        inds[0]["object_marking_refs"][0],
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
    );
    assert!(objs
        .iter()
        .any(|o| o["type"] == "marking-definition" && o["name"] == "TLP:GREEN"));
    let back = import(bundle.to_string().as_bytes()).unwrap();
    assert!(back.rejects.is_empty(), "{:?}", back.rejects);
    let got = back.get(Kind::Domain, "evil.example").unwrap();
    assert_eq!(got.kind, IndicatorKind::Domain { exact: false });
    assert_eq!(got.tlp, Tlp::Green);
}

#[test]
fn ics_attack_imports() {
    let bytes = std::fs::read(corpora().join("stix/large/ics-attack.json")).unwrap();
    let t = Instant::now();
    let b = import(&bytes).unwrap();
    let took = t.elapsed();
    println!(
        "ics-attack.json: {} bytes, {} objects kept, {} relations, {} rejects in {took:?}",
        bytes.len(),
        b.objects.len(),
        b.relations.len(),
        b.rejects.len()
    );
    assert!(
        b.rejects.is_empty(),
        "{:?}",
        &b.rejects[..b.rejects.len().min(5)]
    );
    assert_eq!(b.relations.len(), 1373);
    // Everything but the relationships is kept as an object.
    assert_eq!(b.objects.len(), 1826 - 1373);
    assert!(b.indicators.is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Mutated bundles never panic the importer; whatever it keeps passed
    /// validation, so a strict import of the same bytes fails exactly when
    /// something was rejected.
    #[test]
    fn mutated_bundles_never_panic(pos in 0usize..4000, byte in proptest::prelude::any::<u8>()) {
        let mut bytes = std::fs::read(
            corpora().join("stix/examples/indicators-for-C2-with-COA.json"),
        ).unwrap();
        let i = pos % bytes.len();
        bytes[i] = byte;
        let lax = import(&bytes);
        let strict = import_stix(&bytes, schemas(), &StixOptions { strict: true, ..opts() });
        if let Ok(b) = lax {
            proptest::prop_assert_eq!(b.rejects.is_empty(), strict.is_ok());
        }
    }
}
