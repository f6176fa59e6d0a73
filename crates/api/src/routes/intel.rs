//! `/api/v1/indicators`, `/api/v1/intel/import`, `/api/v1/intel/export`,
//! `/api/v1/hunts`: the threat-intelligence hub.
//!
//! Every read is by the caller's org and TLP (see `mimamori_store`'s intel
//! module): an org reads its own indicators, CLEAR/GREEN ones, and AMBER
//! ones shared with it; RED never leaves its owner.

use super::{not_found_as, org_in_scope, List, PageParams};
use crate::auth::Caller;
use crate::error::{ApiBytes, ApiError, ApiJson, ApiPath, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mimamori_core::Action;
use mimamori_intel::{
    import_list, import_stix, ImportBatch, ListFormat, ListOptions, Provenance, Reject,
    StixOptions, Tlp,
};
use mimamori_pipeline::hub::IntelHub;
use mimamori_pipeline::retro::HuntJob;
use mimamori_store::{Feed, IndicatorFilter, NewFeed, StoredIndicator, UpsertReport};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Largest import body.
pub const MAX_IMPORT_BODY: usize = 64 * 1024 * 1024;

fn hub(state: &AppState) -> Result<&IntelHub, ApiError> {
    state.intel.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the intel hub is not running in this server",
        )
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IndicatorParams {
    /// `domain`, `hostname`, `ipv4`, `ipv6`, `cidr`, `url`, `md5`, `sha1`,
    /// `sha256`, `email`, `file-name`.
    pub kind: Option<String>,
    /// Part of the value.
    pub contains: Option<String>,
    /// Only indicators that match now.
    #[serde(default)]
    pub active: bool,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// Indicators visible to the caller's org, newest first.
#[utoipa::path(get, path = "/api/v1/indicators", tag = "intel",
    params(IndicatorParams),
    responses((status = 200, body = List<StoredIndicator>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<IndicatorParams>,
) -> Result<Json<List<StoredIndicator>>, ApiError> {
    caller.require(Action::IntelRead)?;
    let page = PageParams {
        cursor: p.cursor.clone(),
        limit: p.limit,
    }
    .to_request()?;
    let filter = IndicatorFilter {
        kind: p.kind.clone(),
        contains: p.contains.clone(),
        active_only: p.active,
    };
    let mut page = state
        .store
        .intel_list(caller.principal.org_id.as_str(), &filter, &page)
        .await?;
    let visible = scope_orgs(&state, &caller).await?;
    for i in &mut page.items {
        i.sighting_orgs.retain(|o| visible.contains(o));
    }
    Ok(Json(page.into()))
}

/// One indicator, if visible to the caller's org.
#[utoipa::path(get, path = "/api/v1/indicators/{id}", tag = "intel",
    params(("id" = String, Path, description = "indicator id")),
    responses((status = 200, body = StoredIndicator), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StoredIndicator>, ApiError> {
    caller.require(Action::IntelRead)?;
    let mut i = state
        .store
        .intel_get(caller.principal.org_id.as_str(), &id)
        .await
        .map_err(not_found_as("indicator", &id))?;
    // Which orgs saw it is theirs and their parents' business; the count
    // is an aggregate over all.
    let visible = scope_orgs(&state, &caller).await?;
    i.sighting_orgs.retain(|o| visible.contains(o));
    Ok(Json(i))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// `stix` (a STIX 2.1 bundle), `misp` (a MISP event), `plain`,
    /// `hosts` or `csv` (lists).
    pub format: String,
    /// The owning org (default: the caller's); must be in the caller's scope.
    pub org_id: Option<String>,
    /// Name of the source, kept with each indicator.
    pub source: Option<String>,
    /// TLP for indicators the input does not mark: `clear`, `green`,
    /// `amber`, `amber+strict`, `red` (default amber).
    pub tlp: Option<String>,
    /// Confidence 0–100 for indicators the input does not rate (default 50).
    pub confidence: Option<u8>,
    /// Comma-separated org ids AMBER indicators are shared with.
    pub share_with: Option<String>,
    /// Comma-separated sharing group ids AMBER indicators are shared with
    /// (groups the owner owns or is a member of). A MISP event with
    /// distribution 4 is also shared with the local group named as its
    /// `SharingGroup`.
    pub share_groups: Option<String>,
    /// Refuse the whole input if any part of it is invalid.
    #[serde(default)]
    pub strict: bool,
    /// Whether a domain indicator covers its sub-domains when the input
    /// does not say (default true; an indicator's own marker wins: list
    /// `=name` / `*.name`, STIX `x_mimamori_subdomains`, MISP tag
    /// `mimamori:subdomains="false"`).
    pub subdomains: Option<bool>,
    /// Start a retro-hunt for what is new (default true).
    pub retro: Option<bool>,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    #[serde(flatten)]
    pub stored: UpsertReport,
    /// Parts of the input that are invalid, with where and why (first 1,000).
    #[schema(value_type = Vec<Object>)]
    pub rejects: Vec<Reject>,
    pub rejected: usize,
    /// Valid parts mimamori cannot use (first 1,000).
    #[schema(value_type = Vec<Object>)]
    pub unsupported: Vec<Reject>,
    /// The retro-hunt started for new and changed indicators.
    pub retro_hunt_id: Option<String>,
    /// Sharing groups the indicators were shared with.
    pub shared_with_groups: Vec<String>,
}

/// A comma-separated list of ids, blanks dropped.
pub(crate) fn parse_list(s: Option<&str>) -> Vec<String> {
    s.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Imports indicators (STIX 2.1 bundle, plain/hosts/CSV list) owned by an
/// org in the caller's scope. Nothing is written if the input cannot be
/// read or, with `strict`, if any part is invalid.
#[utoipa::path(post, path = "/api/v1/intel/import", tag = "intel",
    params(ImportParams),
    request_body(content = String, description = "the document", content_type = "application/octet-stream"),
    responses((status = 200, body = ImportResult), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 413, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ImportParams>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ImportResult>, ApiError> {
    caller.require(Action::IntelWrite)?;
    let hub = hub(&state)?;
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
    let confidence = p.confidence.unwrap_or(50);
    if confidence > 100 {
        return Err(ApiError::invalid("confidence", "must be 0 to 100"));
    }
    let share_with = parse_list(p.share_with.as_deref());
    let mut share_groups = parse_list(p.share_groups.as_deref());
    let source = p
        .source
        .clone()
        .unwrap_or_else(|| format!("{}:{}", owner.slug, p.format));
    let mut prov = Provenance::new(source.clone(), time::OffsetDateTime::now_utc());
    prov.tlp = tlp;
    prov.confidence = confidence;
    prov.subdomains = p.subdomains.unwrap_or(true);
    let mut batch = parse_import(hub, &p, prov, &body)?;
    // MISP distribution 4: the event's sharing group, by name, among the
    // groups the owner may share with.
    if !batch.sharing_groups.is_empty() {
        let (found, unknown) = state
            .store
            .group_resolve_names(&owner, &batch.sharing_groups)
            .await?;
        for id in found {
            if !share_groups.contains(&id) {
                share_groups.push(id);
            }
        }
        for name in unknown {
            batch.unsupported.push(Reject::new(
                "$.Event.SharingGroup",
                format!("no sharing group named {name:?} that this org owns or is a member of; shared with nobody"),
            ));
        }
    }
    if p.strict && !batch.rejects.is_empty() {
        return Err(ApiError::invalid(
            "body",
            format!(
                "strict import refused, nothing stored: {} invalid part(s); first: {}",
                batch.rejects.len(),
                batch.rejects[0]
            ),
        ));
    }
    let sharing = mimamori_store::Sharing {
        orgs: share_with,
        groups: share_groups,
    };
    let imported = hub
        .import_with(
            &caller.audit_actor(),
            &owner,
            &batch,
            &sharing,
            &source,
            p.retro.unwrap_or(true),
        )
        .await?;
    Ok(Json(ImportResult {
        stored: imported.report,
        rejected: batch.rejects.len(),
        rejects: batch.rejects.into_iter().take(1000).collect(),
        unsupported: batch.unsupported.into_iter().take(1000).collect(),
        retro_hunt_id: imported.hunt_id,
        shared_with_groups: sharing.groups,
    }))
}

fn parse_import(
    hub: &IntelHub,
    p: &ImportParams,
    prov: Provenance,
    body: &[u8],
) -> Result<ImportBatch, ApiError> {
    match p.format.as_str() {
        "stix" => {
            let schemas = hub.schemas.as_deref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STIX import validates against the OASIS STIX 2.1 schemas, which are not configured: set [intel] stix_schemas to the schemas/ folder of oasis-open/cti-stix2-json-schemas",
                )
            })?;
            let mut opts = StixOptions::new(prov);
            opts.strict = p.strict;
            import_stix(body, schemas, &opts).map_err(|e| ApiError::invalid("body", e.to_string()))
        }
        "misp" => {
            let mut opts = mimamori_intel::MispOptions::new(prov);
            opts.strict = p.strict;
            mimamori_intel::import_misp_event(body, &opts)
                .map_err(|e| ApiError::invalid("body", e.to_string()))
        }
        "plain" | "hosts" | "csv" => {
            let text = std::str::from_utf8(body).map_err(|e| {
                ApiError::invalid("body", format!("a list must be UTF-8 text: {e}"))
            })?;
            let format = match p.format.as_str() {
                "plain" => ListFormat::Plain,
                "hosts" => ListFormat::Hosts,
                _ => ListFormat::Csv,
            };
            Ok(import_list(text, format, &ListOptions::new(prov)))
        }
        other => Err(ApiError::invalid(
            "format",
            format!("{other:?} is not one of stix, misp, plain, hosts, csv"),
        )),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `stix` (a STIX 2.1 bundle), `rpz` (a response policy zone of the
    /// domains) or `plain` (one value per line).
    pub format: String,
}

/// Exports the active indicators visible to the caller's org.
#[utoipa::path(get, path = "/api/v1/intel/export", tag = "intel",
    params(ExportParams),
    responses((status = 200, description = "the export", content_type = "text/plain"), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    caller.require(Action::IntelRead)?;
    let indicators = visible_indicators(&state, caller.principal.org_id.as_str()).await?;
    let now = time::OffsetDateTime::now_utc();
    match p.format.as_str() {
        "stix" => {
            let opts = mimamori_intel::StixExportOptions {
                max_tlp: Tlp::Red,
                now,
            };
            let bundle = mimamori_intel::export_stix(&indicators, &[], &[], &opts);
            Ok((
                [(header::CONTENT_TYPE, "application/stix+json;version=2.1")],
                Json(bundle),
            )
                .into_response())
        }
        "rpz" => {
            let opts = mimamori_intel::RpzOptions {
                name_server: "localhost.".into(),
                contact: "hostmaster.localhost.".into(),
                serial: (now.unix_timestamp().max(0) as u64 % u64::from(u32::MAX)) as u32,
                ttl: 300,
                max_tlp: Tlp::Red,
                now,
            };
            let zone = mimamori_intel::export_rpz(&indicators, &opts);
            Ok(([(header::CONTENT_TYPE, "text/dns")], zone).into_response())
        }
        "plain" => {
            let text = mimamori_intel::export_plain(&indicators, &[], Tlp::Red, now);
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        other => Err(ApiError::invalid(
            "format",
            format!("{other:?} is not one of stix, rpz, plain"),
        )),
    }
}

/// Every indicator visible to `org_id` (paged through the store).
pub(crate) async fn visible_indicators(
    state: &AppState,
    org_id: &str,
) -> Result<Vec<mimamori_intel::Indicator>, ApiError> {
    let mut out = vec![];
    let mut page = mimamori_store::PageRequest::first(mimamori_store::MAX_PAGE);
    loop {
        let got = state
            .store
            .intel_list(
                org_id,
                &IndicatorFilter {
                    active_only: true,
                    ..Default::default()
                },
                &page,
            )
            .await?;
        out.extend(got.items.into_iter().map(|s| s.indicator));
        match got.next_cursor {
            Some(c) => page.after = Some(c),
            None => return Ok(out),
        }
    }
}

/// Retro-hunt jobs of this server, newest first.
#[utoipa::path(get, path = "/api/v1/hunts", tag = "intel",
    responses((status = 200, description = "`{\"items\": [job, …]}`"), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn hunts(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Action::AlertRead)?;
    let hub = hub(&state)?;
    let visible = scope_orgs(&state, &caller).await?;
    let items: Vec<HuntJob> = hub
        .hunts
        .list()
        .into_iter()
        .filter(|j| visible_job(&visible, j))
        .map(|j| j.view(&|o| visible.contains(o)))
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// The ids of the orgs in the caller's scope.
async fn scope_orgs(
    state: &AppState,
    caller: &Caller,
) -> Result<std::collections::HashSet<String>, ApiError> {
    Ok(state
        .store
        .org_all(&caller.principal.scope())
        .await?
        .into_iter()
        .map(|o| o.id.to_string())
        .collect())
}

/// Who sees a hunt job: the org whose intel started it and the orgs above
/// it (an operator's job: whoever sees every org it covers). What they see
/// of it is limited to their scope by [`HuntJob::view`].
fn visible_job(visible: &std::collections::HashSet<String>, j: &HuntJob) -> bool {
    match (&j.owner_org_id, &j.org_ids) {
        (Some(owner), _) => visible.contains(owner),
        (None, Some(ids)) => !ids.is_empty() && ids.iter().all(|o| visible.contains(o)),
        (None, None) => !j.per_org.is_empty() && j.per_org.keys().all(|o| visible.contains(o)),
    }
}

/// One retro-hunt job: progress and time.
#[utoipa::path(get, path = "/api/v1/hunts/{id}", tag = "intel",
    params(("id" = String, Path, description = "hunt id")),
    responses((status = 200, description = "the job: state, files and bytes done of the total, events, findings, alerts, elapsed_ms"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn hunt(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<HuntJob>, ApiError> {
    caller.require(Action::AlertRead)?;
    let hub = hub(&state)?;
    let job = hub
        .hunts
        .get(&id)
        .ok_or_else(|| ApiError::not_found("hunt", &id))?;
    let visible = scope_orgs(&state, &caller).await?;
    if !visible_job(&visible, &job) {
        return Err(ApiError::not_found("hunt", &id));
    }
    Ok(Json(job.view(&|o| visible.contains(o))))
}

/// Feed subscriptions of the orgs in the caller's scope.
#[utoipa::path(get, path = "/api/v1/intel/feeds", tag = "intel",
    responses((status = 200, body = List<Feed>), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn feeds(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<List<Feed>>, ApiError> {
    caller.require(Action::IntelRead)?;
    let items = state.store.feed_list(&caller.principal.scope()).await?;
    Ok(Json(items.into()))
}

/// Subscribes an org in the caller's scope to a feed (polled on its
/// interval with conditional requests; each poll's outcome is kept).
#[utoipa::path(post, path = "/api/v1/intel/feeds", tag = "intel",
    request_body = NewFeed,
    responses((status = 201, body = Feed), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewFeed>,
) -> Result<(StatusCode, Json<Feed>), ApiError> {
    caller.require(Action::IntelWrite)?;
    let owner = org_in_scope(&state, &caller, &new.org_id).await?;
    let f = state
        .store
        .feed_create(&caller.audit_actor(), &owner, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// One feed and its last poll.
#[utoipa::path(get, path = "/api/v1/intel/feeds/{id}", tag = "intel",
    params(("id" = String, Path, description = "feed id")),
    responses((status = 200, body = Feed), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Feed>, ApiError> {
    caller.require(Action::IntelRead)?;
    let f = state
        .store
        .feed_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("feed", &id))?;
    Ok(Json(f))
}

/// Unsubscribes (imported indicators stay).
#[utoipa::path(delete, path = "/api/v1/intel/feeds/{id}", tag = "intel",
    params(("id" = String, Path, description = "feed id")),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete_feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::IntelWrite)?;
    let f = state
        .store
        .feed_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("feed", &id))?;
    let owner = state
        .store
        .org_get(&caller.principal.scope(), &f.owner_org_id)
        .await
        .map_err(not_found_as("feed", &id))?;
    state
        .store
        .feed_delete(&caller.audit_actor(), &owner, &f)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Polls a feed now and answers with its state afterwards.
#[utoipa::path(post, path = "/api/v1/intel/feeds/{id}/poll", tag = "intel",
    params(("id" = String, Path, description = "feed id")),
    responses((status = 200, body = Feed), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn poll_feed(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Feed>, ApiError> {
    caller.require(Action::IntelWrite)?;
    let hub = hub(&state)?;
    let f = state
        .store
        .feed_get(&caller.principal.scope(), &id)
        .await
        .map_err(not_found_as("feed", &id))?;
    let http = mimamori_pipeline::feeds::client(state.fetch_policy.clone())
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    let outcome = mimamori_pipeline::feeds::poll(hub, &http, &f).await;
    state.store.feed_polled(&f.id, &outcome).await?;
    let f = state.store.feed_get(&caller.principal.scope(), &id).await?;
    Ok(Json(f))
}
