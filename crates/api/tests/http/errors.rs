//! Bad input gets a precise problem+json error, and nothing is half-written.

use super::{problem, Server};
use mimamori_core::{OrgKind, Role};
use reqwest::Method;
use serde_json::json;

async fn count(s: &Server, token: &str, path: &str) -> usize {
    let r = s
        .call(Method::GET, &format!("{path}?limit=500"), Some(token), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn malformed_bodies_are_rejected_precisely() {
    let s = Server::start().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let url = format!("{}/api/v1/orgs", s.base);
    let send = |body: Vec<u8>, ct: Option<&'static str>| {
        let mut req = s.client.post(&url).bearer_auth(&soc).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        async move { Server::read(req.send().await.unwrap()).await }
    };
    let orgs_before = count(&s, &soc, "/api/v1/orgs").await;
    let audit_before = count(&s, &soc, "/api/v1/audit").await;

    let r = send(b"{\"slug\": \"x\",".to_vec(), Some("application/json")).await;
    let d = problem(&r, 400);
    assert!(d.starts_with("the body is not valid JSON"), "{d}");
    assert!(d.contains("line 1"), "{d}");

    let r = send(
        br#"{"slug": 7, "name": "x", "parent_id": "p"}"#.to_vec(),
        Some("application/json"),
    )
    .await;
    let d = problem(&r, 422);
    assert!(d.contains("slug") && d.contains("invalid type"), "{d}");

    let r = send(
        br#"{"slug": "x", "name": "x", "parent_id": "p", "colour": "red"}"#.to_vec(),
        Some("application/json"),
    )
    .await;
    let d = problem(&r, 422);
    assert!(d.contains("unknown field `colour`"), "{d}");

    let r = send(br#"{"slug": "x"}"#.to_vec(), None).await;
    problem(&r, 415);

    let r = send(vec![b' '; 2 * 1024 * 1024], Some("application/json")).await;
    let d = problem(&r, 413);
    assert!(d.contains("1048576"), "{d}");

    let r = send(vec![0xff, 0xfe, b'{'], Some("application/json")).await;
    problem(&r, 400);

    // Field validation names the field.
    let body = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
    let r = send(body(json!({"parent_id": s.root.id, "slug": "ok", "name": "x", "networks": ["10.0.0.0/8", "300.1.1.1/8"]})), Some("application/json")).await;
    let d = problem(&r, 422);
    assert_eq!(r.body["field"], "networks[1]");
    assert!(d.contains("300.1.1.1/8"), "{d}");
    let r = send(
        body(json!({"parent_id": s.root.id, "slug": "Not A Slug", "name": "x"})),
        Some("application/json"),
    )
    .await;
    problem(&r, 422);
    assert_eq!(r.body["field"], "slug");
    let r = send(
        body(json!({"parent_id": s.root.id, "slug": "ok", "name": "   "})),
        Some("application/json"),
    )
    .await;
    assert_eq!(problem(&r, 422), "must not be empty");
    let r = send(
        body(json!({"slug": "ok", "name": "x"})),
        Some("application/json"),
    )
    .await;
    assert_eq!(r.body["field"], "parent_id");
    let r = send(
        body(json!({"parent_id": s.root.id, "slug": "ok", "name": "x", "kind": "soc"})),
        Some("application/json"),
    )
    .await;
    assert_eq!(
        problem(&r, 422),
        "only the root org is of kind soc; use supervisor or member"
    );

    // Unknown org ids: well-formed or not, a 404 naming the id.
    let missing = mimamori_core::new_id();
    let r = send(
        body(json!({"parent_id": missing, "slug": "ok", "name": "x"})),
        Some("application/json"),
    )
    .await;
    assert_eq!(problem(&r, 404), format!("no org with id {missing:?}"));
    let r = s
        .call(Method::GET, "/api/v1/orgs/not-an-id", Some(&soc), None)
        .await;
    assert_eq!(problem(&r, 404), "no org with id \"not-an-id\"");

    // A conflict writes nothing either.
    s.org(&s.root, "taken", OrgKind::Member).await;
    let orgs_mid = count(&s, &soc, "/api/v1/orgs").await;
    let audit_mid = count(&s, &soc, "/api/v1/audit").await;
    assert_eq!((orgs_mid, audit_mid), (orgs_before + 1, audit_before + 1));
    let r = send(
        body(json!({"parent_id": s.root.id, "slug": "taken", "name": "x"})),
        Some("application/json"),
    )
    .await;
    assert_eq!(
        problem(&r, 409),
        "an org with slug \"taken\" already exists"
    );

    // Nothing above was half-written: same orgs, same audit trail.
    assert_eq!(count(&s, &soc, "/api/v1/orgs").await, orgs_mid);
    assert_eq!(count(&s, &soc, "/api/v1/audit").await, audit_mid);
}

#[tokio::test]
async fn bad_tokens_are_refused_with_the_reason() {
    let s = Server::start().await;
    let r = s
        .call(
            Method::GET,
            "/api/v1/whoami",
            Some("mmr_not-a-real-token"),
            None,
        )
        .await;
    assert_eq!(problem(&r, 401), "the bearer token is not valid");
    let raw = s
        .client
        .get(format!("{}/api/v1/whoami", s.base))
        .header("authorization", "Digest username=\"x\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.headers()["www-authenticate"],
        "Bearer realm=\"mimamori\""
    );
    let r = Server::read(raw).await;
    assert!(problem(&r, 401).starts_with("the Authorization header must be 'Bearer <token>'"));

    let soc = s.token(&s.root, Role::SocAdmin).await;
    let r = s
        .call(Method::POST, "/api/v1/tokens", Some(&soc), Some(json!({"org_id": s.root.id, "name": "brief", "role": "soc-analyst", "expires_in_secs": 1})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let brief = r.body["secret"].as_str().unwrap().to_string();
    let brief_id = r.body["token"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.call(Method::GET, "/api/v1/whoami", Some(&brief), None)
            .await
            .status,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = s
        .call(Method::GET, "/api/v1/whoami", Some(&brief), None)
        .await;
    assert!(
        problem(&r, 401).starts_with("the bearer token expired at 20"),
        "{r:?}"
    );

    let r = s
        .call(Method::POST, "/api/v1/tokens", Some(&soc), Some(json!({"org_id": s.root.id, "name": "x", "role": "soc-analyst", "expires_in_secs": 0})))
        .await;
    problem(&r, 422);
    let r = s
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&soc),
            Some(json!({"org_id": s.root.id, "name": "x", "role": "superuser"})),
        )
        .await;
    let d = problem(&r, 422);
    assert!(d.contains("unknown variant `superuser`"), "{d}");

    // Revoking is immediate, idempotent and shown in the token's metadata.
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{brief_id}"),
            Some(&soc),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let first = r.body["revoked_at"].as_i64().unwrap();
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{brief_id}"),
            Some(&soc),
            None,
        )
        .await;
    assert_eq!(r.body["revoked_at"].as_i64().unwrap(), first);
    // Token listings never include secrets or their hashes.
    let r = s
        .call(Method::GET, "/api/v1/tokens", Some(&soc), None)
        .await;
    let text = r.body.to_string();
    assert!(!text.contains("secret") && !text.contains("mmr_"), "{text}");
}

#[tokio::test]
async fn bad_query_strings_and_routes() {
    let s = Server::start().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let r = s
        .call(Method::GET, "/api/v1/orgs?limit=0", Some(&soc), None)
        .await;
    assert_eq!(problem(&r, 400), "limit must be between 1 and 500, got 0");
    let r = s
        .call(Method::GET, "/api/v1/orgs?limit=many", Some(&soc), None)
        .await;
    assert!(problem(&r, 400).contains("limit"));
    let r = s
        .call(Method::GET, "/api/v1/orgs?cursor=bogus", Some(&soc), None)
        .await;
    assert!(problem(&r, 400).contains("cursor"));
    let r = s
        .call(Method::GET, "/api/v1/orgs?sort=name", Some(&soc), None)
        .await;
    assert!(problem(&r, 400).contains("sort"));
    let r = s
        .call(Method::GET, "/api/v1/nothing", Some(&soc), None)
        .await;
    problem(&r, 404);
    let r = s.call(Method::PUT, "/api/v1/orgs", Some(&soc), None).await;
    problem(&r, 405);
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/orgs/{}", s.root.id),
            Some(&soc),
            None,
        )
        .await;
    assert_eq!(problem(&r, 409), "the root org cannot be deleted");
}
