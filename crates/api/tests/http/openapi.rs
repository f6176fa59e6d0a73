//! The OpenAPI document checked against the router it describes: every
//! operation's path parameters are exactly its path's `{}` segments, every
//! other parameter is a query parameter, each documented path and method
//! is routed, and the handler accepts each documented query parameter.

use reqwest::Method;
use serde_json::Value;

use crate::Server;
use mimamori_core::Role;

/// A value of the parameter's schema type, for the query string.
fn sample(p: &Value) -> &'static str {
    match p["schema"]["type"].as_str() {
        Some("integer") | Some("number") => "1",
        Some("boolean") => "true",
        _ => "x",
    }
}

#[tokio::test]
async fn every_operation_matches_the_router() {
    let s = Server::start().await;
    let admin = s.token(&s.root, Role::SocAdmin).await;
    let doc = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    let mut query_params = 0;
    for (path, item) in paths {
        let segments: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            let Ok(m) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            operations += 1;
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut in_path: Vec<&str> = Vec::new();
            let mut in_query: Vec<(&str, &Value)> = Vec::new();
            for p in &params {
                let name = p["name"].as_str().expect("parameter name");
                match p["in"].as_str() {
                    Some("path") => {
                        assert_eq!(
                            p["required"], true,
                            "{method} {path}: path parameter {name} must be required"
                        );
                        in_path.push(name);
                    }
                    Some("query") => in_query.push((name, p)),
                    other => panic!("{method} {path}: parameter {name} is in {other:?}"),
                }
            }
            let mut want = segments.clone();
            want.sort_unstable();
            in_path.sort_unstable();
            assert_eq!(
                in_path, want,
                "{method} {path}: path parameters must be exactly the path's segments"
            );

            // Routed: the concrete path answers something other than the
            // router's own "no such endpoint" or "wrong method".
            let concrete = segments.iter().fold(path.clone(), |p, s| {
                p.replace(&format!("{{{s}}}"), "zz-none")
            });
            let r = s.call(m.clone(), &concrete, None, None).await;
            let detail = r.body["detail"].as_str().unwrap_or("");
            assert!(
                r.status != 405 && !detail.contains("no such endpoint"),
                "{method} {path} is documented but not routed: {} {detail}",
                r.status
            );

            // Every documented query parameter is one the handler takes
            // (its query structs refuse unknown fields).
            if !in_query.is_empty() {
                let qs: Vec<String> = in_query
                    .iter()
                    .map(|(n, p)| format!("{n}={}", sample(p)))
                    .collect();
                query_params += in_query.len();
                let r = s
                    .call(
                        m,
                        &format!("{concrete}?{}", qs.join("&")),
                        Some(&admin),
                        None,
                    )
                    .await;
                let detail = r.body["detail"].as_str().unwrap_or("");
                assert!(
                    !detail.contains("unknown field"),
                    "{method} {path}: the handler refuses a documented query parameter: {detail}"
                );
            }
        }
    }
    assert!(operations > 60, "{operations} operations");
    assert!(query_params > 20, "{query_params} query parameters");

    // The import, whose query parameters were documented as path ones.
    let import = &paths["/api/v1/intel/import"]["post"]["parameters"];
    let format = import
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "format"))
        .expect("format parameter");
    assert_eq!(format["in"], "query");
    assert_eq!(format["required"], true);
    let org = import
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == "org_id"))
        .expect("org_id parameter");
    assert_eq!(org["in"], "query");
    assert_ne!(org["required"], true);
}
