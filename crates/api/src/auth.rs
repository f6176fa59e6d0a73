//! Authentication (bearer tokens) and the authorization helpers every
//! handler uses. A handler never touches tenant data without a [`Caller`].

use crate::error::ApiError;
use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{header, request::Parts};
use mimamori_core::{Action, Principal};
use mimamori_store::AuditActor;
use std::net::SocketAddr;

/// An authenticated caller, with the address it called from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub remote_addr: Option<String>,
}

impl Caller {
    /// Refuses with 403 unless the caller's role allows `action`. Role
    /// refusals come before any lookup, so a 403 never depends on whether
    /// a target exists.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.principal.can(action) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "role {} may not do this ({action:?})",
                self.principal.role
            )))
        }
    }

    pub fn audit_actor(&self) -> AuditActor {
        AuditActor::principal(&self.principal, self.remote_addr.clone())
    }
}

pub(crate) fn remote_addr(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.to_string())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing Authorization header; send 'Authorization: Bearer <token>'",
                )
            })?
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not ASCII"))?;
        let token = bearer_secret(header).ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be 'Bearer <token>' (log shippers may also use 'Splunk <token>', 'ApiKey <token>' or Basic with the token as password)")
        })?;
        let token = token.as_str();
        let principal = state.store.authenticate(token).await?;
        Ok(Caller {
            principal,
            remote_addr: remote_addr(parts),
        })
    }
}

/// The token secret from an Authorization header value. Besides `Bearer`,
/// the schemes log shippers use are accepted so they work unchanged:
/// `Splunk <token>` (HEC), `ApiKey <token>` and `Basic` with the token as
/// the password (Elasticsearch clients).
pub fn bearer_secret(header: &str) -> Option<String> {
    let (scheme, rest) = header.split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "splunk" | "apikey" => Some(rest.to_string()),
        "basic" => {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let s = String::from_utf8(raw).ok()?;
            s.split_once(':').map(|(_, pw)| pw.to_string())
        }
        _ => None,
    }
}
