//! The audit log of the user's scope.

use crate::layout::{api_error, page, time, url_encode};
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use mimamori_api::error::ApiQuery;
use mimamori_api::routes::{audit, PageParams};
use mimamori_api::AppState;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    cursor: String,
}

pub async fn list(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<AuditQuery>,
) -> Response {
    let p = match require(&s, PageId::Audit) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let params = PageParams {
        cursor: (!q.cursor.is_empty()).then(|| q.cursor.clone()),
        limit: Some(100),
    };
    let list = match audit::list(State(state.clone()), s.caller.clone(), ApiQuery(params)).await {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let body = html! {
        table.data data-testid="audit-table" {
            thead { tr {
                th scope="col" { (lang.t("col-time")) }
                th scope="col" { (lang.t("col-org")) }
                th scope="col" { (lang.t("col-actor")) }
                th scope="col" { (lang.t("col-action")) }
                th scope="col" { (lang.t("col-target")) }
                th scope="col" { (lang.t("col-from")) }
            } }
            tbody {
                @for e in &list.items {
                    tr {
                        td { (time(e.at)) }
                        td { (crate::data::slug(&orgs, &e.org_id)) }
                        td { code { (e.actor) } @if let Some(r) = &e.actor_role { " " span.muted { (r) } } }
                        td { code { (e.action) } }
                        td {
                            @if e.target_type == "alert" {
                                @if let Some(t) = &e.target_id {
                                    a href={ "/console/alerts/" (url_encode(t)) } { (e.target_type) " " (t) }
                                }
                            } @else {
                                (e.target_type) @if let Some(t) = &e.target_id { " " code { (t) } }
                            }
                        }
                        td { (e.remote_addr.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        nav.pager aria-label=(lang.t("pages")) {
            @if let Some(c) = &list.next_cursor {
                a rel="next" href={ "/console/audit?cursor=" (url_encode(c)) } { (lang.t("next-page")) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}
