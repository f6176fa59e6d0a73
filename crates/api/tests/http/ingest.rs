//! Telemetry in over HTTP: mimamori NDJSON, Splunk HEC, Elasticsearch
//! `_bulk`. Each test ends by reading the archive: what was acknowledged is
//! stored, under the sensor's org, whatever the payload claims.

use super::{problem, Server};
use mimamori_core::{OrgKind, Role};
use mimamori_event::{Event, OcsfClass};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Waits (at most 5 s: the promise to analysts) until the org's archive
/// holds `n` events, and returns them.
async fn archived(s: &Server, org_id: &str, n: usize) -> Vec<Event> {
    let start = Instant::now();
    loop {
        let events = s
            .ingest
            .archive()
            .read_events(Some(&[org_id.to_string()]))
            .unwrap();
        if events.len() >= n || start.elapsed() > Duration::from_secs(5) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ndjson_keeps_good_records_and_reports_bad_ones() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let sensor = s.token(&a, Role::Sensor).await;
    let body = [
        r#"{"time":"2026-11-25T10:00:00Z","class":"dns_activity","src_ip":"10.1.2.3","dns_query":"Evil.Example.","org_id":"spoofed"}"#,
        r#"{"broken json"#,
        "",
        r#"{"time":1764064800123,"class":"http_activity","url":"http://x.example/a","http_method":"GET"}"#,
        "\u{fffd}not json at all",
    ]
    .join("\n");
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events?source=test.sensor",
            Some(&sensor),
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["rejected"], 2);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["record"], 2);
    assert_eq!(errors[1]["record"], 5);
    // Invalid UTF-8 is a per-record reject too.
    let mut bad = b"{\"class\":\"dns_activity\",\"dns_query\":\"ok.example\"}\n".to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, b'{', b'}', b'\n']);
    let r = s
        .call_raw(Method::POST, "/ingest/v1/events", Some(&sensor), bad)
        .await;
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{r:?}"
    );

    let events = archived(&s, a.id.as_str(), 3).await;
    assert_eq!(events.len(), 3);
    let dns = events
        .iter()
        .find(|e| e.body.class == OcsfClass::DnsActivity && e.body.source == "test.sensor")
        .unwrap();
    assert_eq!(dns.org_id, a.id.as_str(), "the org comes from the token");
    assert_eq!(dns.body.fields.dns_query.as_deref(), Some("evil.example"));
    assert_eq!(
        dns.body.raw["org_id"], "spoofed",
        "the original record is kept as sent"
    );
    assert_eq!(dns.body.time, Some(1_795_600_800_000));
    assert!(s
        .ingest
        .archive()
        .read_events(Some(&[b.id.to_string()]))
        .unwrap()
        .is_empty());

    // Nothing parseable: a 400 naming the first reason.
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events",
            Some(&sensor),
            b"{nope\n".to_vec(),
        )
        .await;
    assert!(problem(&r, 400).starts_with("no record could be parsed; record 1:"));
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events?format=morse",
            Some(&sensor),
            b"x".to_vec(),
        )
        .await;
    assert!(problem(&r, 400).contains("unknown format \"morse\""));
    // Bodies over the ingest limit are refused whole.
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events",
            Some(&sensor),
            vec![b'x'; 17 * 1024 * 1024],
        )
        .await;
    problem(&r, 413);
    // Metrics count what was refused and what was stored.
    let m = s
        .client
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("mimamori_ingest_rejected_records 4"), "{m}");
    assert!(m.contains("mimamori_ingest_events_acked 3"), "{m}");
}

#[tokio::test]
async fn other_formats_per_line() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let sensor = s.token(&a, Role::Sensor).await;
    let squid = "1764064800.586    921 192.0.2.68 TCP_MISS/200 507 GET http://www.example.com/ - DIRECT/198.51.100.3 text/html\n";
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events?format=squid",
            Some(&sensor),
            squid.into(),
        )
        .await;
    assert_eq!(r.body["accepted"], 1, "{r:?}");
    let syslog = "<34>1 2026-11-25T10:00:00.003Z fw01 sshd 1234 ID47 - Failed password for root from 198.51.100.9\n";
    let r = s
        .call_raw(
            Method::POST,
            "/ingest/v1/events?format=syslog",
            Some(&sensor),
            syslog.into(),
        )
        .await;
    assert_eq!(r.body["accepted"], 1, "{r:?}");
    let events = archived(&s, a.id.as_str(), 2).await;
    assert!(events
        .iter()
        .any(|e| e.body.class == OcsfClass::HttpActivity
            && e.body.fields.url.as_deref() == Some("http://www.example.com/")));
    assert!(events
        .iter()
        .any(|e| e.body.fields.hostname.as_deref() == Some("fw01")));
}

#[tokio::test]
async fn splunk_hec_event_raw_and_ack() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let sensor = s.token(&a, Role::Sensor).await;
    let hec = |path: &str, body: &str, auth: Option<String>, channel: Option<&str>| {
        let mut req = s
            .client
            .post(format!("{}{path}", s.base))
            .body(body.to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(c) = channel {
            req = req.header("x-splunk-request-channel", c);
        }
        async move { Server::read(req.send().await.unwrap()).await }
    };
    let auth = Some(format!("Splunk {sensor}"));
    // Two envelopes back to back, as HEC clients batch them.
    let body = r#"{"time": 1764064800.5, "host": "dns01", "sourcetype": "mimamori:dns", "event": {"class": "dns_activity", "dns_query": "hec.example"}}
{"event": {"class": "http_activity", "url": "http://hec.example/"}}"#;
    let r = hec(
        "/services/collector/event",
        body,
        auth.clone(),
        Some("ch-1"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"text": "Success", "code": 0, "ackId": 0}));
    let r = hec(
        "/services/collector/event",
        body,
        auth.clone(),
        Some("ch-1"),
    )
    .await;
    assert_eq!(r.body["ackId"], 1);
    let r = hec(
        "/services/collector/ack",
        r#"{"acks": [0, 1, 2]}"#,
        auth.clone(),
        Some("ch-1"),
    )
    .await;
    assert_eq!(r.body, json!({"acks": {"0": true, "1": true, "2": false}}));

    let raw = "<13>Nov 25 10:00:00 web01 nginx[42]: GET /index.html 200\n<13>Nov 25 10:00:01 web01 nginx[42]: GET /admin 403\n";
    let r = hec(
        "/services/collector/raw?sourcetype=syslog",
        raw,
        auth.clone(),
        None,
    )
    .await;
    assert_eq!(r.body["code"], 0, "{r:?}");

    // HEC's own error shapes.
    assert_eq!(
        hec("/services/collector/event", body, None, None)
            .await
            .body,
        json!({"text": "Token is required", "code": 2})
    );
    let r = hec(
        "/services/collector/event",
        body,
        Some("Splunk mmr_wrong".into()),
        None,
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_u64()), (403, Some(4)));
    let analyst = s.token(&a, Role::OrgAnalyst).await;
    let r = hec(
        "/services/collector/event",
        body,
        Some(format!("Splunk {analyst}")),
        None,
    )
    .await;
    assert_eq!((r.status, r.body["code"].as_u64()), (403, Some(4)));
    let r = hec("/services/collector/event", "{not json", auth.clone(), None).await;
    assert_eq!((r.status, r.body["code"].as_u64()), (400, Some(6)));
    let r = s
        .call(Method::GET, "/services/collector/health", None, None)
        .await;
    assert_eq!(r.body["code"], 17);

    let events = archived(&s, a.id.as_str(), 6).await;
    assert_eq!(events.len(), 6);
    let dns = events
        .iter()
        .find(|e| e.body.fields.dns_query.as_deref() == Some("hec.example"))
        .unwrap();
    assert_eq!(dns.body.source, "mimamori:dns");
    assert_eq!(dns.body.time, Some(1_764_064_800_500));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.body.fields.hostname.as_deref() == Some("web01"))
            .count(),
        2
    );
}

#[tokio::test]
async fn elasticsearch_bulk() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let sensor = s.token(&a, Role::Sensor).await;
    let root: Value = s
        .client
        .get(format!("{}/", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(root["version"]["number"].as_str().unwrap().starts_with('8'));
    let other = s.org(&s.root, "other", OrgKind::Member).await;
    let claim = format!(r#"{{"index":{{"_index":"{}"}}}}"#, other.id);
    let body = [
        claim.as_str(),
        r#"{"@timestamp":"2026-11-25T10:00:00Z","class":"dns_activity","dns_query":"bulk.example"}"#,
        r#"{"create":{}}"#,
        r#"{"broken"#,
        r#"{"delete":{"_id":"x"}}"#,
        r#"{"index":{}}"#,
        r#"{"message":"plain doc"}"#,
        "",
    ]
    .join("\n");
    // Elasticsearch clients authenticate with Basic (the token as password).
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("fluent-bit:{sensor}"));
    let resp = s
        .client
        .post(format!("{}/logs-dns/_bulk", s.base))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let r = Server::read(resp).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["errors"], true);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["index"]["status"], 201);
    assert!(items[0]["index"]["_id"].is_string());
    assert_eq!(items[1]["create"]["status"], 400);
    assert_eq!(items[2]["delete"]["status"], 405);
    assert_eq!(items[3]["index"]["status"], 201);
    // Every item names where its event went: the sensor's org, not the
    // index (another org's id) the client claimed in the line or the path.
    for item in items {
        let (_, v) = item.as_object().unwrap().iter().next().unwrap();
        assert_eq!(v["_index"], a.id.as_str(), "{item}");
    }
    let events = archived(&s, a.id.as_str(), 2).await;
    assert_eq!(events.len(), 2);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.body.fields.dns_query.as_deref() == Some("bulk.example"))
            .count(),
        1
    );
    let r = s
        .call_raw(
            Method::POST,
            "/_bulk",
            Some(&sensor),
            b"not an action\n".to_vec(),
        )
        .await;
    assert!(problem(&r, 400).contains("line 1"));
}

#[tokio::test]
async fn query_is_scoped_limited_and_precise() {
    let s = Server::start().await;
    let sup = s.org(&s.root, "sup", OrgKind::Supervisor).await;
    let a = s.org(&sup, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    for (org, n) in [(&a, 3), (&b, 2)] {
        let sensor = s.token(org, Role::Sensor).await;
        let body: String = (0..n)
            .map(|i| {
                format!(
                    "{{\"class\":\"dns_activity\",\"dns_query\":\"q{i}.{}.example\"}}\n",
                    org.slug
                )
            })
            .collect();
        let r = s
            .call_raw(
                Method::POST,
                "/ingest/v1/events",
                Some(&sensor),
                body.into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    archived(&s, a.id.as_str(), 3).await;
    archived(&s, b.id.as_str(), 2).await;
    let sql =
        json!({"sql": "SELECT org_id, count(*) AS n FROM events GROUP BY org_id ORDER BY n DESC"});
    let counts = |r: &super::Resp| -> Vec<(String, u64)> {
        r.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["org_id"].as_str().unwrap().to_string(),
                    row["n"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    let r = s
        .call(Method::POST, "/api/v1/query", Some(&soc), Some(sql.clone()))
        .await;
    assert_eq!(
        counts(&r),
        vec![(a.id.to_string(), 3), (b.id.to_string(), 2)],
        "{r:?}"
    );
    let supervisor = s.token(&sup, Role::SupervisorAnalyst).await;
    let r = s
        .call(
            Method::POST,
            "/api/v1/query",
            Some(&supervisor),
            Some(sql.clone()),
        )
        .await;
    assert_eq!(counts(&r), vec![(a.id.to_string(), 3)]);
    let analyst_b = s.token(&b, Role::OrgAnalyst).await;
    let r = s.call(Method::POST, "/api/v1/query", Some(&analyst_b), Some(json!({"sql": format!("SELECT count(*) AS n FROM events WHERE org_id = '{}'", a.id)}))).await;
    assert_eq!(
        r.body["rows"][0]["n"], 0,
        "b cannot reach a's events by naming them"
    );
    assert_eq!(r.body["orgs_in_scope"], 1);

    let r = s
        .call(
            Method::POST,
            "/api/v1/query",
            Some(&soc),
            Some(json!({"sql": "DROP TABLE events"})),
        )
        .await;
    problem(&r, 422);
    assert_eq!(r.body["field"], "sql");
    let r = s
        .call(
            Method::POST,
            "/api/v1/query",
            Some(&soc),
            Some(json!({"sql": "SELECT missing_column FROM events"})),
        )
        .await;
    assert!(problem(&r, 422).contains("missing_column"));
    let r = s
        .call(
            Method::POST,
            "/api/v1/query",
            Some(&soc),
            Some(json!({"sql": "SELECT id FROM events", "max_rows": 2})),
        )
        .await;
    assert_eq!(r.body["rows"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["truncated"], true);
    let r = s
        .call(
            Method::POST,
            "/api/v1/query",
            Some(&soc),
            Some(json!({"sql": "SELECT 1", "timeout_secs": 600})),
        )
        .await;
    assert_eq!(r.body["field"], "timeout_secs");
}
