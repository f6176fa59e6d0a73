//! DNS over HTTPS (RFC 8484): `GET /dns-query?dns=BASE64URL` and
//! `POST /dns-query` with `application/dns-message`, over HTTP/1.1 or
//! HTTP/2 (hyper's automatic protocol detection; over TLS the caller's
//! rustls config should offer ALPN `h2` and `http/1.1`), through the same
//! [`Engine`] as UDP and TCP.
//!
//! `/dns-query/<token>` (GET and POST alike) carries a DNS client token in
//! the path: it selects the token's org for a client whose address is in no
//! org's network (a roaming laptop). An unknown, revoked or expired token is
//! refused with HTTP 403 and nothing is resolved.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;

use crate::engine::{Engine, Fast, Scratch};
use crate::log::Transport;
use crate::wire;

const MEDIA: &str = "application/dns-message";

/// The DoH routes over `engine`.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/dns-query", get(doh_get).post(doh_post))
        .route(
            "/dns-query/{token}",
            get(doh_get_token).post(doh_post_token),
        )
        .with_state(engine)
}

/// The token's digest, if the current policy knows it.
fn check_token(engine: &Engine, token: &str) -> Option<[u8; 32]> {
    let digest = crate::policy::token_digest(token);
    (token.len() <= 200 && engine.policy().load().doh_token_org(&digest).is_some())
        .then_some(digest)
}

/// The answer to an unknown, revoked or expired token.
fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        "unknown, revoked or expired DNS client token: ask your DNS administrator for the current DoH URL\n",
    )
        .into_response()
}

async fn doh_get_token(
    State(engine): State<Arc<Engine>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    q: Query<HashMap<String, String>>,
) -> Response {
    match check_token(&engine, &token) {
        Some(d) => get_with(&engine, peer, Some(&d), q).await,
        None => forbidden(),
    }
}

async fn doh_post_token(
    State(engine): State<Arc<Engine>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match check_token(&engine, &token) {
        Some(d) => post_with(&engine, peer, Some(&d), &headers, &body).await,
        None => forbidden(),
    }
}

async fn doh_get(
    State(engine): State<Arc<Engine>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    q: Query<HashMap<String, String>>,
) -> Response {
    get_with(&engine, peer, None, q).await
}

async fn get_with(
    engine: &Engine,
    peer: SocketAddr,
    token: Option<&[u8; 32]>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(dns) = q.get("dns") else {
        return (StatusCode::BAD_REQUEST, "missing dns parameter").into_response();
    };
    let Some(pkt) = decode_dns_param(dns) else {
        return (StatusCode::BAD_REQUEST, "dns parameter is not base64url").into_response();
    };
    answer(engine, &pkt, peer, token).await
}

/// The DNS message of a GET request's `dns` parameter (RFC 8484 §4.1:
/// base64url without padding; padding is accepted anyway). Public for the
/// fuzz targets.
#[doc(hidden)]
pub fn decode_dns_param(dns: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(dns.trim_end_matches('='))
        .ok()
}

async fn doh_post(
    State(engine): State<Arc<Engine>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    post_with(&engine, peer, None, &headers, &body).await
}

async fn post_with(
    engine: &Engine,
    peer: SocketAddr,
    token: Option<&[u8; 32]>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.eq_ignore_ascii_case(MEDIA) {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    answer(engine, body, peer, token).await
}

async fn answer(
    engine: &Engine,
    pkt: &[u8],
    peer: SocketAddr,
    token: Option<&[u8; 32]>,
) -> Response {
    if pkt.len() > 65535 {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let mut out = Vec::with_capacity(512);
    let resp = match engine.answer_fast_for(
        pkt,
        peer,
        token,
        Transport::Https,
        &mut out,
        &mut Scratch::default(),
    ) {
        Fast::Reply => Some(out),
        Fast::Drop => None,
        Fast::Defer => engine.resolve_for(pkt, peer, token, Transport::Https).await,
    };
    let Some(resp) = resp else {
        // RPZ DROP (or a packet not worth answering): no DNS answer exists
        // to send; a gateway error is the closest HTTP has.
        return StatusCode::BAD_GATEWAY.into_response();
    };
    // RFC 8484 §5.1: freshness from the smallest TTL in the answer.
    let mut min_ttl = u32::MAX;
    let _ = wire::walk_records(&resp, |rr| {
        if rr.rtype != wire::TYPE_OPT {
            min_ttl = min_ttl.min(rr.ttl);
        }
    });
    let max_age = if min_ttl == u32::MAX { 0 } else { min_ttl };
    (
        [
            (header::CONTENT_TYPE, MEDIA.to_string()),
            (header::CACHE_CONTROL, format!("max-age={max_age}")),
        ],
        resp,
    )
        .into_response()
}
