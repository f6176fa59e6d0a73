//! `/api/v1/notify/channels`: where an org's alerts are delivered (webhook,
//! syslog/CEF, e-mail). Admins manage their own org's channels.

use super::{not_found_as, org_in_scope, List};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mimamori_core::Action;
use mimamori_store::{NewChannel, NotifyChannel};

/// Channels of the orgs in the caller's scope.
#[utoipa::path(get, path = "/api/v1/notify/channels", tag = "notify",
    responses((status = 200, body = List<NotifyChannel>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<NotifyChannel>>, ApiError> {
    caller.require(Action::NotifyManage)?;
    let items = state.store.channel_list(&caller.principal.scope()).await?;
    Ok(Json(items.into()))
}

/// Adds a channel to an org in the caller's scope.
#[utoipa::path(post, path = "/api/v1/notify/channels", tag = "notify",
    request_body = NewChannel,
    responses((status = 201, body = NotifyChannel), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewChannel>,
) -> Result<(StatusCode, Json<NotifyChannel>), ApiError> {
    caller.require(Action::NotifyManage)?;
    let org = org_in_scope(&state, &caller, &new.org_id).await?;
    let c = state
        .store
        .channel_create(&caller.audit_actor(), &org, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/notify/channels/{id}", tag = "notify",
    params(("id" = String, Path, description = "channel id")),
    responses((status = 200, body = NotifyChannel), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<NotifyChannel>, ApiError> {
    caller.require(Action::NotifyManage)?;
    let c = state
        .store
        .channel_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("channel", &id))?;
    Ok(Json(c))
}

/// Deletes a channel (deliveries still owed to it are dropped).
#[utoipa::path(delete, path = "/api/v1/notify/channels/{id}", tag = "notify",
    params(("id" = String, Path, description = "channel id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::NotifyManage)?;
    let c = state
        .store
        .channel_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("channel", &id))?;
    state
        .store
        .channel_delete(&caller.audit_actor(), &c)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a test message to a channel (delivered within seconds).
#[utoipa::path(post, path = "/api/v1/notify/channels/{id}/test", tag = "notify",
    params(("id" = String, Path, description = "channel id")),
    responses((status = 202), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::NotifyManage)?;
    let c = state
        .store
        .channel_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("channel", &id))?;
    state.store.channel_test(&c).await?;
    Ok(StatusCode::ACCEPTED)
}
