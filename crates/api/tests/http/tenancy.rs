//! Issue 21, tried from an unrelated member org: a retro-hunt's record,
//! hit counts and org list, and AMBER / RED indicators, never reach an org
//! outside the owner's entitled scope — for every role there.

use super::{Resp, Server};
use mimamori_core::{Org, OrgKind, Role};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn ingest(s: &Server, org: &Org, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    s.ingest_dns(org, &names).await;
}

/// Imports a plain list as `token`'s org; returns the retro-hunt id.
async fn import(s: &Server, token: &str, tlp: &str, values: &[&str]) -> String {
    let r = s
        .call_raw(
            Method::POST,
            &format!(
                "/api/v1/intel/import?format=plain&tlp={}&source=t",
                tlp.replace('+', "%2B")
            ),
            Some(token),
            values.join("\n").into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["retro_hunt_id"].as_str().unwrap().to_string()
}

async fn done(s: &Server, token: &str, id: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = s
            .call(
                Method::GET,
                &format!("/api/v1/hunts/{id}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        if r.body["state"] != "running" {
            return r.body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "hunt not done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every role of `org` a person or integration reads with.
async fn readers(s: &Server, org: &Org) -> Vec<(Role, String)> {
    let roles: &[Role] = match org.kind {
        OrgKind::Soc => &[Role::SocAdmin, Role::SocAnalyst],
        OrgKind::Supervisor => &[Role::SupervisorAnalyst],
        OrgKind::Member => &[Role::OrgAdmin, Role::OrgAnalyst],
    };
    let mut out = vec![];
    for r in roles {
        out.push((*r, s.token(org, *r).await));
    }
    out
}

fn status(r: &Resp) -> u16 {
    r.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hunts_and_restricted_indicators_stay_in_the_owners_scope() {
    let s = Server::start().await;
    let sup = s.org(&s.root, "sup", OrgKind::Supervisor).await;
    let child = s.org(&sup, "child", OrgKind::Member).await;
    let other = s.org(&s.root, "other", OrgKind::Member).await;
    ingest(&s, &child, &["shared-hit.example", "child-hit.example"]).await;
    ingest(&s, &other, &["shared-hit.example", "shared-hit.example"]).await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    let child_admin = s.token(&child, Role::OrgAnalyst).await;

    // The SOC's GREEN intel hunts every org: 3 hits in 2 orgs.
    let soc_hunt = import(&s, &soc, "green", &["shared-hit.example"]).await;
    let job = done(&s, &soc, &soc_hunt).await;
    assert_eq!(job["findings"], 3, "{job}");
    // child's GREEN intel also hunts every org (GREEN protects all), but
    // the job is child's: child sees its own part only.
    let child_hunt = import(
        &s,
        &child_admin,
        "green",
        &["shared-hit.example", "child-hit.example"],
    )
    .await;
    let full = done(&s, &soc, &child_hunt).await;
    assert_eq!(full["findings"], 4, "the SOC sees the whole job: {full}");
    for (role, t) in readers(&s, &child).await {
        let mine = done(&s, &t, &child_hunt).await;
        assert_eq!(mine["findings"], 2, "{role}: {mine}");
        assert_eq!(
            mine["org_ids"],
            json!([child.id.as_str()]),
            "{role}: {mine}"
        );
        assert_eq!(mine["events"], 2, "{role}: {mine}");
        assert!(
            !mine.to_string().contains(other.id.as_str()),
            "{role}: {mine}"
        );
    }
    // sup, above child, sees child's job limited to sup's tree.
    for (role, t) in readers(&s, &sup).await {
        let view = done(&s, &t, &child_hunt).await;
        assert_eq!(view["findings"], 2, "{role}: {view}");
        assert!(!view.to_string().contains(other.id.as_str()), "{role}");
    }
    // other, outside child's scope, and outside the SOC's own jobs: no
    // record of either hunt, by id or in the list, for any role.
    for (role, t) in readers(&s, &other).await {
        for id in [&soc_hunt, &child_hunt] {
            let r = s
                .call(Method::GET, &format!("/api/v1/hunts/{id}"), Some(&t), None)
                .await;
            if role.allows(mimamori_core::Action::AlertRead) {
                assert_eq!(status(&r), 404, "{role} {id}: {r:?}");
            } else {
                assert_eq!(status(&r), 403, "{role} {id}: {r:?}");
            }
        }
        let r = s.call(Method::GET, "/api/v1/hunts", Some(&t), None).await;
        if r.status == 200 {
            assert_eq!(r.body["items"], json!([]), "{role}: {r:?}");
        }
    }
    // The SOC's list shows both, whole.
    let r = s.call(Method::GET, "/api/v1/hunts", Some(&soc), None).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2, "{r:?}");

    // Indicators: AMBER (unshared) and RED of the SOC, sup and child never
    // reach other, by id, in lists, in exports or over TAXII.
    let mut restricted = vec![];
    for (org, tag) in [(&s.root, "soc"), (&sup, "sup"), (&child, "child")] {
        let role = match org.kind {
            OrgKind::Member => Role::OrgAnalyst,
            OrgKind::Supervisor => Role::SupervisorAnalyst,
            OrgKind::Soc => Role::SocAnalyst,
        };
        let t = s.token(org, role).await;
        for tlp in ["amber", "amber+strict", "red"] {
            let value = format!("{tag}-{}.restricted.example", tlp.replace('+', "-"));
            import(&s, &t, tlp, &[&value]).await;
            let r = s
                .call(
                    Method::GET,
                    &format!("/api/v1/indicators?contains={value}"),
                    Some(&t),
                    None,
                )
                .await;
            let id = r.body["items"][0]["id"].as_str().unwrap().to_string();
            restricted.push((value, id));
        }
    }
    let green = s
        .call(
            Method::GET,
            "/api/v1/indicators?contains=shared-hit",
            Some(&soc),
            None,
        )
        .await;
    let green_ids: Vec<String> = green.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(green_ids.len(), 2, "{green:?}");
    for (role, t) in readers(&s, &other).await {
        for (value, id) in &restricted {
            let r = s
                .call(
                    Method::GET,
                    &format!("/api/v1/indicators/{id}"),
                    Some(&t),
                    None,
                )
                .await;
            assert_eq!(r.status, 404, "{role} reads {value}: {r:?}");
        }
        let list = s
            .call(Method::GET, "/api/v1/indicators?limit=500", Some(&t), None)
            .await;
        assert_eq!(list.status, 200, "{list:?}");
        let text = list.body.to_string();
        for (value, _) in &restricted {
            assert!(!text.contains(value.as_str()), "{role} lists {value}");
        }
        // GREEN intel is everyone's, but not who else saw it.
        for id in &green_ids {
            let r = s
                .call(
                    Method::GET,
                    &format!("/api/v1/indicators/{id}"),
                    Some(&t),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            let orgs = r.body["sighting_orgs"].as_array().unwrap();
            assert!(orgs.iter().all(|o| o == other.id.as_str()), "{role}: {r:?}");
        }
        for format in ["plain", "stix", "rpz"] {
            let r = s
                .call(
                    Method::GET,
                    &format!("/api/v1/intel/export?format={format}"),
                    Some(&t),
                    None,
                )
                .await;
            let text = r.body.to_string();
            for (value, _) in &restricted {
                assert!(
                    !text.contains(value.as_str()),
                    "{role} exports {value} as {format}"
                );
            }
        }
        let r = s
            .client
            .get(format!(
                "{}/taxii2/api/collections/{}/objects/?limit=1000",
                s.base,
                mimamori_api::routes::taxii::INDICATORS
            ))
            .bearer_auth(&t)
            .header("accept", "application/taxii+json;version=2.1")
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        for (value, _) in &restricted {
            assert!(
                !text.contains(value.as_str()),
                "{role} reads {value} over TAXII"
            );
        }
    }
}
