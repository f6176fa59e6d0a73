//! Health, readiness, metrics and the OpenAPI document. Unauthenticated:
//! they reveal nothing about tenants.

use crate::error::ApiError;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "alive")))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "readiness check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not answering",
        )
    })?;
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&ingest_metrics(&state)),
    )
}

fn ingest_metrics(state: &AppState) -> Vec<(&'static str, &'static str, u64)> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut v = vec![(
        "ingest_rejected_records",
        "Records the HTTP ingest endpoints could not parse",
        state.metrics.ingest_rejected.load(Relaxed),
    )];
    if let Some(i) = &state.ingest {
        let s = i.stats();
        v.extend([
            (
                "ingest_events_acked",
                "Events acknowledged (durable in the WAL)",
                s.events_acked.load(Relaxed),
            ),
            (
                "ingest_batches_acked",
                "Batches acknowledged",
                s.batches_acked.load(Relaxed),
            ),
            (
                "ingest_fsyncs",
                "WAL fsyncs (each commits a group of batches)",
                s.fsyncs.load(Relaxed),
            ),
            (
                "ingest_events_archived",
                "Events written to the Parquet archive",
                s.events_archived.load(Relaxed),
            ),
            (
                "ingest_overloaded",
                "Submissions refused because the queue was full",
                s.overloaded.load(Relaxed),
            ),
            (
                "ingest_raw_rejected",
                "Raw messages (syslog) stored in the WAL that did not parse into an event",
                s.raw_rejected.load(Relaxed),
            ),
            (
                "ingest_queued_events",
                "Events waiting for the WAL",
                i.queued() as u64,
            ),
            (
                "ingest_wal_position",
                "WAL bytes written since the beginning",
                s.wal_position.load(Relaxed),
            ),
            (
                "ingest_archive_checkpoint",
                "WAL position the archive holds",
                s.archive_checkpoint.load(Relaxed),
            ),
            (
                "ingest_wal_damaged_regions",
                "Damaged or missing stretches of the WAL the replay at this start could not recover",
                s.wal_damaged_regions.load(Relaxed),
            ),
            (
                "ingest_wal_damaged_bytes",
                "Bytes of those stretches",
                s.wal_damaged_bytes.load(Relaxed),
            ),
            (
                "ingest_wal_lost_records",
                "WAL records (acknowledged batches) in those stretches",
                s.wal_lost_records.load(Relaxed),
            ),
            (
                "ingest_wal_lost_events",
                "Acknowledged events in those stretches: lost",
                s.wal_lost_events.load(Relaxed),
            ),
            (
                "ingest_events_consumed",
                "Events handed to consumers such as detection (summed over consumers)",
                s.events_consumed.load(Relaxed),
            ),
        ]);
    }
    if let Some(d) = &state.detection {
        v.extend([
            (
                "detection_events_evaluated",
                "Events run through the detection engines",
                d.events_evaluated.load(Relaxed),
            ),
            (
                "detection_findings",
                "Rule and indicator matches",
                d.findings.load(Relaxed),
            ),
            (
                "detection_alerts_opened",
                "Alerts opened",
                d.alerts_opened.load(Relaxed),
            ),
            (
                "detection_alerts_grouped",
                "Detections folded into an open alert",
                d.alerts_grouped.load(Relaxed),
            ),
            (
                "detection_suppressed",
                "Detections dropped by a suppression",
                d.suppressed.load(Relaxed),
            ),
            (
                "detection_campaigns_formed",
                "Campaigns formed across orgs",
                d.campaigns_formed.load(Relaxed),
            ),
            (
                "detection_store_retries",
                "Retries of alert writes after database errors",
                d.store_retries.load(Relaxed),
            ),
        ]);
    }
    for source in &state.extra_metrics {
        v.extend(source());
    }
    if let Some(h) = &state.intel {
        v.push((
            "intel_matcher_indicators",
            "Distinct indicator values in the detection matcher",
            h.matcher.view().len() as u64,
        ));
    }
    v
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system", responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}
