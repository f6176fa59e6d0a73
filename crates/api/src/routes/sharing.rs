//! `/api/v1/intel/groups`: sharing groups (named sets of orgs an AMBER
//! indicator or report can be shared with).
//!
//! Reading: groups owned by an org in the caller's scope, and groups the
//! caller's org is a member of. Changing: `SharingManage` (soc-admin,
//! org-admin) on groups whose owner is in the caller's scope. Every change
//! is audited by the store in its transaction.

use super::{not_found_as, org_in_scope, List};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mimamori_core::Action;
use mimamori_store::{NewSharingGroup, SharingGroup, SharingGroupPatch};

/// Sharing groups the caller sees.
#[utoipa::path(get, path = "/api/v1/intel/groups", tag = "intel",
    responses((status = 200, body = List<SharingGroup>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<SharingGroup>>, ApiError> {
    caller.require(Action::IntelRead)?;
    let items = state
        .store
        .group_list(&caller.principal.scope(), caller.principal.org_id.as_str())
        .await?;
    Ok(Json(items.into()))
}

/// Creates a sharing group owned by an org in the caller's scope.
#[utoipa::path(post, path = "/api/v1/intel/groups", tag = "intel",
    request_body = NewSharingGroup,
    responses((status = 201, body = SharingGroup), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewSharingGroup>,
) -> Result<(StatusCode, Json<SharingGroup>), ApiError> {
    caller.require(Action::SharingManage)?;
    let owner = org_in_scope(&state, &caller, &new.org_id).await?;
    let g = state
        .store
        .group_create(&caller.audit_actor(), &owner, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// One sharing group with its members.
#[utoipa::path(get, path = "/api/v1/intel/groups/{id}", tag = "intel",
    params(("id" = String, Path, description = "sharing group id")),
    responses((status = 200, body = SharingGroup), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SharingGroup>, ApiError> {
    caller.require(Action::IntelRead)?;
    let g = state
        .store
        .group_get(
            &caller.principal.scope(),
            caller.principal.org_id.as_str(),
            &id,
        )
        .await
        .map_err(not_found_as("sharing group", &id))?;
    Ok(Json(g))
}

/// Adds and removes members (org ids), renames.
#[utoipa::path(patch, path = "/api/v1/intel/groups/{id}", tag = "intel",
    params(("id" = String, Path, description = "sharing group id")),
    request_body = SharingGroupPatch,
    responses((status = 200, body = SharingGroup), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<SharingGroupPatch>,
) -> Result<Json<SharingGroup>, ApiError> {
    caller.require(Action::SharingManage)?;
    let (g, owner) = state
        .store
        .group_get_managed(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("sharing group", &id))?;
    let g = state
        .store
        .group_update(&caller.audit_actor(), &owner, &g, &patch)
        .await?;
    reload(&state).await;
    Ok(Json(g))
}

/// Deletes a sharing group: what was shared with it is no longer visible
/// to its members.
#[utoipa::path(delete, path = "/api/v1/intel/groups/{id}", tag = "intel",
    params(("id" = String, Path, description = "sharing group id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::SharingManage)?;
    let (g, owner) = state
        .store
        .group_get_managed(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("sharing group", &id))?;
    state
        .store
        .group_delete(&caller.audit_actor(), &owner, &g)
        .await?;
    reload(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Membership decides what detection and Protective DNS apply to an org:
/// reload now rather than at the watcher's next poll.
async fn reload(state: &AppState) {
    if let Some(hub) = state.intel.as_deref() {
        if let Err(e) = hub.matcher.reload_if_changed(&hub.store).await {
            tracing::warn!(error = %e, "cannot reload the matcher after a sharing group change; the watcher will retry");
        }
    }
}
