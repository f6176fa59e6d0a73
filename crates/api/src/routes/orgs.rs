//! `/api/v1/orgs`: the org tree.

use super::{not_found_as, org_in_scope, List, PageParams};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mimamori_core::{Action, NewOrg, Org, OrgKind, OrgPatch, Validated};
use mimamori_store::OrgFilter;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrgListParams {
    /// Only the direct children of this org id.
    pub parent: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Lists the orgs the caller can see.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs",
    params(OrgListParams),
    responses((status = 200, body = List<Org>), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<OrgListParams>,
) -> Result<Json<List<Org>>, ApiError> {
    caller.require(Action::OrgRead)?;
    let scope = caller.principal.scope();
    let page = PageParams {
        cursor: params.cursor,
        limit: params.limit,
    }
    .to_request()?;
    let mut filter = OrgFilter::default();
    if let Some(parent) = &params.parent {
        let p = state
            .store
            .org_get(&scope, parent)
            .await
            .map_err(not_found_as("org", parent))?;
        filter.parent_id = Some(p.id);
    }
    let page = state.store.org_list(&scope, &filter, &page).await?;
    Ok(Json(page.into()))
}

/// Shows one org.
#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "orgs",
    params(("id" = String, Path, description = "org id")),
    responses((status = 200, body = Org), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Org>, ApiError> {
    caller.require(Action::OrgRead)?;
    let org = org_in_scope(&state, &caller, &id).await?;
    Ok(Json(org))
}

/// Creates an org under a parent in the caller's scope.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs",
    request_body = NewOrg,
    responses((status = 201, body = Org), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewOrg>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    caller.require(Action::OrgCreate)?;
    let parent_id = new.parent_id.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "parent_id",
            "is required: every org but the root has a parent",
        )
    })?;
    let parent = org_in_scope(&state, &caller, parent_id.as_str()).await?;
    let (slug, profile) = new
        .validate()
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let kind = new.kind.unwrap_or(OrgKind::Member);
    let org = state
        .store
        .org_create(&caller.audit_actor(), &parent, &slug, kind, &profile)
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// Updates an org's profile (name, sector, contacts, networks, domains).
#[utoipa::path(patch, path = "/api/v1/orgs/{id}", tag = "orgs",
    params(("id" = String, Path, description = "org id")),
    request_body = OrgPatch,
    responses((status = 200, body = Org), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<OrgPatch>,
) -> Result<Json<Org>, ApiError> {
    caller.require(Action::OrgUpdate)?;
    if patch.networks.is_some() && caller.principal.role != mimamori_core::Role::SocAdmin {
        // Declared networks decide which org syslog and DNS traffic is
        // attributed to: an org must not be able to claim another's range.
        return Err(ApiError::forbidden(
            "only a soc-admin may change an org's declared networks (they decide which org telemetry is attributed to)",
        ));
    }
    let org = org_in_scope(&state, &caller, &id).await?;
    let profile = patch
        .apply_to(&org)
        .map_err(|e| ApiError::invalid(e.field, e.reason))?;
    let org = state
        .store
        .org_update(&caller.audit_actor(), &org, &profile)
        .await?;
    Ok(Json(org))
}

/// Deletes a leaf org with its users and tokens.
#[utoipa::path(delete, path = "/api/v1/orgs/{id}", tag = "orgs",
    params(("id" = String, Path, description = "org id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::OrgDelete)?;
    let org = org_in_scope(&state, &caller, &id).await?;
    state.store.org_delete(&caller.audit_actor(), &org).await?;
    Ok(StatusCode::NO_CONTENT)
}
