//! Zeek and CloudTrail logs from the shared corpora.

mod common;

use common::{corpora, files};
use mimamori_event::OcsfClass;
use mimamori_parse::{detect, parse_bytes, parse_file, Format, LineParser};
use std::io::Read;
use std::path::Path;

fn gunzip(p: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Per-log record counts of `zeek/wrccdc/zeek-json` (one JSON object per line).
const WRCCDC_JSON: [(&str, usize); 32] = [
    ("analyzer", 16_461),
    ("capture_loss", 3),
    ("dce_rpc", 78),
    ("dns", 53_615),
    ("dpd", 77),
    ("ftp", 93),
    ("kerberos", 11),
    ("known_certs", 35),
    ("known_hosts", 253),
    ("known_services", 1_579),
    ("ldap_search", 1),
    ("loaded_scripts", 512),
    ("modbus", 268),
    ("notice", 207),
    ("ntlm", 422),
    ("ntp", 904),
    ("ocsp", 1_308),
    ("packet_filter", 1),
    ("pe", 21),
    ("rdp", 4_122),
    ("rfb", 3),
    ("smb_files", 13),
    ("smb_mapping", 393),
    ("smtp", 1_188),
    ("snmp", 65),
    ("software", 376),
    ("ssh", 22),
    ("ssl", 49_474),
    ("stats", 6),
    ("syslog", 2_378),
    ("weird", 24_202),
    ("x509", 348),
];

#[test]
fn wrccdc_zeek_json_counts() {
    let dir = corpora().join("zeek/wrccdc/zeek-json");
    let paths = files(&dir, ".json.gz");
    assert_eq!(paths.len(), WRCCDC_JSON.len());
    for (log, count) in WRCCDC_JSON {
        let p = dir.join(format!("{log}.json.gz"));
        let head = gunzip(&p);
        assert_eq!(
            detect(&p.to_string_lossy(), &head[..head.len().min(4096)]),
            Some(Format::ZeekJson),
            "{log}"
        );
        let parsed = parse_file(&p, None).unwrap();
        assert!(
            parsed.rejects.is_empty(),
            "{log}: {:?}",
            &parsed.rejects[..parsed.rejects.len().min(3)]
        );
        assert_eq!(parsed.events.len(), count, "{log}");
        let want = match log {
            "dns" => OcsfClass::DnsActivity,
            "ssl" => OcsfClass::NetworkActivity,
            "kerberos" | "ntlm" => OcsfClass::Authentication,
            _ => OcsfClass::BaseEvent,
        };
        for e in &parsed.events {
            assert_eq!(e.source, format!("zeek.{log}"));
            assert_eq!(e.class, want, "{log}");
            // loaded_scripts records have no `ts`.
            assert_eq!(e.time.is_some(), log != "loaded_scripts", "{log}: time");
        }
    }
}

#[test]
fn wrccdc_zeek_tsv_matches_json() {
    let dir = corpora().join("zeek/wrccdc");
    for (log, count) in [("dns", 53_615), ("ssl", 49_474)] {
        let tsv_path = dir.join(format!("zeek-default/{log}.log.gz"));
        let head = gunzip(&tsv_path);
        assert_eq!(
            detect(&tsv_path.to_string_lossy(), &head[..4096]),
            Some(Format::ZeekTsv)
        );
        let tsv = parse_file(&tsv_path, None).unwrap();
        let json = parse_file(&dir.join(format!("zeek-json/{log}.json.gz")), None).unwrap();
        assert!(
            tsv.rejects.is_empty(),
            "{log}: {:?}",
            &tsv.rejects[..tsv.rejects.len().min(3)]
        );
        assert_eq!(tsv.events.len(), count);
        assert_eq!(json.events.len(), count);
        // The same records, so the same normalization: every record's time,
        // class, source and normalized fields agree (and for the first 1000
        // some raw fields, which otherwise differ in rendering: ISO vs epoch
        // `ts`, rounded `rtt`).
        for (i, (t, j)) in tsv.events.iter().zip(&json.events).enumerate() {
            assert_eq!(
                (t.time, t.class, &t.source),
                (j.time, j.class, &j.source),
                "{log} record {i}"
            );
            assert_eq!(t.fields, j.fields, "{log} record {i}");
            if i < 1000 {
                assert_eq!(t.raw["uid"], j.raw["uid"]);
                assert_eq!(t.raw.get("id.orig_h"), j.raw.get("id.orig_h"));
            }
        }
        if log == "dns" {
            let e = &tsv.events[0];
            assert_eq!(e.fields.dns_query.as_deref(), Some("ise.wrccdc.org"));
            assert_eq!(
                e.fields.dns_answers,
                vec!["ise.wrccdc.cpp.edu", "134.71.3.16"]
            );
            assert_eq!(e.raw["TTLs"], serde_json::json!([2230.0, 41830.0]));
            assert_eq!(e.raw["AA"], false);
            assert_eq!(e.raw["_path"], "dns");
        }
    }
}

#[test]
fn apt29_zeek_logs() {
    let dir = corpora().join("zeek/apt29");
    let paths = files(&dir, ".log");
    assert_eq!(paths.len(), 99);
    let mut total = 0;
    let mut http = 0;
    let mut files_with_hash = 0;
    for p in &paths {
        let head = std::fs::read(p).unwrap();
        assert_eq!(
            detect(&p.to_string_lossy(), &head[..head.len().min(4096)]),
            Some(Format::ZeekJson),
            "{}",
            p.display()
        );
        let parsed = parse_file(p, None).unwrap();
        assert!(
            parsed.rejects.is_empty(),
            "{}: {:?}",
            p.display(),
            parsed.rejects
        );
        total += parsed.events.len();
        for e in &parsed.events {
            assert!(e.source.starts_with("zeek."));
            assert_eq!(e.time.is_some(), e.source != "zeek.loaded_scripts");
            if e.class == OcsfClass::HttpActivity {
                http += 1;
                assert!(e
                    .fields
                    .url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("http://")));
            }
            if e.class == OcsfClass::FileActivity && !e.fields.file_hashes.is_empty() {
                files_with_hash += 1;
            }
        }
    }
    assert_eq!(total, 7_804);
    assert!(http > 0 && files_with_hash > 0);
}

#[test]
fn otrf_cloudtrail() {
    let p = corpora()
        .join("cloudtrail/otrf/collection/ec2_proxy_s3_exfiltration_2020-09-14011940.json");
    let head = std::fs::read(&p).unwrap();
    assert_eq!(
        detect(&p.to_string_lossy(), &head),
        Some(Format::CloudTrail)
    );
    let parsed = parse_file(&p, None).unwrap();
    assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
    assert_eq!(parsed.events.len(), 103);
    let e = &parsed.events[0];
    assert_eq!(e.class, OcsfClass::ApiActivity);
    assert_eq!(e.source, "cloudtrail");
    assert_eq!(
        e.fields.api_operation.as_deref(),
        Some("DescribeInstanceTypes")
    );
    assert_eq!(e.fields.api_service.as_deref(), Some("ec2.amazonaws.com"));
    assert_eq!(e.fields.src_ip.as_deref(), Some("1.2.3.4"));
    assert_eq!(
        e.fields.user.as_deref(),
        Some("arn:aws:iam::123456789123:user/pedro")
    );
    assert_eq!(e.fields.cloud_account.as_deref(), Some("123456789123"));
    assert_eq!(e.fields.cloud_region.as_deref(), Some("us-east-1"));
    assert_eq!(e.fields.status.as_deref(), Some("success"));
    assert_eq!(
        e.fields.user_agent.as_deref(),
        Some("console.ec2.amazonaws.com")
    );
    assert_eq!(e.time, Some(1_600_044_263_000));
    assert!(parsed
        .events
        .iter()
        .all(|e| e.time.is_some() && e.fields.api_operation.is_some()));
    // The same records wrapped in one {"Records": [...]} document.
    let records: Vec<serde_json::Value> = head
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let doc = serde_json::to_vec_pretty(&serde_json::json!({"Records": records})).unwrap();
    assert_eq!(detect("trail.json", &doc), Some(Format::CloudTrail));
    let wrapped = parse_bytes(Format::CloudTrail, &doc);
    assert!(wrapped.rejects.is_empty());
    assert_eq!(wrapped.events, parsed.events);
}

#[test]
fn all_panther_cases_parse() {
    let p = corpora().join("cloudtrail/panther-cases/cases.jsonl");
    let head = std::fs::read(&p).unwrap();
    assert_eq!(
        detect(&p.to_string_lossy(), &head),
        Some(Format::CloudTrail)
    );
    let parsed = parse_file(&p, None).unwrap();
    assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
    assert_eq!(parsed.events.len(), 461);
    let with_op = parsed
        .events
        .iter()
        .filter(|e| e.fields.api_operation.is_some())
        .count();
    let failures = parsed
        .events
        .iter()
        .filter(|e| e.fields.status.as_deref() == Some("failure"))
        .count();
    let timed = parsed.events.iter().filter(|e| e.time.is_some()).count();
    eprintln!("panther: {with_op} with an operation, {failures} failures, {timed} with a time");
    assert_eq!(with_op, 461, "eventName or eventname in every case");
    // The raw record is the `log` object, not the test case around it.
    assert!(parsed.events.iter().all(|e| !e.raw.contains_key("rule_id")));
    // Line by line gives the same.
    let mut lp = LineParser::new(Format::CloudTrail);
    let by_line: Vec<_> = head
        .split(|&b| b == b'\n')
        .filter_map(|l| lp.push_line(l))
        .map(Result::unwrap)
        .collect();
    assert_eq!(by_line, parsed.events);
}
