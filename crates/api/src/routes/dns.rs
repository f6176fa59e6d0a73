//! `/api/v1/dns/policy`: each org's Protective DNS allow and block lists.
//! Org admins manage their own org's, supervisors their sub-tree's, the
//! central SOC everyone's; analysts read them in their scope. The running
//! resolver applies a change within a second.

use super::{not_found_as, org_in_scope, List, PageParams};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mimamori_core::Action;
use mimamori_store::{DnsPolicyEntry, NewDnsPolicyEntry};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Filter and pagination of the listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DnsPolicyParams {
    /// Only this org's entries (its own list, not what it inherits).
    pub org_id: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page length, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Lists the allow and block entries of the orgs in the caller's scope,
/// oldest first.
#[utoipa::path(get, path = "/api/v1/dns/policy", tag = "dns",
    params(DnsPolicyParams),
    responses((status = 200, body = List<DnsPolicyEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<DnsPolicyParams>,
) -> Result<Json<List<DnsPolicyEntry>>, ApiError> {
    caller.require(Action::DnsPolicyRead)?;
    let page = PageParams {
        cursor: params.cursor.clone(),
        limit: params.limit,
    }
    .to_request()?;
    let page = state
        .store
        .dns_policy_list(&caller.principal.scope(), params.org_id.as_deref(), &page)
        .await?;
    Ok(Json(page.into()))
}

/// Adds a domain (and its sub-domains) to an org's allow or block list.
#[utoipa::path(post, path = "/api/v1/dns/policy", tag = "dns",
    request_body = NewDnsPolicyEntry,
    responses((status = 201, body = DnsPolicyEntry), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewDnsPolicyEntry>,
) -> Result<(StatusCode, Json<DnsPolicyEntry>), ApiError> {
    caller.require(Action::DnsPolicyManage)?;
    let org = org_in_scope(&state, &caller, &new.org_id).await?;
    let e = state
        .store
        .dns_policy_add(&caller.audit_actor(), &org, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// One entry.
#[utoipa::path(get, path = "/api/v1/dns/policy/{id}", tag = "dns",
    params(("id" = String, Path, description = "entry id")),
    responses((status = 200, body = DnsPolicyEntry), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DnsPolicyEntry>, ApiError> {
    caller.require(Action::DnsPolicyRead)?;
    let e = state
        .store
        .dns_policy_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("DNS policy entry", &id))?;
    Ok(Json(e))
}

/// Removes an entry.
#[utoipa::path(delete, path = "/api/v1/dns/policy/{id}", tag = "dns",
    params(("id" = String, Path, description = "entry id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::DnsPolicyManage)?;
    let scope = caller.principal.scope();
    let e = state
        .store
        .dns_policy_get(&scope, &id)
        .await
        .map_err(not_found_as("DNS policy entry", &id))?;
    let org = state
        .store
        .org_get(&scope, &e.org_id)
        .await
        .map_err(not_found_as("DNS policy entry", &id))?;
    state
        .store
        .dns_policy_remove(&caller.audit_actor(), &org, &e)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One policy file read again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ZoneReload {
    /// The file.
    pub file: String,
    /// The zone's name (an RPZ zone's apex, else the file).
    pub zone: String,
    /// `reloaded`, `unchanged` (it changed while being read: the next
    /// check reads it) or `failed` (the zone in force was kept).
    pub status: String,
    /// Name triggers of the new zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub names: Option<u64>,
    /// Wildcard (`*.`) triggers of the new zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wildcards: Option<u64>,
    /// Why it failed: the file and line, and what is wrong there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a reload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneReloadReport {
    pub files: Vec<ZoneReload>,
}

/// Makes the Protective DNS resolver read its policy files (RPZ zones,
/// block and allow lists) again now, as on SIGHUP. Each file that parses
/// replaces its zone; the new policy is built aside and swapped in whole
/// within a second. A file that does not parse keeps the zone in force and
/// fails the call (422, naming the file and line). Central SOC
/// administrators only; audited.
#[utoipa::path(post, path = "/api/v1/dns/rpz/reload", tag = "dns",
    responses((status = 200, body = ZoneReloadReport), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem, description = "no resolver runs in this server"),
        (status = 422, body = Problem, description = "a file did not parse; its zone in force was kept")),
    security(("bearer" = [])))]
pub async fn rpz_reload(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ZoneReloadReport>, ApiError> {
    caller.require(Action::DnsZoneReload)?;
    let Some(reload) = state.dns_reload.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no Protective DNS resolver runs in this server ([pdns] listen is not set)",
        ));
    };
    let files = reload().await;
    let p = &caller.principal;
    state
        .store
        .audit_standalone(
            &caller.audit_actor(),
            p.org_id.as_str(),
            &p.org_path,
            "dns.rpz.reload",
            serde_json::json!({ "files": files }),
        )
        .await?;
    let failed: Vec<&str> = files.iter().filter_map(|f| f.error.as_deref()).collect();
    if !failed.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            failed.join("; "),
        ));
    }
    Ok(Json(ZoneReloadReport { files }))
}
