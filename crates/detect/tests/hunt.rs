//! The offline hunt over attack-sample EVTX files, through the CLI glue.

mod common;

use mimamori_detect::cli::{run_hunt, CliError, HuntArgs};
use mimamori_detect::hunt::{OutputFormat, CSV_HEADER};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

fn samples() -> PathBuf {
    common::corpora().join("evtx/attack-samples")
}

fn rules() -> PathBuf {
    common::corpora().join("sigma/rules")
}

fn files() -> Vec<PathBuf> {
    vec![
        samples().join("Credential Access/sysmon_10_11_lsass_memdump.evtx"),
        samples().join("Defense Evasion/DE_Fake_ComputerAccount_4720.evtx"),
    ]
}

fn args(paths: Vec<PathBuf>, format: OutputFormat, threads: usize) -> HuntArgs {
    HuntArgs {
        rules: vec![rules()],
        format,
        input_format: None,
        threads,
        quiet: true,
        no_rule_cache: true,
        rule_cache: None,
        paths,
    }
}

fn hunt(a: HuntArgs) -> (String, String, mimamori_detect::hunt::Summary) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let s = run_hunt(a, &mut out, &mut err).expect("hunt");
    (
        String::from_utf8(out).expect("utf-8 output"),
        String::from_utf8(err).expect("utf-8 errors"),
        s,
    )
}

/// EventRecordID → event time, per file.
fn records(p: &Path) -> HashMap<u64, i64> {
    let parsed = mimamori_parse::parse_file(p, None).expect("parse");
    parsed
        .events
        .iter()
        .map(|e| {
            (
                e.raw["EventRecordID"].as_u64().expect("record id"),
                e.time.expect("time"),
            )
        })
        .collect()
}

#[test]
fn jsonl_fields_csv_and_thread_independence() {
    let given = files();
    let (jsonl, err, summary) = hunt(args(given.clone(), OutputFormat::Jsonl, 2));
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(summary.files, 2);
    assert_eq!(summary.detections as usize, lines.len());
    assert!(lines.len() >= 4, "{jsonl}");
    assert!(err.contains("hunt: 2 files"), "{err}");
    let recs: HashMap<String, HashMap<u64, i64>> = given
        .iter()
        .map(|p| (p.to_string_lossy().into_owned(), records(p)))
        .collect();
    assert_eq!(
        summary.records as usize,
        recs.values().map(HashMap::len).sum::<usize>()
    );
    let levels = ["informational", "low", "medium", "high", "critical"];
    let mut seen: HashSet<(String, u64, String)> = HashSet::new();
    for l in &lines {
        let source = l["source"].as_str().expect("source");
        let file = recs
            .get(source)
            .unwrap_or_else(|| panic!("source {source} is not a path as given"));
        let rid = l["record_id"].as_u64().expect("record_id");
        let time = file
            .get(&rid)
            .unwrap_or_else(|| panic!("record {rid} is not in {source}"));
        let ts = l["timestamp"].as_str().expect("timestamp");
        assert_eq!(
            Some(ts.to_string()),
            mimamori_detect::hunt::rfc3339(*time),
            "timestamp is the record's time"
        );
        assert!(levels.contains(&l["level"].as_str().expect("level")));
        assert!(!l["rule_title"].as_str().expect("title").is_empty());
        let tags = l["tags"].as_array().expect("tags");
        assert!(tags.iter().all(Value::is_string));
        seen.insert((
            source.rsplit('/').next().unwrap_or_default().to_string(),
            rid,
            l["rule_id"].as_str().expect("rule_id").to_string(),
        ));
    }
    // Known firings (checked against the events by hand).
    for (file, rid, rule) in [
        (
            "sysmon_10_11_lsass_memdump.evtx",
            4433,
            "a5a2d357-1ab8-4675-a967-ef9990a59391",
        ),
        (
            "sysmon_10_11_lsass_memdump.evtx",
            4441,
            "a5a2d357-1ab8-4675-a967-ef9990a59391",
        ),
        (
            "DE_Fake_ComputerAccount_4720.evtx",
            769629,
            "7b449a5e-1db5-4dd0-a2dc-4e3a67282538",
        ),
        (
            "DE_Fake_ComputerAccount_4720.evtx",
            769634,
            "7b449a5e-1db5-4dd0-a2dc-4e3a67282538",
        ),
    ] {
        assert!(
            seen.contains(&(file.to_string(), rid, rule.to_string())),
            "{rule} did not fire on {file} record {rid}"
        );
    }
    let hidden = lines
        .iter()
        .find(|l| l["rule_id"] == "7b449a5e-1db5-4dd0-a2dc-4e3a67282538")
        .expect("hidden user rule");
    assert_eq!(hidden["level"], "high");
    assert!(hidden["tags"]
        .as_array()
        .expect("tags")
        .contains(&Value::from("attack.t1136.001")));

    // One thread gives the same output, in the same order.
    let (one, _, _) = hunt(args(given.clone(), OutputFormat::Jsonl, 1));
    assert_eq!(one, jsonl);

    // CSV: a header, then one row per detection.
    let (csv, _, _) = hunt(args(given, OutputFormat::Csv, 2));
    let mut rows = csv.lines();
    assert_eq!(rows.next(), Some(CSV_HEADER));
    assert_eq!(rows.count(), lines.len());
    assert!(csv.contains(",high,7b449a5e-1db5-4dd0-a2dc-4e3a67282538,Hidden Local User Creation,"));
}

#[test]
fn directory_inputs_keep_the_given_prefix_and_skip_unknown_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).expect("mkdir");
    let src = &files()[1];
    std::fs::copy(src, sub.join("a.evtx")).expect("copy");
    std::fs::write(sub.join("notes.txt"), "not a log\n\u{0}\u{1}").expect("write");
    let (out, err, summary) = hunt(args(vec![dir.path().to_path_buf()], OutputFormat::Jsonl, 0));
    assert_eq!(summary.files, 1);
    assert_eq!(summary.skipped.len(), 1, "{err}");
    let want = sub.join("a.evtx").to_string_lossy().into_owned();
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).expect("json");
        assert_eq!(v["source"], want.as_str());
    }
    assert!(summary.detections > 0);
}

#[test]
fn nothing_readable_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0u8, 159, 146, 150]).expect("write");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = run_hunt(args(vec![junk], OutputFormat::Jsonl, 1), &mut out, &mut err);
    assert!(
        matches!(r, Err(CliError::NothingRead { skipped: 1 })),
        "{r:?}"
    );
}

/// CloudTrail and Zeek through the same hunt: the routing sends them to the
/// `aws`/`cloudtrail` and `zeek`/`<log>` rules.
#[test]
fn cloudtrail_and_zeek() {
    let c = common::corpora();
    let trail =
        c.join("cloudtrail/otrf/collection/ec2_proxy_s3_exfiltration_2020-09-14011940.json");
    let dce = c.join("zeek/wrccdc/zeek-json/dce_rpc.json.gz");
    // APT29's Zeek logs write `id_resp_h` for `id.resp_h`.
    let http = c.join("zeek/apt29/day1/zeek/individual_zeek_logs/SCRANTON_http.log");
    let a = HuntArgs {
        rules: vec![
            c.join("sigma/rules/cloud/aws"),
            c.join("sigma/rules/network/zeek"),
        ],
        ..args(
            vec![trail.clone(), dce.clone(), http.clone()],
            OutputFormat::Jsonl,
            2,
        )
    };
    let (out, err, summary) = hunt(a);
    assert_eq!(summary.files, 3, "{err}");
    assert_eq!(summary.rejects, 0, "{err}");
    let mut counts: HashMap<(String, String), usize> = HashMap::new();
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).expect("json");
        *counts
            .entry((
                v["source"].as_str().expect("source").to_string(),
                v["rule_title"].as_str().expect("title").to_string(),
            ))
            .or_default() += 1;
    }
    let key = |p: &Path, t: &str| (p.to_string_lossy().into_owned(), t.to_string());
    assert_eq!(
        counts.get(&key(&trail, "AWS STS AssumeRole Misuse")),
        Some(&11),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&key(&dce, "MITRE BZAR Indicators for Execution")),
        Some(&24),
        "{counts:?}"
    );
    // The six WebDAV PUTs in this log all go to 192.168.0.4, which the
    // rule's filter (`id.resp_h|cidr` private ranges) excludes: it must not
    // fire. Without the `id_resp_h` alias the filter never saw the address
    // and the rule fired six times.
    assert_eq!(
        counts.get(&key(&http, "WebDav Put Request")),
        None,
        "{counts:?}"
    );
}
