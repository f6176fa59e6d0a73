//! The indicator matcher follows the intel store: new indicators, sharing
//! changes and expiry are enforced by a patch of the changed rows, a big
//! change by a patch and then a new base built in the background, and an
//! org-tree change by re-scoping the view over the same index; on every
//! backend.

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, Org, OrgKind, Validated};
use mimamori_event::{Event, EventBody, Normalized, OcsfClass};
use mimamori_intel::{Indicator, IndicatorKind, Tlp};
use mimamori_pipeline::intel::{IntelMatcher, IntelSnapshot, REBASE_AT_ROWS};
use mimamori_store::{AuditActor, Store};
use time::OffsetDateTime;

fn profile(name: &str) -> OrgProfile {
    NewOrg {
        slug: "x".into(),
        name: name.into(),
        ..Default::default()
    }
    .validate()
    .unwrap()
    .1
}

fn domain(value: &str, tlp: Tlp) -> Indicator {
    let mut i = Indicator::new(
        IndicatorKind::Domain { exact: false },
        value.into(),
        OffsetDateTime::now_utc(),
    );
    i.tlp = tlp;
    i.confidence = 70;
    i
}

fn dns_event(org: &Org, name: &str) -> Event {
    Event {
        id: format!("e-{name}"),
        org_id: org.id.to_string(),
        received: 0,
        body: EventBody {
            time: Some(0),
            class: OcsfClass::DnsActivity,
            source: "test".into(),
            fields: Normalized {
                dns_query: Some(name.into()),
                ..Default::default()
            },
            raw: Default::default(),
        },
    }
}

/// Titles of the findings for a DNS query by `org`.
fn matches(m: &IntelMatcher, org: &Org, name: &str) -> Vec<String> {
    let mut out = vec![];
    m.view().evaluate(&dns_event(org, name), &mut out);
    out.into_iter().map(|f| f.title).collect()
}

async fn scenario(label: &str, url: &str) {
    let store = Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let op = AuditActor::local_operator();
    let root = store
        .bootstrap_root(&op, "soc", &profile("SOC"))
        .await
        .unwrap();
    let a = store
        .org_create(&op, &root, "a", OrgKind::Member, &profile("A"))
        .await
        .unwrap();
    let b = store
        .org_create(&op, &root, "b", OrgKind::Member, &profile("B"))
        .await
        .unwrap();
    let base: Vec<Indicator> = (0..300)
        .map(|i| domain(&format!("base-{i}.example"), Tlp::Amber))
        .collect();
    store
        .intel_upsert(&op, &root, &base, &[], "base")
        .await
        .unwrap();
    let m = IntelMatcher::new(IntelSnapshot::load(&store).await.unwrap());
    assert_eq!(m.view().patch_rows(), 0, "{label}");
    assert_eq!(
        matches(&m, &b, "www.base-7.example").len(),
        1,
        "{label}: the root's AMBER intel protects every org below it"
    );
    assert!(!m.reload_if_changed(&store).await.unwrap(), "{label}");

    // A member's GREEN indicator: patched in, protects everyone.
    store
        .intel_upsert(&op, &a, &[domain("new.example", Tlp::Green)], &[], "a")
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert!(m.view().patch_rows() > 0, "{label}: patched, not reloaded");
    assert_eq!(matches(&m, &b, "x.new.example").len(), 1, "{label}");
    assert_eq!(matches(&m, &b, "www.base-7.example").len(), 1, "{label}");

    // The same value raised to RED by its owner: the patch supersedes the
    // GREEN row, so only the owner is protected by it now.
    store
        .intel_upsert(&op, &a, &[domain("new.example", Tlp::Red)], &[], "a")
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert!(
        matches(&m, &b, "x.new.example").is_empty(),
        "{label}: RED stays with its owner"
    );
    assert_eq!(matches(&m, &a, "x.new.example").len(), 1, "{label}");

    // The root also contributes the value: one finding from both rows.
    store
        .intel_upsert(
            &op,
            &root,
            &[domain("new.example", Tlp::Amber)],
            &[],
            "root",
        )
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert_eq!(matches(&m, &a, "x.new.example").len(), 1, "{label}");
    assert_eq!(matches(&m, &b, "x.new.example").len(), 1, "{label}");

    // Expiry is enforced by time alone, with no change in the store.
    let mut brief = domain("brief.example", Tlp::Clear);
    brief.valid_until = Some(OffsetDateTime::now_utc() + time::Duration::milliseconds(1500));
    store
        .intel_upsert(&op, &root, &[brief], &[], "root")
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert_eq!(matches(&m, &a, "brief.example").len(), 1, "{label}");
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert!(
        matches(&m, &a, "brief.example").is_empty(),
        "{label}: expired"
    );

    // A domain alone (exact) from one owner, with sub-domains from
    // another: a sub-domain is credited to the second row only.
    let mut alone = domain("alone.example", Tlp::Green);
    alone.kind = IndicatorKind::Domain { exact: true };
    store
        .intel_upsert(&op, &a, &[alone], &[], "a")
        .await
        .unwrap();
    store
        .intel_upsert(&op, &b, &[domain("alone.example", Tlp::Red)], &[], "b")
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert_eq!(matches(&m, &a, "alone.example").len(), 1, "{label}");
    assert!(
        matches(&m, &a, "x.alone.example").is_empty(),
        "{label}: the exact row does not reach sub-domains, and b's RED row is not a's"
    );
    assert_eq!(matches(&m, &b, "x.alone.example").len(), 1, "{label}");

    // A new org changes the tree: the view is re-scoped, not reloaded
    // (the same index, the patch kept), and the new org is protected by
    // its ancestors' intel at once.
    let before = m.view();
    let c = store
        .org_create(&op, &root, "c", OrgKind::Member, &profile("C"))
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert!(
        m.view().same_base(&before),
        "{label}: re-scoped, not reloaded"
    );
    assert!(!m.view().same_scoping(&before), "{label}");
    assert_eq!(matches(&m, &c, "www.base-7.example").len(), 1, "{label}");
    assert!(matches(&m, &b, "x.new.example").len() == 1, "{label}");
    assert!(matches(&m, &a, "brief.example").is_empty(), "{label}");

    // A big change is still a patch (applied at once), and the base is
    // then rebuilt in the background with nothing lost meanwhile.
    let bulk: Vec<Indicator> = (0..REBASE_AT_ROWS + 500)
        .map(|i| domain(&format!("bulk-{i}.example"), Tlp::Green))
        .collect();
    store
        .intel_upsert(&op, &root, &bulk, &[], "bulk")
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    assert!(m.view().patch_rows() > REBASE_AT_ROWS, "{label}: patched");
    assert_eq!(matches(&m, &b, "x.bulk-17.example").len(), 1, "{label}");
    // A change while the base is being rebuilt.
    store
        .intel_upsert(
            &op,
            &root,
            &[domain("during.example", Tlp::Green)],
            &[],
            "t",
        )
        .await
        .unwrap();
    assert!(m.reload_if_changed(&store).await.unwrap(), "{label}");
    let waited = std::time::Instant::now();
    while m.view().patch_rows() > REBASE_AT_ROWS {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(30),
            "{label}: the base was not rebuilt"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for name in [
        "x.bulk-17.example",
        "during.example",
        "www.base-7.example",
        "x.new.example",
    ] {
        assert_eq!(
            matches(&m, &b, name).len(),
            1,
            "{label}: {name} after the rebuild"
        );
    }
    store.close().await;
}

#[tokio::test]
async fn matcher_follows_the_store_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in mimamori_store::testing::backends(dir.path()).await {
        eprintln!("backend: {label}");
        scenario(label, &url).await;
    }
}

/// An org created after the matcher's view was built: the engine `serve`
/// runs reads the tree again on its first event rather than match it
/// against nothing (streaming detection evaluates an event once, so a miss
/// would be an alert never raised). The plain engine, which no watcher
/// refreshes here, shows the miss it prevents.
#[test]
fn the_serving_engine_matches_an_org_created_after_its_view() {
    use mimamori_pipeline::Engine;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let (store, m, late) = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let op = AuditActor::local_operator();
        let root = store
            .bootstrap_root(&op, "soc", &profile("SOC"))
            .await
            .unwrap();
        store
            .intel_upsert(&op, &root, &[domain("c2.example", Tlp::Green)], &[], "feed")
            .await
            .unwrap();
        let m = IntelMatcher::new(IntelSnapshot::load(&store).await.unwrap());
        let late = store
            .org_create(&op, &root, "late", OrgKind::Member, &profile("Late"))
            .await
            .unwrap();
        (store, m, late)
    });
    let event = dns_event(&late, "www.c2.example");
    let mut out = vec![];
    m.engine().evaluate(&event, &mut out);
    assert!(out.is_empty(), "the stale view knows no such org");
    // Evaluated on a thread of its own, as the ingest consumer does.
    let mut engine = m.engine_refreshing(store, rt.handle().clone());
    let found = std::thread::spawn(move || {
        let mut out = vec![];
        engine.evaluate(&event, &mut out);
        out.len()
    })
    .join()
    .unwrap();
    assert_eq!(found, 1, "the new org's event is matched");
}
