//! Property: for random org trees and a caller anchored anywhere in them,
//! the API shows exactly the orgs the caller's scope covers (the anchor's
//! sub-tree for subtree roles, the anchor alone for org roles), and every
//! other org answers 404 — through listings and direct reads alike.

use super::Server;
use mimamori_core::Role;
use proptest::prelude::*;
use reqwest::Method;
use serde_json::json;
use std::collections::BTreeSet;

/// A random tree as a list of parent indices: node i+1's parent is
/// `parents[i] % (i + 1)` (node 0 is the case's top org).
fn tree() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(any::<usize>(), 1..12)
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::SupervisorAnalyst),
        Just(Role::OrgAdmin),
        Just(Role::OrgAnalyst),
    ]
}

#[test]
fn random_trees_are_isolated() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(Server::start());
    let soc = rt.block_on(server.token(&server.root, Role::SocAdmin));
    let case = std::sync::atomic::AtomicU32::new(0);
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    proptest!(config, |(parents in tree(), anchor_pick in any::<usize>(), role in role())| {
        rt.block_on(async {
            let c = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // Build the tree through the API, under the root.
            let mut ids: Vec<String> = vec![];
            let mut paths: Vec<Vec<usize>> = vec![];
            let n = parents.len() + 1;
            for i in 0..n {
                let (parent_id, path) = if i == 0 {
                    (server.root.id.to_string(), vec![0])
                } else {
                    let p = parents[i - 1] % i;
                    let mut path = paths[p].clone();
                    path.push(i);
                    (ids[p].clone(), path)
                };
                let r = server
                    .call(Method::POST, "/api/v1/orgs", Some(&soc), Some(json!({
                        "parent_id": parent_id, "slug": format!("c{c}-n{i}"), "name": format!("組織 {c}-{i}"),
                    })))
                    .await;
                assert_eq!(r.status, 201, "{r:?}");
                ids.push(r.body["id"].as_str().unwrap().to_string());
                paths.push(path);
            }
            let anchor = anchor_pick % n;
            let expected: BTreeSet<String> = (0..n)
                .filter(|&j| match role {
                    Role::SupervisorAnalyst => paths[j].contains(&anchor),
                    _ => j == anchor,
                })
                .map(|j| ids[j].clone())
                .collect();
            let anchor_org = server.store
                .org_get(&mimamori_core::Scope::Subtree(server.root.path.clone()), &ids[anchor])
                .await
                .unwrap();
            let token = server.token(&anchor_org, role).await;

            // The listing, walked page by page, is exactly the expected set
            // (orgs from earlier cases live elsewhere in the tree and must
            // never appear either).
            let mut listed = BTreeSet::new();
            let mut cursor: Option<String> = None;
            loop {
                let q = match &cursor {
                    Some(c) => format!("/api/v1/orgs?limit=3&cursor={c}"),
                    None => "/api/v1/orgs?limit=3".into(),
                };
                let r = server.call(Method::GET, &q, Some(&token), None).await;
                assert_eq!(r.status, 200, "{r:?}");
                for item in r.body["items"].as_array().unwrap() {
                    assert!(listed.insert(item["id"].as_str().unwrap().to_string()), "listed twice");
                }
                match r.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            assert_eq!(listed, expected, "role {role} at node {anchor} of {paths:?}");

            // Direct reads agree: 200 inside, 404 outside.
            for id in &ids {
                let r = server.call(Method::GET, &format!("/api/v1/orgs/{id}"), Some(&token), None).await;
                let want = if expected.contains(id) { 200 } else { 404 };
                assert_eq!(r.status, want, "role {role} at node {anchor}, org {id}");
            }
        });
    });
}
