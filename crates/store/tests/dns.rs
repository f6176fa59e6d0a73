//! Protective DNS policy in the store, on every backend: per-org allow and
//! block lists (scoped reads, audited changes, one list per domain), the
//! change version the resolver watches, and DNS client tokens.

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, OrgKind, Role, Scope, Validated};
use mimamori_store::{
    AuditActor, DnsListKind, NewDnsPolicyEntry, NewToken, PageRequest, Store, StoreError,
};

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

fn entry(org: &mimamori_core::Org, kind: DnsListKind, domain: &str) -> NewDnsPolicyEntry {
    NewDnsPolicyEntry {
        org_id: org.id.to_string(),
        kind,
        domain: domain.into(),
        comment: Some("理由: test".into()),
    }
}

async fn scenario(label: &str, url: &str) {
    let store = Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let op = AuditActor::local_operator();
    let root = store
        .bootstrap_root(&op, "soc", &profile("中央SOC"))
        .await
        .unwrap();
    let sup = store
        .org_create(&op, &root, "sup", OrgKind::Supervisor, &profile("監督"))
        .await
        .unwrap();
    let a = store
        .org_create(&op, &sup, "a", OrgKind::Member, &profile("A"))
        .await
        .unwrap();
    let b = store
        .org_create(&op, &root, "b", OrgKind::Member, &profile("B"))
        .await
        .unwrap();
    let v0 = store.dns_policy_version().await.unwrap();

    // Names are normalized; `*.` means the same as the bare domain.
    let e1 = store
        .dns_policy_add(
            &op,
            &a,
            &entry(&a, DnsListKind::Allow, "*.Partner.Example."),
        )
        .await
        .unwrap();
    assert_eq!(e1.domain, "partner.example");
    assert_eq!(e1.kind, DnsListKind::Allow);
    assert_eq!(e1.comment.as_deref(), Some("理由: test"));
    let v1 = store.dns_policy_version().await.unwrap();
    assert_ne!(v0, v1, "an add changes the version");
    // A domain is on one of an org's lists at most…
    let dup = store
        .dns_policy_add(&op, &a, &entry(&a, DnsListKind::Block, "partner.example"))
        .await;
    assert!(
        matches!(&dup, Err(StoreError::Conflict(m)) if m.contains("partner.example")),
        "{dup:?}"
    );
    // …but another org may list it.
    store
        .dns_policy_add(&op, &b, &entry(&b, DnsListKind::Block, "partner.example"))
        .await
        .unwrap();
    let sup_block = store
        .dns_policy_add(
            &op,
            &sup,
            &entry(&sup, DnsListKind::Block, "casino.example"),
        )
        .await
        .unwrap();
    for bad in ["", "single", "a..b.example", "-x.example"] {
        let r = store
            .dns_policy_add(&op, &a, &entry(&a, DnsListKind::Block, bad))
            .await;
        assert!(matches!(r, Err(StoreError::Invalid(_))), "{bad:?}: {r:?}");
    }

    // Reads are scoped: a sees its own, sup its sub-tree, the root all.
    let list = |scope: Scope, org: Option<String>| {
        let store = store.clone();
        async move {
            store
                .dns_policy_list(&scope, org.as_deref(), &PageRequest::first(100))
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| e.domain + "@" + &e.org_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(Scope::Only(a.path.clone()), None).await,
        vec![format!("partner.example@{}", a.id)]
    );
    assert_eq!(list(Scope::Subtree(sup.path.clone()), None).await.len(), 2);
    assert_eq!(list(Scope::Subtree(root.path.clone()), None).await.len(), 3);
    assert_eq!(
        list(Scope::Subtree(root.path.clone()), Some(b.id.to_string())).await,
        vec![format!("partner.example@{}", b.id)]
    );
    // Out of scope is not found.
    assert!(matches!(
        store
            .dns_policy_get(&Scope::Only(a.path.clone()), &sup_block.id)
            .await,
        Err(StoreError::NotFound)
    ));
    // Paging.
    let p1 = store
        .dns_policy_list(
            &Scope::Subtree(root.path.clone()),
            None,
            &PageRequest::first(2),
        )
        .await
        .unwrap();
    assert_eq!(p1.items.len(), 2);
    let p2 = store
        .dns_policy_list(
            &Scope::Subtree(root.path.clone()),
            None,
            &PageRequest {
                after: p1.next_cursor.clone(),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert_eq!(p2.items.len(), 1);
    assert!(p2.next_cursor.is_none());

    // The resolver's view: every entry.
    let all = store.dns_policy_all().await.unwrap();
    assert_eq!(all.len(), 3);

    // Removal is audited and changes the version.
    store
        .dns_policy_remove(&op, &sup, &sup_block)
        .await
        .unwrap();
    let v2 = store.dns_policy_version().await.unwrap();
    assert_ne!(v1, v2);
    let audit = store
        .audit_list(&Scope::Only(sup.path.clone()), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(audit.items[0].action, "dns_policy.remove");
    assert_eq!(audit.items[0].detail["domain"], "casino.example");
    assert_eq!(audit.items[1].action, "dns_policy.add");

    // DNS client tokens: issued like any token, listed for the resolver by
    // their hash until revoked.
    let issued = store
        .token_issue(
            &op,
            &a,
            None,
            &NewToken {
                org_id: a.id.to_string(),
                name: "laptop-042".into(),
                role: Role::DnsClient,
                expires_in_secs: None,
            },
        )
        .await
        .unwrap();
    let tokens = store.dns_client_tokens().await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].org_id, a.id.as_str());
    assert_eq!(
        tokens[0].secret_hash,
        mimamori_store::secret::hash_token(&issued.secret)
    );
    let v3 = store.dns_policy_version().await.unwrap();
    assert_ne!(v2, v3, "a new DNS client token changes the version");
    store.token_revoke(&op, &a, &issued.token).await.unwrap();
    assert!(store.dns_client_tokens().await.unwrap().is_empty());
    assert_ne!(v3, store.dns_policy_version().await.unwrap());

    // Deleting an org removes its lists.
    store.org_delete(&op, &b).await.unwrap();
    assert_eq!(store.dns_policy_all().await.unwrap().len(), 1);
    store.close().await;
}

#[tokio::test]
async fn dns_policy_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in mimamori_store::testing::backends(dir.path()).await {
        eprintln!("backend: {label}");
        scenario(label, &url).await;
    }
}
