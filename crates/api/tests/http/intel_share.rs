//! Sharing groups, the report library and analyst verdicts over HTTP:
//! groups managed through the API and applied everywhere visibility
//! applies (listing, export, detection); MISP distribution 4; a PDF report
//! with a defanged domain searched and its proposal accepted; alert
//! verdicts changing the indicator.

use super::{problem, Server};
use mimamori_core::{Org, OrgKind, Role};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A PDF with one page per text (Helvetica, one `Tj` per line), written
/// by hand with its cross-reference table: independent of the reader
/// under test.
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    let mut objs: Vec<String> = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".into(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            (0..pages.len())
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect::<Vec<_>>()
                .join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    ];
    for (i, text) in pages.iter().enumerate() {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        let content: String = text
            .lines()
            .enumerate()
            .map(|(k, l)| {
                let l = l
                    .replace('\\', "\\\\")
                    .replace('(', "\\(")
                    .replace(')', "\\)");
                format!("BT /F1 12 Tf 72 {} Td ({l}) Tj ET\n", 720 - 16 * k)
            })
            .collect();
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = vec![];
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

fn items(v: &Value) -> &Vec<Value> {
    v["items"].as_array().unwrap()
}

async fn values(s: &Server, token: &str) -> Vec<String> {
    let r = s
        .call(
            Method::GET,
            "/api/v1/indicators?limit=500",
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut v: Vec<String> = items(&r.body)
        .iter()
        .map(|i| i["indicator"]["value"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

async fn export(s: &Server, token: &str) -> String {
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/export?format=plain",
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body.as_str().unwrap_or_default().to_string()
}

async fn audit_actions(s: &Server, token: &str) -> Vec<String> {
    let r = s
        .call(Method::GET, "/api/v1/audit?limit=500", Some(token), None)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    items(&r.body)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
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
}

/// The alerts of `token`'s org once at least `n` exist (at most 10 s).
async fn alerts(s: &Server, token: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let r = s
            .call(Method::GET, "/api/v1/alerts", Some(token), None)
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        if items(&r.body).len() >= n {
            return items(&r.body).clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fewer than {n} alerts: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_groups_reach_members_everywhere_and_nobody_else() {
    let s = Server::start().await;
    let h1 = s.org(&s.root, "h1", OrgKind::Member).await;
    let h2 = s.org(&s.root, "h2", OrgKind::Member).await;
    let h3 = s.org(&s.root, "h3", OrgKind::Member).await;
    let outsider = s.org(&s.root, "outsider", OrgKind::Member).await;
    let h1_admin = s.token(&h1, Role::OrgAdmin).await;
    let h1_analyst = s.token(&h1, Role::OrgAnalyst).await;
    let h2_analyst = s.token(&h2, Role::OrgAnalyst).await;
    let h3_analyst = s.token(&h3, Role::OrgAnalyst).await;
    let out_analyst = s.token(&outsider, Role::OrgAnalyst).await;

    // h1's admin creates the hospital group with h2; an analyst may not.
    let new = json!({"org_id": h1.id, "name": "hospital group", "members": [h2.id]});
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/groups",
            Some(&h1_analyst),
            Some(new.clone()),
        )
        .await;
    problem(&r, 403);
    let r = s
        .call(
            Method::POST,
            "/api/v1/intel/groups",
            Some(&h1_admin),
            Some(new),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let gid = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["members"], json!([h2.id]));
    // Unknown members are refused precisely.
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/intel/groups/{gid}"),
            Some(&h1_admin),
            Some(json!({"add": [h3.id, "no-such-org"]})),
        )
        .await;
    let d = problem(&r, 422);
    assert!(d.contains("no-such-org"), "{d}");
    assert_eq!(r.body["field"], "add[1]");
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/intel/groups/{gid}"),
            Some(&h1_admin),
            Some(json!({"add": [h3.id]})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut members: Vec<&str> = r.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    members.sort();
    let mut want = vec![h2.id.as_str(), h3.id.as_str()];
    want.sort();
    assert_eq!(members, want);
    // Members see the group; the outsider does not (404 as if absent).
    let r = s
        .call(Method::GET, "/api/v1/intel/groups", Some(&h2_analyst), None)
        .await;
    assert_eq!(items(&r.body).len(), 1, "{r:?}");
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/intel/groups/{gid}"),
            Some(&out_analyst),
            None,
        )
        .await;
    problem(&r, 404);
    // A member cannot change it.
    let h2_admin = s.token(&h2, Role::OrgAdmin).await;
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/intel/groups/{gid}"),
            Some(&h2_admin),
            Some(json!({"remove": [h3.id]})),
        )
        .await;
    problem(&r, 404);

    // h1 shares AMBER indicators with the group; RED stays home whatever
    // the sharing says.
    for (list, tlp) in [("group-c2.example\n", "amber"), ("h1-red.example\n", "red")] {
        let r = s
            .call_raw(
                Method::POST,
                &format!(
                    "/api/v1/intel/import?format=plain&tlp={tlp}&subdomains=true&share_groups={gid}&retro=false"
                ),
                Some(&h1_analyst),
                list.as_bytes().to_vec(),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["shared_with_groups"], json!([gid]));
    }
    for t in [&h2_analyst, &h3_analyst] {
        assert_eq!(values(&s, t).await, vec!["group-c2.example"]);
        assert!(export(&s, t).await.contains("group-c2.example"));
    }
    assert!(values(&s, &out_analyst).await.is_empty());
    assert!(!export(&s, &out_analyst).await.contains("group-c2.example"));
    // The owner sees with which group it shared.
    let r = s
        .call(
            Method::GET,
            "/api/v1/indicators?contains=group-c2",
            Some(&h1_analyst),
            None,
        )
        .await;
    assert_eq!(items(&r.body)[0]["shared_with_groups"], json!([gid]));

    // Detection protects group members (with the details visible) and not
    // the outsider.
    dns_event(&s, &h2, "www.group-c2.example").await;
    dns_event(&s, &outsider, "www.group-c2.example").await;
    dns_event(&s, &h2, "www.h1-red.example").await;
    alerts(&s, &h2_analyst, 1).await;
    // The other two events were ingested with it; give them time to be
    // (not) detected.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = alerts(&s, &h2_analyst, 1).await;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["entity"], "group-c2.example");
    assert_eq!(a[0]["context"]["withheld_owners"], 0, "{}", a[0]);
    let r = s
        .call(Method::GET, "/api/v1/alerts", Some(&out_analyst), None)
        .await;
    assert!(items(&r.body).is_empty(), "{}", r.body);

    // Removing a member takes the intel away from it at once.
    let r = s
        .call(
            Method::PATCH,
            &format!("/api/v1/intel/groups/{gid}"),
            Some(&h1_admin),
            Some(json!({"remove": [h3.id]})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(values(&s, &h3_analyst).await.is_empty());

    // MISP distribution 4 names the group: the event is shared with it.
    let event = json!({"Event": {
        "uuid": "5f1e1c2a-0000-4000-8000-000000000001", "info": "shared", "distribution": "4",
        "date": "2026-11-01", "timestamp": "1790000000",
        "SharingGroup": {"id": "7", "name": "hospital group", "uuid": "5f1e1c2a-0000-4000-8000-0000000000aa"},
        "Attribute": [{"type": "domain", "category": "Network activity", "to_ids": true, "value": "misp-shared.example"}]
    }});
    let r = s
        .call_raw(
            Method::POST,
            "/api/v1/intel/import?format=misp&retro=false",
            Some(&h1_analyst),
            event.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["shared_with_groups"], json!([gid]), "{}", r.body);
    assert!(values(&s, &h2_analyst)
        .await
        .contains(&"misp-shared.example".to_string()));
    assert!(!values(&s, &out_analyst)
        .await
        .contains(&"misp-shared.example".to_string()));
    // A group unknown here: shared with nobody, and said so.
    let mut other = event.clone();
    other["Event"]["SharingGroup"]["name"] = json!("energy ISAC");
    other["Event"]["Attribute"][0]["value"] = json!("misp-unknown-group.example");
    let r = s
        .call_raw(
            Method::POST,
            "/api/v1/intel/import?format=misp&retro=false",
            Some(&h1_analyst),
            other.to_string().into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["shared_with_groups"], json!([]));
    assert!(r.body["unsupported"].to_string().contains("energy ISAC"));
    assert!(!values(&s, &h2_analyst)
        .await
        .contains(&"misp-unknown-group.example".to_string()));

    // Every change is in the owner's audit log.
    let actions = audit_actions(&s, &h1_admin).await;
    for a in ["intel.group.create", "intel.group.update"] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
    // Deleting the group ends the sharing.
    let r = s
        .call(
            Method::DELETE,
            &format!("/api/v1/intel/groups/{gid}"),
            Some(&h1_admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert!(values(&s, &h2_analyst).await.is_empty());
    assert!(audit_actions(&s, &h1_admin)
        .await
        .iter()
        .any(|a| a == "intel.group.delete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdf_report_is_searchable_and_its_proposals_become_indicators() {
    let s = Server::start().await;
    let a = s.org(&s.root, "a", OrgKind::Member).await;
    let b = s.org(&s.root, "b", OrgKind::Member).await;
    let a_t = s.token(&a, Role::OrgAnalyst).await;
    let b_t = s.token(&b, Role::OrgAnalyst).await;
    let doc = pdf(&[
        "Quarterly threat report\nPrepared by the CERT",
        "The actor staged payloads on update-cdn[.]example\nand contacted 203.0.113.45 over TLS.",
    ]);
    let upload = |bytes: Vec<u8>, query: &str| {
        let s = &s;
        let a_t = a_t.clone();
        let query = query.to_string();
        async move {
            s.call_raw(
                Method::POST,
                &format!("/api/v1/intel/reports?{query}"),
                Some(&a_t),
                bytes,
            )
            .await
        }
    };
    let r = upload(doc.clone(), "title=Quarterly&source=cert.example&tlp=amber").await;
    assert_eq!(r.status, 201, "{r:?}");
    let rid = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["format"], "pdf");
    assert_eq!(r.body["page_count"], 2);
    assert!(
        r.body["pages"][1]["text"]
            .as_str()
            .unwrap()
            .contains("update-cdn[.]example"),
        "{}",
        r.body
    );
    let proposals = r.body["proposals"].as_array().unwrap();
    let dom = proposals
        .iter()
        .find(|p| p["value"] == "update-cdn.example")
        .unwrap_or_else(|| panic!("no domain proposal: {proposals:?}"));
    assert_eq!(dom["status"], "proposed");
    assert_eq!(dom["occurrences"][0]["page"], 2);
    assert_eq!(dom["occurrences"][0]["as_written"], "update-cdn[.]example");
    assert!(proposals.iter().any(|p| p["value"] == "203.0.113.45"));
    let pid = dom["id"].as_str().unwrap().to_string();

    // Search: the matching page with a snippet, for the owner only (AMBER,
    // not shared).
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/reports?q=UPDATE-CDN",
            Some(&a_t),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let hits = items(&r.body);
    assert_eq!(hits.len(), 1, "{}", r.body);
    assert_eq!(hits[0]["page"], 2);
    assert!(hits[0]["snippet"]
        .as_str()
        .unwrap()
        .contains("payloads on update-cdn[.]example"));
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/reports?q=update-cdn",
            Some(&b_t),
            None,
        )
        .await;
    assert!(items(&r.body).is_empty(), "{}", r.body);
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/intel/reports/{rid}"),
            Some(&b_t),
            None,
        )
        .await;
    problem(&r, 404);
    // The document comes back as uploaded.
    let r = s
        .client
        .get(format!("{}/api/v1/intel/reports/{rid}/document", s.base))
        .bearer_auth(&a_t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/pdf");
    assert_eq!(r.bytes().await.unwrap().to_vec(), doc);

    // Accept: the indicator, with the report as source and its TLP.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/intel/reports/{rid}/proposals/{pid}/accept"),
            Some(&a_t),
            Some(json!({"confidence": 80})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["proposal"]["status"], "accepted");
    let iid = r.body["proposal"]["indicator_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .call(
            Method::GET,
            &format!("/api/v1/indicators/{iid}"),
            Some(&a_t),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let ind = &r.body["indicator"];
    assert_eq!(ind["value"], "update-cdn.example");
    assert_eq!(ind["tlp"], "amber", "{ind}");
    assert_eq!(ind["confidence"], 80);
    assert!(ind["sources"]
        .as_array()
        .unwrap()
        .contains(&json!(format!("report:{rid}"))));
    // Decided once; the other proposal is rejected.
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/intel/reports/{rid}/proposals/{pid}/reject"),
            Some(&a_t),
            None,
        )
        .await;
    assert!(problem(&r, 409).contains("already accepted"));
    let ip = proposals
        .iter()
        .find(|p| p["value"] == "203.0.113.45")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/intel/reports/{rid}/proposals/{ip}/reject"),
            Some(&a_t),
            None,
        )
        .await;
    assert_eq!(r.body["proposal"]["status"], "rejected", "{r:?}");
    assert!(values(&s, &a_t).await == vec!["update-cdn.example"]);
    // Another org cannot decide a's proposals (404 as if absent).
    let r = s
        .call(
            Method::POST,
            &format!("/api/v1/intel/reports/{rid}/proposals/{ip}/accept"),
            Some(&b_t),
            None,
        )
        .await;
    problem(&r, 404);
    let admin = s.token(&a, Role::OrgAdmin).await;
    let actions = audit_actions(&s, &admin).await;
    for x in [
        "intel.report.create",
        "intel.report.proposal.accept",
        "intel.report.proposal.reject",
    ] {
        assert!(actions.iter().any(|a| a == x), "{x}: {actions:?}");
    }

    // Broken PDFs are refused precisely, and nothing is stored.
    let mut truncated = doc.clone();
    truncated.truncate(doc.len() / 2);
    let r = upload(truncated, "title=Broken&source=x").await;
    let d = problem(&r, 422);
    assert!(d.contains("PDF"), "{d}");
    let r = upload(
        b"%PDF-1.4\nthis is not a pdf body".to_vec(),
        "title=Junk&source=x",
    )
    .await;
    let d = problem(&r, 422);
    assert!(d.contains("cannot be parsed"), "{d}");
    let r = upload(doc.clone(), "title=X&source=x&format=doc").await;
    assert!(problem(&r, 422).contains("pdf, html or text"));
    let r = upload(b"plain text".to_vec(), "title=X&source=x&tlp=purple").await;
    problem(&r, 422);
    let r = s
        .call(Method::GET, "/api/v1/intel/reports", Some(&a_t), None)
        .await;
    assert_eq!(items(&r.body).len(), 1, "{}", r.body);
    // HTML and text reports too; a GREEN report is found by everyone.
    let r = upload(
        b"<html><body><p>Beacon to <b>c2.bad-host[.]example</b></p></body></html>".to_vec(),
        "title=Blog&source=blog&tlp=green",
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["format"], "html");
    let r = s
        .call(
            Method::GET,
            "/api/v1/intel/reports?q=bad-host",
            Some(&b_t),
            None,
        )
        .await;
    assert_eq!(items(&r.body).len(), 1, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_verdicts_extend_or_discount_the_indicator() {
    let s = Server::start().await;
    let m = s.org(&s.root, "m", OrgKind::Member).await;
    let soc = s.token(&s.root, Role::SocAnalyst).await;
    let analyst = s.token(&m, Role::OrgAnalyst).await;
    // Two GREEN indicators from the SOC, valid for one more day.
    let mut batch = mimamori_intel::ImportBatch::default();
    for v in ["tp.example", "fp.example"] {
        let mut i = mimamori_intel::Indicator::new(
            mimamori_intel::IndicatorKind::Domain { exact: false },
            v.to_string(),
            time::OffsetDateTime::now_utc(),
        );
        i.tlp = mimamori_intel::Tlp::Green;
        i.confidence = 70;
        i.valid_until = Some(time::OffsetDateTime::now_utc() + time::Duration::days(1));
        batch.push(i);
    }
    s.hub
        .import(
            &mimamori_store::AuditActor::local_operator(),
            &s.root,
            &batch,
            &[],
            "verdict-test",
            false,
        )
        .await
        .unwrap();
    dns_event(&s, &m, "a.tp.example").await;
    dns_event(&s, &m, "a.fp.example").await;
    let list = alerts(&s, &analyst, 2).await;
    let id_of = |entity: &str| {
        list.iter().find(|a| a["entity"] == entity).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (tp, fp) = (id_of("tp.example"), id_of("fp.example"));
    let indicator = |value: &'static str| {
        let s = &s;
        let soc = soc.clone();
        async move {
            let r = s
                .call(
                    Method::GET,
                    &format!("/api/v1/indicators?contains={value}"),
                    Some(&soc),
                    None,
                )
                .await;
            items(&r.body)[0]["indicator"].clone()
        }
    };
    let before = indicator("tp.example").await;
    // Investigating does nothing to the indicator; resolving (a true
    // positive) extends it by the default 30 days.
    for (id, status) in [
        (&tp, "investigating"),
        (&tp, "resolved"),
        (&fp, "false_positive"),
    ] {
        let r = s
            .call(
                Method::PATCH,
                &format!("/api/v1/alerts/{id}"),
                Some(&analyst),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let after = indicator("tp.example").await;
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let (b, a) = (parse(&before["valid_until"]), parse(&after["valid_until"]));
    assert!(
        a > time::OffsetDateTime::now_utc() + time::Duration::days(29),
        "{b} → {a}"
    );
    assert_eq!(after["confidence"], 70);
    let fp_after = indicator("fp.example").await;
    assert_eq!(fp_after["confidence"], 50, "{fp_after}");
    assert!(
        parse(&fp_after["valid_until"]) < time::OffsetDateTime::now_utc() + time::Duration::days(2)
    );
    // Audited under the indicator's owner (the SOC).
    let admin = s.token(&s.root, Role::SocAdmin).await;
    let actions = audit_actions(&s, &admin).await;
    for x in [
        "intel.verdict.true_positive",
        "intel.verdict.false_positive",
    ] {
        assert!(actions.iter().any(|a| a == x), "{x}: {actions:?}");
    }
}
