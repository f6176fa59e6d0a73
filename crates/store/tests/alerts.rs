//! Alerts, workflow, suppressions and campaigns on every backend.

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, OrgKind, Scope, Validated};
use mimamori_store::{
    AlertChange, AlertFilter, AlertKind, AlertStatus, AuditActor, CampaignPolicy, Detection,
    PageRequest, Recorded, Severity, Store, StoreError,
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

fn detection(org: &str, time: i64, event: &str) -> Detection {
    Detection {
        org_id: org.into(),
        kind: AlertKind::Indicator,
        rule_id: "domain:evil.example".into(),
        title: "Indicator match: evil.example".into(),
        severity: Severity::Medium,
        entity: "evil.example".into(),
        attack: vec!["T1071.004".into()],
        context: json!({"indicator": "evil.example"}),
        event_ids: vec![event.into()],
        time,
        retro: false,
        campaign_key: Some("indicator:domain:evil.example".into()),
    }
}

const HOUR: i64 = 3_600_000;

async fn scenario(label: &str, url: &str) {
    let store = Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let op = AuditActor::local_operator();
    let root = store
        .bootstrap_root(&op, "soc", &profile("SOC"))
        .await
        .unwrap();
    let sup = store
        .org_create(&op, &root, "sup", OrgKind::Supervisor, &profile("S"))
        .await
        .unwrap();
    let a = store
        .org_create(&op, &sup, "a", OrgKind::Member, &profile("A"))
        .await
        .unwrap();
    let b = store
        .org_create(&op, &sup, "b", OrgKind::Member, &profile("B"))
        .await
        .unwrap();
    let c = store
        .org_create(&op, &root, "c", OrgKind::Member, &profile("C"))
        .await
        .unwrap();
    let policy = CampaignPolicy {
        min_orgs: 3,
        window_ms: 24 * HOUR,
    };
    let t0 = 1_764_000_000_000;

    // Grouping: same org, rule and entity within the window → one alert;
    // a replayed event id does not count twice.
    let (r1, camp) = store
        .alert_record(&detection(a.id.as_str(), t0, "e1"), HOUR, &policy)
        .await
        .unwrap();
    assert!(matches!(r1, Recorded::Opened { .. }), "{r1:?}");
    assert!(camp.is_none());
    let (r2, _) = store
        .alert_record(&detection(a.id.as_str(), t0 + 60_000, "e2"), HOUR, &policy)
        .await
        .unwrap();
    assert_eq!(r2.alert_id(), r1.alert_id());
    let (r3, _) = store
        .alert_record(&detection(a.id.as_str(), t0 + 60_000, "e2"), HOUR, &policy)
        .await
        .unwrap();
    assert_eq!(r3.alert_id(), r1.alert_id());
    let only_a = Scope::Only(a.path.clone());
    let alert = store
        .alert_get(&only_a, r1.alert_id().unwrap())
        .await
        .unwrap();
    assert_eq!(alert.event_count, 2);
    assert_eq!(alert.event_ids, vec!["e1", "e2"]);
    assert_eq!(alert.last_seen, t0 + 60_000);
    // Outside the window: a new alert.
    let (r4, _) = store
        .alert_record(
            &detection(a.id.as_str(), t0 + 3 * HOUR, "e3"),
            HOUR,
            &policy,
        )
        .await
        .unwrap();
    assert!(matches!(r4, Recorded::Opened { .. }));
    assert_ne!(r4.alert_id(), r1.alert_id());

    // Tenancy: b cannot see a's alert; the supervisor sees both children.
    let only_b = Scope::Only(b.path.clone());
    assert!(matches!(
        store.alert_get(&only_b, r1.alert_id().unwrap()).await,
        Err(StoreError::NotFound)
    ));
    let (rb, camp) = store
        .alert_record(&detection(b.id.as_str(), t0 + 10, "e4"), HOUR, &policy)
        .await
        .unwrap();
    assert!(camp.is_none(), "two orgs are not a campaign yet");
    let sup_scope = Scope::Subtree(sup.path.clone());
    let listed = store
        .alert_list(
            &sup_scope,
            &AlertFilter::default(),
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    // Newest first.
    assert_eq!(listed.items[0].id, rb.alert_id().unwrap());
    let listed_b = store
        .alert_list(&only_b, &AlertFilter::default(), &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(listed_b.items.len(), 1);

    // The third org forms the campaign; all three orgs' alerts join it.
    let (rc, camp) = store
        .alert_record(&detection(c.id.as_str(), t0 + 20, "e5"), HOUR, &policy)
        .await
        .unwrap();
    let camp = camp.expect("three orgs make a campaign");
    assert!(camp.formed);
    assert_eq!(camp.org_count, 3);
    let all = Scope::Subtree(root.path.clone());
    let campaigns = store.campaign_list(&all).await.unwrap();
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0].org_ids.len(), 3);
    assert_eq!(campaigns[0].severity, Severity::High);
    // The supervisor sees the campaign, with only its sub-tree's orgs.
    let seen_by_sup = store
        .campaign_get(&sup_scope, &camp.campaign_id)
        .await
        .unwrap();
    let mut want = vec![a.id.to_string(), b.id.to_string()];
    want.sort();
    assert_eq!(seen_by_sup.org_ids, want);
    assert_eq!(seen_by_sup.alert_count, 3);
    // c alone sees itself only.
    let seen_by_c = store
        .campaign_get(&Scope::Only(c.path.clone()), &camp.campaign_id)
        .await
        .unwrap();
    assert_eq!(seen_by_c.org_ids, vec![c.id.to_string()]);
    let by_campaign = store
        .alert_list(
            &all,
            &AlertFilter {
                campaign_id: Some(camp.campaign_id.clone()),
                ..Default::default()
            },
            &PageRequest::first(100),
        )
        .await
        .unwrap();
    assert_eq!(by_campaign.items.len(), 4);
    // A fourth detection extends the campaign rather than forming another.
    let (_, again) = store
        .alert_record(&detection(c.id.as_str(), t0 + 30, "e6"), HOUR, &policy)
        .await
        .unwrap();
    assert_eq!(again.unwrap().campaign_id, camp.campaign_id);
    assert!(!rc.alert_id().unwrap().is_empty());

    // Workflow, audited; illegal moves are refused precisely.
    let alert = store.alert_get(&all, r1.alert_id().unwrap()).await.unwrap();
    let err = store
        .alert_update(
            &op,
            &alert,
            &AlertChange {
                status: Some(AlertStatus::New),
                assignee: None,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot move from new to new"),
        "{err}"
    );
    let acked = store
        .alert_update(
            &op,
            &alert,
            &AlertChange {
                status: Some(AlertStatus::Acknowledged),
                assignee: Some(Some("analyst-1".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(acked.assignee.as_deref(), Some("analyst-1"));
    // A stale copy cannot overwrite the newer state.
    assert!(matches!(
        store
            .alert_update(
                &op,
                &alert,
                &AlertChange {
                    status: Some(AlertStatus::Resolved),
                    assignee: None,
                    ..Default::default()
                }
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    let back = store
        .alert_update(
            &op,
            &acked,
            &AlertChange {
                status: Some(AlertStatus::New),
                assignee: None,
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(back, Err(StoreError::Invalid(_))));
    store
        .alert_comment_add(&op, &acked, "checked the resolver logs")
        .await
        .unwrap();
    assert!(store.alert_comment_add(&op, &acked, "  ").await.is_err());
    let comments = store.alert_comments(&acked).await.unwrap();
    assert_eq!(comments.len(), 1);
    let fp = store
        .alert_update(
            &op,
            &acked,
            &AlertChange {
                status: Some(AlertStatus::FalsePositive),
                assignee: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Suppress: later detections of the rule on the entity are dropped.
    store
        .suppression_add(
            &op,
            &fp,
            &fp.entity,
            mimamori_core::now_millis() + HOUR,
            "internal test domain",
        )
        .await
        .unwrap();
    assert!(store
        .suppression_add(
            &op,
            &fp,
            "other.example",
            mimamori_core::now_millis() + HOUR,
            ""
        )
        .await
        .is_err());
    let (sup_r, _) = store
        .alert_record(
            &detection(a.id.as_str(), t0 + 5 * HOUR, "e7"),
            HOUR,
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(sup_r, Recorded::Suppressed);
    // Other orgs are not suppressed.
    let (not_sup, _) = store
        .alert_record(
            &detection(b.id.as_str(), t0 + 5 * HOUR, "e8"),
            HOUR,
            &policy,
        )
        .await
        .unwrap();
    assert!(not_sup.alert_id().is_some());
    assert_eq!(store.suppression_list(&only_a).await.unwrap().len(), 1);
    assert!(store.suppression_list(&only_b).await.unwrap().is_empty());
    let audit = store
        .audit_list(&only_a, &PageRequest::first(100))
        .await
        .unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    for want in ["alert.update", "alert.comment", "alert.suppress"] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
    // Deleting an org takes its alerts with it.
    store.org_delete(&op, &c).await.unwrap();
    let left = store.campaign_get(&all, &camp.campaign_id).await.unwrap();
    assert_eq!(left.org_ids.len(), 2);
    store.close().await;
}

#[tokio::test]
async fn alerts_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in mimamori_store::testing::backends(dir.path()).await {
        eprintln!("backend: {label}");
        scenario(label, &url).await;
    }
}
