//! `Store::intel_upsert` on every backend: repeats inside one batch merge
//! into one row, a re-import updates the changed rows (several per
//! statement) and leaves the rest alone, AMBER shares are written for every
//! new or changed row, and kinds that share a value stay apart; the active
//! rows are read back in pages, each once.

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, OrgKind, Validated};
use mimamori_intel::{Indicator, IndicatorKind, Tlp};
use mimamori_store::{AuditActor, IndicatorFilter, PageRequest, Store};
use time::{Duration, OffsetDateTime};

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

fn domain(value: &str, seen: OffsetDateTime, confidence: u8, source: &str) -> Indicator {
    let mut i = Indicator::new(IndicatorKind::Domain { exact: false }, value.into(), seen);
    i.tlp = Tlp::Amber;
    i.confidence = confidence;
    i.sources = vec![source.into()];
    i
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
    let member = store
        .org_create(&op, &root, "m", OrgKind::Member, &profile("M"))
        .await
        .unwrap();
    let other = store
        .org_create(&op, &root, "o", OrgKind::Member, &profile("O"))
        .await
        .unwrap();
    let t0 = OffsetDateTime::now_utc() - Duration::days(2);

    // 1,200 domains (more than one statement's worth), given in reverse
    // order, with one of them twice (different confidence) and a file name
    // that spells the same as a domain.
    let mut batch: Vec<Indicator> = (0..1200)
        .rev()
        .map(|i| domain(&format!("d{i:04}.example"), t0, 40, "first"))
        .collect();
    batch.push(domain("d0007.example", t0, 90, "first"));
    batch.push(Indicator::new(
        IndicatorKind::FileName,
        "d0007.example".into(),
        t0,
    ));
    let r = store
        .intel_upsert(&op, &member, &batch, &[other.id.to_string()], "first")
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(
        (r.inserted, r.updated, r.unchanged),
        (1201, 0, 1),
        "{label}"
    );
    assert_eq!(r.changed_ids.len(), 1201, "{label}");

    let listed = |contains: &str| {
        let store = store.clone();
        let viewer = member.id.to_string();
        let filter = IndicatorFilter {
            contains: Some(contains.into()),
            ..Default::default()
        };
        async move {
            store
                .intel_list(&viewer, &filter, &PageRequest::first(100))
                .await
                .unwrap()
                .items
        }
    };
    let d7 = listed("d0007.example").await;
    assert_eq!(d7.len(), 2, "{label}: the domain and the file name");
    let dom = d7
        .iter()
        .find(|s| s.indicator.kind.name() == "domain")
        .unwrap();
    assert_eq!(dom.indicator.confidence, 90, "{label}: repeats merged");
    assert_eq!(dom.shared_with, vec![other.id.to_string()], "{label}");
    // The org it was shared with sees it; nobody else besides the owner.
    let seen_by_other = store
        .intel_get(other.id.as_str(), &dom.id)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(seen_by_other.indicator.value, "d0007.example");
    assert!(store.intel_get(root.id.as_str(), &dom.id).await.is_err());

    // The same 1,200 again, 600 of them seen later (re-observed): those are
    // updated in place, the others unchanged; no new rows.
    let t1 = t0 + Duration::days(1);
    let again: Vec<Indicator> = (0..1200)
        .map(|i| match i % 2 {
            0 => domain(&format!("d{i:04}.example"), t1, 40, "second"),
            _ => domain(&format!("d{i:04}.example"), t0, 40, "first"),
        })
        .collect();
    let r = store
        .intel_upsert(&op, &member, &again, &[], "second")
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(
        (r.inserted, r.updated, r.unchanged),
        (0, 600, 600),
        "{label}"
    );
    let d10 = listed("d0010.example").await;
    assert_eq!(d10.len(), 1, "{label}");
    assert_eq!(d10[0].indicator.last_seen, t1, "{label}: last_seen moved");
    assert_eq!(d10[0].indicator.first_seen, t0, "{label}");
    assert_eq!(
        d10[0].indicator.sources.len(),
        2,
        "{label}: both sources kept: {:?}",
        d10[0].indicator.sources
    );
    let d11 = listed("d0011.example").await;
    assert_eq!(d11[0].indicator.sources.len(), 1, "{label}: untouched");
    let d7 = listed("d0007.example").await;
    let dom = d7
        .iter()
        .find(|s| s.indicator.kind.name() == "domain")
        .unwrap();
    assert_eq!(dom.indicator.confidence, 90, "{label}: merge keeps the max");
    let (count, _) = store.intel_version().await.unwrap();
    assert_eq!(count, 1201, "{label}");

    // The active rows are read in pages of 5,000, the next page fetched
    // while the last is handed out: 11,201 rows (three pages, the last one
    // short) come back each once, in id order.
    let more: Vec<Indicator> = (0..10_000)
        .map(|i| domain(&format!("p{i:05}.example"), t0, 50, "paged"))
        .collect();
    store
        .intel_upsert(&op, &root, &more, &[], "paged")
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let active = store.intel_active().await.unwrap();
    let domains = active
        .iter()
        .filter(|a| a.indicator.kind.name() == "domain")
        .count();
    assert_eq!(domains, 11_200, "{label}");
    assert_eq!(active.len(), 11_201, "{label}");
    assert!(
        active.windows(2).all(|w| w[0].id < w[1].id),
        "{label}: not each once in id order"
    );
    store.close().await;
}

#[tokio::test]
async fn upsert_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in mimamori_store::testing::backends(dir.path()).await {
        eprintln!("backend: {label}");
        scenario(label, &url).await;
    }
}
