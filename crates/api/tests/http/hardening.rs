//! Hostile input at the edges: guessed passwords, oversized and malformed
//! bodies on every endpoint, and TAXII writes that claim too much.

use super::{problem, Server};
use mimamori_core::{OrgKind, Role};
use reqwest::Method;
use serde_json::{json, Value};

async fn login(s: &Server, org: &str, user: &str, password: &str) -> (u16, Value, Option<String>) {
    let r = s
        .client
        .post(format!("{}/api/v1/auth/login", s.base))
        .json(&json!({"org": org, "username": user, "password": password}))
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let r = Server::read(r).await;
    (r.status, r.body, retry)
}

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_account_then_the_address() {
    let s = Server::start().await;
    let m = s.org(&s.root, "m", OrgKind::Member).await;
    s.user(&m, "kenji", Role::OrgAnalyst).await;
    s.user(&m, "aiko", Role::OrgAnalyst).await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let good = "a long enough password";
    let (st, _, _) = login(&s, "m", "kenji", good).await;
    assert_eq!(st, 201);
    // Five wrong passwords: each a 401, and then the account is locked,
    // even for the right password.
    for _ in 0..5 {
        let (st, _, _) = login(&s, "m", "kenji", "guess").await;
        assert_eq!(st, 401);
    }
    let (st, body, retry) = login(&s, "m", "kenji", good).await;
    assert_eq!(st, 429, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("this account"),
        "{body}"
    );
    let secs: u64 = retry.unwrap().parse().unwrap();
    assert!(secs > 0 && secs <= 900, "{secs}");
    // Another account of the org is not locked by it.
    let (st, _, _) = login(&s, "m", "aiko", good).await;
    assert_eq!(st, 201);
    // The lock is audited in the user's org.
    let r = s
        .call(Method::GET, "/api/v1/audit?limit=500", Some(&soc), None)
        .await;
    let locks: Vec<&Value> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["action"] == "auth.login_locked")
        .collect();
    assert_eq!(locks.len(), 1, "{:?}", r.body);
    assert_eq!(locks[0]["org_id"], m.id.as_str());
    assert_eq!(locks[0]["detail"]["username"], "kenji");
    // Guessing across accounts from one address: 20 failures lock the
    // address (5 above, 15 more here), so a right password is refused too.
    for i in 0..15 {
        let (st, _, _) = login(&s, "m", &format!("nobody{i}"), "guess").await;
        assert_eq!(st, 401);
    }
    let (st, body, retry) = login(&s, "m", "aiko", good).await;
    assert_eq!(st, 429, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("your address"),
        "{body}"
    );
    assert!(retry.is_some());
    assert_eq!(body["status"], 429);
}

/// Every route of the OpenAPI document, plus the ingest and TAXII ones,
/// with the methods it takes.
async fn routes(s: &Server, token: &str) -> Vec<(Method, String)> {
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", Some(token), None)
        .await
        .body;
    let mut out = vec![];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let path = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for m in ops.as_object().unwrap().keys() {
            let method = match m.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            out.push((method, path.clone()));
        }
    }
    for p in [
        "/ingest/v1/events",
        "/services/collector/event",
        "/services/collector/raw",
        "/services/collector/ack",
        "/_bulk",
        "/logs/_bulk",
        "/taxii2/api/collections/x/objects/",
    ] {
        out.push((Method::POST, p.to_string()));
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup();
    assert!(out.len() > 40, "{out:?}");
    out
}

/// One request over a raw socket declaring a body of `declared` bytes and
/// sending only its first byte: the answer must come before the body.
async fn declare_big_body(
    s: &Server,
    method: &Method,
    path: &str,
    token: Option<&str>,
    declared: u64,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n{{"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        sock.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "{method} {path}: no answer before the body");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let ct = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, ct, body.to_string())
}

#[tokio::test]
async fn oversized_bodies_get_413_on_every_endpoint() {
    let s = Server::start().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    for (method, path) in routes(&s, &soc).await {
        for token in [Some(soc.as_str()), None] {
            let (status, ct, body) = declare_big_body(&s, &method, &path, token, 70_000_000).await;
            assert_eq!(status, 413, "{method} {path}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if path.starts_with("/taxii2") {
                assert!(ct.starts_with("application/taxii+json"), "{ct}");
                assert_eq!(v["http_status"], "413", "{body}");
            } else {
                assert_eq!(ct, "application/problem+json", "{method} {path}");
                assert_eq!(v["status"], 413, "{body}");
                assert!(
                    v["detail"].as_str().unwrap().contains("byte limit"),
                    "{body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn malformed_json_and_invalid_utf8_are_clear_400s_everywhere() {
    let s = Server::start().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", Some(&soc), None)
        .await
        .body;
    let mut json_routes = vec![];
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (m, op) in ops.as_object().unwrap() {
            if op["requestBody"]["content"]["application/json"].is_object() {
                let path = path
                    .split('/')
                    .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                    .collect::<Vec<_>>()
                    .join("/");
                json_routes.push((m.to_uppercase(), path));
            }
        }
    }
    assert!(json_routes.len() >= 10, "{json_routes:?}");
    for (m, path) in &json_routes {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        for body in [
            b"{\"a\":".to_vec(),
            b"{\"\xff\xfe\": 1}".to_vec(),
            vec![0xef, 0xbb, 0xbf, b'{', b'}', 0xc3],
            b"[1, 2,]".to_vec(),
        ] {
            let r = s
                .client
                .request(method.clone(), format!("{}{path}", s.base))
                .bearer_auth(&soc)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let r = Server::read(r).await;
            let d = problem(&r, 400);
            assert!(d.contains("JSON"), "{m} {path} {body:?}: {d}");
        }
    }
    // Paths and query strings that are not UTF-8, on the API and TAXII.
    let r = s
        .call(Method::GET, "/api/v1/orgs/%ff%fe", Some(&soc), None)
        .await;
    problem(&r, 400);
    let r = s
        .call(Method::GET, "/api/v1/alerts?status=%ff", Some(&soc), None)
        .await;
    problem(&r, 400);
    let r = s
        .client
        .get(format!("{}/taxii2/api/collections/%ff/", s.base))
        .bearer_auth(&soc)
        .send()
        .await
        .unwrap();
    let r = Server::read(r).await;
    assert!(r.status == 400 || r.status == 404, "{r:?}");
    assert!(
        r.content_type.starts_with("application/taxii+json"),
        "{r:?}"
    );
    let r = s
        .client
        .get(format!(
            "{}/taxii2/api/collections/{}/objects/?added_after=%ff",
            s.base,
            mimamori_api::routes::taxii::INDICATORS
        ))
        .bearer_auth(&soc)
        .send()
        .await
        .unwrap();
    let r = Server::read(r).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.content_type.starts_with("application/taxii+json"),
        "{r:?}"
    );
}

const TLP_CLEAR: &str = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487";

#[tokio::test]
async fn a_taxii_write_cannot_claim_another_org_or_change_its_tlp() {
    let s = Server::start().await;
    assert!(s.hub.schemas.is_some());
    let m = s.org(&s.root, "m", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let m_t = s.token(&m, Role::OrgAdmin).await;
    let b_t = s.token(&b, Role::OrgAnalyst).await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    // The SOC's RED indicator, for the SOC's eyes only.
    let mut red = mimamori_intel::Indicator::new(
        mimamori_intel::IndicatorKind::Domain { exact: false },
        "soc-red.example".into(),
        time::OffsetDateTime::now_utc(),
    );
    red.tlp = mimamori_intel::Tlp::Red;
    s.store
        .intel_upsert(
            &mimamori_store::AuditActor::local_operator(),
            &s.root,
            &[red],
            &[],
            "t",
        )
        .await
        .unwrap();
    // m writes the same value marked CLEAR, naming the SOC as its author
    // every way STIX and a guessing client could.
    let obj = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": "indicator--00000009-1111-4111-8111-111111111111",
        "created": "2026-11-01T00:00:00.000Z", "modified": "2026-11-01T00:00:00.000Z",
        "name": "soc-red.example", "pattern": "[domain-name:value = 'soc-red.example']",
        "pattern_type": "stix", "valid_from": "2026-11-01T00:00:00Z",
        "indicator_types": ["malicious-activity"],
        "object_marking_refs": [TLP_CLEAR],
        "created_by_ref": format!("identity--{}", uuid_like(s.root.id.as_str())),
        "x_mimamori_org_id": s.root.id,
        "x_mimamori_owner_org_id": s.root.id,
    });
    taxii_add(&s, &m_t, obj).await;
    // The SOC still owns one RED record of it, unchanged.
    let of = |token: String| {
        let s = &s;
        async move {
            let r = s
                .call(
                    Method::GET,
                    "/api/v1/indicators?contains=soc-red&limit=100",
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["items"].as_array().unwrap().clone()
        }
    };
    let seen_by_soc = of(soc.clone()).await;
    let soc_owned: Vec<&Value> = seen_by_soc
        .iter()
        .filter(|i| i["owner_org_id"] == s.root.id.as_str())
        .collect();
    assert_eq!(soc_owned.len(), 1, "{seen_by_soc:?}");
    assert_eq!(soc_owned[0]["indicator"]["tlp"], "red", "{seen_by_soc:?}");
    // What m wrote is m's, whatever it claimed.
    let m_owned: Vec<&Value> = seen_by_soc
        .iter()
        .filter(|i| i["owner_org_id"] == m.id.as_str())
        .collect();
    assert_eq!(m_owned.len(), 1, "{seen_by_soc:?}");
    // b sees m's CLEAR contribution, never the SOC's RED record.
    for i in of(b_t.clone()).await {
        assert_eq!(i["owner_org_id"], m.id.as_str(), "{i}");
    }
}

const TLP_AMBER: &str = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82";
const TLP_RED: &str = "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed";

/// A member writing AMBER and RED objects over TAXII for a value another
/// org holds as GREEN cannot raise that org's record: b's GREEN record
/// stays as it was, still shared with everyone; what m wrote is m's.
#[tokio::test]
async fn a_taxii_write_cannot_raise_the_tlp_of_another_orgs_record() {
    let s = Server::start().await;
    let m = s.org(&s.root, "m", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let c = s.org(&s.root, "c", OrgKind::Member).await;
    let m_t = s.token(&m, Role::OrgAdmin).await;
    let b_t = s.token(&b, Role::OrgAdmin).await;
    let c_t = s.token(&c, Role::OrgAnalyst).await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    // b's GREEN indicator, imported over HTTP.
    let r = s
        .call_raw(
            Method::POST,
            "/api/v1/intel/import?format=plain&tlp=green&confidence=70&source=b-list&retro=false",
            Some(&b_t),
            b"b-green.example\n".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["inserted"], 1, "{r:?}");
    let records = |token: String| {
        let s = &s;
        async move {
            let r = s
                .call(
                    Method::GET,
                    "/api/v1/indicators?contains=b-green&limit=100",
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["items"].as_array().unwrap().clone()
        }
    };
    let before = records(soc.clone()).await;
    assert_eq!(before.len(), 1, "{before:?}");
    let b_id = before[0]["id"].as_str().unwrap().to_string();
    let detail = |token: String| {
        let s = &s;
        let path = format!("/api/v1/indicators/{b_id}");
        async move {
            let r = s.call(Method::GET, &path, Some(&token), None).await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body
        }
    };
    let b_before = detail(b_t.clone()).await;
    assert_eq!(b_before["indicator"]["tlp"], "green", "{b_before}");
    // m writes the same value as AMBER, then as RED, each claiming b's
    // record (its owner, and a STIX id and author of b's).
    for (n, marking) in [(1, TLP_AMBER), (2, TLP_RED)] {
        let obj = json!({
            "type": "indicator", "spec_version": "2.1",
            "id": format!("indicator--0000000{n}-2222-4222-8222-222222222222"),
            "created": "2026-11-01T00:00:00.000Z",
            "modified": format!("2026-11-0{n}T00:00:00.000Z"),
            "name": "b-green.example", "pattern": "[domain-name:value = 'b-green.example']",
            "pattern_type": "stix", "valid_from": "2026-11-01T00:00:00Z",
            "indicator_types": ["malicious-activity"], "confidence": 95,
            "object_marking_refs": [marking],
            "created_by_ref": format!("identity--{}", uuid_like(b.id.as_str())),
            "x_mimamori_id": b_id,
            "x_mimamori_owner_org_id": b.id,
        });
        let body = taxii_add(&s, &m_t, obj).await;
        assert_eq!(body["success_count"], 1, "{body}");
    }
    // b's record is as it was: GREEN, same confidence, same sources, not
    // touched.
    let b_after = detail(b_t.clone()).await;
    for field in ["owner_org_id", "indicator", "updated_at", "shared_with"] {
        assert_eq!(b_after[field], b_before[field], "{field}: {b_after}");
    }
    // m's write is a record of m's own, as strict as m said (RED: m's
    // eyes only).
    let seen_by_m = records(m_t.clone()).await;
    let m_rec: Vec<&Value> = seen_by_m
        .iter()
        .filter(|i| i["owner_org_id"] == m.id.as_str())
        .collect();
    assert_eq!(m_rec.len(), 1, "{seen_by_m:?}");
    assert_eq!(m_rec[0]["indicator"]["tlp"], "red", "{seen_by_m:?}");
    assert_ne!(m_rec[0]["id"], b_id.as_str());
    // The SOC sees b's record still as the only one it may read.
    let seen_by_soc = records(soc.clone()).await;
    assert_eq!(seen_by_soc.len(), 1, "{seen_by_soc:?}");
    assert_eq!(seen_by_soc[0]["id"], b_id.as_str(), "{seen_by_soc:?}");
    assert_eq!(seen_by_soc[0]["indicator"]["tlp"], "green");
    // A third org still reads b's GREEN record, and nothing of m's RED.
    let seen_by_c = records(c_t.clone()).await;
    assert_eq!(seen_by_c.len(), 1, "{seen_by_c:?}");
    assert_eq!(seen_by_c[0]["id"], b_id.as_str(), "{seen_by_c:?}");
    assert_eq!(seen_by_c[0]["indicator"]["tlp"], "green", "{seen_by_c:?}");
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/indicators/{b_id}"),
            Some(&c_t),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // And over TAXII too: c's read of the collection has b's value as GREEN.
    let r = s
        .client
        .get(format!(
            "{}/taxii2/api/collections/{}/objects/",
            s.base,
            mimamori_api::routes::taxii::INDICATORS
        ))
        .bearer_auth(&c_t)
        .header("accept", "application/taxii+json;version=2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let env: Value = r.json().await.unwrap();
    let objs: Vec<&Value> = env["objects"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter(|o| {
                    o["pattern"]
                        .as_str()
                        .is_some_and(|p| p.contains("b-green.example"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(objs.len(), 1, "{env}");
    // TLP:GREEN (the TLP 2.0 marking the export uses).
    assert_eq!(
        objs[0]["object_marking_refs"],
        json!(["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]),
        "{}",
        objs[0]
    );
}

/// A UUID-shaped string from an id (STIX identities need one).
/// POSTs `obj` to the TAXII collection as `token`: accepted (202); the
/// status resource.
async fn taxii_add(s: &Server, token: &str, obj: Value) -> Value {
    let r = s
        .client
        .post(format!(
            "{}/taxii2/api/collections/{}/objects/",
            s.base,
            mimamori_api::routes::taxii::INDICATORS
        ))
        .bearer_auth(token)
        .header("accept", "application/taxii+json;version=2.1")
        .header("content-type", "application/taxii+json;version=2.1")
        .body(json!({"objects": [obj]}).to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body
}

fn uuid_like(id: &str) -> String {
    let hex: String = id
        .bytes()
        .map(|b| format!("{:02x}", b))
        .collect::<String>()
        .chars()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}
