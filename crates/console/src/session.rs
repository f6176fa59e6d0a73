//! Sessions: a cookie holding an API token (a session token from a
//! password sign-in, or a token the user pasted), resolved on every
//! request exactly as the API resolves a bearer token — so a console user
//! is an API caller with the same role and scope, never more.
//!
//! - The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/console`, and
//!   `Secure` when the server speaks TLS.
//! - Every form carries a CSRF token derived from the session secret
//!   (SHA-256, so nothing is stored), checked on every POST; the sign-in
//!   form, before a session exists, uses a double-submit cookie. A POST
//!   whose `Origin` is another site is refused before either check.
//! - A session idle for longer than the idle timeout is signed out (its
//!   session token revoked) on its next request.

use crate::i18n::Lang;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use mimamori_api::auth::Caller;
use mimamori_api::AppState;
use mimamori_core::{Principal, Scope};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "mimamori_session";
pub const LANG_COOKIE: &str = "mimamori_lang";
pub const LOGIN_CSRF_COOKIE: &str = "mimamori_login";
/// The form field every console form sends its CSRF token in.
pub const CSRF_FIELD: &str = "csrf";

/// How the console's sessions behave.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Mark cookies `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
    /// Sign out a session unused for this long.
    pub idle_timeout: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            secure_cookies: false,
            idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// The console's own state beside the API's.
pub struct ConsoleState {
    pub config: ConsoleConfig,
    /// When each session token (by id) was last used. Kept in memory: a
    /// restart forgets it, which only lets an idle session live one idle
    /// period longer (its token's own expiry still holds).
    last_seen: Mutex<HashMap<String, Instant>>,
}

impl ConsoleState {
    pub fn new(config: ConsoleConfig) -> Self {
        ConsoleState {
            config,
            last_seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records a use of `token_id`; false when it had been idle too long.
    fn touch(&self, token_id: &str) -> bool {
        let now = Instant::now();
        let idle = self.config.idle_timeout;
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, t| now.duration_since(*t) <= idle);
        }
        match seen.insert(token_id.to_string(), now) {
            Some(before) if now.duration_since(before) > idle => {
                seen.remove(token_id);
                false
            }
            _ => true,
        }
    }

    fn forget(&self, token_id: &str) {
        let mut seen = self.last_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(token_id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for a console cookie.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

/// The CSRF token of a session (or of a sign-in form's cookie).
pub fn csrf_for(secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"mimamori-console-csrf\0");
    h.update(secret.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Compares without stopping at the first difference.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A random value for the sign-in form's double-submit cookie.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    // getrandom fails only without an OS entropy source; a fixed value
    // would still need the attacker to read the victim's cookie.
    let _ = getrandom::fill(&mut b);
    hex::encode(b)
}

/// The language of a request, for pages that need no session.
pub fn request_lang(headers: &HeaderMap) -> Lang {
    Lang::negotiate(
        cookie(headers, LANG_COOKIE),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A signed-in console user: the API caller it stands for, its language
/// and its CSRF token.
pub struct Session {
    pub caller: Caller,
    pub lang: Lang,
    pub csrf: String,
    /// The request path, for the navigation's current page.
    pub path: String,
    /// The user's org (slug and name) for the header's scope line.
    pub org_slug: String,
    pub org_name: String,
    pub console: Arc<ConsoleState>,
}

impl Session {
    pub fn principal(&self) -> &Principal {
        &self.caller.principal
    }

    pub fn scope(&self) -> Scope {
        self.caller.principal.scope()
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: &str) -> Result<(), Box<Response>> {
        if same(sent, &self.csrf) {
            Ok(())
        } else {
            Err(Box::new(crate::layout::error_page(
                self.lang,
                StatusCode::FORBIDDEN,
                &self.lang.t("error-csrf"),
            )))
        }
    }
}

/// Why a request has no session: it is sent to the sign-in page.
pub struct NoSession {
    next: String,
    expired: bool,
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        let mut to = format!(
            "/console/login?next={}",
            crate::layout::url_encode(&self.next)
        );
        if self.expired {
            to.push_str("&expired=1");
        }
        let mut r = Redirect::to(&to).into_response();
        // Drop a dead cookie so the browser stops sending it.
        if let Ok(v) = set_cookie(SESSION_COOKIE, "", Some(0), false).parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r
    }
}

/// The console's state, from the router's extension.
pub fn console_state(parts: &Parts) -> Arc<ConsoleState> {
    parts
        .extensions
        .get::<Arc<ConsoleState>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(ConsoleState::new(ConsoleConfig::default())))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoSession> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/console/", |p| p.as_str())
            .to_string();
        let no = |expired| NoSession {
            next: if parts.method == axum::http::Method::GET {
                next.clone()
            } else {
                "/console/".into()
            },
            expired,
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE).filter(|s| !s.is_empty()) else {
            return Err(no(false));
        };
        let principal = match state.store.authenticate(secret).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "console session refused");
                return Err(no(true));
            }
        };
        if !crate::pages::may_sign_in(principal.role) {
            return Err(no(false));
        }
        let console = console_state(parts);
        let caller = Caller {
            principal,
            remote_addr: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|ci| ci.0.to_string()),
        };
        if !console.touch(caller.principal.token_id.as_str()) {
            end_session(state, &console, &caller).await;
            return Err(no(true));
        }
        let own = Scope::Only(caller.principal.org_path.clone());
        let (org_slug, org_name) = match state
            .store
            .org_get(&own, caller.principal.org_id.as_str())
            .await
        {
            Ok(o) => (o.slug.to_string(), o.name.to_string()),
            Err(_) => return Err(no(true)),
        };
        Ok(Session {
            lang: request_lang(&parts.headers),
            csrf: csrf_for(secret),
            path: parts.uri.path().to_string(),
            caller,
            org_slug,
            org_name,
            console,
        })
    }
}

/// Ends a session: forgets it, and revokes its token when it is a session
/// token from a password sign-in (a pasted API token is the user's to
/// keep; signing out of the console only drops the cookie).
pub async fn end_session(state: &AppState, console: &ConsoleState, caller: &Caller) {
    let p = &caller.principal;
    console.forget(p.token_id.as_str());
    if p.user_id.is_none() {
        return;
    }
    let own = Scope::Only(p.org_path.clone());
    let Ok(token) = state.store.token_get(&own, p.token_id.as_str()).await else {
        return;
    };
    if !token.name.starts_with("session for ") || token.revoked_at.is_some() {
        return;
    }
    let Ok(org) = state.store.org_get(&own, p.org_id.as_str()).await else {
        return;
    };
    if let Err(e) = state
        .store
        .token_revoke(&caller.audit_actor(), &org, &token)
        .await
    {
        tracing::warn!(error = %e, "cannot revoke the console session token");
    }
}
