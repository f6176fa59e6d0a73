//! `/api/v1/audit`: the audit log, for admins, scoped like everything else.

use super::{List, PageParams};
use crate::auth::Caller;
use crate::error::{ApiError, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::Json;
use mimamori_core::Action;
use mimamori_store::AuditEntry;

/// Lists audit records about orgs in the caller's scope, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(PageParams),
    responses((status = 200, body = List<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<PageParams>,
) -> Result<Json<List<AuditEntry>>, ApiError> {
    caller.require(Action::AuditRead)?;
    let page = state
        .store
        .audit_list(&caller.principal.scope(), &params.to_request()?)
        .await?;
    Ok(Json(page.into()))
}
