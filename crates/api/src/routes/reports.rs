//! `/api/v1/intel/reports`: the report library. A threat report (PDF,
//! HTML or text) is uploaded with its title, TLP and source; its text is
//! kept per page (searchable) with the document, and the indicators it
//! mentions (defanged ones too) become proposals an analyst accepts (the
//! indicator is created, owned by the report's org, with the report as its
//! source and the report's TLP and sharing) or rejects.
//!
//! Reading is by the caller's org and TLP, as for indicators; uploading and
//! deciding need `IntelWrite` on the report's owner (an org in scope).

use super::intel::parse_list;
use super::{not_found_as, org_in_scope, List, PageParams};
use crate::auth::Caller;
use crate::error::{ApiBytes, ApiError, ApiPath, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mimamori_core::Action;
use mimamori_intel::{read_report, Indicator, PdfLimits, Tlp};
use mimamori_store::{NewReport, Proposal, Report, ReportHit, ReportPage, Sharing};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    pub title: String,
    /// Where the report comes from (a vendor, a CERT, a URL).
    pub source: String,
    /// `clear`, `green`, `amber`, `amber+strict` or `red` (default amber).
    pub tlp: Option<String>,
    /// `pdf`, `html` or `text`; default: detected from the content.
    pub format: Option<String>,
    /// The owning org (default: the caller's); must be in the caller's scope.
    pub org_id: Option<String>,
    /// Comma-separated org ids an AMBER report is shared with.
    pub share_with: Option<String>,
    /// Comma-separated sharing group ids an AMBER report is shared with.
    pub share_groups: Option<String>,
}

/// A report with its pages and proposals.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportDetail {
    #[serde(flatten)]
    pub report: Report,
    pub pages: Vec<ReportPage>,
    pub proposals: Vec<Proposal>,
}

/// Uploads a report: its text is read per page, the indicators it
/// mentions are proposed. A document that cannot be read is refused and
/// nothing is stored.
#[utoipa::path(post, path = "/api/v1/intel/reports", tag = "intel",
    params(UploadParams),
    request_body(content = String, description = "the document (PDF, HTML or text)", content_type = "application/octet-stream"),
    responses((status = 201, body = ReportDetail), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<UploadParams>,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<ReportDetail>), ApiError> {
    caller.require(Action::IntelWrite)?;
    let owner_id = p
        .org_id
        .clone()
        .unwrap_or_else(|| caller.principal.org_id.to_string());
    let owner = org_in_scope(&state, &caller, &owner_id).await?;
    let tlp = match &p.tlp {
        None => Tlp::Amber,
        Some(t) => Tlp::parse_label(t).ok_or_else(|| {
            ApiError::invalid(
                "tlp",
                format!("{t:?} is not clear, green, amber, amber+strict or red"),
            )
        })?,
    };
    let sharing = Sharing {
        orgs: parse_list(p.share_with.as_deref()),
        groups: parse_list(p.share_groups.as_deref()),
    };
    let format = p.format.clone();
    // PDF parsing is CPU work on untrusted input: off the async threads.
    let bytes = body.to_vec();
    let (bytes, read) = tokio::task::spawn_blocking(move || {
        let r = read_report(&bytes, format.as_deref(), &PdfLimits::default());
        (bytes, r)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let (format, report) = read.map_err(|e| match e {
        mimamori_intel::ReportError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
        }
        other => ApiError::invalid("body", other.to_string()),
    })?;
    let new = NewReport {
        title: p.title.clone(),
        source: p.source.clone(),
        tlp,
        format: format.to_string(),
        document: bytes,
        pages: report.pages,
        proposals: report.proposals,
    };
    let r = state
        .store
        .report_create(&caller.audit_actor(), &owner, &new, &sharing)
        .await?;
    Ok((StatusCode::CREATED, Json(detail(&state, r).await?)))
}

async fn detail(state: &AppState, report: Report) -> Result<ReportDetail, ApiError> {
    let pages = state.store.report_pages(&report).await?;
    let proposals = state.store.report_proposals(&report).await?;
    Ok(ReportDetail {
        report,
        pages,
        proposals,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Search the pages' text (case-insensitive): the answer lists the
    /// matching pages (`ReportHit`s) instead of the reports.
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Reports visible to the caller's org, newest first; with `q`, the pages
/// of those reports that contain `q`, each with a snippet.
#[utoipa::path(get, path = "/api/v1/intel/reports", tag = "intel",
    params(ReportParams),
    responses((status = 200, description = "without q: a List of Report; with q: {\"items\": [ReportHit]} (at most 200)", body = List<Report>),
        (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    caller.require(Action::IntelRead)?;
    let viewer = caller.principal.org_id.as_str();
    if let Some(q) = &p.q {
        let q = q.trim();
        if q.chars().count() < 2 || q.chars().count() > 200 {
            return Err(ApiError::invalid("q", "must be 2 to 200 characters"));
        }
        let hits: Vec<ReportHit> = state.store.report_search(viewer, q).await?;
        return Ok(Json(List::from(hits)).into_response());
    }
    let page = PageParams {
        cursor: p.cursor.clone(),
        limit: p.limit,
    }
    .to_request()?;
    let page = state.store.report_list(viewer, &page).await?;
    Ok(Json(List::from(page)).into_response())
}

/// One report with its pages and proposals, if visible to the caller's org.
#[utoipa::path(get, path = "/api/v1/intel/reports/{id}", tag = "intel",
    params(("id" = String, Path, description = "report id")),
    responses((status = 200, body = ReportDetail), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReportDetail>, ApiError> {
    caller.require(Action::IntelRead)?;
    let r = state
        .store
        .report_get(caller.principal.org_id.as_str(), &id)
        .await
        .map_err(not_found_as("report", &id))?;
    Ok(Json(detail(&state, r).await?))
}

/// The uploaded document, as it was uploaded.
#[utoipa::path(get, path = "/api/v1/intel/reports/{id}/document", tag = "intel",
    params(("id" = String, Path, description = "report id")),
    responses((status = 200, description = "the document (application/pdf, text/html or text/plain)"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn document(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    caller.require(Action::IntelRead)?;
    let r = state
        .store
        .report_get(caller.principal.org_id.as_str(), &id)
        .await
        .map_err(not_found_as("report", &id))?;
    let bytes = state.store.report_document(&r).await?;
    let ct = match r.format.as_str() {
        "pdf" => "application/pdf",
        "html" => "text/html; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    Ok(([(header::CONTENT_TYPE, ct)], bytes).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// Confidence 0–100 of the indicator (default 50).
    pub confidence: Option<u8>,
    /// Tags for the indicator.
    #[serde(default)]
    pub tags: Vec<String>,
    /// For a domain: whether it also covers its sub-domains (default
    /// true).
    pub subdomains: Option<bool>,
}

/// What a decision did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decision {
    pub proposal: Proposal,
    /// The retro-hunt started for the new indicator.
    pub retro_hunt_id: Option<String>,
}

/// Finds the report through the caller's scope (deciding is acting for
/// the owner, like an import) and the proposal in it.
async fn decide(
    state: &AppState,
    caller: &Caller,
    id: &str,
    proposal_id: &str,
    accept: Option<AcceptBody>,
) -> Result<Decision, ApiError> {
    caller.require(Action::IntelWrite)?;
    let scope = caller.principal.scope();
    let report = state
        .store
        .report_get_scoped(&scope, id)
        .await
        .map_err(not_found_as("report", id))?;
    let owner = state
        .store
        .org_get(&scope, &report.owner_org_id)
        .await
        .map_err(not_found_as("report", id))?;
    let indicator = match accept {
        None => None,
        Some(body) => {
            let proposal = state
                .store
                .report_proposals(&report)
                .await?
                .into_iter()
                .find(|p| p.id == proposal_id)
                .ok_or_else(|| ApiError::not_found("proposal", proposal_id))?;
            let confidence = body.confidence.unwrap_or(50);
            if confidence > 100 {
                return Err(ApiError::invalid("confidence", "must be 0 to 100"));
            }
            let mut ind = Indicator::new(
                proposal.kind,
                proposal.value.clone(),
                time::OffsetDateTime::now_utc(),
            );
            ind.tlp = Tlp::parse_label(&report.tlp).unwrap_or(Tlp::Amber);
            ind.confidence = confidence;
            ind.sources = vec![report.source.clone(), format!("report:{}", report.id)];
            ind.tags = body.tags;
            ind.set_subdomains(body.subdomains.unwrap_or(true));
            Some(ind)
        }
    };
    let (proposal, upsert) = state
        .store
        .report_decide(
            &caller.audit_actor(),
            &owner,
            &report,
            proposal_id,
            indicator,
        )
        .await
        .map_err(not_found_as("proposal", proposal_id))?;
    let mut retro_hunt_id = None;
    if let (Some(u), Some(hub)) = (&upsert, state.intel.as_deref()) {
        retro_hunt_id = hub
            .after_change(&owner, u, &format!("report {}", report.title), true)
            .await?
            .hunt_id;
    }
    Ok(Decision {
        proposal,
        retro_hunt_id,
    })
}

/// Accepts a proposal: the indicator is created (or merged into the
/// owner's), owned by the report's org, with the report as source and the
/// report's TLP and sharing. Audited; a proposal is decided once.
#[utoipa::path(post, path = "/api/v1/intel/reports/{id}/proposals/{proposal_id}/accept", tag = "intel",
    params(("id" = String, Path, description = "report id"), ("proposal_id" = String, Path, description = "proposal id")),
    request_body(content = AcceptBody, description = "optional"),
    responses((status = 200, body = Decision), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn accept(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, proposal_id)): ApiPath<(String, String)>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Decision>, ApiError> {
    let body: AcceptBody = if body.iter().all(u8::is_ascii_whitespace) {
        AcceptBody::default()
    } else {
        crate::error::check_json_syntax(&body)?;
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid("body", format!("not an accept body: {e}")))?
    };
    Ok(Json(
        decide(&state, &caller, &id, &proposal_id, Some(body)).await?,
    ))
}

/// Rejects a proposal. Audited; a proposal is decided once.
#[utoipa::path(post, path = "/api/v1/intel/reports/{id}/proposals/{proposal_id}/reject", tag = "intel",
    params(("id" = String, Path, description = "report id"), ("proposal_id" = String, Path, description = "proposal id")),
    responses((status = 200, body = Decision), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, proposal_id)): ApiPath<(String, String)>,
) -> Result<Json<Decision>, ApiError> {
    Ok(Json(
        decide(&state, &caller, &id, &proposal_id, None).await?,
    ))
}
