//! Hunt: SQL over the event archive of the user's orgs (the API's
//! `/api/v1/query`, with its limits), results as a table, and the same
//! results as CSV or JSON to download.

use crate::layout::{api_error, csrf_field, page};
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::html;
use mimamori_api::error::ApiJson;
use mimamori_api::routes::query::{self, QueryRequest, QueryResponse};
use mimamori_api::AppState;
use serde::Deserialize;

/// The query a new hunt page starts with.
pub const EXAMPLE_SQL: &str =
    "SELECT query.hostname, count(*) AS n, count(DISTINCT org_id) AS orgs\n\
FROM events\nWHERE class_uid = 4003\nGROUP BY query.hostname\nORDER BY n DESC\nLIMIT 20";

pub async fn form(s: Session) -> Response {
    let p = match require(&s, PageId::Hunt) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    page(&s, &s.lang.t(p.key), body(&s, EXAMPLE_SQL, None, None))
}

fn body(
    s: &Session,
    sql: &str,
    result: Option<&QueryResponse>,
    error: Option<&str>,
) -> maud::Markup {
    let lang = s.lang;
    html! {
        form.hunt method="post" action="/console/hunt" {
            (csrf_field(s))
            label for="sql" { (lang.t("hunt-sql")) }
            textarea #sql name="sql" rows="8" spellcheck="false" required { (sql) }
            p.muted { (lang.t("hunt-help")) }
            div.actions {
                button type="submit" name="format" value="html" { (lang.t("hunt-run")) }
                button type="submit" name="format" value="csv" { (lang.t("hunt-csv")) }
                button type="submit" name="format" value="json" { (lang.t("hunt-json")) }
            }
        }
        @if let Some(e) = error { p.error role="alert" data-testid="hunt-error" { (e) } }
        @if let Some(r) = result {
            p role="status" data-testid="hunt-summary" {
                (lang.ta("hunt-summary", &[
                    ("count", (r.rows.len() as i64).into()),
                    ("orgs", (r.orgs_in_scope as i64).into()),
                    ("ms", (r.elapsed_ms as i64).into()),
                ]))
                @if r.truncated { " " strong { (lang.t("hunt-truncated")) } }
            }
            div.scroll {
                table.data data-testid="hunt-table" {
                    thead { tr { @for c in &r.columns { th scope="col" { (c) } } } }
                    tbody {
                        @for row in &r.rows {
                            tr { @for c in &r.columns { td { (cell(row.get(c))) } } }
                        }
                    }
                }
            }
        }
    }
}

fn cell(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[derive(Debug, Deserialize)]
pub struct HuntForm {
    csrf: String,
    sql: String,
    #[serde(default)]
    format: String,
}

pub async fn run(State(state): State<AppState>, s: Session, Form(f): Form<HuntForm>) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let p = match require(&s, PageId::Hunt) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let req = QueryRequest {
        sql: f.sql.clone(),
        max_rows: Some(if f.format == "html" || f.format.is_empty() {
            1000
        } else {
            10_000
        }),
        timeout_secs: None,
    };
    let result = query::query(State(state), s.caller.clone(), ApiJson(req)).await;
    match (f.format.as_str(), result) {
        ("csv", Ok(axum::Json(r))) => download(to_csv(&r), "text/csv; charset=utf-8", "hunt.csv"),
        ("json", Ok(axum::Json(r))) => download(
            serde_json::to_string_pretty(&r.rows).unwrap_or_default(),
            "application/json",
            "hunt.json",
        ),
        (_, Ok(axum::Json(r))) => page(&s, &s.lang.t(p.key), body(&s, &f.sql, Some(&r), None)),
        (_, Err(e)) if e.status.is_client_error() || e.status.as_u16() == 504 => {
            let mut resp = page(
                &s,
                &s.lang.t(p.key),
                body(&s, &f.sql, None, Some(&e.detail)),
            );
            *resp.status_mut() = e.status;
            resp
        }
        (_, Err(e)) => api_error(s.lang, e),
    }
}

fn download(text: String, content_type: &'static str, name: &str) -> Response {
    let mut r = text.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// RFC 4180 CSV: a header row, fields quoted when they hold a comma, a
/// quote or a line break.
fn to_csv(r: &QueryResponse) -> String {
    fn field(out: &mut String, s: &str) {
        if s.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&s.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(s);
        }
    }
    let mut out = String::new();
    for (i, c) in r.columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, c);
    }
    out.push_str("\r\n");
    for row in &r.rows {
        for (i, c) in r.columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, &cell(row.get(c)));
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut row = serde_json::Map::new();
        row.insert("a".into(), serde_json::json!("x,y"));
        row.insert("b".into(), serde_json::json!("say \"hi\"\nthere"));
        row.insert("c".into(), serde_json::json!(3));
        let r = QueryResponse {
            columns: vec!["a".into(), "b".into(), "c".into()],
            rows: vec![row],
            truncated: false,
            elapsed_ms: 1,
            orgs_in_scope: 1,
        };
        assert_eq!(
            to_csv(&r),
            "a,b,c\r\n\"x,y\",\"say \"\"hi\"\"\nthere\",3\r\n"
        );
    }
}
