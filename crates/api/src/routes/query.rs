//! `POST /api/v1/query`: SQL over the archived telemetry of the caller's
//! orgs (its own, or its sub-tree), with time, memory and row limits.

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mimamori_core::Action;
use mimamori_query::QueryError;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// A query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// One SQL `SELECT` over the table `events` (columns: id, org_id, time
    /// (Unix ms), received, class, source, src_ip, src_port, dst_ip,
    /// dst_port, hostname, user, dns_query, url, http_host, process_name,
    /// process_cmdline, api_operation, fields (JSON), raw (JSON)).
    pub sql: String,
    /// Most rows to return (1 to 10000, default 1000).
    #[serde(default)]
    pub max_rows: Option<usize>,
    /// Deadline in seconds (1 to 60, default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// A query's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryResponse {
    pub columns: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// More rows matched than were returned.
    pub truncated: bool,
    pub elapsed_ms: u64,
    /// How many orgs' telemetry the query could see.
    pub orgs_in_scope: usize,
}

/// Runs SQL over the archived events of the orgs in the caller's scope.
#[utoipa::path(post, path = "/api/v1/query", tag = "events",
    request_body = QueryRequest,
    responses((status = 200, body = QueryResponse), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem), (status = 504, body = Problem)),
    security(("bearer" = [])))]
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<QueryResponse>, ApiError> {
    caller.require(Action::EventRead)?;
    let Some(ingest) = &state.ingest else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server keeps no event archive (ingestion is off)",
        ));
    };
    let max_rows = req.max_rows.unwrap_or(1000);
    if !(1..=10_000).contains(&max_rows) {
        return Err(ApiError::invalid(
            "max_rows",
            format!("must be between 1 and 10000, got {max_rows}"),
        ));
    }
    let timeout = req.timeout_secs.unwrap_or(30);
    if !(1..=60).contains(&timeout) {
        return Err(ApiError::invalid(
            "timeout_secs",
            format!("must be between 1 and 60, got {timeout}"),
        ));
    }
    if req.sql.len() > 100_000 {
        return Err(ApiError::invalid("sql", "is longer than 100000 bytes"));
    }
    let orgs: Vec<String> = state
        .store
        .org_all(&caller.principal.scope())
        .await?
        .into_iter()
        .map(|o| o.id.to_string())
        .collect();
    let limits = state
        .query
        .config()
        .limits(Duration::from_secs(timeout), max_rows);
    let tenant = caller.principal.org_id.to_string();
    let result = state
        .query
        .run(&tenant, ingest.archive().dir(), &orgs, &req.sql, &limits)
        .await
        .map_err(|e| match e {
            QueryError::Invalid(m) => ApiError::invalid("sql", m),
            QueryError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            QueryError::ResourcesExhausted(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
            }
            QueryError::Busy {
                detail,
                retry_after_secs,
            } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail).retry_after(retry_after_secs),
            QueryError::Engine(m) => {
                tracing::error!(error = %m, "query failed");
                ApiError::internal()
            }
        })?;
    Ok(Json(QueryResponse {
        columns: result.columns,
        rows: result.rows,
        truncated: result.truncated,
        elapsed_ms: result.elapsed_ms,
        orgs_in_scope: orgs.len(),
    }))
}
