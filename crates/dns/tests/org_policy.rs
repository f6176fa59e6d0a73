//! Per-org policy down the tree and org selection by DoH path token, over
//! real sockets (UDP, and DoH over HTTP/2 with a real client).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use mimamori_dns::{token_digest, Action, OrgPolicy, PdnsConfig, Policy, PolicyHandle, Zone};

fn upstream() -> TestUpstream {
    let u = TestUpstream::start();
    for name in [
        "wide.test.",
        "x.wide.test.",
        "ok.wide.test.",
        "evil.test.",
        "fine.test.",
    ] {
        u.add(name, 300, "A", "192.0.2.1");
    }
    u
}

/// An org's list: allows as PASSTHRU, blocks as NXDOMAIN, each covering
/// sub-domains.
fn list(name: &str, allow: &[&str], block: &[&str]) -> Zone {
    let mut z = Zone::new(name);
    for (names, action) in [(allow, Action::Passthru), (block, Action::NxDomain)] {
        for n in names {
            z.add_qname(n, action.clone()).unwrap();
            z.add_qname(&format!("*.{n}"), action.clone()).unwrap();
        }
    }
    z
}

/// sup: blocks wide.test except ok.wide.test. a1 (under sup, 127.0.0.2):
/// allows wide.test and evil.test, blocks ok.wide.test. m1 (127.0.0.3):
/// nothing of its own. Intel (global) blocks evil.test.
fn policy() -> Policy {
    let sup_own = Arc::new(list("dns:sup", &["ok.wide.test"], &["wide.test"]));
    let sup_mandate = Arc::new(
        list("dns:sup", &["ok.wide.test"], &["wide.test"]).with_passthru_falling_through(),
    );
    let a1_own =
        Arc::new(list("dns:a1", &["wide.test", "evil.test"], &["ok.wide.test"]).with_ede(17));
    let intel = Arc::new(Zone::blocklist("intel", "evil.test\n").unwrap());
    Policy::new(vec![intel])
        .with_org(OrgPolicy {
            name: "root".into(),
            networks: vec![],
            zones: vec![],
            contact: None,
        })
        .with_org(OrgPolicy {
            name: "a1".into(),
            networks: vec!["127.0.0.2/32".parse().unwrap()],
            zones: vec![sup_mandate, a1_own, sup_own],
            contact: None,
        })
        .with_org(OrgPolicy {
            name: "m1".into(),
            networks: vec!["127.0.0.3/32".parse().unwrap()],
            zones: vec![],
            contact: None,
        })
        .with_fallback_org("root")
}

fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

#[test]
fn ancestor_blocks_bind_and_their_exceptions_fall_through() {
    let u = upstream();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    let h = mimamori_dns::start(cfg, PolicyHandle::new(policy())).unwrap();
    let ask = |from: &str, name: &str| {
        udp_ask_from(
            from,
            h.udp_addr(),
            &query(name, RecordType::A, true),
            Duration::from_secs(3),
        )
        .expect("answer")
    };
    // a1's allow of wide.test does not lift its supervisor's block.
    let m = ask("127.0.0.2:0", "wide.test.");
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(15));
    assert_eq!(
        rcode(&ask("127.0.0.2:0", "x.wide.test.")),
        ResponseCode::NXDomain
    );
    // sup's exception only lifts sup's own block: a1's block still applies.
    let m = ask("127.0.0.2:0", "ok.wide.test.");
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(17), "blocked by a1's own list");
    // a1's allow lifts the intel.
    assert_eq!(
        a_records(&ask("127.0.0.2:0", "evil.test.")),
        vec!["192.0.2.1"]
    );
    // m1 is not under sup: only the intel applies.
    assert_eq!(
        a_records(&ask("127.0.0.3:0", "wide.test.")),
        vec!["192.0.2.1"]
    );
    assert_eq!(
        rcode(&ask("127.0.0.3:0", "evil.test.")),
        ResponseCode::NXDomain
    );
    // A client in no network gets the fallback org (root): intel only.
    assert_eq!(
        rcode(&ask("127.0.0.1:0", "evil.test.")),
        ResponseCode::NXDomain
    );
    assert_eq!(
        a_records(&ask("127.0.0.1:0", "ok.wide.test.")),
        vec!["192.0.2.1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_path_token_selects_the_org_outside_declared_networks() {
    use base64::Engine as _;
    let u = upstream();
    let secret = "mmr_laptop-of-a1";
    let handle = PolicyHandle::new(policy().with_doh_token("a1", token_digest(secret), None));
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    cfg.doh_listen = Some(("127.0.0.1:0".parse().unwrap(), None));
    let h = tokio::task::spawn_blocking(move || mimamori_dns::start(cfg, handle).unwrap())
        .await
        .unwrap();
    let doh = format!("http://{}/dns-query", h.doh_addr().unwrap());
    let client = |from: &str| {
        reqwest::Client::builder()
            .http2_prior_knowledge()
            .local_address(Some(from.parse().unwrap()))
            .build()
            .unwrap()
    };
    let post = |c: reqwest::Client, url: String, name: &'static str| async move {
        let r = c
            .post(url)
            .header("content-type", "application/dns-message")
            .body(query(name, RecordType::A, true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        let status = r.status().as_u16();
        (status, r.bytes().await.unwrap().to_vec())
    };
    let roaming = client("127.0.0.1");
    // With a1's token, a roaming client gets a1's policy…
    let (status, body) = post(roaming.clone(), format!("{doh}/{secret}"), "ok.wide.test.").await;
    assert_eq!(status, 200);
    let m = Message::from_vec(&body).unwrap();
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(17));
    let (_, body) = post(roaming.clone(), format!("{doh}/{secret}"), "evil.test.").await;
    assert_eq!(
        a_records(&Message::from_vec(&body).unwrap()),
        vec!["192.0.2.1"]
    );
    // …over GET too…
    let q = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(query(
        "wide.test.",
        RecordType::A,
        false,
    ));
    let r = roaming
        .get(format!("{doh}/{secret}?dns={q}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = Message::from_vec(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    // …and without it the fallback's.
    let (_, body) = post(roaming.clone(), doh.clone(), "ok.wide.test.").await;
    assert_eq!(
        a_records(&Message::from_vec(&body).unwrap()),
        vec!["192.0.2.1"]
    );
    // Inside m1's network the address decides, whatever token is shown.
    let (status, body) = post(
        client("127.0.0.3"),
        format!("{doh}/{secret}"),
        "ok.wide.test.",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        a_records(&Message::from_vec(&body).unwrap()),
        vec!["192.0.2.1"]
    );
    // An unknown token: 403, nothing resolved.
    let before = u.queries.load(std::sync::atomic::Ordering::SeqCst);
    let (status, body) = post(roaming.clone(), format!("{doh}/mmr_unknown"), "fine.test.").await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("DNS client token"));
    let r = roaming
        .get(format!("{doh}/mmr_unknown?dns={q}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(u.queries.load(std::sync::atomic::Ordering::SeqCst), before);
    // Revoked (the policy swapped without it): refused at once.
    h.policy().set(policy());
    let (status, _) = post(roaming.clone(), format!("{doh}/{secret}"), "evil.test.").await;
    assert_eq!(status, 403);
    // Expired: refused.
    let past = std::time::SystemTime::now() - Duration::from_secs(1);
    h.policy()
        .set(policy().with_doh_token("a1", token_digest(secret), Some(past)));
    let (status, _) = post(roaming, format!("{doh}/{secret}"), "evil.test.").await;
    assert_eq!(status, 403);
    tokio::task::spawn_blocking(move || drop(h)).await.unwrap();
}
