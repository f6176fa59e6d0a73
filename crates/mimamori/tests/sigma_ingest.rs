//! SigmaHQ's regression cases through the whole ingest path: `mimamori
//! serve` with every rule of `sigma/rules` and `sigma/rules-extra`, each
//! case's JSON rendering posted as NDJSON by its own org's sensor token,
//! and the case's rule must raise alerts for that org (and only for it)
//! counting at least the case's `match_count` events, at least one
//! otherwise — the conformance the detection crate checks on files, here
//! through HTTP ingest, the write-ahead log and the streaming consumer.

mod common;

use common::{corpora, mimamori, run_ok, spawn_until};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Case {
    rule_id: String,
    json: PathBuf,
    want: u64,
}

fn files(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}

fn cases(sigma: &Path) -> Vec<Case> {
    let mut infos = vec![];
    files(&sigma.join("regression_data"), "info.yml", &mut infos);
    let mut out = vec![];
    for info in infos {
        let v: yaml_serde::Value =
            yaml_serde::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
        let rule_id = v["rule_metadata"][0]["id"].as_str().unwrap().to_string();
        // One case (cisco dot1x) has its regression_tests_info commented out.
        let Some(test) = v.get("regression_tests_info").and_then(|t| t.get(0)) else {
            continue;
        };
        let evtx = sigma.join(test["path"].as_str().unwrap());
        out.push(Case {
            rule_id,
            json: evtx.with_extension("json"),
            want: test
                .get("match_count")
                .and_then(yaml_serde::Value::as_u64)
                .unwrap_or(1),
        });
    }
    out
}

/// The events of a JSON rendering (one object, an array, or several
/// objects one after another), one compact line each.
fn ndjson(path: &Path) -> (Vec<u8>, usize) {
    let text = std::fs::read(path).unwrap();
    let mut body = vec![];
    let mut n = 0;
    for v in serde_json::Deserializer::from_slice(&text).into_iter::<Value>() {
        let v = v.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let items = match v {
            Value::Array(a) => a,
            v => vec![v],
        };
        for item in items {
            serde_json::to_writer(&mut body, &item).unwrap();
            body.push(b'\n');
            n += 1;
        }
    }
    (body, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigma_regression_cases_alert_through_http_ingest() {
    let sigma = corpora().join("sigma");
    let cases = cases(&sigma);
    assert!(cases.len() >= 200, "only {} regression cases", cases.len());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report: Value =
        serde_json::from_str(&run_ok(mimamori(&data).args(["init", "--json"]))).unwrap();
    let admin = report["admin_token"].as_str().unwrap().to_string();
    let config = data.join("mimamori.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let rules = format!(
        "sigma_rules = [{:?}, {:?}]",
        sigma.join("rules").display().to_string(),
        sigma.join("rules-extra").display().to_string()
    );
    assert!(text.contains("sigma_rules = []"), "{text}");
    std::fs::write(&config, text.replace("sigma_rules = []", &rules)).unwrap();

    let (_server, lines) = spawn_until(
        mimamori(&data).args(["serve", "--listen", "127.0.0.1:0"]),
        &["API listening"],
        Duration::from_secs(120),
    );
    let api = lines[0].split_whitespace().last().unwrap().to_string();
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str| {
        client
            .request(method, format!("{api}{path}"))
            .bearer_auth(token)
    };
    let orgs: Value = call(reqwest::Method::GET, "/api/v1/orgs", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let root_id = orgs["items"][0]["id"].as_str().unwrap().to_string();

    // Each case in its own org, so no case's events count for another.
    let mut org_of_case = vec![];
    for (n, case) in cases.iter().enumerate() {
        let org: Value = call(reqwest::Method::POST, "/api/v1/orgs", &admin)
            .json(&json!({"parent_id": root_id, "slug": format!("case{n}"), "name": format!("case {n}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let org_id = org["id"].as_str().unwrap().to_string();
        let token: Value = call(reqwest::Method::POST, "/api/v1/tokens", &admin)
            .json(&json!({"org_id": org_id, "name": "sensor", "role": "sensor"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = token["secret"].as_str().unwrap();
        let (body, events) = ndjson(&case.json);
        let r = call(
            reqwest::Method::POST,
            "/ingest/v1/events?format=windows-json",
            secret,
        )
        .body(body)
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{}", case.json.display());
        let r: Value = r.json().await.unwrap();
        assert_eq!(r["accepted"], events, "{}: {r}", case.json.display());
        assert_eq!(r["rejected"], 0, "{}: {r}", case.json.display());
        org_of_case.push(org_id);
    }

    // Every case's rule alerts its org, counting at least its events.
    let started = Instant::now();
    let mut pending: Vec<usize> = (0..cases.len()).collect();
    let mut last: HashMap<usize, u64> = HashMap::new();
    while !pending.is_empty() && started.elapsed() < Duration::from_secs(180) {
        let mut still = vec![];
        for &n in &pending {
            let alerts: Value = call(
                reqwest::Method::GET,
                &format!("/api/v1/alerts?org_id={}&limit=500", org_of_case[n]),
                &admin,
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
            let items = alerts["items"].as_array().unwrap();
            for a in items {
                assert_eq!(a["org_id"], org_of_case[n].as_str(), "alert of another org");
            }
            let got: u64 = items
                .iter()
                .filter(|a| a["rule_id"] == cases[n].rule_id.as_str())
                .map(|a| a["event_count"].as_u64().unwrap())
                .sum();
            last.insert(n, got);
            if got < cases[n].want {
                still.push(n);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let failures: Vec<String> = pending
        .iter()
        .map(|&n| {
            format!(
                "{}: rule {} alerted on {} events, want at least {}",
                cases[n].json.display(),
                cases[n].rule_id,
                last.get(&n).copied().unwrap_or(0),
                cases[n].want
            )
        })
        .collect();
    println!(
        "Sigma regression through HTTP ingest: {}/{} cases alerted",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
