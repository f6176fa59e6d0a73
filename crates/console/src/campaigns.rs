//! Campaigns: the same indicator or rule seen at several orgs, as one.

use crate::layout::{api_error, page, time, url_encode};
use crate::overview::severity_key;
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use mimamori_api::error::{ApiPath, ApiQuery};
use mimamori_api::routes::alerts::{self, AlertParams};
use mimamori_api::AppState;

pub async fn list(State(state): State<AppState>, s: Session) -> Response {
    let p = match require(&s, PageId::Campaigns) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let items = match alerts::campaigns(State(state.clone()), s.caller.clone()).await {
        Ok(axum::Json(l)) => l.items,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let body = html! {
        @if items.is_empty() {
            p { (lang.t("campaigns-none")) }
        } @else {
            table.data data-testid="campaign-table" {
                thead { tr {
                    th scope="col" { (lang.t("col-title")) }
                    th scope="col" { (lang.t("col-severity")) }
                    th scope="col" { (lang.t("col-orgs")) }
                    th.num scope="col" { (lang.t("col-alerts")) }
                    th scope="col" { (lang.t("col-first-seen")) }
                    th scope="col" { (lang.t("col-last-seen")) }
                } }
                tbody {
                    @for c in &items {
                        tr {
                            td { a href={ "/console/campaigns/" (url_encode(&c.id)) } { (c.title) } }
                            td { span class={ "sev sev-" (c.severity.as_str()) } { (lang.t(severity_key(c.severity))) } }
                            td {
                                @for o in &c.org_ids {
                                    code { (crate::data::slug(&orgs, o)) } " "
                                }
                            }
                            td.num { (c.alert_count) }
                            td { (time(c.first_seen)) }
                            td { (time(c.last_seen)) }
                        }
                    }
                }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

pub async fn detail(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let p = match require(&s, PageId::Campaign) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let c =
        match alerts::campaign(State(state.clone()), s.caller.clone(), ApiPath(id.clone())).await {
            Ok(axum::Json(c)) => c,
            Err(e) => return api_error(lang, e),
        };
    let members = match alerts::list(
        State(state.clone()),
        s.caller.clone(),
        ApiQuery(AlertParams {
            status: None,
            kind: None,
            campaign_id: Some(id),
            org_id: None,
            severity: None,
            open: None,
            cursor: None,
            limit: Some(500),
        }),
    )
    .await
    {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let body = html! {
        h2.title { (c.title) }
        dl.facts {
            dt { (lang.t("col-severity")) }
            dd { span class={ "sev sev-" (c.severity.as_str()) } { (lang.t(severity_key(c.severity))) } }
            dt { (lang.t("campaign-key")) } dd { code { (c.key) } }
            dt { (lang.t("col-orgs")) }
            dd { (lang.ta("campaign-orgs", &[("count", (c.org_ids.len() as i64).into())])) }
            dt { (lang.t("col-first-seen")) } dd { (time(c.first_seen)) }
            dt { (lang.t("col-last-seen")) } dd { (time(c.last_seen)) }
        }
        h2 { (lang.t("campaign-members")) }
        (crate::alerts::alert_table(&s, &members.items, &orgs))
    };
    page(&s, &lang.t(p.key), body)
}
