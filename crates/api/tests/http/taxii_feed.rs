//! A TAXII 2.1 collection of another server, subscribed to as a feed: each
//! poll reads only what was added since the last one, page by page, with
//! the subscription's `Authorization` header, which is never shown back.

use super::{loopback_policy, problem, Server};
use mimamori_core::Role;
use reqwest::Method;
use serde_json::{json, Value};

/// A plain list of `n` domains `{prefix}{i}.example`, imported at `s`'s
/// root as TLP:GREEN.
async fn import_domains(s: &Server, token: &str, prefix: &str, range: std::ops::Range<usize>) {
    let body: String = range.map(|i| format!("{prefix}{i}.example\n")).collect();
    let r = s
        .call_raw(
            Method::POST,
            "/api/v1/intel/import?format=plain&tlp=green&source=partner-list",
            Some(token),
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// The URL of `partner`'s TAXII collection.
fn collection_url(partner: &Server) -> String {
    format!(
        "{}/taxii2/api/collections/{}/",
        partner.base,
        mimamori_api::routes::taxii::INDICATORS
    )
}

/// How many indicators of `s` whose value contains `needle` the token sees.
async fn count(s: &Server, token: &str, needle: &str) -> usize {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/indicators?contains={needle}&limit=500");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = s.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(r.status, 200, "{r:?}");
        n += r.body["items"].as_array().unwrap().len();
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taxii_collection_is_polled_as_a_feed_for_what_is_new() {
    // The partner CERT's server, with its own intel in its TAXII collection.
    let partner = Server::start().await;
    let partner_admin = partner.token(&partner.root, Role::SocAdmin).await;
    let partner_reader = partner.token(&partner.root, Role::SocAnalyst).await;
    // More than the partner's page (1,000 objects): the first poll pages.
    import_domains(&partner, &partner_admin, "taxii-feed-a", 0..1200).await;

    // Our server polls it (on loopback: allowed here, refused by default).
    let s = Server::start_fetching_loopback().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let collection = collection_url(&partner);
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(
                json!({"org_id": s.root.id, "name": "partner cert", "url": collection,
                "format": "taxii", "auth_header": format!("Bearer {partner_reader}"),
                "interval_secs": 900, "tlp": "amber"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["authenticated"], true, "{r:?}");
    let shown = serde_json::to_string(&r.body).unwrap();
    assert!(
        !shown.contains(&partner_reader),
        "the credential is shown: {shown}"
    );
    let id = r.body["id"].as_str().unwrap().to_string();
    let poll = format!("/api/v1/intel/feeds/{id}/poll");

    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "imported", "{r:?}");
    assert_eq!(r.body["last_count"], 1200, "{r:?}");
    assert!(r.body["last_modified"].is_string(), "no cursor kept: {r:?}");
    assert_eq!(count(&s, &soc, "taxii-feed-a").await, 1200);
    // The listing and the detail never show the credential either.
    for path in [
        "/api/v1/intel/feeds".to_string(),
        format!("/api/v1/intel/feeds/{id}"),
    ] {
        let r = s.call(Method::GET, &path, Some(&soc), None).await;
        assert_eq!(r.status, 200, "{r:?}");
        let shown = serde_json::to_string(&r.body).unwrap();
        assert!(
            !shown.contains(&partner_reader),
            "{path} shows the credential"
        );
        assert!(
            !shown.contains("auth_header"),
            "{path} names the credential: {shown}"
        );
    }

    // Nothing new at the partner: nothing imported again.
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "imported", "{r:?}");
    assert_eq!(r.body["last_count"], 0, "{r:?}");

    // Two new indicators there: only those two come.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    import_domains(&partner, &partner_admin, "taxii-feed-b", 0..2).await;
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "imported", "{r:?}");
    assert_eq!(r.body["last_count"], 2, "{r:?}");
    assert_eq!(count(&s, &soc, "taxii-feed-b").await, 2);

    // The imported indicators protect: each is ours, AMBER, from the feed.
    let r = s
        .call(
            Method::GET,
            "/api/v1/indicators?contains=taxii-feed-b1.example",
            Some(&soc),
            None,
        )
        .await;
    let item: &Value = &r.body["items"][0];
    assert_eq!(item["owner_org_id"], s.root.id.as_str(), "{item}");
    assert!(
        serde_json::to_string(item)
            .unwrap()
            .contains("feed:partner cert"),
        "{item}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taxii_feed_says_why_it_fails() {
    let partner = Server::start().await;
    let s = Server::start_fetching_loopback().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let collection = collection_url(&partner);
    // A wrong token: the partner's 401 is the feed's error.
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(
                json!({"org_id": s.root.id, "name": "wrong token", "url": collection,
                "format": "taxii", "auth_header": "Bearer mmr_not-a-token"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let poll = format!(
        "/api/v1/intel/feeds/{}/poll",
        r.body["id"].as_str().unwrap()
    );
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "error", "{r:?}");
    assert!(
        r.body["last_error"].as_str().unwrap().contains("401"),
        "{r:?}"
    );
    // No collection there: the partner's 404 is the feed's error.
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(json!({"org_id": s.root.id, "name": "no collection",
                "url": format!("{}/taxii2/api/collections/nothing/", partner.base),
                "format": "taxii"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let poll = format!(
        "/api/v1/intel/feeds/{}/poll",
        r.body["id"].as_str().unwrap()
    );
    let r = s.call(Method::POST, &poll, Some(&soc), None).await;
    assert_eq!(r.body["last_status"], "error", "{r:?}");
    assert!(
        r.body["last_error"].as_str().unwrap().contains("40"),
        "{r:?}"
    );
    // A credential that would inject a header is refused at subscription.
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(
                json!({"org_id": s.root.id, "name": "injected", "url": collection,
                "format": "taxii", "auth_header": "Bearer x\r\nX-Evil: 1"}),
            ),
        )
        .await;
    assert!(problem(&r, 422).contains("visible ASCII"), "{r:?}");
    assert_eq!(r.body["field"], "auth_header", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taxii_poll_cut_short_resumes_where_it_stopped() {
    // 2,500 objects from one import share their date added, three pages of
    // the partner's 1,000: a poll that reads one page at a time must go on
    // with the server's `next`, not skip what shares the newest date seen.
    let partner = Server::start().await;
    let partner_admin = partner.token(&partner.root, Role::SocAdmin).await;
    let partner_reader = partner.token(&partner.root, Role::SocAnalyst).await;
    import_domains(&partner, &partner_admin, "taxii-resume", 0..2500).await;
    let s = Server::start().await;
    let soc = s.token(&s.root, Role::SocAdmin).await;
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/feeds",
            Some(&soc),
            Some(
                json!({"org_id": s.root.id, "name": "paged", "format": "taxii",
                "url": format!("{}objects/", collection_url(&partner)),
                "auth_header": format!("Bearer {partner_reader}")}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let http = mimamori_pipeline::feeds::client(loopback_policy()).unwrap();
    let scope = mimamori_core::Scope::Subtree(s.root.path.clone());
    let mut counts = vec![];
    for _ in 0..4 {
        let feed = s.store.feed_get(&scope, &id).await.unwrap();
        let outcome = mimamori_pipeline::feeds::poll_pages(&s.hub, &http, &feed, 1).await;
        assert_eq!(outcome.error, None);
        counts.push(outcome.count.unwrap());
        s.store.feed_polled(&feed.id, &outcome).await.unwrap();
    }
    assert_eq!(counts, [1000, 1000, 500, 0]);
    assert_eq!(count(&s, &soc, "taxii-resume").await, 2500);
    // A saved page token the server no longer knows restarts the query.
    let feed = s.store.feed_get(&scope, &id).await.unwrap();
    let mut stale = feed.clone();
    stale.etag = Some("garbage".into());
    stale.last_modified = None;
    let outcome = mimamori_pipeline::feeds::poll_pages(&s.hub, &http, &stale, 100).await;
    assert_eq!(outcome.error, None, "{outcome:?}");
    assert_eq!(outcome.count, Some(2500));
}
