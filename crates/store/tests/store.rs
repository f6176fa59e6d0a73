//! The store on every backend: SQLite always, PostgreSQL when reachable
//! (required in CI). The same scenario runs on each, which is what proves
//! the SQL is written once for both.

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, Org, OrgKind, Role, Scope, Validated};
use mimamori_store::{
    AuditActor, AuthError, NewToken, NewUser, OrgFilter, PageRequest, Store, StoreError,
};

fn profile(name: &str) -> OrgProfile {
    NewOrg {
        slug: "x".into(),
        name: name.into(),
        networks: vec!["10.0.0.0/8".into()],
        domains: vec!["例え.example.jp".into()],
        ..Default::default()
    }
    .validate()
    .unwrap()
    .1
}

async fn scenario(label: &str, url: &str) {
    let store = Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    // Opening twice re-runs no migration.
    let store2 = Store::open(url).await.unwrap();
    store2.close().await;
    let op = AuditActor::local_operator();

    let root = store
        .bootstrap_root(&op, "soc", &profile("中央SOC"))
        .await
        .unwrap();
    assert!(matches!(
        store.bootstrap_root(&op, "soc2", &profile("again")).await,
        Err(StoreError::Conflict(_))
    ));
    let all = Scope::Subtree(root.path.clone());
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
    assert!(matches!(
        store.org_create(&op, &root, "a", OrgKind::Member, &profile("dup")).await,
        Err(StoreError::Conflict(m)) if m.contains("\"a\"")
    ));

    // Unicode and JSON columns survive the round trip.
    let got = store.org_get(&all, a.id.as_str()).await.unwrap();
    assert_eq!(got, a);
    assert_eq!(got.domains, vec!["xn--r8jz45g.example.jp"]);

    // Scopes.
    let sup_scope = Scope::Subtree(sup.path.clone());
    let ids = |orgs: Vec<Org>| orgs.into_iter().map(|o| o.slug).collect::<Vec<_>>();
    assert_eq!(
        ids(store.org_all(&sup_scope).await.unwrap()),
        vec!["sup", "a"]
    );
    assert!(matches!(
        store.org_get(&sup_scope, b.id.as_str()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .org_get(&Scope::Only(a.path.clone()), sup.id.as_str())
            .await,
        Err(StoreError::NotFound)
    ));
    let children = store
        .org_list(
            &all,
            &OrgFilter {
                parent_id: Some(root.id.clone()),
            },
            &PageRequest::first(10),
        )
        .await
        .unwrap();
    assert_eq!(ids(children.items), vec!["sup", "b"]);

    // Pagination walks everything exactly once.
    let mut seen = vec![];
    let mut page = PageRequest::first(2);
    loop {
        let p = store
            .org_list(&all, &OrgFilter::default(), &page)
            .await
            .unwrap();
        assert!(p.items.len() <= 2);
        seen.extend(p.items.into_iter().map(|o| o.slug));
        match p.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec!["soc", "sup", "a", "b"]);

    // Tokens: issue, authenticate, expire, revoke.
    let t = store
        .token_issue(
            &op,
            &a,
            None,
            &NewToken {
                org_id: a.id.to_string(),
                name: "sensor".into(),
                role: Role::Sensor,
                expires_in_secs: None,
            },
        )
        .await
        .unwrap();
    let p = store.authenticate(&t.secret).await.unwrap();
    assert_eq!(
        (p.role, p.org_id.clone(), p.org_path.clone()),
        (Role::Sensor, a.id.clone(), a.path.clone())
    );
    assert!(matches!(
        store.authenticate("mmr_nope").await,
        Err(AuthError::Unknown)
    ));
    assert!(matches!(
        store.token_issue(&op, &a, None, &NewToken { org_id: a.id.to_string(), name: "x".into(), role: Role::SocAdmin, expires_in_secs: None }).await,
        Err(StoreError::Invalid(e)) if e.field == "role"
    ));
    let short = store
        .token_issue(
            &op,
            &a,
            None,
            &NewToken {
                org_id: a.id.to_string(),
                name: "short".into(),
                role: Role::OrgAnalyst,
                expires_in_secs: Some(1),
            },
        )
        .await
        .unwrap();
    store.token_revoke(&op, &a, &t.token).await.unwrap();
    assert!(matches!(
        store.authenticate(&t.secret).await,
        Err(AuthError::Revoked)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(matches!(
        store.authenticate(&short.secret).await,
        Err(AuthError::Expired(_))
    ));

    // Users and login.
    let new_user = NewUser {
        org_id: a.id.to_string(),
        username: "tanaka".into(),
        display_name: Some("田中".into()),
        email: Some("tanaka@a.example.jp".into()),
        role: Role::OrgAdmin,
        password: "correct horse battery staple".into(),
    };
    let u = store.user_create(&op, &a, &new_user).await.unwrap();
    assert!(matches!(
        store.user_create(&op, &a, &new_user).await,
        Err(StoreError::Conflict(_))
    ));
    let anon = AuditActor::anonymous(Some("127.0.0.1:1".into()));
    assert!(store
        .login(&anon, "a", "tanaka", "wrong password!!", 60)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .login(&anon, "b", "tanaka", "correct horse battery staple", 60)
        .await
        .unwrap()
        .is_none());
    let session = store
        .login(&anon, "a", "tanaka", "correct horse battery staple", 60)
        .await
        .unwrap()
        .unwrap();
    let p = store.authenticate(&session.secret).await.unwrap();
    assert_eq!(
        p.user_id.as_ref().map(|u| u.to_string()),
        Some(u.id.clone())
    );
    store.user_disable(&op, &a, &u).await.unwrap();
    assert!(matches!(
        store.authenticate(&session.secret).await,
        Err(AuthError::Revoked)
    ));
    assert!(store
        .login(&anon, "a", "tanaka", "correct horse battery staple", 60)
        .await
        .unwrap()
        .is_none());

    // Audit: scoped, newest first, and it names the failed login.
    let audit_a = store
        .audit_list(&Scope::Only(a.path.clone()), &PageRequest::first(100))
        .await
        .unwrap();
    let actions: Vec<_> = audit_a.items.iter().map(|e| e.action.as_str()).collect();
    // Newest first: the refused login of the disabled user, then the disabling.
    assert_eq!(&actions[..2], &["auth.login_failed", "user.disable"]);
    assert!(actions.contains(&"org.create"));
    assert!(audit_a.items.iter().all(|e| e.org_id == a.id.as_str()));
    let audit_b = store
        .audit_list(&Scope::Only(b.path.clone()), &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(
        audit_b.items.len(),
        1,
        "b only has its creation: {:?}",
        audit_b.items
    );

    // Deletion refuses the root and non-leaves; a leaf goes with its tokens.
    assert!(matches!(
        store.org_delete(&op, &root).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        matches!(store.org_delete(&op, &sup).await, Err(StoreError::Conflict(m)) if m.contains("child"))
    );
    store.org_delete(&op, &a).await.unwrap();
    assert!(matches!(
        store.authenticate(&short.secret).await,
        Err(AuthError::Unknown)
    ));
    // The audit trail outlives the org.
    let audit_a = store
        .audit_list(&Scope::Only(a.path.clone()), &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(audit_a.items[0].action, "org.delete");
    store.close().await;
}

#[tokio::test]
async fn scenario_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    for (label, url) in mimamori_store::testing::backends(dir.path()).await {
        eprintln!("backend: {label}");
        scenario(label, &url).await;
    }
}

#[tokio::test]
async fn rejects_unknown_database_urls() {
    let err = Store::open("mysql://localhost/x").await.err().unwrap();
    assert!(err.to_string().contains("expected sqlite://"), "{err}");
}
