//! The web console of mimamori: the SOC analysts' and member orgs' daily
//! tool, served by `mimamori serve` under `/console/`.
//!
//! - Pages are rendered on the server ([maud] templates compiled into the
//!   binary) from the API's own handlers, called in-process with the
//!   signed-in user's [`mimamori_api::auth::Caller`]: a page can never show
//!   what the API would refuse that user, because it *is* the API's answer.
//! - The page table ([`pages::PAGES`]) is the one place that says each
//!   page's route, title and required action.
//! - Japanese and English from Fluent catalogues ([`i18n`]).
//! - Sessions are API tokens in an HttpOnly cookie, with CSRF tokens on
//!   every form and an idle timeout ([`session`]).
//! - Static files (the stylesheet, a small script that localises times
//!   and draws charts, the vendored uPlot) are embedded ([`assets`]).
//!   Without script every page still works; charts have a table beside.
//!
//! Architecture invariant: this crate reads and changes nothing except
//! through `mimamori_api::routes` handlers (which check role, then scope,
//! then act through the store) — apart from resolving the session cookie,
//! which is `Store::authenticate`, the API's own bearer check.

pub mod admin;
pub mod alerts;
pub mod assets;
pub mod audit;
pub mod campaigns;
pub mod data;
pub mod hunt;
pub mod i18n;
pub mod intel;
pub mod layout;
pub mod login;
pub mod overview;
pub mod pages;
pub mod session;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use mimamori_api::AppState;
use pages::{page, PageId};
use session::{ConsoleConfig, ConsoleState};
use std::sync::Arc;

/// The console's routes, to merge into the API's router
/// (`mimamori_api::router_with`).
pub fn routes(config: ConsoleConfig) -> Router<AppState> {
    let state = Arc::new(ConsoleState::new(config));
    Router::new()
        .route(page(PageId::Overview).route, get(overview::show))
        .route(page(PageId::Alerts).route, get(alerts::list))
        .route(page(PageId::Alert).route, get(alerts::detail))
        .route("/console/alerts/{id}/status", post(alerts::set_status))
        .route("/console/alerts/{id}/assign", post(alerts::assign))
        .route("/console/alerts/{id}/comments", post(alerts::comment))
        .route(page(PageId::Campaigns).route, get(campaigns::list))
        .route(page(PageId::Campaign).route, get(campaigns::detail))
        .route(page(PageId::Hunt).route, get(hunt::form).post(hunt::run))
        .route(page(PageId::Intel).route, get(intel::list))
        // Before `/console/intel/{id}`: a fixed segment wins in axum anyway,
        // but the order says it.
        .route(
            page(PageId::IntelImport).route,
            get(intel::import_form).post(intel::import),
        )
        .route(page(PageId::Indicator).route, get(intel::detail))
        .route(
            page(PageId::DnsPolicy).route,
            get(admin::dns).post(admin::add_dns),
        )
        .route("/console/dns/{id}/remove", post(admin::remove_dns))
        .route(page(PageId::Orgs).route, get(admin::orgs))
        .route(
            page(PageId::Users).route,
            get(admin::users).post(admin::add_user),
        )
        .route("/console/users/{id}/disable", post(admin::disable_user))
        .route(
            page(PageId::Tokens).route,
            get(admin::tokens).post(admin::add_token),
        )
        .route("/console/tokens/{id}/revoke", post(admin::revoke_token))
        .route(page(PageId::Audit).route, get(audit::list))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/login", get(login::form).post(login::password))
        .route("/console/login/token", post(login::token))
        .route("/console/logout", post(login::logout))
        .route("/console/lang/{tag}", get(login::switch_lang))
        .route("/console/assets/{name}", get(assets::serve))
        // Not a router fallback: the API's router, which this merges
        // into, has the fallback.
        .route("/console/{*rest}", get(not_found).post(not_found))
        .layer(axum::middleware::from_fn(same_origin_posts))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(Extension(state))
}

async fn not_found(headers: axum::http::HeaderMap) -> Response {
    let lang = session::request_lang(&headers);
    layout::error_page(lang, StatusCode::NOT_FOUND, &lang.t("error-not-found"))
}

/// Refuses a POST whose `Origin` (or, without one, `Referer`) names
/// another site than the one the request came to: with SameSite cookies
/// and CSRF tokens this is the third lock on cross-site forms.
async fn same_origin_posts(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let from = req
            .headers()
            .get(header::ORIGIN)
            .or_else(|| req.headers().get(header::REFERER))
            .and_then(|v| v.to_str().ok());
        if let Some(from) = from {
            let authority = from
                .split_once("://")
                .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
            if from == "null" || authority != host {
                let lang = session::request_lang(req.headers());
                return layout::error_page(lang, StatusCode::FORBIDDEN, &lang.t("error-csrf"));
            }
        }
    }
    next.run(req).await
}

/// Headers every console answer carries: no framing, no sniffing, no
/// inline script (the pages have none), pages not cached.
async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/console/assets/");
    let mut r = next.run(req).await.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}
