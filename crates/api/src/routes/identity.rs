//! Users, tokens, login and `whoami`.

use super::{not_found_as, org_in_scope, List, PageParams};
use crate::auth::{remote_addr, Caller};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::{request::Parts, StatusCode};
use axum::Json;
use mimamori_core::{Action, Role};
use mimamori_store::{AuditActor, IssuedToken, NewToken, NewUser, TokenInfo, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Lifetime of a session token issued by login.
pub const SESSION_SECS: u64 = 12 * 3600;

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub token_id: String,
    pub user_id: Option<String>,
    pub role: Role,
    pub org_id: String,
    pub org_slug: String,
    pub org_name: String,
    /// `subtree` when the role sees the org and everything below it,
    /// `org` when it sees the org alone.
    pub scope: String,
}

/// Tells the caller who it is and what it can see.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity",
    responses((status = 200, body = WhoAmI), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WhoAmI>, ApiError> {
    let p = &caller.principal;
    // The caller's own org is always visible to it, whatever the role.
    let org = state
        .store
        .org_get(
            &mimamori_core::Scope::Only(p.org_path.clone()),
            p.org_id.as_str(),
        )
        .await?;
    Ok(Json(WhoAmI {
        token_id: p.token_id.to_string(),
        user_id: p.user_id.as_ref().map(|u| u.to_string()),
        role: p.role,
        org_id: org.id.to_string(),
        org_slug: org.slug,
        org_name: org.name,
        scope: if p.role.sees_subtree() {
            "subtree"
        } else {
            "org"
        }
        .into(),
    }))
}

/// Lists users in the caller's scope.
#[utoipa::path(get, path = "/api/v1/users", tag = "identity",
    params(PageParams),
    responses((status = 200, body = List<User>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<List<User>>, ApiError> {
    caller.require(Action::UserRead)?;
    let page = state
        .store
        .user_list(&caller.principal.scope(), &params.to_request()?)
        .await?;
    Ok(Json(page.into()))
}

/// Shows one user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "identity",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    caller.require(Action::UserRead)?;
    let user = state
        .store
        .user_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("user", &id))?;
    Ok(Json(user))
}

/// Creates a user with a password.
#[utoipa::path(post, path = "/api/v1/users", tag = "identity",
    request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require(Action::UserManage)?;
    let org = org_in_scope(&state, &caller, &new.org_id).await?;
    caller
        .principal
        .can_grant(new.role, &org.path, org.parent_id.is_none())
        .map_err(ApiError::forbidden)?;
    let user = state
        .store
        .user_create(&caller.audit_actor(), &org, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Disables a user and revokes all of their tokens.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "identity",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = User), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn disable_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<User>, ApiError> {
    caller.require(Action::UserManage)?;
    let scope = caller.principal.scope();
    let user = state
        .store
        .user_get(&scope, &id)
        .await
        .map_err(not_found_as("user", &id))?;
    let org = state.store.org_get(&scope, &user.org_id).await?;
    caller
        .principal
        .can_grant(user.role, &org.path, org.parent_id.is_none())
        .map_err(|_| {
            ApiError::forbidden(format!(
                "a {} cannot disable a {}",
                caller.principal.role, user.role
            ))
        })?;
    let user = state
        .store
        .user_disable(&caller.audit_actor(), &org, &user)
        .await?;
    Ok(Json(user))
}

/// Lists API tokens in the caller's scope (metadata only; never secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "identity",
    params(PageParams),
    responses((status = 200, body = List<TokenInfo>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<List<TokenInfo>>, ApiError> {
    caller.require(Action::TokenRead)?;
    let page = state
        .store
        .token_list(&caller.principal.scope(), &params.to_request()?)
        .await?;
    Ok(Json(page.into()))
}

/// Shows one token's metadata.
#[utoipa::path(get, path = "/api/v1/tokens/{id}", tag = "identity",
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TokenInfo), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require(Action::TokenRead)?;
    let token = state
        .store
        .token_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("token", &id))?;
    Ok(Json(token))
}

/// Issues an API token. The secret is in the response and nowhere else.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "identity",
    request_body = NewToken,
    responses((status = 201, body = IssuedToken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    caller.require(Action::TokenManage)?;
    let org = org_in_scope(&state, &caller, &new.org_id).await?;
    caller
        .principal
        .can_grant(new.role, &org.path, org.parent_id.is_none())
        .map_err(ApiError::forbidden)?;
    let issued = state
        .store
        .token_issue(&caller.audit_actor(), &org, None, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Revokes a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "identity",
    params(("id" = String, Path, description = "token id")),
    responses((status = 200, body = TokenInfo), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    caller.require(Action::TokenManage)?;
    let scope = caller.principal.scope();
    let token = state
        .store
        .token_get(&scope, &id)
        .await
        .map_err(not_found_as("token", &id))?;
    let org = state.store.org_get(&scope, &token.org_id).await?;
    caller
        .principal
        .can_grant(token.role, &org.path, org.parent_id.is_none())
        .map_err(|_| {
            ApiError::forbidden(format!(
                "a {} cannot revoke a {} token",
                caller.principal.role, token.role
            ))
        })?;
    let token = state
        .store
        .token_revoke(&caller.audit_actor(), &org, &token)
        .await?;
    Ok(Json(token))
}

/// Credentials for a human login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The slug of the user's org.
    pub org: String,
    pub username: String,
    pub password: String,
}

/// The caller's remote address, for unauthenticated handlers.
pub struct RemoteAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RemoteAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RemoteAddr(remote_addr(parts)))
    }
}

/// Exchanges a user's password for a session token (12 hours).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "identity",
    request_body = LoginRequest,
    responses((status = 201, body = IssuedToken), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(state): State<AppState>,
    RemoteAddr(addr): RemoteAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<(StatusCode, Json<IssuedToken>), ApiError> {
    let ip = addr
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip().to_canonical());
    let throttle = &state.login_throttle;
    if let Err(locked) = throttle.check(&req.org, &req.username, ip) {
        return Err(locked_error(&locked));
    }
    let issued = state
        .store
        .login(
            &AuditActor::anonymous(addr.clone()),
            &req.org,
            &req.username,
            &req.password,
            SESSION_SECS,
        )
        .await?;
    match issued {
        Some(issued) => {
            throttle.succeeded(&req.org, &req.username);
            Ok((StatusCode::CREATED, Json(issued)))
        }
        None => {
            for locked in throttle.failed(&req.org, &req.username, ip) {
                tracing::warn!(org = %req.org, username = %req.username, remote = ?addr, what = locked.what, "login locked after repeated failures");
                state
                    .store
                    .login_locked(
                        &AuditActor::anonymous(addr.clone()),
                        &req.org,
                        &req.username,
                        locked.what,
                        locked.retry_after.as_secs(),
                    )
                    .await?;
            }
            Err(ApiError::unauthorized("invalid org, user name or password"))
        }
    }
}

fn locked_error(locked: &crate::throttle::Locked) -> ApiError {
    let secs = locked.retry_after.as_secs().max(1);
    let what = match locked.what {
        "account" => "this account",
        _ => "your address",
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!("too many failed logins for {what}; try again in {secs} s"),
    )
    .retry_after(secs)
}

/// Revokes the token the call is made with.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "identity",
    responses((status = 204), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, ApiError> {
    let p = &caller.principal;
    let own = mimamori_core::Scope::Only(p.org_path.clone());
    let org = state.store.org_get(&own, p.org_id.as_str()).await?;
    let token = state.store.token_get(&own, p.token_id.as_str()).await?;
    state
        .store
        .token_revoke(&caller.audit_actor(), &org, &token)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
