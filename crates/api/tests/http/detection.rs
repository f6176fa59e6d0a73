//! The loop, end to end over HTTP: intel in → telemetry in → alerts for
//! the right org only → a campaign across orgs → retro-hunts over what was
//! ingested before the indicator arrived. And TLP on the intel itself.

use super::{corpora, problem, Server};
use mimamori_core::{Org, OrgKind, Role};
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};

/// Polls `path` with `token` until `done` holds (at most 10 s).
async fn wait_for(s: &Server, path: &str, token: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let r = s.call(Method::GET, path, Some(token), None).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        if done(&r.body) {
            return r.body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path} never reached the expected state: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dns_event(s: &Server, org: &Org, name: &str) {
    let sensor = s.token(org, Role::Sensor).await;
    let body = format!(
        "{{\"class\":\"dns_activity\",\"src_ip\":\"10.0.0.7\",\"dns_query\":\"{name}\",\"dns_qtype\":\"A\"}}\n"
    );
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events?source=test.dns",
            Some(&sensor),
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["accepted"], 1, "{r:?}");
}

async fn import(s: &Server, token: &str, query: &str, body: &str) -> Value {
    let r = s
        .call_raw(
            Method::POST,
            &format!("/api/v1/intel/import?{query}"),
            Some(token),
            body.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_indicator_at_three_orgs_is_one_campaign_and_alerts_stay_scoped() {
    let s = Server::start().await;
    let sup = s.org(&s.root, "sup", OrgKind::Supervisor).await;
    let a1 = s.org(&sup, "a1", OrgKind::Member).await;
    let a2 = s.org(&sup, "a2", OrgKind::Member).await;
    let m1 = s.org(&s.root, "m1", OrgKind::Member).await;
    let quiet = s.org(&s.root, "quiet", OrgKind::Member).await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    // The central SOC's feed: AMBER, so members are protected by it without
    // being able to read it.
    let r = import(
        &s,
        &soc,
        "format=plain&subdomains=true&source=c2-feed&tlp=amber&confidence=90",
        "# C2 domains\nupdate-check.cdn-telemetry.example\n",
    )
    .await;
    assert_eq!(r["inserted"], 1, "{r}");
    for org in [&a1, &a2, &m1] {
        dns_event(&s, org, "x7.update-check.cdn-telemetry.example").await;
    }
    dns_event(&s, &quiet, "www.example.org").await;

    // Each member's analyst sees its own alert only.
    for org in [&a1, &a2, &m1] {
        let t = s.token(org, Role::OrgAnalyst).await;
        let body = wait_for(&s, "/api/v1/alerts", &t, |b| !items(b).is_empty()).await;
        let list = items(&body);
        assert_eq!(list.len(), 1, "{body}");
        let a = &list[0];
        assert_eq!(a["org_id"], org.id.as_str());
        assert_eq!(a["kind"], "indicator");
        assert_eq!(a["severity"], "high");
        assert_eq!(a["entity"], "update-check.cdn-telemetry.example");
        assert_eq!(
            a["context"]["observed"]["value"],
            "x7.update-check.cdn-telemetry.example"
        );
        // The SOC's AMBER indicator protects the member, but its sources
        // stay with the SOC.
        assert_eq!(a["context"]["withheld_owners"], 1, "{a}");
        assert_eq!(a["context"]["indicator"]["sources"], serde_json::json!([]));
    }
    let quiet_t = s.token(&quiet, Role::OrgAnalyst).await;
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(&quiet_t), None)
        .await;
    assert!(items(&r.body).is_empty(), "{}", r.body);

    // The central SOC sees one campaign over the three orgs…
    let body = wait_for(&s, "/api/v1/campaigns", &soc, |b| !items(b).is_empty()).await;
    let campaigns = items(&body);
    assert_eq!(campaigns.len(), 1, "{body}");
    let c = &campaigns[0];
    assert_eq!(c["org_ids"].as_array().unwrap().len(), 3, "{c}");
    assert_eq!(c["alert_count"], 3);
    // …the supervisor the same campaign, with its sub-tree's two orgs…
    let sup_t = s.token(&sup, Role::SupervisorAnalyst).await;
    let r = s
        .call(Method::GET, "/api/v1/campaigns", Some(&sup_t), None)
        .await;
    let seen = &items(&r.body)[0];
    assert_eq!(seen["id"], c["id"]);
    let mut orgs: Vec<&str> = seen["org_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    orgs.sort();
    let mut want = vec![a1.id.as_str(), a2.id.as_str()];
    want.sort();
    assert_eq!(orgs, want);
    // …and a member only itself.
    let m1_t = s.token(&m1, Role::OrgAnalyst).await;
    let path = format!("/api/v1/campaigns/{}", c["id"].as_str().unwrap());
    let r = s.call(Method::GET, &path, Some(&m1_t), None).await;
    assert_eq!(r.body["org_ids"], serde_json::json!([m1.id.as_str()]));
    // An org that was not hit cannot even see that the campaign exists.
    let r = s.call(Method::GET, &path, Some(&quiet_t), None).await;
    problem(&r, 404);

    // Workflow over HTTP, audited: acknowledge, comment, false positive
    // with a suppression.
    let a1_t = s.token(&a1, Role::OrgAnalyst).await;
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(&a1_t), None)
        .await;
    let alert_id = items(&r.body)[0]["id"].as_str().unwrap().to_string();
    let apath = format!("/api/v1/alerts/{alert_id}");
    let r = s
        .call(
            Method::PATCH,
            &apath,
            Some(&a1_t),
            Some(serde_json::json!({"status": "acknowledged", "assignee": "yamada"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .call(
            Method::POST,
            &format!("{apath}/comments"),
            Some(&a1_t),
            Some(serde_json::json!({"body": "the proxy blocked it"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = s
        .call(
            Method::PATCH,
            &apath,
            Some(&a1_t),
            Some(serde_json::json!({"status": "new"})),
        )
        .await;
    let detail = problem(&r, 422);
    assert!(
        detail.contains("cannot move from acknowledged to new"),
        "{detail}"
    );
    let r = s
        .call(
            Method::PATCH,
            &apath,
            Some(&a1_t),
            Some(serde_json::json!({"status": "false_positive", "suppress_hours": 24, "reason": "sinkholed"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.call(Method::GET, &apath, Some(&a1_t), None).await;
    assert_eq!(r.body["status"], "false_positive");
    assert_eq!(r.body["comments"][0]["body"], "the proxy blocked it");
    let r = s
        .call(Method::GET, "/api/v1/suppressions", Some(&a1_t), None)
        .await;
    assert_eq!(items(&r.body).len(), 1);
    // a2 cannot touch a1's alert.
    let a2_t = s.token(&a2, Role::OrgAnalyst).await;
    let r = s.call(Method::GET, &apath, Some(&a2_t), None).await;
    problem(&r, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_indicator_retro_hunts_events_ingested_before_it() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    dns_event(&s, &a, "cdn.late-known-bad.example").await;
    dns_event(&s, &b, "benign.example").await;
    // Wait until the events are archived (what retro-hunting reads).
    let start = Instant::now();
    while s.ingest.archive().read_events(None).unwrap().len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    let r = import(
        &s,
        &soc,
        "format=plain&subdomains=true&tlp=green&confidence=70",
        "late-known-bad.example\n",
    )
    .await;
    let hunt = r["retro_hunt_id"]
        .as_str()
        .expect("a retro-hunt starts")
        .to_string();
    let job = wait_for(&s, &format!("/api/v1/hunts/{hunt}"), &soc, |b| {
        b["state"] == "done"
    })
    .await;
    assert!(job["events"].as_u64().unwrap() >= 2, "{job}");
    assert_eq!(job["findings"], 1, "{job}");
    assert_eq!(job["files_done"], job["files_total"]);
    let a_t = s.token(&a, Role::OrgAnalyst).await;
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(&a_t), None)
        .await;
    let list = items(&r.body);
    assert_eq!(list.len(), 1, "{}", r.body);
    assert_eq!(list[0]["retro"], true);
    assert_eq!(list[0]["severity"], "medium");
    // GREEN: the member sees the indicator's details.
    assert_eq!(list[0]["context"]["withheld_owners"], 0);
    let b_t = s.token(&b, Role::OrgAnalyst).await;
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(&b_t), None)
        .await;
    assert!(items(&r.body).is_empty());
    // The indicator was sighted at a.
    let r = s
        .call(
            Method::GET,
            "/api/v1/indicators?contains=late-known",
            Some(&soc),
            None,
        )
        .await;
    let ind = &items(&r.body)[0];
    assert_eq!(ind["sightings"], 1, "{ind}");
    assert_eq!(ind["sighting_orgs"], serde_json::json!([a.id.as_str()]));
}

#[tokio::test]
async fn tlp_decides_who_reads_an_indicator() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let c = s.org(&s.root, "c", OrgKind::Member).await;
    let a_t = s.token(&a, Role::OrgAnalyst).await;
    let b_t = s.token(&b, Role::OrgAnalyst).await;
    let c_t = s.token(&c, Role::OrgAnalyst).await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    import(&s, &a_t, "format=plain&tlp=red", "red-only.example\n").await;
    import(
        &s,
        &a_t,
        &format!("format=plain&tlp=amber&share_with={}", b.id),
        "amber-for-b.example\n",
    )
    .await;
    import(&s, &a_t, "format=plain&tlp=green", "green-all.example\n").await;
    let values = |body: &Value| -> Vec<String> {
        let mut v: Vec<String> = items(body)
            .iter()
            .map(|i| i["indicator"]["value"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let r = s
        .call(Method::GET, "/api/v1/indicators", Some(&a_t), None)
        .await;
    assert_eq!(
        values(&r.body),
        [
            "amber-for-b.example",
            "green-all.example",
            "red-only.example"
        ]
    );
    // The owner sees with whom it shared.
    let shared = items(&r.body)
        .iter()
        .find(|i| i["indicator"]["value"] == "amber-for-b.example")
        .unwrap()["shared_with"]
        .clone();
    assert_eq!(shared, serde_json::json!([b.id.as_str()]));
    let r = s
        .call(Method::GET, "/api/v1/indicators", Some(&b_t), None)
        .await;
    assert_eq!(
        values(&r.body),
        ["amber-for-b.example", "green-all.example"]
    );
    // …but not with whom else.
    assert!(items(&r.body)
        .iter()
        .all(|i| i["shared_with"] == serde_json::json!([])));
    let r = s
        .call(Method::GET, "/api/v1/indicators", Some(&c_t), None)
        .await;
    assert_eq!(values(&r.body), ["green-all.example"]);
    // RED does not leave its owner, not even to the central SOC.
    let r = s
        .call(Method::GET, "/api/v1/indicators", Some(&soc), None)
        .await;
    assert_eq!(values(&r.body), ["green-all.example"]);
    // Exports follow the same rule.
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/export?format=plain",
            Some(&c_t),
            None,
        )
        .await;
    // A domain covers its sub-domains (the default): written `*.name`.
    assert_eq!(r.body, Value::String("*.green-all.example\n".into()));
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/export?format=rpz",
            Some(&b_t),
            None,
        )
        .await;
    let zone = r.body.as_str().unwrap();
    assert!(zone.contains("amber-for-b.example"), "{zone}");
    assert!(!zone.contains("red-only"), "{zone}");
    // Importing for an org outside the caller's scope is a 404.
    let r = s
        .call_raw(
            Method::POST,
            &format!("/api/v1/intel/import?format=plain&org_id={}", b.id),
            Some(&a_t),
            b"x.example\n".to_vec(),
        )
        .await;
    problem(&r, 404);
}

#[tokio::test]
async fn stix_imports_are_validated_and_round_trip() {
    let Some(corpora) = corpora() else {
        panic!("test corpora not found (set MIMAMORI_CORPORA)");
    };
    let s = Server::start().await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    let bundle =
        std::fs::read_to_string(corpora.join("stix/examples/threat-reports/poisonivy.json"))
            .unwrap();
    let r = import(&s, &soc, "format=stix&strict=true&tlp=green", &bundle).await;
    let inserted = r["inserted"].as_u64().unwrap();
    assert!(inserted > 0, "{r}");
    assert_eq!(r["rejected"], 0);
    // Export as STIX and import that again (as another org): same values.
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/export?format=stix",
            Some(&soc),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let exported = serde_json::to_string(&r.body).unwrap();
    let m = s.org(&s.root, "m", OrgKind::Member).await;
    let m_t = s.token(&m, Role::OrgAdmin).await;
    let again = import(
        &s,
        &m_t,
        "format=stix&strict=true&tlp=green&retro=false",
        &exported,
    )
    .await;
    assert_eq!(again["rejected"], 0, "{again}");
    // Invalid STIX: precise rejection, nothing stored.
    let before = s
        .call(
            Method::GET,
            "/api/v1/indicators?limit=500",
            Some(&soc),
            None,
        )
        .await;
    let invalid = std::fs::read_to_string(
        corpora.join("stix/validator-cases/test_examples/invalid_timestamp.json"),
    )
    .unwrap();
    let r = s
        .call_raw(
            Method::POST,
            "/api/v1/intel/import?format=stix&strict=true",
            Some(&soc),
            invalid.into_bytes(),
        )
        .await;
    let detail = problem(&r, 422);
    assert!(detail.contains("modified"), "{detail}");
    let r = s
        .call_raw(
            Method::POST,
            "/api/v1/intel/import?format=stix",
            Some(&soc),
            b"{\"type\": \"bundle\", \"objects\": [".to_vec(),
        )
        .await;
    let detail = problem(&r, 422);
    assert!(detail.contains("JSON"), "{detail}");
    let after = s
        .call(
            Method::GET,
            "/api/v1/indicators?limit=500",
            Some(&soc),
            None,
        )
        .await;
    assert_eq!(items(&before.body).len(), items(&after.body).len());
}

/// A feed server: serves `body` with `etag`, answers 304 when the client
/// already has it, 500 when `fail` is set; counts requests.
struct FeedServer {
    url: String,
    state: std::sync::Arc<std::sync::Mutex<(String, String, bool, usize)>>,
}

async fn feed_server(body: &str, etag: &str) -> FeedServer {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/feed.txt", l.local_addr().unwrap());
    let state = std::sync::Arc::new(std::sync::Mutex::new((
        body.to_string(),
        etag.to_string(),
        false,
        0usize,
    )));
    let st = state.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(sock);
                let mut if_none_match = None;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("if-none-match") {
                            if_none_match = Some(v.trim().to_string());
                        }
                    }
                }
                let (body, etag, fail) = {
                    let mut s = st.lock().unwrap();
                    s.3 += 1;
                    (s.0.clone(), s.1.clone(), s.2)
                };
                let resp = if fail {
                    "HTTP/1.1 500 Oops\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_string()
                } else if if_none_match.as_deref() == Some(etag.as_str()) {
                    format!(
                        "HTTP/1.1 304 Not Modified\r\netag: {etag}\r\nconnection: close\r\n\r\n"
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\netag: {etag}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = r.get_mut().write_all(resp.as_bytes()).await;
            });
        }
    });
    FeedServer { url, state }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_are_polled_conditionally_and_imported() {
    // The feed server is on loopback: allowed here, refused by default
    // (`feed_fetches_cannot_reach_internal_addresses`).
    let s = Server::start_fetching_loopback().await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    let fs = feed_server("# list\nfeed-one.example\nfeed-two.example\n", "\"v1\"").await;
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(serde_json::json!({"org_id": s.root.id, "name": "abuse list", "url": fs.url, "format": "plain", "interval_secs": 300, "tlp": "green"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let poll = format!("/api/v1/intel/feeds/{id}/poll");
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "imported", "{r:?}");
    assert_eq!(r.body["last_count"], 2);
    assert_eq!(r.body["etag"], "\"v1\"");
    let r = s
        .call(
            Method::GET,
            "/api/v1/indicators?contains=feed-",
            Some(&soc),
            None,
        )
        .await;
    assert_eq!(items(&r.body).len(), 2);
    // Unchanged: a conditional request, answered 304, nothing imported.
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "not-modified", "{r:?}");
    // A failing feed keeps its last data and says why.
    fs.state.lock().unwrap().2 = true;
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "error");
    assert!(
        r.body["last_error"].as_str().unwrap().contains("500"),
        "{r:?}"
    );
    // New content: imported again.
    {
        let mut st = fs.state.lock().unwrap();
        st.0 = "feed-one.example\nfeed-two.example\nfeed-three.example\n".into();
        st.1 = "\"v2\"".into();
        st.2 = false;
    }
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "imported");
    assert_eq!(r.body["last_count"], 3);
    assert_eq!(fs.state.lock().unwrap().3, 4);
    // Invalid subscriptions are refused precisely.
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(serde_json::json!({"org_id": s.root.id, "name": "x", "url": "ftp://x", "format": "plain"})),
        )
        .await;
    assert!(problem(&r, 422).contains("http"), "{r:?}");
    // Another org's analyst cannot see the SOC's feed.
    let m = s.org(&s.root, "m", OrgKind::Member).await;
    let m_t = s.token(&m, Role::OrgAnalyst).await;
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/intel/feeds/{id}"),
            Some(&m_t),
            None,
        )
        .await;
    problem(&r, 404);
}

/// A server on `addr` answering every request with `response`.
async fn canned_server(addr: &str, response: String) -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_fetches_cannot_reach_internal_addresses() {
    let fs = feed_server("refused.example\n", "\"v1\"").await;
    let port = fs
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let redirect = |to: &str| {
        format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    };
    // Only 127.0.0.2 is allowed in the second server: a feed there that
    // redirects to 127.0.0.1 (by address or by name) is still refused.
    let hop_ip = canned_server("127.0.0.2:0", redirect(&fs.url)).await;
    let hop_name = canned_server(
        "127.0.0.2:0",
        redirect(&format!("http://localhost:{port}/feed.txt")),
    )
    .await;
    for (allow, url, refused) in [
        (vec![], fs.url.clone(), true),
        (vec![], format!("http://localhost:{port}/feed.txt"), true),
        (
            vec![],
            "http://169.254.169.254/latest/meta-data/".to_string(),
            true,
        ),
        (vec![], "http://[::ffff:127.0.0.1]:9/x".to_string(), true),
        (
            vec!["127.0.0.2/32"],
            format!("http://{hop_ip}/feed.txt"),
            true,
        ),
        (
            vec!["127.0.0.2/32"],
            format!("http://{hop_name}/feed.txt"),
            true,
        ),
        (vec!["127.0.0.0/8"], fs.url.clone(), false),
    ] {
        let policy = mimamori_fetch::FetchPolicy::new(
            allow.iter().map(|a: &&str| a.parse().unwrap()).collect(),
        );
        let s = Server::start_custom(None, |st| st.with_fetch_policy(policy)).await;
        // The central SOC's admin, and a member org's admin subscribing
        // its own org: the same refusal.
        let m = s.org(&s.root, "m", OrgKind::Member).await;
        let callers = [
            (
                s.token(&s.root, Role::SocAdmin).await,
                s.root.id.to_string(),
            ),
            (s.token(&m, Role::OrgAdmin).await, m.id.to_string()),
        ];
        for (admin, org) in &callers {
            let r = s
                .call(
                    Method::POST,
                    "/api/v1/intel/feeds",
                    Some(admin),
                    Some(serde_json::json!({"org_id": org, "name": "f", "url": url, "format": "plain", "interval_secs": 3600, "tlp": "green"})),
                )
                .await;
            assert_eq!(r.status, 201, "{r:?}");
            assert_eq!(r.body["owner_org_id"], org.as_str(), "{r:?}");
            let id = r.body["id"].as_str().unwrap().to_string();
            let r = s
                .call(
                    Method::POST,
                    &format!("/api/v1/intel/feeds/{id}/poll"),
                    Some(admin),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            if refused {
                assert_eq!(r.body["last_status"], "error", "{url}: {r:?}");
                let e = r.body["last_error"].as_str().unwrap();
                assert!(e.contains("allow_fetch_networks"), "{url}: {e}");
            } else {
                assert_eq!(r.body["last_status"], "imported", "{url}: {r:?}");
            }
        }
    }
    // The loopback feed server was asked only when allowed (once per
    // caller).
    assert_eq!(fs.state.lock().unwrap().3, 2);
}
