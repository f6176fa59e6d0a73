//! The TAXII 2.1 server with a real HTTP client: discovery, collections,
//! objects with `added_after` / `limit` / `next`, manifest, envelope POST
//! and status, and TLP per org.

use super::Server;
use mimamori_core::{OrgKind, Role};
use reqwest::Method;
use serde_json::{json, Value};

const TAXII: &str = "application/taxii+json;version=2.1";
const COLLECTION: &str = "/taxii2/api/collections/8f2b2a8e-6c1d-4a57-9d6e-3b7c5e0f1a24";

async fn get(s: &Server, path: &str, token: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = s
        .client
        .get(format!("{}{path}", s.base))
        .bearer_auth(token)
        .header("accept", TAXII)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    assert_eq!(headers["content-type"], TAXII, "{path}");
    (status, r.json().await.unwrap(), headers)
}

fn indicator(n: u32, value: &str, tlp_ref: Option<&str>) -> Value {
    let mut o = json!({
        "type": "indicator", "spec_version": "2.1",
        "id": format!("indicator--{:08x}-1111-4111-8111-111111111111", n),
        "created": "2026-11-01T00:00:00.000Z", "modified": "2026-11-01T00:00:00.000Z",
        "name": value, "pattern": format!("[domain-name:value = '{value}']"),
        "pattern_type": "stix", "valid_from": "2026-11-01T00:00:00Z",
        "indicator_types": ["malicious-activity"],
    });
    if let Some(t) = tlp_ref {
        o["object_marking_refs"] = json!([t]);
    }
    o
}

const TLP_GREEN: &str = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";

#[tokio::test]
async fn members_read_and_contribute_over_taxii_within_tlp() {
    let s = Server::start().await;
    if s.hub.schemas.is_none() {
        panic!("the STIX schemas in the test corpora are needed (set MIMAMORI_CORPORA)");
    }
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let a_t = s.token(&a, Role::OrgAnalyst).await;
    let b_t = s.token(&b, Role::OrgAnalyst).await;
    let sensor = s.token(&a, Role::Sensor).await;

    let (st, d, _) = get(&s, "/taxii2/", &a_t).await;
    assert_eq!(st, 200);
    assert_eq!(d["api_roots"], json!(["/taxii2/api/"]));
    let (_, root, _) = get(&s, "/taxii2/api/", &a_t).await;
    assert_eq!(root["versions"], json!([TAXII]));
    let (_, cols, _) = get(&s, "/taxii2/api/collections/", &a_t).await;
    assert_eq!(cols["collections"][0]["can_write"], true);
    // Sensors are machines that send telemetry, not intel readers.
    let (st, e, _) = get(&s, "/taxii2/api/collections/", &sensor).await;
    assert_eq!(st, 403, "{e}");
    assert_eq!(e["http_status"], "403");

    // a contributes three indicators: two GREEN, one unmarked (AMBER for
    // us: not shared), and one invalid object.
    let mut bad = indicator(4, "bad.example", None);
    bad.as_object_mut().unwrap().remove("modified");
    let env = json!({"objects": [
        indicator(1, "one.example", Some(TLP_GREEN)),
        indicator(2, "two.example", Some(TLP_GREEN)),
        indicator(3, "mine.example", None),
        bad,
    ]});
    let r = s
        .client
        .post(format!("{}{COLLECTION}/objects/", s.base))
        .bearer_auth(&a_t)
        .header("accept", TAXII)
        .header("content-type", TAXII)
        .body(env.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["status"], "complete");
    assert_eq!(status["total_count"], 4);
    assert_eq!(status["success_count"], 3, "{status}");
    assert_eq!(status["failure_count"], 1);
    assert_eq!(
        status["failures"][0]["id"],
        "indicator--00000004-1111-4111-8111-111111111111"
    );
    let sid = status["id"].as_str().unwrap();
    let (st, again, _) = get(&s, &format!("/taxii2/api/status/{sid}/"), &a_t).await;
    assert_eq!(st, 200);
    assert_eq!(again["success_count"], 3);
    // Another org cannot read a's status.
    let (st, _, _) = get(&s, &format!("/taxii2/api/status/{sid}/"), &b_t).await;
    assert_eq!(st, 404);

    let names = |env: &Value| -> Vec<String> {
        let mut v: Vec<String> = env["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["pattern"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let (_, all_a, _) = get(&s, &format!("{COLLECTION}/objects/"), &a_t).await;
    assert_eq!(all_a["objects"].as_array().unwrap().len(), 3, "{all_a}");
    let (_, all_b, _) = get(&s, &format!("{COLLECTION}/objects/"), &b_t).await;
    let seen_b = names(&all_b);
    assert_eq!(seen_b.len(), 2, "{seen_b:?}");
    assert!(seen_b.iter().all(|p| !p.contains("mine.example")));

    // Pagination: limit 1, then next, then next: three pages, no repeats.
    let mut seen = vec![];
    let mut path = format!("{COLLECTION}/objects/?limit=1");
    loop {
        let (st, page, headers) = get(&s, &path, &a_t).await;
        assert_eq!(st, 200, "{page}");
        let objs = page["objects"].as_array().unwrap();
        assert_eq!(objs.len(), 1);
        assert!(headers.contains_key("x-taxii-date-added-first"));
        seen.push(objs[0]["id"].as_str().unwrap().to_string());
        if page["more"] == true {
            path = format!(
                "{COLLECTION}/objects/?limit=1&next={}",
                page["next"].as_str().unwrap()
            );
        } else {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    // added_after: nothing is newer than the newest.
    let (_, m, headers) = get(&s, &format!("{COLLECTION}/manifest/"), &a_t).await;
    assert_eq!(m["objects"].as_array().unwrap().len(), 3);
    let last = headers["x-taxii-date-added-last"]
        .to_str()
        .unwrap()
        .to_string();
    let (_, after, _) = get(
        &s,
        &format!("{COLLECTION}/objects/?added_after={last}"),
        &a_t,
    )
    .await;
    assert_eq!(after["objects"], json!([]));
    assert_eq!(after["more"], false);
    // One object by id; an unknown collection; a bad parameter.
    let id = m["objects"][0]["id"].as_str().unwrap();
    let (st, one, _) = get(&s, &format!("{COLLECTION}/objects/{id}/"), &a_t).await;
    assert_eq!(st, 200);
    assert_eq!(one["objects"][0]["id"], id);
    let (st, _, _) = get(&s, "/taxii2/api/collections/nope/objects/", &a_t).await;
    assert_eq!(st, 404);
    let (st, e, _) = get(
        &s,
        &format!("{COLLECTION}/objects/?added_after=yesterday"),
        &a_t,
    )
    .await;
    assert_eq!(st, 400);
    assert!(e["description"].as_str().unwrap().contains("added_after"));
    // Clients that do not accept TAXII are told so.
    let r = s
        .client
        .request(Method::GET, format!("{}/taxii2/", s.base))
        .bearer_auth(&a_t)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 406);
}

/// Every role reads the collection as its org's TLP view: what it owns,
/// CLEAR/GREEN from anyone, AMBER shared with it; RED never leaves the
/// owner, whatever the reader's role (a soc-admin at the root included).
#[tokio::test]
async fn every_role_reads_exactly_its_orgs_tlp_view() {
    let s = Server::start().await;
    let sup = s.org(&s.root, "sup", OrgKind::Supervisor).await;
    let a = s.org(&sup, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let import =
        |org: mimamori_core::Org, tlp: mimamori_intel::Tlp, value: &str, share: Vec<String>| {
            let store = s.store.clone();
            let value = value.to_string();
            async move {
                let mut i = mimamori_intel::Indicator::new(
                    mimamori_intel::IndicatorKind::Domain { exact: false },
                    value,
                    time::OffsetDateTime::now_utc(),
                );
                i.tlp = tlp;
                store
                    .intel_upsert(
                        &mimamori_store::AuditActor::local_operator(),
                        &org,
                        &[i],
                        &share,
                        "t",
                    )
                    .await
                    .unwrap();
            }
        };
    use mimamori_intel::Tlp::*;
    import(s.root.clone(), Green, "root-green.example", vec![]).await;
    import(s.root.clone(), Amber, "root-amber.example", vec![]).await;
    import(
        sup.clone(),
        AmberStrict,
        "sup-strict-to-a.example",
        vec![a.id.to_string()],
    )
    .await;
    import(
        a.clone(),
        Amber,
        "a-amber-to-b.example",
        vec![b.id.to_string()],
    )
    .await;
    import(a.clone(), Red, "a-red.example", vec![]).await;
    import(b.clone(), Clear, "b-clear.example", vec![]).await;
    // A sharing group owned by sup whose member is b, in another branch
    // of the tree; a is not a member. What sup shares with the group
    // reaches b and only b.
    let op = mimamori_store::AuditActor::local_operator();
    let g = s
        .store
        .group_create(
            &op,
            &sup,
            &mimamori_store::NewSharingGroup {
                org_id: sup.id.to_string(),
                name: "cross-branch".into(),
                description: String::new(),
                members: vec![b.id.to_string()],
            },
        )
        .await
        .unwrap();
    for (value, tlp) in [
        ("sup-amber-to-group.example", Amber),
        ("sup-strict-to-group.example", AmberStrict),
        ("sup-red-to-group.example", Red),
    ] {
        let mut i = mimamori_intel::Indicator::new(
            mimamori_intel::IndicatorKind::Domain { exact: false },
            value.into(),
            time::OffsetDateTime::now_utc(),
        );
        i.tlp = tlp;
        s.store
            .intel_upsert_with(
                &op,
                &sup,
                &[i],
                &mimamori_store::Sharing {
                    orgs: vec![],
                    groups: vec![g.id.clone()],
                },
                "t",
            )
            .await
            .unwrap();
    }
    let all_see = ["b-clear.example", "root-green.example"];
    let cases: Vec<(Role, &mimamori_core::Org, Vec<&str>)> = vec![
        (Role::SocAdmin, &s.root, vec!["root-amber.example"]),
        (Role::SocAnalyst, &s.root, vec!["root-amber.example"]),
        (
            Role::SupervisorAnalyst,
            &sup,
            vec![
                "sup-amber-to-group.example",
                "sup-red-to-group.example",
                "sup-strict-to-a.example",
                "sup-strict-to-group.example",
            ],
        ),
        (
            Role::OrgAdmin,
            &a,
            vec![
                "a-amber-to-b.example",
                "a-red.example",
                "sup-strict-to-a.example",
            ],
        ),
        (
            Role::OrgAnalyst,
            &a,
            vec![
                "a-amber-to-b.example",
                "a-red.example",
                "sup-strict-to-a.example",
            ],
        ),
        (
            Role::OrgAnalyst,
            &b,
            vec![
                "a-amber-to-b.example",
                "sup-amber-to-group.example",
                "sup-strict-to-group.example",
            ],
        ),
        (
            Role::OrgAdmin,
            &b,
            vec![
                "a-amber-to-b.example",
                "sup-amber-to-group.example",
                "sup-strict-to-group.example",
            ],
        ),
    ];
    for (role, org, own) in cases {
        let token = s.token(org, role).await;
        let (st, env, _) = get(&s, &format!("{COLLECTION}/objects/"), &token).await;
        assert_eq!(st, 200, "{role}: {env}");
        let mut seen: Vec<String> = env["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                o["name"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("*.")
                    .to_string()
            })
            .collect();
        seen.sort();
        let mut want: Vec<String> = all_see
            .iter()
            .chain(own.iter())
            .map(|v| v.to_string())
            .collect();
        want.sort();
        assert_eq!(seen, want, "{role} at {}", org.slug);
        // The manifest lists the same objects.
        let (st, man, _) = get(&s, &format!("{COLLECTION}/manifest/"), &token).await;
        assert_eq!(st, 200);
        assert_eq!(
            man["objects"].as_array().map_or(0, Vec::len),
            want.len(),
            "{role} at {}: {man}",
            org.slug
        );
    }
    let sensor = s.token(&a, Role::Sensor).await;
    let (st, _, _) = get(&s, &format!("{COLLECTION}/objects/"), &sensor).await;
    assert_eq!(st, 403);
}
