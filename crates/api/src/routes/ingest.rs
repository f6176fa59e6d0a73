//! Telemetry in over HTTP: mimamori's own NDJSON endpoint, a Splunk HEC
//! compatible endpoint and an Elasticsearch `_bulk` compatible endpoint, so
//! Fluent Bit, Vector, Logstash and Beats-style shippers work unchanged.
//!
//! Every endpoint takes a sensor token (the org comes from the token, never
//! from the payload), parses per record (bad records are rejected and
//! counted, good ones in the same request are kept), and answers only after
//! the accepted events are in the fsync'd write-ahead log. When the ingest
//! queue is full the answer is 429 (HEC: 503 "server is busy") with
//! `Retry-After`, and nothing of that request is kept.

use crate::auth::Caller;
use crate::error::{ApiBytes, ApiError, ApiQuery, Problem};
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mimamori_core::Action;
use mimamori_event::EventBody;
use mimamori_ingest::{Ingest, IngestError};
use mimamori_parse::{Format, LineParser, Reject};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use utoipa::{IntoParams, ToSchema};

/// Largest body the ingest endpoints accept.
pub const MAX_INGEST_BODY: usize = 16 * 1024 * 1024;
/// How many reject reasons a response lists (all are counted).
const MAX_LISTED_REJECTS: usize = 20;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    /// Source type to record on every event (e.g. `fluent-bit.dns`).
    pub source: Option<String>,
    /// Record format of each line (default `ndjson`): ndjson, windows-json,
    /// zeek-json, zeek-tsv, cloudtrail, cef, squid, bind-query,
    /// unbound-query, syslog.
    pub format: Option<String>,
}

/// The outcome of an ingest request.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResult {
    /// Events now durable.
    pub accepted: usize,
    /// Records that could not be parsed (each counted and logged).
    pub rejected: usize,
    /// The first reject reasons, with their 1-based record numbers.
    pub errors: Vec<RejectInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RejectInfo {
    pub record: u64,
    pub reason: String,
}

fn ingest_of(state: &AppState) -> Result<&Ingest, ApiError> {
    state.ingest.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ingestion is not running on this server",
        )
    })
}

fn parse_lines(format: Format, source: Option<&str>, body: &[u8]) -> (Vec<EventBody>, Vec<Reject>) {
    let mut parser = LineParser::new(format);
    let mut events = vec![];
    let mut rejects = vec![];
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parser.push_line(line) {
            None => {}
            Some(Ok(mut e)) => {
                if let Some(s) = source {
                    e.source = s.to_string();
                }
                events.push(e);
            }
            Some(Err(reason)) => rejects.push(Reject {
                record: i as u64 + 1,
                reason,
            }),
        }
    }
    (events, rejects)
}

/// Counts and logs rejects (never the record content: it may be huge or
/// sensitive).
fn note_rejects(state: &AppState, caller: &Caller, endpoint: &str, rejects: &[Reject]) {
    if rejects.is_empty() {
        return;
    }
    state
        .metrics
        .ingest_rejected
        .fetch_add(rejects.len() as u64, Ordering::Relaxed);
    tracing::warn!(
        org = %caller.principal.org_id,
        endpoint,
        rejected = rejects.len(),
        first = %rejects[0].reason,
        "rejected records"
    );
}

async fn submit(
    ingest: &Ingest,
    caller: &Caller,
    events: Vec<EventBody>,
) -> Result<usize, IngestError> {
    let n = events.len();
    if n == 0 {
        return Ok(0);
    }
    ingest
        .try_submit(caller.principal.org_id.as_str(), events)?
        .await?;
    Ok(n)
}

fn overloaded(detail: String) -> Response {
    let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail).into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::BatchTooLarge(..) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            IngestError::Overloaded { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())
            }
            other => {
                tracing::error!(error = %other, "ingestion failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ingestion cannot store events right now; retry later",
                )
            }
        }
    }
}

/// Sends telemetry: one record per line.
#[utoipa::path(post, path = "/ingest/v1/events", tag = "ingest",
    params(IngestParams),
    request_body(content = String, content_type = "application/x-ndjson"),
    responses((status = 200, body = IngestResult), (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 413, body = Problem), (status = 429, body = Problem), (status = 503, body = Problem)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<IngestParams>,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    caller.require(Action::Ingest)?;
    let ingest = ingest_of(&state)?;
    let format = match params.format.as_deref() {
        None => Format::Ndjson,
        Some(f) => Format::parse(f).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown format {f:?}; expected one of: {}",
                Format::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
    };
    if format == Format::Evtx {
        return Err(ApiError::bad_request(
            "EVTX is a binary file format; upload it with `mimamori ingest` or send its records as windows-json",
        ));
    }
    let (events, rejects) = parse_lines(format, params.source.as_deref(), &body);
    note_rejects(&state, &caller, "events", &rejects);
    if events.is_empty() && !rejects.is_empty() {
        return Err(ApiError::bad_request(format!(
            "no record could be parsed; record {}: {}",
            rejects[0].record, rejects[0].reason
        )));
    }
    let accepted = match submit(ingest, &caller, events).await {
        Ok(n) => n,
        Err(IngestError::Overloaded { queued }) => {
            return Ok(overloaded(format!(
                "ingestion is overloaded ({queued} events queued); retry after a second"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(IngestResult {
        accepted,
        rejected: rejects.len(),
        errors: rejects
            .iter()
            .take(MAX_LISTED_REJECTS)
            .map(|r| RejectInfo {
                record: r.record,
                reason: r.reason.clone(),
            })
            .collect(),
    })
    .into_response())
}

// ---- Splunk HEC -------------------------------------------------------

/// HEC answers in its own shape, which shippers parse.
fn hec(status: StatusCode, code: u32, text: &str) -> Response {
    (status, Json(json!({"text": text, "code": code}))).into_response()
}

/// Per-channel acknowledgement ids. An id is issued only after its events
/// are durable, so every issued id is acknowledged. The table is bounded:
/// past 10,000 channels it starts afresh, and ids issued before that answer
/// `false` (a client then resends, which at worst stores a batch twice).
#[derive(Default)]
pub struct HecAcks {
    next: Mutex<HashMap<String, u64>>,
}

impl HecAcks {
    fn issue(&self, channel: &str) -> u64 {
        let mut m = self.next.lock().unwrap_or_else(|p| p.into_inner());
        // Bound the map: a client inventing channels cannot grow it forever.
        if m.len() > 10_000 && !m.contains_key(channel) {
            m.clear();
        }
        let n = m.entry(channel.to_string()).or_insert(0);
        let id = *n;
        *n += 1;
        id
    }

    fn issued(&self, channel: &str, id: u64) -> bool {
        let m = self.next.lock().unwrap_or_else(|p| p.into_inner());
        m.get(channel).is_some_and(|n| id < *n)
    }
}

fn hec_format(sourcetype: Option<&str>) -> Format {
    match sourcetype.map(str::to_ascii_lowercase).as_deref() {
        Some("aws:cloudtrail") => Format::CloudTrail,
        Some("squid" | "squid:access" | "squid_access") => Format::Squid,
        Some("syslog" | "linux_messages_syslog") => Format::Syslog,
        Some("cef" | "cefevents") => Format::Cef,
        Some(s) if s.starts_with("bro_") || s.starts_with("zeek") => Format::ZeekJson,
        Some("xmlwineventlog" | "wineventlog" | "windows") => Format::WindowsJson,
        _ => Format::Ndjson,
    }
}

fn hec_channel(headers: &HeaderMap, q: &HashMap<String, String>) -> Option<String> {
    headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("channel").cloned())
}

/// Converts HEC event envelopes into event bodies. `Err` when the body is
/// not JSON from its first envelope on; a later syntax error ends the
/// stream with a reject. Public for the fuzz target
/// (`fuzz/fuzz_targets/hec.rs`).
pub fn hec_events(
    body: &[u8],
    default_sourcetype: Option<&str>,
) -> Result<(Vec<EventBody>, Vec<Reject>), String> {
    let mut events = vec![];
    let mut rejects = vec![];
    let stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    for (i, item) in stream.enumerate() {
        let record = i as u64 + 1;
        let env = match item {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                rejects.push(Reject {
                    record,
                    reason: "an HEC envelope must be a JSON object".into(),
                });
                continue;
            }
            // After a syntax error the stream cannot be resynchronized.
            Err(e) => {
                if events.is_empty() && rejects.is_empty() {
                    return Err(format!("invalid JSON: {e}"));
                }
                rejects.push(Reject {
                    record,
                    reason: format!("invalid JSON: {e}"),
                });
                break;
            }
        };
        let sourcetype = env
            .get("sourcetype")
            .and_then(Value::as_str)
            .or(default_sourcetype);
        let format = hec_format(sourcetype);
        let line = match env.get("event") {
            None | Some(Value::Null) => {
                rejects.push(Reject {
                    record,
                    reason: "the envelope has no \"event\"".into(),
                });
                continue;
            }
            Some(Value::String(s)) => s.clone().into_bytes(),
            Some(v) => {
                let mut obj = v.clone();
                // Envelope time and host fill in what the event lacks.
                if let (Value::Object(o), Some(t)) = (&mut obj, env.get("time")) {
                    o.entry("time").or_insert_with(|| t.clone());
                }
                if let (Value::Object(o), Some(h)) = (&mut obj, env.get("host")) {
                    o.entry("host").or_insert_with(|| h.clone());
                }
                serde_json::to_vec(&obj).unwrap_or_default()
            }
        };
        let mut parser = LineParser::new(format);
        match parser.push_line(&line) {
            Some(Ok(mut e)) => {
                if let Some(st) = sourcetype {
                    if format == Format::Ndjson {
                        e.source = st.to_string();
                    }
                }
                events.push(e);
            }
            Some(Err(reason)) => rejects.push(Reject { record, reason }),
            None => rejects.push(Reject {
                record,
                reason: "empty event".into(),
            }),
        }
    }
    Ok((events, rejects))
}

async fn hec_submit(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    events: Vec<EventBody>,
    rejects: &[Reject],
    endpoint: &str,
) -> Response {
    let Some(ingest) = state.ingest.as_ref() else {
        return hec(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy");
    };
    note_rejects(state, caller, endpoint, rejects);
    if events.is_empty() {
        return hec(
            StatusCode::BAD_REQUEST,
            6,
            &format!(
                "Invalid data format: {}",
                rejects
                    .first()
                    .map(|r| r.reason.as_str())
                    .unwrap_or("no events")
            ),
        );
    }
    match submit(ingest, caller, events).await {
        Ok(_) => {}
        Err(IngestError::Overloaded { .. }) => {
            let mut r = hec(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
        Err(IngestError::BatchTooLarge(..)) => {
            return hec(
                StatusCode::PAYLOAD_TOO_LARGE,
                6,
                "Invalid data format: batch too large",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "HEC ingestion failed");
            return hec(StatusCode::SERVICE_UNAVAILABLE, 9, "Server is busy");
        }
    }
    let mut body = json!({"text": "Success", "code": 0});
    if let Some(ch) = hec_channel(headers, q) {
        body["ackId"] = json!(state.hec_acks.issue(&ch));
    }
    if !rejects.is_empty() {
        body["rejected"] = json!(rejects.len());
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// Splunk HEC `/services/collector/event`: concatenated JSON envelopes.
pub async fn hec_event(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    ApiBytes(body): ApiBytes,
) -> Response {
    let caller = match hec_caller(caller) {
        Ok(c) => c,
        Err((status, code, text)) => return hec(status, code, text),
    };
    match hec_events(&body, q.get("sourcetype").map(String::as_str)) {
        Ok((events, rejects)) => {
            hec_submit(&state, &caller, &headers, &q, events, &rejects, "hec").await
        }
        Err(reason) => hec(
            StatusCode::BAD_REQUEST,
            6,
            &format!("Invalid data format: {reason}"),
        ),
    }
}

/// Splunk HEC `/services/collector/raw`: one event per line.
pub async fn hec_raw(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    ApiBytes(body): ApiBytes,
) -> Response {
    let caller = match hec_caller(caller) {
        Ok(c) => c,
        Err((status, code, text)) => return hec(status, code, text),
    };
    let sourcetype = q.get("sourcetype").map(String::as_str);
    let format = match hec_format(sourcetype) {
        // Raw lines with no known sourcetype are syslog-ish text.
        Format::Ndjson if body.first() != Some(&b'{') => Format::Syslog,
        f => f,
    };
    let (events, rejects) = parse_lines(format, None, &body);
    hec_submit(&state, &caller, &headers, &q, events, &rejects, "hec-raw").await
}

/// Splunk HEC `/services/collector/ack`.
pub async fn hec_ack(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
    ApiBytes(body): ApiBytes,
) -> Response {
    if let Err((status, code, text)) = hec_caller(caller) {
        return hec(status, code, text);
    }
    let Some(ch) = hec_channel(&headers, &q) else {
        return hec(StatusCode::BAD_REQUEST, 10, "Data channel is missing");
    };
    let ids: Vec<u64> = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("acks").cloned())
        .and_then(|a| serde_json::from_value(a).ok())
        .unwrap_or_default();
    let acks: serde_json::Map<String, Value> = ids
        .iter()
        .map(|id| (id.to_string(), json!(state.hec_acks.issued(&ch, *id))))
        .collect();
    Json(json!({"acks": acks})).into_response()
}

/// Splunk HEC `/services/collector/health`.
pub async fn hec_health(State(state): State<AppState>) -> Response {
    match &state.ingest {
        Some(_) => hec(StatusCode::OK, 17, "HEC is healthy"),
        None => hec(
            StatusCode::SERVICE_UNAVAILABLE,
            18,
            "HEC is unhealthy: ingestion is not running",
        ),
    }
}

/// Why HEC refused a caller: (status, HEC code, text).
type HecRefusal = (StatusCode, u32, &'static str);

fn hec_caller(caller: Result<Caller, ApiError>) -> Result<Caller, HecRefusal> {
    let caller = caller.map_err(|e| {
        if e.detail.starts_with("missing") {
            (StatusCode::UNAUTHORIZED, 2, "Token is required")
        } else {
            (StatusCode::FORBIDDEN, 4, "Invalid token")
        }
    })?;
    if !caller.principal.can(Action::Ingest) {
        return Err((
            StatusCode::FORBIDDEN,
            4,
            "Invalid token: not a sensor token",
        ));
    }
    Ok(caller)
}

// ---- Elasticsearch _bulk ----------------------------------------------

/// `GET /`: what Elasticsearch clients probe before sending.
pub async fn es_root(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    // A browser opening the server's address wants the console, not the
    // Elasticsearch banner log shippers probe for.
    let wants_html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return axum::response::Redirect::to("/console/").into_response();
    }
    Json(json!({
        "name": "mimamori",
        "cluster_name": "mimamori",
        "version": {"number": "8.11.0", "build_flavor": "default", "lucene_version": "9.8.0", "minimum_wire_compatibility_version": "7.17.0"},
        "tagline": "You Know, for Search"
    }))
    .into_response()
}

/// An Elasticsearch `_bulk` body, parsed: the answer's items (ids are
/// filled in after the ack), the events to store and, for each event, the
/// item it came from.
#[derive(Debug, Default)]
pub struct BulkBody {
    pub items: Vec<Value>,
    pub events: Vec<EventBody>,
    /// `event_items[k]` is the index in `items` of `events[k]`.
    pub event_items: Vec<usize>,
    pub rejects: Vec<Reject>,
}

/// Parses a `_bulk` body: action/metadata lines, each `index`/`create`
/// followed by its document. A bad document fails only its item; a line
/// that is not a bulk action fails the request (`Err` names the line), as
/// the stream can no longer be followed. Every item's `_index` is `dest`,
/// the org the events are stored under, whatever index the client named.
/// Public for the fuzz target (`fuzz/fuzz_targets/es_bulk.rs`).
pub fn parse_bulk(body: &[u8], dest: &str) -> Result<BulkBody, String> {
    let mut out = BulkBody::default();
    let mut lines = body
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace));
    let mut parser = LineParser::new(Format::Ndjson);
    let index = json!(dest);
    let append_only = "mimamori keeps telemetry append-only";
    while let Some((i, action_line)) = lines.next() {
        let record = i as u64 + 1;
        let action: Value = serde_json::from_slice(action_line)
            .map_err(|e| format!("line {record}: the bulk action is not JSON: {e}"))?;
        let Some(op) = action.as_object().and_then(|o| o.keys().next()) else {
            return Err(format!(
                "line {record}: expected an action like {{\"index\":{{}}}}"
            ));
        };
        match op.as_str() {
            "index" | "create" => {
                let Some((j, doc)) = lines.next() else {
                    return Err(format!("line {record}: {op} action without a document"));
                };
                let item = match parser.push_line(doc) {
                    Some(Ok(e)) => {
                        out.event_items.push(out.items.len());
                        out.events.push(e);
                        json!({"_index": index, "status": 201, "result": "created"})
                    }
                    Some(Err(reason)) => {
                        let item = json!({"_index": index, "status": 400, "error": {"type": "mapper_parsing_exception", "reason": reason}});
                        out.rejects.push(Reject {
                            record: j as u64 + 1,
                            reason,
                        });
                        item
                    }
                    None => {
                        json!({"_index": index, "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "empty document"}})
                    }
                };
                out.items.push(json!({op.clone(): item}));
            }
            "delete" => out.items.push(json!({"delete": {"_index": index, "status": 405, "error": {"type": "illegal_argument_exception", "reason": append_only}}})),
            "update" => {
                lines.next();
                out.items.push(json!({"update": {"_index": index, "status": 405, "error": {"type": "illegal_argument_exception", "reason": append_only}}}));
            }
            other => return Err(format!("line {record}: unknown bulk action {other:?}")),
        }
    }
    Ok(out)
}

/// `POST /_bulk` and `POST /{index}/_bulk` ([`parse_bulk`]). Answers per
/// item like Elasticsearch, so shippers retry only what failed; each
/// item's `_index` is the id of the org the event was stored under (the
/// sensor's), not the index the client named.
pub async fn es_bulk(
    State(state): State<AppState>,
    caller: Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    caller.require(Action::Ingest)?;
    let ingest = ingest_of(&state)?;
    let started = std::time::Instant::now();
    let BulkBody {
        mut items,
        events,
        event_items,
        rejects,
    } = parse_bulk(&body, caller.principal.org_id.as_str()).map_err(ApiError::bad_request)?;
    note_rejects(&state, &caller, "bulk", &rejects);
    let ids = if events.is_empty() {
        vec![]
    } else {
        match ingest.try_submit(caller.principal.org_id.as_str(), events) {
            Ok(fut) => fut.await?.ids,
            Err(IngestError::Overloaded { queued }) => {
                return Ok(overloaded(format!(
                    "ingestion is overloaded ({queued} events queued); retry after a second"
                )))
            }
            Err(e) => return Err(e.into()),
        }
    };
    for (item_idx, id) in event_items.iter().zip(ids) {
        if let Some(obj) = items[*item_idx]
            .as_object_mut()
            .and_then(|o| o.values_mut().next())
            .and_then(Value::as_object_mut)
        {
            obj.insert("_id".into(), json!(id));
        }
    }
    let errors = items.iter().any(|i| {
        i.as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.get("error"))
            .is_some()
    });
    Ok(Json(
        json!({"took": started.elapsed().as_millis() as u64, "errors": errors, "items": items}),
    )
    .into_response())
}
