//! Sign-in (password or token), sign-out, and the language switch.

use crate::i18n::Lang;
use crate::layout::{bare_page, error_page};
use crate::session::{
    cookie, csrf_for, end_session, random_token, request_lang, same, set_cookie, Session,
    LANG_COOKIE, LOGIN_CSRF_COOKIE, SESSION_COOKIE,
};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use maud::html;
use mimamori_api::routes::identity::{self, LoginRequest, RemoteAddr, SESSION_SECS};
use mimamori_api::AppState;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    expired: Option<String>,
}

/// Where to go after signing in: a console path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/console/") && !n.contains("//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/console/".to_string(),
    }
}

pub async fn form(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let lang = request_lang(&headers);
    let notice = q.expired.is_some().then(|| lang.t("session-expired"));
    login_page(lang, &safe_next(q.next.as_deref()), notice, StatusCode::OK)
}

fn login_page(lang: Lang, next: &str, error: Option<String>, status: StatusCode) -> Response {
    let nonce = random_token();
    let csrf = csrf_for(&nonce);
    let body = html! {
        @if let Some(e) = &error {
            p.error role="alert" { (e) }
        }
        form.signin method="post" action="/console/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            fieldset {
                legend { (lang.t("sign-in-password")) }
                label for="org" { (lang.t("field-org")) }
                input #org name="org" autocomplete="organization" required;
                label for="username" { (lang.t("field-username")) }
                input #username name="username" autocomplete="username" required;
                label for="password" { (lang.t("field-password")) }
                input #password name="password" type="password" autocomplete="current-password" required;
                button type="submit" { (lang.t("sign-in")) }
            }
        }
        form.signin method="post" action="/console/login/token" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            fieldset {
                legend { (lang.t("sign-in-token")) }
                label for="token" { (lang.t("field-token")) }
                input #token name="token" type="password" autocomplete="off" required;
                button type="submit" { (lang.t("sign-in")) }
            }
        }
        p { (crate::layout::lang_switch(lang, &format!("/console/login?next={}", crate::layout::url_encode(next)))) }
    };
    let mut r = bare_page(lang, status, &lang.t("sign-in-title"), body);
    if let Ok(v) = set_cookie(LOGIN_CSRF_COOKIE, &nonce, Some(3600), false).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// The sign-in form's CSRF check: its field must match its cookie.
fn login_csrf_ok(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, LOGIN_CSRF_COOKIE).is_some_and(|nonce| same(&csrf_for(nonce), sent))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    next: Option<String>,
    org: String,
    username: String,
    password: String,
}

pub async fn password(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<crate::session::ConsoleState>>,
    remote: RemoteAddr,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    let lang = request_lang(&headers);
    let next = safe_next(f.next.as_deref());
    if !login_csrf_ok(&headers, &f.csrf) {
        return login_page(
            lang,
            &next,
            Some(lang.t("error-csrf")),
            StatusCode::FORBIDDEN,
        );
    }
    let req = LoginRequest {
        org: f.org.trim().to_string(),
        username: f.username.trim().to_string(),
        password: f.password,
    };
    match identity::login(State(state), remote, mimamori_api::error::ApiJson(req)).await {
        Ok((_, axum::Json(issued))) => {
            signed_in(&issued.secret, Some(SESSION_SECS), &next, &console)
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => login_page(
            lang,
            &next,
            Some(lang.t("sign-in-failed")),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => login_page(lang, &next, Some(e.detail.clone()), e.status),
    }
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: String,
    next: Option<String>,
    token: String,
}

pub async fn token(
    State(state): State<AppState>,
    Extension(console): Extension<Arc<crate::session::ConsoleState>>,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Response {
    let lang = request_lang(&headers);
    let next = safe_next(f.next.as_deref());
    if !login_csrf_ok(&headers, &f.csrf) {
        return login_page(
            lang,
            &next,
            Some(lang.t("error-csrf")),
            StatusCode::FORBIDDEN,
        );
    }
    let secret = f.token.trim();
    match state.store.authenticate(secret).await {
        Ok(p) if crate::pages::may_sign_in(p.role) => signed_in(secret, None, &next, &console),
        Ok(_) => login_page(
            lang,
            &next,
            Some(lang.t("sign-in-role-refused")),
            StatusCode::FORBIDDEN,
        ),
        Err(_) => login_page(
            lang,
            &next,
            Some(lang.t("sign-in-token-failed")),
            StatusCode::UNAUTHORIZED,
        ),
    }
}

fn signed_in(
    secret: &str,
    max_age: Option<u64>,
    next: &str,
    console: &crate::session::ConsoleState,
) -> Response {
    let mut r = Redirect::to(next).into_response();
    let secure = console.config.secure_cookies;
    for c in [
        set_cookie(SESSION_COOKIE, secret, max_age, secure),
        set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), secure),
    ] {
        if let Ok(v) = c.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&f.csrf) {
        return *r;
    }
    end_session(&state, &session.console, &session.caller).await;
    let mut r = Redirect::to("/console/login").into_response();
    let secure = session.console.config.secure_cookies;
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", Some(0), secure).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Debug, Deserialize)]
pub struct LangQuery {
    next: Option<String>,
}

/// Switches the language: a cookie for a year, then back where the user was.
pub async fn switch_lang(
    Path(tag): Path<String>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
    Extension(console): Extension<Arc<crate::session::ConsoleState>>,
) -> Response {
    let Some(lang) = Lang::from_tag(&tag) else {
        let lang = request_lang(&headers);
        return error_page(lang, StatusCode::NOT_FOUND, &lang.t("error-not-found"));
    };
    let next = match q.next.as_deref() {
        Some(n) if n.starts_with("/console/login") => n.to_string(),
        other => safe_next(other),
    };
    let secure = console.config.secure_cookies;
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = set_cookie(LANG_COOKIE, lang.tag(), Some(365 * 86400), secure).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(
            safe_next(Some("/console/alerts?x=1")),
            "/console/alerts?x=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/console//evil",
            "/api/v1/orgs",
            "/console/\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/console/", "{bad}");
        }
        assert_eq!(safe_next(None), "/console/");
    }
}
