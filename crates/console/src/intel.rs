//! Intel: search the indicators the user's org may see, an indicator's
//! detail with its sightings across orgs, and import (STIX 2.1, MISP,
//! lists) by pasting or choosing a file.

use crate::layout::{api_error, csrf_field, page, time, url_encode};
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::Form;
use maud::html;
use mimamori_api::error::{ApiBytes, ApiPath, ApiQuery};
use mimamori_api::routes::intel::{self, ImportParams, IndicatorParams};
use mimamori_api::AppState;
use mimamori_core::Action;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    contains: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    active: String,
    #[serde(default)]
    cursor: String,
}

const KINDS: [&str; 11] = [
    "domain",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "url",
    "md5",
    "sha1",
    "sha256",
    "email",
    "file-name",
];

pub async fn list(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<SearchQuery>,
) -> Response {
    let p = match require(&s, PageId::Intel) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let params = IndicatorParams {
        kind: (!q.kind.is_empty()).then(|| q.kind.clone()),
        contains: (!q.contains.trim().is_empty()).then(|| q.contains.trim().to_string()),
        active: q.active == "true",
        cursor: (!q.cursor.is_empty()).then(|| q.cursor.clone()),
        limit: Some(50),
    };
    let list = match intel::list(State(state.clone()), s.caller.clone(), ApiQuery(params)).await {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let may_import = s.principal().can(Action::IntelWrite);
    let body = html! {
        form.filters method="get" action="/console/intel" role="search" aria-label=(lang.t("filters")) {
            label { (lang.t("intel-contains")) " " input type="search" name="contains" value=(q.contains); }
            label { (lang.t("col-kind")) " "
                select name="kind" {
                    option value="" { (lang.t("any")) }
                    @for k in KINDS { option value=(k) selected[q.kind == k] { (k) } }
                }
            }
            label.check { input type="checkbox" name="active" value="true" checked[q.active == "true"]; " " (lang.t("intel-active-only")) }
            button type="submit" { (lang.t("apply")) }
            @if may_import { " " a href="/console/intel/import" { (lang.t("intel-import")) } }
        }
        @if list.items.is_empty() {
            p data-testid="no-indicators" { (lang.t("intel-none")) }
        } @else {
            table.data data-testid="indicator-table" {
                thead { tr {
                    th scope="col" { (lang.t("col-kind")) }
                    th scope="col" { (lang.t("intel-value")) }
                    th scope="col" { "TLP" }
                    th.num scope="col" { (lang.t("intel-confidence")) }
                    th scope="col" { (lang.t("intel-owner")) }
                    th.num scope="col" { (lang.t("intel-sightings")) }
                    th scope="col" { (lang.t("col-last-seen")) }
                } }
                tbody {
                    @for i in &list.items {
                        tr {
                            td { (i.indicator.kind.name()) }
                            td { a href={ "/console/intel/" (url_encode(&i.id)) } { code { (i.indicator.value) } } }
                            td { (i.indicator.tlp.to_string()) }
                            td.num { (i.indicator.confidence) }
                            td { (crate::data::slug(&orgs, &i.owner_org_id)) }
                            td.num { (i.sightings) }
                            td { @if let Some(t) = i.last_sighting { (time(t)) } }
                        }
                    }
                }
            }
        }
        nav.pager aria-label=(lang.t("pages")) {
            @if let Some(c) = &list.next_cursor {
                a rel="next" href={ "/console/intel?contains=" (url_encode(&q.contains)) "&kind=" (url_encode(&q.kind)) "&active=" (url_encode(&q.active)) "&cursor=" (url_encode(c)) } { (lang.t("next-page")) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

pub async fn detail(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let p = match require(&s, PageId::Indicator) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let i = match intel::get(State(state.clone()), s.caller.clone(), ApiPath(id)).await {
        Ok(axum::Json(i)) => i,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let ind = &i.indicator;
    let body = html! {
        h2.title { code { (ind.value) } }
        dl.facts {
            dt { (lang.t("col-kind")) } dd { (ind.kind.name()) }
            dt { "TLP" } dd { (ind.tlp.to_string()) }
            dt { (lang.t("intel-confidence")) } dd { (ind.confidence) }
            dt { (lang.t("intel-owner")) }
            dd { (crate::data::slug_and_name(&orgs, &i.owner_org_id)) }
            dt { (lang.t("intel-detection")) }
            dd { @if ind.detection && !ind.revoked { (lang.t("yes")) } @else { (lang.t("no")) } }
            dt { (lang.t("intel-sources")) } dd { (ind.sources.join(", ")) }
            @if !ind.tags.is_empty() { dt { (lang.t("intel-tags")) } dd { (ind.tags.join(", ")) } }
            @if !ind.related.is_empty() { dt { (lang.t("intel-related")) } dd { (ind.related.join(", ")) } }
            @if !ind.attack_techniques.is_empty() { dt { "ATT&CK" } dd { (ind.attack_techniques.join(", ")) } }
            @if let Some(x) = &ind.stix_id { dt { "STIX" } dd { code { (x) } } }
        }
        h2 { (lang.t("intel-sightings-title")) }
        @if i.sighting_orgs.is_empty() {
            p { (lang.t("intel-no-sightings")) }
        } @else {
            p data-testid="sightings" {
                (lang.ta("intel-sightings-summary", &[("count", i.sightings.into())]))
                " "
                @for o in &i.sighting_orgs {
                    a href={ "/console/alerts?org_id=" (url_encode(o)) } { code { (crate::data::slug(&orgs, o)) } }
                    " "
                }
                @if let Some(t) = i.last_sighting { " · " (lang.t("col-last-seen")) " " (time(t)) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

pub async fn import_form(s: Session) -> Response {
    let p = match require(&s, PageId::IntelImport) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    page(&s, &s.lang.t(p.key), import_body(&s, None))
}

fn import_body(s: &Session, error: Option<&str>) -> maud::Markup {
    let lang = s.lang;
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.import method="post" action="/console/intel/import" {
            (csrf_field(s))
            label for="format" { (lang.t("intel-format")) }
            select #format name="format" {
                option value="stix" { "STIX 2.1 bundle (JSON)" }
                option value="misp" { "MISP event (JSON)" }
                option value="plain" { (lang.t("intel-format-plain")) }
                option value="hosts" { "hosts" }
                option value="csv" { "CSV" }
            }
            label for="tlp" { (lang.t("intel-default-tlp")) }
            select #tlp name="tlp" {
                @for t in ["clear", "green", "amber", "amber+strict", "red"] {
                    option value=(t) selected[t == "amber"] { (t.to_uppercase()) }
                }
            }
            label for="source" { (lang.t("intel-source")) }
            input #source name="source" placeholder="feed or report name";
            label for="file" { (lang.t("intel-file")) }
            input #file type="file" data-fills="document";
            label for="document" { (lang.t("intel-document")) }
            textarea #document name="document" rows="14" required {}
            button type="submit" { (lang.t("intel-import")) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ImportForm {
    csrf: String,
    format: String,
    tlp: String,
    #[serde(default)]
    source: String,
    document: String,
}

pub async fn import(
    State(state): State<AppState>,
    s: Session,
    Form(f): Form<ImportForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let p = match require(&s, PageId::IntelImport) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let params = ImportParams {
        format: f.format,
        org_id: None,
        source: (!f.source.trim().is_empty()).then(|| f.source.trim().to_string()),
        tlp: Some(f.tlp),
        confidence: None,
        share_with: None,
        share_groups: None,
        strict: false,
        subdomains: None,
        retro: None,
    };
    let body = axum::body::Bytes::from(f.document.into_bytes());
    let r = match intel::import(
        State(state),
        s.caller.clone(),
        ApiQuery(params),
        ApiBytes(body),
    )
    .await
    {
        Ok(axum::Json(r)) => r,
        Err(e) => {
            let mut resp = page(&s, &lang.t(p.key), import_body(&s, Some(&e.detail)));
            *resp.status_mut() = e.status;
            return resp;
        }
    };
    let body = html! {
        p role="status" data-testid="import-result" {
            (lang.ta("intel-imported", &[
                ("count", (r.stored.inserted as i64).into()),
                ("updated", (r.stored.updated as i64).into()),
                ("unchanged", (r.stored.unchanged as i64).into()),
                ("rejected", (r.rejected as i64).into()),
            ]))
        }
        @if let Some(h) = &r.retro_hunt_id {
            p { (lang.t("intel-retro-started")) " " code { (h) } }
        }
        @if !r.rejects.is_empty() {
            h2 { (lang.t("intel-rejects")) }
            ul { @for x in r.rejects.iter().take(50) { li { code { (x.path) } " — " (x.reason) } } }
        }
        @if !r.unsupported.is_empty() {
            h2 { (lang.t("intel-unsupported")) }
            ul { @for x in r.unsupported.iter().take(50) { li { code { (x.path) } " — " (x.reason) } } }
        }
        p { a href="/console/intel" { (lang.t("intel-see-list")) } }
    };
    page(&s, &lang.t(p.key), body)
}
