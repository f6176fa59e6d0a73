//! `/api/v1/alerts`, `/api/v1/campaigns`, `/api/v1/suppressions`: what
//! detection found, scoped to the caller's orgs, and the analysts' workflow
//! on it.

use super::{not_found_as, List, PageParams};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mimamori_core::Action;
use mimamori_store::{
    Alert, AlertChange, AlertComment, AlertFilter, AlertKind, AlertStatus, AlertSummary,
    AuditEntry, Campaign, Severity, Suppression,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Filters and pagination of the alert listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    /// `new`, `acknowledged`, `investigating`, `resolved` or `false_positive`.
    pub status: Option<String>,
    /// `indicator`, `sigma` or `correlation`.
    pub kind: Option<String>,
    pub campaign_id: Option<String>,
    pub org_id: Option<String>,
    /// `informational`, `low`, `medium`, `high` or `critical`.
    pub severity: Option<String>,
    /// `true`: only alerts still open (new, acknowledged, investigating).
    pub open: Option<bool>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page length, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

/// Lists the alerts of the caller's orgs, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(AlertParams),
    responses((status = 200, body = List<Alert>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<AlertParams>,
) -> Result<Json<List<Alert>>, ApiError> {
    caller.require(Action::AlertRead)?;
    let status = match &params.status {
        None => None,
        Some(s) => Some(AlertStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status {s:?} is not one of new, acknowledged, investigating, resolved, false_positive"
            ))
        })?),
    };
    let kind = match &params.kind {
        None => None,
        Some(k) => Some(AlertKind::parse(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "kind {k:?} is not one of indicator, sigma, correlation, system"
            ))
        })?),
    };
    let severity = match &params.severity {
        None => None,
        Some(s) => Some(Severity::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity {s:?} is not one of informational, low, medium, high, critical"
            ))
        })?),
    };
    let page = PageParams {
        cursor: params.cursor.clone(),
        limit: params.limit,
    }
    .to_request()?;
    let filter = AlertFilter {
        status,
        kind,
        campaign_id: params.campaign_id.clone(),
        org_id: params.org_id.clone(),
        severity,
        open: params.open.unwrap_or(false),
    };
    let page = state
        .store
        .alert_list(&caller.principal.scope(), &filter, &page)
        .await?;
    Ok(Json(page.into()))
}

/// An alert with its comments.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: Alert,
    pub comments: Vec<AlertComment>,
    /// The workflow's audit entries for this alert (status and assignee
    /// changes, suppressions), oldest first; up to 200.
    pub history: Vec<AuditEntry>,
}

/// One alert with its comments.
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = String, Path, description = "alert id")),
    responses((status = 200, body = AlertDetail), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    caller.require(Action::AlertRead)?;
    let alert = state
        .store
        .alert_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("alert", &id))?;
    let comments = state.store.alert_comments(&alert).await?;
    let history = state
        .store
        .audit_for_target(&caller.principal.scope(), "alert", &alert.id, 200)
        .await?;
    Ok(Json(AlertDetail {
        alert,
        comments,
        history,
    }))
}

/// A change to an alert. `suppress_hours` (with status `false_positive`)
/// also silences the alert's rule for its entity in its org.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertPatch {
    pub status: Option<AlertStatus>,
    /// A name, or `null` to clear.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    /// With `status: false_positive`: suppress the rule for this entity for
    /// this many hours (1 to 8760).
    pub suppress_hours: Option<u32>,
    /// Why (kept with the suppression and the audit record).
    pub reason: Option<String>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Moves an alert through the workflow (new → acknowledged → investigating
/// → resolved / false_positive), assigns it, optionally suppresses.
#[utoipa::path(patch, path = "/api/v1/alerts/{id}", tag = "alerts",
    params(("id" = String, Path, description = "alert id")),
    request_body = AlertPatch,
    responses((status = 200, body = Alert), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(patch): ApiJson<AlertPatch>,
) -> Result<Json<Alert>, ApiError> {
    caller.require(Action::AlertTriage)?;
    if let Some(h) = patch.suppress_hours {
        if patch.status != Some(AlertStatus::FalsePositive) {
            return Err(ApiError::invalid(
                "suppress_hours",
                "only with status false_positive",
            ));
        }
        if !(1..=8760).contains(&h) {
            return Err(ApiError::invalid(
                "suppress_hours",
                format!("must be 1 to 8760, got {h}"),
            ));
        }
    }
    if patch.status.is_none() && patch.assignee.is_none() {
        return Err(ApiError::invalid("status", "nothing to change"));
    }
    let alert = state
        .store
        .alert_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("alert", &id))?;
    let actor = caller.audit_actor();
    let updated = state
        .store
        .alert_update(
            &actor,
            &alert,
            &AlertChange {
                status: patch.status,
                assignee: patch.assignee.clone(),
                verdicts: state.verdicts,
            },
        )
        .await?;
    if let Some(h) = patch.suppress_hours {
        let until = mimamori_core::now_millis() + i64::from(h) * 3_600_000;
        state
            .store
            .suppression_add(
                &actor,
                &updated,
                &updated.entity,
                until,
                patch.reason.as_deref().unwrap_or("false positive"),
            )
            .await?;
    }
    Ok(Json(updated))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub body: String,
}

/// Adds a comment to an alert.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/comments", tag = "alerts",
    params(("id" = String, Path, description = "alert id")),
    request_body = NewComment,
    responses((status = 201, body = AlertComment), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn comment(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(new): ApiJson<NewComment>,
) -> Result<(StatusCode, Json<AlertComment>), ApiError> {
    caller.require(Action::AlertTriage)?;
    let alert = state
        .store
        .alert_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("alert", &id))?;
    let c = state
        .store
        .alert_comment_add(&caller.audit_actor(), &alert, &new.body)
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Campaigns (the same activity at several orgs) with at least one alert
/// in the caller's scope; each lists only the caller's orgs.
/// Window and resolution of the alert summary.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    /// The timeline covers the last this many hours, 1 to 720 (default 24).
    pub hours: Option<u32>,
    /// Minutes per timeline bucket, 1 to 1440 (default 60).
    pub bucket_minutes: Option<u32>,
}

/// Alert counts over the caller's orgs: per org, status and severity, and
/// first sightings over time by severity (the console's overview).
#[utoipa::path(get, path = "/api/v1/alerts/summary", tag = "alerts",
    params(SummaryParams),
    responses((status = 200, body = AlertSummary), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<SummaryParams>,
) -> Result<Json<AlertSummary>, ApiError> {
    caller.require(Action::AlertRead)?;
    let hours = params.hours.unwrap_or(24);
    if !(1..=720).contains(&hours) {
        return Err(ApiError::invalid(
            "hours",
            format!("must be 1 to 720, got {hours}"),
        ));
    }
    let bucket = params.bucket_minutes.unwrap_or(60);
    if !(1..=1440).contains(&bucket) {
        return Err(ApiError::invalid(
            "bucket_minutes",
            format!("must be 1 to 1440, got {bucket}"),
        ));
    }
    let bucket_ms = i64::from(bucket) * 60_000;
    let now = mimamori_core::now_millis();
    // Whole buckets, so the first one is not cut short.
    let since = (now - i64::from(hours) * 3_600_000).div_euclid(bucket_ms) * bucket_ms;
    let summary = state
        .store
        .alert_summary(&caller.principal.scope(), since, bucket_ms)
        .await?;
    Ok(Json(summary))
}

#[utoipa::path(get, path = "/api/v1/campaigns", tag = "alerts",
    responses((status = 200, body = List<Campaign>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn campaigns(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<Campaign>>, ApiError> {
    caller.require(Action::AlertRead)?;
    let items = state.store.campaign_list(&caller.principal.scope()).await?;
    Ok(Json(items.into()))
}

/// One campaign, as the caller's scope sees it.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "alerts",
    params(("id" = String, Path, description = "campaign id")),
    responses((status = 200, body = Campaign), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn campaign(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Campaign>, ApiError> {
    caller.require(Action::AlertRead)?;
    let c = state
        .store
        .campaign_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("campaign", &id))?;
    Ok(Json(c))
}

/// Active suppressions in the caller's scope.
#[utoipa::path(get, path = "/api/v1/suppressions", tag = "alerts",
    responses((status = 200, body = List<Suppression>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn suppressions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<Suppression>>, ApiError> {
    caller.require(Action::AlertRead)?;
    let items = state
        .store
        .suppression_list(&caller.principal.scope())
        .await?;
    Ok(Json(items.into()))
}
