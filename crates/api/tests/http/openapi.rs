//! The OpenAPI document checked against the router it describes: every
//! operation's path parameters are exactly its path's `{}` segments, every
//! other parameter is a query parameter, each documented path and method
//! is routed, the handler accepts each documented query parameter, and
//! every route of the router under /api/v1 is documented.

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

    // The other way round: every route the router has under /api/v1 is in
    // the document. Read from the router's source (axum cannot list its
    // routes): each `.route("PATH", get(…).post(…))` of `router()`.
    let source = include_str!("../../src/lib.rs");
    let body = &source[source
        .find("let api = Router::new()")
        .expect("the api router")..];
    let body = &body[..body
        .find("let ingest = Router::new()")
        .expect("the ingest router")];
    let mut routed = 0;
    let mut rest = body;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let quoted = rest.trim_start();
        let path = &quoted[1..quoted[1..].find('"').expect("a path literal") + 1];
        // The handlers, up to this route's closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("a closed .route(");
        let handlers = &rest[..end];
        let full = if path.starts_with("/api/v1/") || path.starts_with("/taxii2") {
            path.to_string()
        } else {
            format!("/api/v1{path}")
        };
        if !full.starts_with("/api/v1/") {
            // TAXII has its own specification.
            continue;
        }
        for method in ["get", "post", "patch", "put", "delete"] {
            let called = handlers.starts_with(&format!("{method}("))
                || handlers.contains(&format!(" {method}("))
                || handlers.contains(&format!("\n{method}("))
                || handlers.contains(&format!(".{method}("));
            if called {
                routed += 1;
                assert!(
                    doc["paths"][&full][method].is_object(),
                    "{method} {full} is routed but not in the OpenAPI document"
                );
            }
        }
    }
    assert!(
        routed > 50,
        "{routed} routed operations read from the router"
    );
}
