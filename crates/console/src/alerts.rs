//! Alerts: the filtered, paged list; an alert's detail with its context,
//! comments and history; the workflow (status, assignee, comments).

use crate::layout::{api_error, csrf_field, page, time, url_encode};
use crate::overview::{severity_key, status_key};
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use mimamori_api::error::{ApiJson, ApiPath, ApiQuery};
use mimamori_api::routes::alerts::{self, AlertParams, AlertPatch, NewComment};
use mimamori_api::AppState;
use mimamori_core::Action;
use mimamori_store::{Alert, AlertKind, AlertStatus, Severity};
use serde::Deserialize;

/// Rows per page of the list.
pub const PAGE_ROWS: u32 = 50;

/// The list's filters as the browser sends them (empty fields = no filter).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    org_id: String,
    #[serde(default)]
    campaign_id: String,
    #[serde(default)]
    open: String,
    #[serde(default)]
    cursor: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

impl ListQuery {
    fn params(&self, limit: u32) -> AlertParams {
        AlertParams {
            status: some(&self.status),
            kind: some(&self.kind),
            campaign_id: some(&self.campaign_id),
            org_id: some(&self.org_id),
            severity: some(&self.severity),
            open: (self.open == "true").then_some(true),
            cursor: some(&self.cursor),
            limit: Some(limit),
        }
    }

    /// The query string of these filters with another cursor.
    fn with_cursor(&self, cursor: &str) -> String {
        let mut q = vec![];
        for (k, v) in [
            ("status", &self.status),
            ("severity", &self.severity),
            ("kind", &self.kind),
            ("org_id", &self.org_id),
            ("campaign_id", &self.campaign_id),
            ("open", &self.open),
        ] {
            if !v.is_empty() {
                q.push(format!("{k}={}", url_encode(v)));
            }
        }
        q.push(format!("cursor={}", url_encode(cursor)));
        q.join("&")
    }
}

pub async fn list(
    State(state): State<AppState>,
    s: Session,
    Query(q): Query<ListQuery>,
) -> Response {
    let p = match require(&s, PageId::Alerts) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let listed = alerts::list(
        State(state.clone()),
        s.caller.clone(),
        ApiQuery(q.params(PAGE_ROWS)),
    )
    .await;
    let list = match listed {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let mut org_opts: Vec<_> = orgs.values().collect();
    org_opts.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    let body = html! {
        form.filters method="get" action="/console/alerts" role="search" aria-label=(lang.t("filters")) {
            label { (lang.t("col-status")) " "
                select name="status" {
                    option value="" { (lang.t("any")) }
                    @for st in AlertStatus::ALL {
                        option value=(st.as_str()) selected[q.status == st.as_str()] { (lang.t(status_key(st))) }
                    }
                }
            }
            label { (lang.t("col-severity")) " "
                select name="severity" {
                    option value="" { (lang.t("any")) }
                    @for sev in Severity::ALL.iter().rev() {
                        option value=(sev.as_str()) selected[q.severity == sev.as_str()] { (lang.t(severity_key(*sev))) }
                    }
                }
            }
            label { (lang.t("col-kind")) " "
                select name="kind" {
                    option value="" { (lang.t("any")) }
                    @for k in ["indicator", "sigma", "correlation", "system"] {
                        option value=(k) selected[q.kind == k] { (k) }
                    }
                }
            }
            @if org_opts.len() > 1 {
                label { (lang.t("col-org")) " "
                    select name="org_id" {
                        option value="" { (lang.t("any")) }
                        @for o in &org_opts {
                            option value=(o.id.as_str()) selected[q.org_id == o.id.as_str()] { (o.slug) " — " (o.name) }
                        }
                    }
                }
            }
            label.check {
                input type="checkbox" name="open" value="true" checked[q.open == "true"];
                " " (lang.t("only-open"))
            }
            @if !q.campaign_id.is_empty() {
                input type="hidden" name="campaign_id" value=(q.campaign_id);
            }
            button type="submit" { (lang.t("apply")) }
            " " a href="/console/alerts" { (lang.t("clear")) }
        }
        @if list.items.is_empty() {
            p data-testid="no-alerts" { (lang.t("alerts-none")) }
        } @else {
            (alert_table(&s, &list.items, &orgs))
        }
        nav.pager aria-label=(lang.t("pages")) {
            @if !q.cursor.is_empty() {
                a href="/console/alerts" { (lang.t("first-page")) }
                " "
            }
            @if let Some(c) = &list.next_cursor {
                a rel="next" href={ "/console/alerts?" (q.with_cursor(c)) } { (lang.t("next-page")) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

/// A table of alerts (the list, a campaign's members).
pub fn alert_table(
    s: &Session,
    items: &[Alert],
    orgs: &std::collections::HashMap<String, mimamori_core::Org>,
) -> Markup {
    let lang = s.lang;
    html! {
        table.data data-testid="alert-table" {
            thead { tr {
                th scope="col" { (lang.t("col-last-seen")) }
                th scope="col" { (lang.t("col-org")) }
                th scope="col" { (lang.t("col-severity")) }
                th scope="col" { (lang.t("col-title")) }
                th scope="col" { (lang.t("col-entity")) }
                th scope="col" { (lang.t("col-status")) }
                th.num scope="col" { (lang.t("col-events")) }
            } }
            tbody {
                @for a in items {
                    tr {
                        td { (time(a.last_seen)) }
                        td { (crate::data::slug(orgs, &a.org_id)) }
                        td { span class={ "sev sev-" (a.severity.as_str()) } { (lang.t(severity_key(a.severity))) } }
                        td {
                            a href={ "/console/alerts/" (url_encode(&a.id)) } { (a.title) }
                            @if a.campaign_id.is_some() { " " span.badge { (lang.t("in-campaign")) } }
                            @if a.retro { " " span.badge { (lang.t("retro")) } }
                        }
                        td { code { (a.entity) } }
                        td { (lang.t(status_key(a.status))) }
                        td.num { (a.event_count) }
                    }
                }
            }
        }
    }
}

pub async fn detail(State(state): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let p = match require(&s, PageId::Alert) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let d = match alerts::get(State(state.clone()), s.caller.clone(), ApiPath(id)).await {
        Ok(axum::Json(d)) => d,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let a = &d.alert;
    let may_triage = s.principal().can(Action::AlertTriage);
    // "Assign to me" names the user as people read it: user@org.
    let me = match &s.principal().user_id {
        Some(u) => {
            let own = mimamori_core::Scope::Only(s.principal().org_path.clone());
            match state.store.user_get(&own, u.as_str()).await {
                Ok(user) => format!("{}@{}", user.username, s.org_slug),
                Err(_) => format!("user:{}", u.as_str()),
            }
        }
        None => format!("token:{}", s.principal().token_id.as_str()),
    };
    let body = html! {
        p.lead {
            span class={ "sev sev-" (a.severity.as_str()) } { (lang.t(severity_key(a.severity))) }
            " " strong data-testid="alert-status" { (lang.t(status_key(a.status))) }
            @if let Some(who) = &a.assignee { " · " (lang.t("assigned-to")) " " code { (who) } }
        }
        h2.title data-testid="alert-title" { (a.title) }
        dl.facts {
            dt { (lang.t("col-org")) }
            dd { (crate::data::slug_and_name(&orgs, &a.org_id)) }
            dt { (lang.t("col-kind")) } dd { (kind_name(a.kind)) }
            dt { (lang.t("col-rule")) } dd { code { (a.rule_id) } }
            dt { (lang.t("col-entity")) } dd { code { (a.entity) } }
            dt { (lang.t("col-first-seen")) } dd { (time(a.first_seen)) }
            dt { (lang.t("col-last-seen")) } dd { (time(a.last_seen)) }
            dt { (lang.t("col-events")) } dd { (a.event_count) }
            @if !a.attack.is_empty() {
                dt { "ATT&CK" } dd { @for t in &a.attack { code { (t) } " " } }
            }
            @if let Some(c) = &a.campaign_id {
                dt { (lang.t("page-campaign")) }
                dd { a href={ "/console/campaigns/" (url_encode(c)) } { (c) } }
            }
        }
        @if may_triage {
            section.workflow aria-labelledby="h-workflow" {
                h2 #h-workflow { (lang.t("workflow")) }
                div.actions {
                    @for (to, label) in [
                        (AlertStatus::Acknowledged, lang.t("action-acknowledge")),
                        (AlertStatus::Investigating, lang.t("action-investigate")),
                        (AlertStatus::Resolved, lang.t("action-resolve")),
                        (AlertStatus::FalsePositive, lang.t("action-false-positive")),
                    ] {
                        @if a.status != to && a.status.can_move_to(to) {
                            form.inline method="post" action={ "/console/alerts/" (url_encode(&a.id)) "/status" } {
                                (csrf_field(&s))
                                input type="hidden" name="status" value=(to.as_str());
                                button type="submit" { (label) }
                            }
                        }
                    }
                    form.inline method="post" action={ "/console/alerts/" (url_encode(&a.id)) "/assign" } {
                        (csrf_field(&s))
                        @if a.assignee.as_deref() == Some(me.as_str()) {
                            input type="hidden" name="assignee" value="";
                            button type="submit" { (lang.t("action-unassign")) }
                        } @else {
                            input type="hidden" name="assignee" value=(me);
                            button type="submit" { (lang.t("action-assign-me")) }
                        }
                    }
                }
                form.comment method="post" action={ "/console/alerts/" (url_encode(&a.id)) "/comments" } {
                    (csrf_field(&s))
                    label for="comment" { (lang.t("comment-add")) }
                    textarea #comment name="body" rows="3" required maxlength="10000" {}
                    button type="submit" { (lang.t("comment-post")) }
                }
            }
        }
        section aria-labelledby="h-comments" {
            h2 #h-comments { (lang.t("comments")) }
            @if d.comments.is_empty() {
                p { (lang.t("comments-none")) }
            } @else {
                ol.comments {
                    @for c in &d.comments {
                        li { p.meta { code { (c.author) } " · " (time(c.at)) } p { (c.body) } }
                    }
                }
            }
        }
        section aria-labelledby="h-history" {
            h2 #h-history { (lang.t("history")) }
            @if d.history.is_empty() {
                p { (lang.t("history-none")) }
            } @else {
                ol.history data-testid="history" {
                    @for h in &d.history {
                        li { (time(h.at)) " " code { (h.actor) } " " (history_line(&s, h)) }
                    }
                }
            }
        }
        section aria-labelledby="h-context" {
            h2 #h-context { (lang.t("context")) }
            pre.json { (serde_json::to_string_pretty(&a.context).unwrap_or_default()) }
            @if !a.event_ids.is_empty() {
                h3 { (lang.t("matching-events")) }
                ul.ids { @for e in &a.event_ids { li { code { (e) } } } }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

fn kind_name(k: AlertKind) -> &'static str {
    match k {
        AlertKind::Indicator => "indicator",
        AlertKind::Sigma => "sigma",
        AlertKind::Correlation => "correlation",
        AlertKind::System => "system",
    }
}

fn history_line(s: &Session, h: &mimamori_store::AuditEntry) -> Markup {
    let lang = s.lang;
    let status = |v: &serde_json::Value| {
        v.as_str()
            .and_then(AlertStatus::parse)
            .map_or_else(|| v.to_string(), |st| lang.t(status_key(st)))
    };
    let before = &h.detail["before"];
    let after = &h.detail["after"];
    html! {
        @if h.action == "alert.update" && before["status"] != after["status"] {
            (lang.ta("history-status", &[("from", status(&before["status"]).into()), ("to", status(&after["status"]).into())]))
        } @else if h.action == "alert.update" {
            (lang.ta("history-assignee", &[("to", after["assignee"].as_str().unwrap_or("—").to_string().into())]))
        } @else {
            code { (h.action) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    csrf: String,
    status: String,
}

fn back_to(id: &str) -> Response {
    Redirect::to(&format!("/console/alerts/{}", url_encode(id))).into_response()
}

pub async fn set_status(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<StatusForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let Some(status) = AlertStatus::parse(&f.status) else {
        return crate::layout::error_page(
            s.lang,
            axum::http::StatusCode::BAD_REQUEST,
            &s.lang.t("error-bad-status"),
        );
    };
    let patch = AlertPatch {
        status: Some(status),
        assignee: None,
        suppress_hours: None,
        reason: None,
    };
    update(state, &s, id, patch).await
}

/// A workflow change through the API's `PATCH /api/v1/alerts/{id}`, then
/// back to the alert.
async fn update(state: AppState, s: &Session, id: String, patch: AlertPatch) -> Response {
    match alerts::update(
        State(state),
        s.caller.clone(),
        ApiPath(id.clone()),
        ApiJson(patch),
    )
    .await
    {
        Ok(_) => back_to(&id),
        Err(e) => api_error(s.lang, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct AssignForm {
    csrf: String,
    assignee: String,
}

pub async fn assign(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<AssignForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let patch = AlertPatch {
        status: None,
        assignee: Some(some(&f.assignee)),
        suppress_hours: None,
        reason: None,
    };
    update(state, &s, id, patch).await
}

#[derive(Debug, Deserialize)]
pub struct CommentForm {
    csrf: String,
    body: String,
}

pub async fn comment(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<CommentForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let new = NewComment { body: f.body };
    match alerts::comment(
        State(state),
        s.caller.clone(),
        ApiPath(id.clone()),
        ApiJson(new),
    )
    .await
    {
        Ok(_) => back_to(&id),
        Err(e) => api_error(s.lang, e),
    }
}
