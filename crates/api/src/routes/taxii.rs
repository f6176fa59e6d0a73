//! A TAXII 2.1 server (OASIS TAXII 2.1, §4–§5) over the intel hub.
//!
//! One API root (`/taxii2/api/`) with one collection, `indicators`: the
//! indicators visible to the caller's org under TLP (see the store's intel
//! module), as STIX 2.1 indicator objects. Members read it with any TAXII
//! client (`added_after`, `limit`, `next`, `match[type]`, `match[id]`) and
//! contribute by POSTing an envelope, which is imported as owned by their
//! org; the answer is a status resource.
//!
//! TAXII uses its own media type (`application/taxii+json;version=2.1`)
//! and error shape (§3.6: `title`, `description`, `http_status`), so this
//! module answers with those rather than problem+json.

use crate::auth::Caller;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mimamori_core::Action;
use mimamori_intel::{import_stix, Provenance, StixExportOptions, StixOptions, Tlp};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;

pub const MEDIA_TYPE: &str = "application/taxii+json;version=2.1";
const STIX_MEDIA_TYPE: &str = "application/stix+json;version=2.1";
/// The one collection's id (fixed: clients store it).
pub const INDICATORS: &str = "8f2b2a8e-6c1d-4a57-9d6e-3b7c5e0f1a24";
/// Most objects per page.
const MAX_PAGE: i64 = 1000;

fn taxii(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    r
}

/// A TAXII error message (§3.6.1).
pub struct TaxiiError {
    status: StatusCode,
    title: &'static str,
    description: String,
}

impl IntoResponse for TaxiiError {
    fn into_response(self) -> Response {
        taxii(
            self.status,
            json!({"title": self.title, "description": self.description, "http_status": self.status.as_u16().to_string()}),
        )
    }
}

fn error(status: StatusCode, title: &'static str, description: impl Into<String>) -> TaxiiError {
    TaxiiError {
        status,
        title,
        description: description.into(),
    }
}

/// TAXII clients must ask for the TAXII media type (§1.6.8.1); `*/*` and
/// no Accept header are taken as asking for it too.
fn accepts(headers: &HeaderMap) -> bool {
    match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(a) => a.split(',').any(|m| {
            let m = m.trim().to_ascii_lowercase().replace(' ', "");
            m.starts_with("*/*")
                || m.starts_with("application/taxii+json")
                || m.starts_with("application/*")
        }),
    }
}

fn check(caller: &Caller, headers: &HeaderMap, action: Action) -> Result<(), TaxiiError> {
    if !accepts(headers) {
        return Err(error(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable",
            format!("this server speaks {MEDIA_TYPE}"),
        ));
    }
    if !caller.principal.can(action) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("role {} may not do this", caller.principal.role),
        ));
    }
    Ok(())
}

fn collection(can_write: bool) -> Value {
    json!({
        "id": INDICATORS,
        "title": "Indicators",
        "description": "Indicators of compromise shared through the central SOC, as your organization's TLP allows.",
        "can_read": true,
        "can_write": can_write,
        "media_types": [STIX_MEDIA_TYPE],
    })
}

/// `GET /taxii2/`: discovery.
pub async fn discovery(caller: Caller, headers: HeaderMap) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead) {
        return r.into_response();
    }
    taxii(
        StatusCode::OK,
        json!({
            "title": "mimamori TAXII 2.1",
            "description": "Threat intelligence of the central SOC and its member organizations.",
            "default": "/taxii2/api/",
            "api_roots": ["/taxii2/api/"],
        }),
    )
}

/// `GET /taxii2/api/`: the API root.
pub async fn api_root(caller: Caller, headers: HeaderMap) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead) {
        return r.into_response();
    }
    taxii(
        StatusCode::OK,
        json!({
            "title": "mimamori intel",
            "versions": [MEDIA_TYPE],
            "max_content_length": super::intel::MAX_IMPORT_BODY,
        }),
    )
}

/// `GET /taxii2/api/collections/`.
pub async fn collections(caller: Caller, headers: HeaderMap) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead) {
        return r.into_response();
    }
    let w = caller.principal.can(Action::IntelWrite);
    taxii(StatusCode::OK, json!({"collections": [collection(w)]}))
}

fn known(id: &str) -> Result<(), TaxiiError> {
    if id == INDICATORS {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no collection {id}"),
        ))
    }
}

/// `GET /taxii2/api/collections/{id}/`.
pub async fn get_collection(
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead).and_then(|_| known(&id)) {
        return r.into_response();
    }
    taxii(
        StatusCode::OK,
        collection(caller.principal.can(Action::IntelWrite)),
    )
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn parse_ts(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The page a request asks for: after which (time, id), how many, which
/// types and ids.
struct PageQuery {
    after_ms: i64,
    after_id: Option<String>,
    limit: i64,
    types: Vec<String>,
    ids: Vec<String>,
}

fn page_query(q: &HashMap<String, String>) -> Result<PageQuery, TaxiiError> {
    let bad = |d: String| error(StatusCode::BAD_REQUEST, "Bad Request", d);
    let mut p = PageQuery {
        after_ms: -1,
        after_id: None,
        limit: MAX_PAGE,
        types: vec![],
        ids: vec![],
    };
    if let Some(a) = q.get("added_after") {
        p.after_ms = parse_ts(a)
            .ok_or_else(|| bad(format!("added_after {a:?} is not an RFC 3339 timestamp")))?;
    }
    if let Some(l) = q.get("limit") {
        p.limit = l
            .parse::<i64>()
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| bad(format!("limit {l:?} is not a positive number")))?
            .min(MAX_PAGE);
    }
    if let Some(n) = q.get("next") {
        // `next` is "<ms>,<id>" of the last object of the previous page.
        let (ms, id) = n
            .split_once(',')
            .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_string())))
            .ok_or_else(|| bad(format!("next {n:?} is not one this server issued")))?;
        p.after_ms = ms;
        p.after_id = Some(id);
    }
    if let Some(t) = q.get("match[type]") {
        p.types = t.split(',').map(|s| s.trim().to_string()).collect();
    }
    if let Some(i) = q.get("match[id]") {
        p.ids = i.split(',').map(|s| s.trim().to_string()).collect();
    }
    for k in q.keys() {
        if ![
            "added_after",
            "limit",
            "next",
            "match[type]",
            "match[id]",
            "match[version]",
            "match[spec_version]",
        ]
        .contains(&k.as_str())
        {
            return Err(bad(format!("unknown parameter {k:?}")));
        }
    }
    Ok(p)
}

/// One page of visible indicators as STIX objects: (objects with their
/// date added, more?).
async fn page(
    state: &AppState,
    org_id: &str,
    p: &PageQuery,
) -> Result<(Vec<(Value, i64)>, Option<String>), TaxiiError> {
    if !p.types.is_empty() && !p.types.iter().any(|t| t == "indicator") {
        return Ok((vec![], None));
    }
    let mut out = vec![];
    let mut after_ms = p.after_ms;
    let mut after_id = p.after_id.clone();
    let opts = StixExportOptions {
        max_tlp: Tlp::Red,
        now: time::OffsetDateTime::now_utc(),
    };
    // Rows are read in chunks until the page is full: `match[id]` filters
    // after rendering (STIX ids are derived from kind and value).
    loop {
        let rows = state
            .store
            .intel_changed_after(org_id, after_ms, after_id.as_deref(), p.limit + 1)
            .await
            .map_err(|e| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Error",
                    e.to_string(),
                )
            })?;
        let exhausted = rows.len() as i64 <= p.limit;
        for row in rows {
            after_ms = row.updated_at;
            after_id = Some(row.id.clone());
            let bundle =
                mimamori_intel::export_stix(std::slice::from_ref(&row.indicator), &[], &[], &opts);
            let Some(mut obj) = bundle["objects"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["type"] == "indicator"))
                .cloned()
            else {
                continue;
            };
            // Kept beside the object for the `next` cursor; removed before
            // it is sent.
            obj["x_mimamori_row"] = json!(row.id);
            if !p.ids.is_empty() && !p.ids.iter().any(|i| obj["id"] == i.as_str()) {
                continue;
            }
            out.push((obj, row.updated_at));
            if out.len() as i64 > p.limit {
                break;
            }
        }
        if out.len() as i64 > p.limit || exhausted {
            break;
        }
    }
    // The cursor points at the last object returned, not the last row read.
    let next = if out.len() as i64 > p.limit {
        out.truncate(p.limit as usize);
        out.last()
            .and_then(|(_, ms)| Some(format!("{ms},{}", last_row_id(&out)?)))
    } else {
        None
    };
    Ok((out, next))
}

/// The row id behind the last rendered object is not in the STIX object,
/// so the page keeps it in a side field.
fn last_row_id(out: &[(Value, i64)]) -> Option<String> {
    out.last()?
        .0
        .get("x_mimamori_row")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn date_headers(r: &mut Response, objs: &[(Value, i64)]) {
    if let (Some(first), Some(last)) = (objs.first(), objs.last()) {
        for (name, ms) in [
            ("x-taxii-date-added-first", first.1),
            ("x-taxii-date-added-last", last.1),
        ] {
            if let Ok(v) = HeaderValue::from_str(&rfc3339_ms(ms)) {
                r.headers_mut().insert(name, v);
            }
        }
    }
}

/// `GET /taxii2/api/collections/{id}/objects/`: an envelope.
pub async fn objects(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead).and_then(|_| known(&id)) {
        return r.into_response();
    }
    let p = match page_query(&q) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let (objs, next) = match page(&state, caller.principal.org_id.as_str(), &p).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    envelope(objs, next)
}

fn envelope(objs: Vec<(Value, i64)>, next: Option<String>) -> Response {
    let clean: Vec<Value> = objs
        .iter()
        .map(|(o, _)| {
            let mut o = o.clone();
            if let Some(m) = o.as_object_mut() {
                m.remove("x_mimamori_row");
            }
            o
        })
        .collect();
    let mut body = json!({"more": next.is_some(), "objects": clean});
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    let mut r = taxii(StatusCode::OK, body);
    date_headers(&mut r, &objs);
    r
}

/// `GET /taxii2/api/collections/{id}/objects/{object_id}/`.
pub async fn object(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path((id, object_id)): Path<(String, String)>,
) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead).and_then(|_| known(&id)) {
        return r.into_response();
    }
    let p = PageQuery {
        after_ms: -1,
        after_id: None,
        limit: MAX_PAGE,
        types: vec![],
        ids: vec![object_id.clone()],
    };
    match page(&state, caller.principal.org_id.as_str(), &p).await {
        Ok((objs, _)) if objs.is_empty() => error(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no object {object_id} in this collection"),
        )
        .into_response(),
        Ok((objs, _)) => envelope(objs, None),
        Err(r) => r.into_response(),
    }
}

/// `GET /taxii2/api/collections/{id}/manifest/`.
pub async fn manifest(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead).and_then(|_| known(&id)) {
        return r.into_response();
    }
    let p = match page_query(&q) {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let (objs, next) = match page(&state, caller.principal.org_id.as_str(), &p).await {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let entries: Vec<Value> = objs
        .iter()
        .map(|(o, ms)| {
            json!({"id": o["id"], "date_added": rfc3339_ms(*ms), "version": o["modified"], "media_type": STIX_MEDIA_TYPE})
        })
        .collect();
    let mut body = json!({"more": next.is_some(), "objects": entries});
    if let Some(n) = next {
        body["next"] = json!(n);
    }
    let mut r = taxii(StatusCode::OK, body);
    date_headers(&mut r, &objs);
    r
}

/// Status resources of envelope POSTs (kept in memory, the last 1,000).
#[derive(Default)]
pub struct Statuses(Mutex<Vec<(String, String, Value)>>);

/// `POST /taxii2/api/collections/{id}/objects/`: a member contributes an
/// envelope; its objects are imported as owned by the caller's org.
pub async fn add_objects(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelWrite).and_then(|_| known(&id)) {
        return r.into_response();
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace(' ', "");
    if !ct.starts_with("application/taxii+json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            format!("send an envelope as {MEDIA_TYPE}"),
        )
        .into_response();
    }
    let Some(hub) = state.intel.as_deref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the intel hub is not running",
        )
        .into_response();
    };
    let Some(schemas) = hub.schemas.as_deref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "STIX validation is not configured on this server ([intel] stix_schemas)",
        )
        .into_response();
    };
    let env: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                format!("not JSON: {e}"),
            )
            .into_response()
        }
    };
    let Some(objects) = env.get("objects").and_then(Value::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "an envelope has an \"objects\" array",
        )
        .into_response();
    };
    let ids: Vec<String> = objects
        .iter()
        .map(|o| o["id"].as_str().unwrap_or("").to_string())
        .collect();
    let bundle = json!({"type": "bundle", "id": format!("bundle--{}", mimamori_core::new_id()), "objects": objects});
    let org = match state
        .store
        .org_get(
            &mimamori_core::Scope::Only(caller.principal.org_path.clone()),
            caller.principal.org_id.as_str(),
        )
        .await
    {
        Ok(o) => o,
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Error",
                e.to_string(),
            )
            .into_response()
        }
    };
    let prov = Provenance::new(
        format!("taxii:{}", org.slug),
        time::OffsetDateTime::now_utc(),
    );
    let bytes = bundle.to_string().into_bytes();
    let batch = match import_stix(&bytes, schemas, &StixOptions::new(prov)) {
        Ok(b) => b,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "Bad Request", e.to_string()).into_response()
        }
    };
    // Rejects name `$.objects[i]…`: map them back to object ids.
    let mut failed: HashMap<String, String> = HashMap::new();
    for r in &batch.rejects {
        let idx = r
            .path
            .strip_prefix("$.objects[")
            .and_then(|s| s.split(']').next())
            .and_then(|n| n.parse::<usize>().ok());
        let oid = idx
            .and_then(|i| ids.get(i))
            .cloned()
            .unwrap_or_else(|| r.path.clone());
        failed.entry(oid).or_insert_with(|| r.reason.clone());
    }
    let imported = hub
        .import(
            &caller.audit_actor(),
            &org,
            &batch,
            &[],
            &format!("taxii:{}", org.slug),
            true,
        )
        .await;
    if let Err(e) = imported {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Error",
            e.to_string(),
        )
        .into_response();
    }
    let successes: Vec<Value> = ids
        .iter()
        .filter(|i| !failed.contains_key(*i))
        .map(|i| json!({"id": i}))
        .collect();
    let failures: Vec<Value> = failed
        .iter()
        .map(|(i, m)| json!({"id": i, "message": m}))
        .collect();
    let status_id = mimamori_core::new_id();
    let status = json!({
        "id": status_id,
        "status": "complete",
        "request_timestamp": rfc3339_ms(mimamori_core::now_millis()),
        "total_count": ids.len(),
        "success_count": successes.len(),
        "failure_count": failures.len(),
        "pending_count": 0,
        "successes": successes,
        "failures": failures,
    });
    {
        let mut s = state
            .taxii_statuses
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        s.push((
            status_id,
            caller.principal.org_id.to_string(),
            status.clone(),
        ));
        let extra = s.len().saturating_sub(1000);
        s.drain(..extra);
    }
    taxii(StatusCode::ACCEPTED, status)
}

/// `GET /taxii2/api/status/{id}/`: only the org that posted sees it.
pub async fn status(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = check(&caller, &headers, Action::IntelRead) {
        return r.into_response();
    }
    let s = state
        .taxii_statuses
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match s
        .iter()
        .find(|(sid, org, _)| *sid == id && org == caller.principal.org_id.as_str())
    {
        Some((_, _, v)) => taxii(StatusCode::OK, v.clone()),
        None => error(
            StatusCode::NOT_FOUND,
            "Not Found",
            format!("no status {id}"),
        )
        .into_response(),
    }
}
