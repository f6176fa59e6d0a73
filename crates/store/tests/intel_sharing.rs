//! Sharing groups, group visibility of indicators and reports, the report
//! library and analyst verdicts, on every backend (the same SQL on SQLite
//! and PostgreSQL).

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, Org, OrgKind, Scope, Validated};
use mimamori_intel::{Indicator, IndicatorKind, Tlp};
use mimamori_store::{
    AlertChange, AlertKind, AlertStatus, AuditActor, CampaignPolicy, Detection, IndicatorFilter,
    NewReport, NewSharingGroup, PageRequest, ProposalStatus, Severity, Sharing, SharingGroupPatch,
    Store, StoreError, VerdictPolicy,
};
use serde_json::json;

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
        time::OffsetDateTime::now_utc(),
    );
    i.tlp = tlp;
    i
}

async fn values(store: &Store, org: &Org) -> Vec<String> {
    let page = store
        .intel_list(
            org.id.as_str(),
            &IndicatorFilter::default(),
            &PageRequest::first(500),
        )
        .await
        .unwrap();
    let mut v: Vec<String> = page.items.into_iter().map(|s| s.indicator.value).collect();
    v.sort();
    v
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
    let all = Scope::Subtree(root.path.clone());
    let sup = store
        .org_create(&op, &root, "sup", OrgKind::Supervisor, &profile("Sup"))
        .await
        .unwrap();
    let h1 = store
        .org_create(&op, &sup, "h1", OrgKind::Member, &profile("Hospital 1"))
        .await
        .unwrap();
    let h2 = store
        .org_create(&op, &root, "h2", OrgKind::Member, &profile("Hospital 2"))
        .await
        .unwrap();
    let other = store
        .org_create(&op, &root, "other", OrgKind::Member, &profile("Other"))
        .await
        .unwrap();

    // A group owned by h1 with h2 as a member; a duplicate name conflicts;
    // an unknown member is refused with its index.
    let g = store
        .group_create(
            &op,
            &h1,
            &NewSharingGroup {
                org_id: h1.id.to_string(),
                name: "hospital group".into(),
                description: String::new(),
                members: vec![h2.id.to_string()],
            },
        )
        .await
        .unwrap();
    assert_eq!(g.members, vec![h2.id.to_string()]);
    let dup = store
        .group_create(
            &op,
            &h1,
            &NewSharingGroup {
                org_id: h1.id.to_string(),
                name: "hospital group".into(),
                description: String::new(),
                members: vec![],
            },
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{label}");
    let bad = store
        .group_create(
            &op,
            &h1,
            &NewSharingGroup {
                org_id: h1.id.to_string(),
                name: "bad".into(),
                description: String::new(),
                members: vec![h2.id.to_string(), "nope".into()],
            },
        )
        .await;
    assert!(
        matches!(&bad, Err(StoreError::Invalid(e)) if e.field == "members[1]"),
        "{label}: {bad:?}"
    );
    // The member and the owner's scope see the group; others do not.
    let only = |o: &Org| Scope::Only(o.path.clone());
    assert_eq!(
        store
            .group_list(&only(&h2), h2.id.as_str())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .group_list(&only(&other), other.id.as_str())
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store
            .group_get(&only(&other), other.id.as_str(), &g.id)
            .await,
        Err(StoreError::NotFound)
    ));
    // Managing needs the owner in scope: a member cannot.
    assert!(store.group_get_managed(&only(&h2), &g.id).await.is_err());
    let (_, owner) = store
        .group_get_managed(&Scope::Subtree(sup.path.clone()), &g.id)
        .await
        .unwrap();
    assert_eq!(owner.id, h1.id);

    // h1 shares AMBER with the group; RED "shared" with it stays home;
    // AMBER+STRICT works like AMBER.
    let v0 = store.intel_version().await.unwrap();
    let sharing = Sharing {
        orgs: vec![],
        groups: vec![g.id.clone()],
    };
    store
        .intel_upsert_with(
            &op,
            &h1,
            &[
                domain("group-amber.example", Tlp::Amber),
                domain("group-strict.example", Tlp::AmberStrict),
                domain("group-red.example", Tlp::Red),
            ],
            &sharing,
            "t",
        )
        .await
        .unwrap();
    // Sharing with a group h1 neither owns nor belongs to is refused.
    let g2 = store
        .group_create(
            &op,
            &other,
            &NewSharingGroup {
                org_id: other.id.to_string(),
                name: "others".into(),
                description: String::new(),
                members: vec![],
            },
        )
        .await
        .unwrap();
    let refused = store
        .intel_upsert_with(
            &op,
            &h1,
            &[domain("x.example", Tlp::Amber)],
            &Sharing {
                orgs: vec![],
                groups: vec![g2.id.clone()],
            },
            "t",
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Invalid(e)) if e.field == "share_groups[0]"),
        "{label}: {refused:?}"
    );
    assert_eq!(
        values(&store, &h2).await,
        vec!["group-amber.example", "group-strict.example"],
        "{label}"
    );
    assert!(values(&store, &other).await.is_empty(), "{label}");
    assert_eq!(values(&store, &h1).await.len(), 3);
    // The owner sees which groups it shared with; a member does not.
    let mine = store
        .intel_list(
            h1.id.as_str(),
            &IndicatorFilter::default(),
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert!(mine
        .items
        .iter()
        .all(|i| i.shared_with_groups == vec![g.id.clone()]));
    // Detection and DNS: the member is protected by the AMBER ones, not RED.
    let active = store.intel_active().await.unwrap();
    for a in &active {
        let member = a.protects(h2.id.as_str(), h2.path.as_str());
        let outsider = a.protects(other.id.as_str(), other.path.as_str());
        assert_eq!(
            member,
            a.indicator.tlp != Tlp::Red,
            "{label}: {}",
            a.indicator.value
        );
        assert!(!outsider, "{label}: {}", a.indicator.value);
    }
    assert_ne!(store.intel_version().await.unwrap(), v0);

    // Membership changes apply at once and move the version the matcher
    // polls.
    let v1 = store.sharing_version().await.unwrap();
    let (gm, owner) = store.group_get_managed(&all, &g.id).await.unwrap();
    let g = store
        .group_update(
            &op,
            &owner,
            &gm,
            &SharingGroupPatch {
                add: vec![other.id.to_string()],
                remove: vec![h2.id.to_string()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(g.members, vec![other.id.to_string()]);
    assert_ne!(store.sharing_version().await.unwrap(), v1);
    assert!(values(&store, &h2).await.is_empty(), "{label}");
    assert_eq!(values(&store, &other).await.len(), 2, "{label}");

    // Reports: shared with the group, searchable by members only.
    let text = "Campaign notes\x0cThe actor used evil-report[.]example and 198.51.100.7 for C2.";
    let parsed = mimamori_intel::report_from_text(text);
    let new = NewReport {
        title: "Quarterly".into(),
        source: "vendor".into(),
        tlp: Tlp::Amber,
        format: "text".into(),
        document: text.as_bytes().to_vec(),
        pages: parsed.pages,
        proposals: parsed.proposals,
    };
    let r = store.report_create(&op, &h1, &new, &sharing).await.unwrap();
    assert_eq!(r.page_count, 2);
    let hits = store
        .report_search(other.id.as_str(), "EVIL-REPORT[.]")
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{label}");
    assert_eq!(hits[0].page, 2);
    assert!(
        hits[0].snippet.contains("evil-report[.]example"),
        "{hits:?}"
    );
    assert!(store
        .report_search(h2.id.as_str(), "evil")
        .await
        .unwrap()
        .is_empty());
    // LIKE wildcards in the query are literal.
    assert!(store
        .report_search(other.id.as_str(), "e_il")
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.report_get(h2.id.as_str(), &r.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.report_document(&r).await.unwrap(),
        text.as_bytes().to_vec()
    );
    let props = store.report_proposals(&r).await.unwrap();
    let dom = props
        .iter()
        .find(|p| p.value == "evil-report.example")
        .unwrap();
    let ip = props.iter().find(|p| p.value == "198.51.100.7").unwrap();
    let mut ind = Indicator::new(dom.kind, dom.value.clone(), time::OffsetDateTime::now_utc());
    ind.tlp = Tlp::Amber;
    let (p, up) = store
        .report_decide(&op, &h1, &r, &dom.id, Some(ind))
        .await
        .unwrap();
    assert_eq!(p.status, ProposalStatus::Accepted);
    assert_eq!(up.unwrap().inserted, 1);
    let created = store
        .intel_get(h1.id.as_str(), p.indicator_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(created.shared_with_groups, vec![g.id.clone()]);
    assert!(values(&store, &other)
        .await
        .contains(&"evil-report.example".to_string()));
    assert!(matches!(
        store.report_decide(&op, &h1, &r, &dom.id, None).await,
        Err(StoreError::Conflict(_))
    ));
    let (p, up) = store
        .report_decide(&op, &h1, &r, &ip.id, None)
        .await
        .unwrap();
    assert_eq!(p.status, ProposalStatus::Rejected);
    assert!(up.is_none());

    // Verdicts: a true positive extends valid_until, a false positive lowers
    // the confidence, of the indicators that protect the alert's org.
    let mut soon = domain("verdict.example", Tlp::Green);
    soon.valid_until = Some(time::OffsetDateTime::now_utc() + time::Duration::hours(1));
    soon.confidence = 70;
    store
        .intel_upsert(&op, &root, &[soon], &[], "t")
        .await
        .unwrap();
    let alert = |n: u32| Detection {
        org_id: h2.id.to_string(),
        kind: AlertKind::Indicator,
        rule_id: "domain:verdict.example".into(),
        title: "t".into(),
        severity: Severity::Medium,
        entity: format!("verdict.example/{n}"),
        attack: vec![],
        context: json!({}),
        event_ids: vec![format!("e{n}")],
        time: mimamori_core::now_millis(),
        retro: false,
        campaign_key: None,
    };
    let policy = VerdictPolicy {
        extend_ms: 10 * 86_400_000,
        false_positive_drop: 25,
    };
    for (n, status) in [(1, AlertStatus::Resolved), (2, AlertStatus::FalsePositive)] {
        let (rec, _) = store
            .alert_record(&alert(n), 3_600_000, &CampaignPolicy::default())
            .await
            .unwrap();
        let a = store
            .alert_get(&all, rec.alert_id().unwrap())
            .await
            .unwrap();
        store
            .alert_update(
                &op,
                &a,
                &AlertChange {
                    status: Some(status),
                    assignee: None,
                    verdicts: policy,
                },
            )
            .await
            .unwrap();
    }
    let got = store
        .intel_list(
            root.id.as_str(),
            &IndicatorFilter {
                contains: Some("verdict".into()),
                ..Default::default()
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    let until = got.indicator.valid_until.unwrap();
    assert!(
        until > time::OffsetDateTime::now_utc() + time::Duration::days(9),
        "{label}: {until}"
    );
    assert_eq!(got.indicator.confidence, 45, "{label}");

    // Deleting an org that owns a group and is a member of another, then
    // the org that owns that group, a report and shared indicators,
    // removes all of it.
    store.org_delete(&op, &other).await.unwrap();
    let (g, _) = store.group_get_managed(&all, &g.id).await.unwrap();
    assert!(g.members.is_empty(), "{label}: {g:?}");
    assert!(matches!(
        store.group_get_managed(&all, &g2.id).await,
        Err(StoreError::NotFound)
    ));
    store.org_delete(&op, &h1).await.unwrap();
    assert!(matches!(
        store.group_get_managed(&all, &g.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.report_get_scoped(&all, &r.id).await,
        Err(StoreError::NotFound)
    ));
    store.close().await;
}

#[tokio::test]
async fn sharing_groups_reports_and_verdicts_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in mimamori_store::testing::backends(dir.path()).await {
        scenario(label, &url).await;
    }
}
