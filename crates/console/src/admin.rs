//! The org tree, users, tokens and Protective DNS policy (allow and block
//! lists per org): lists, and the forms that change them, each through the
//! API handler that the same change over HTTP would go through.

use crate::layout::{api_error, csrf_field, page, time, url_encode};
use crate::pages::{require, PageId};
use crate::session::Session;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use mimamori_api::error::{ApiJson, ApiPath, ApiQuery};
use mimamori_api::routes::dns::{self, DnsPolicyParams};
use mimamori_api::routes::{identity, PageParams};
use mimamori_api::AppState;
use mimamori_core::{Action, Org, Role};
use mimamori_store::{DnsListKind, NewDnsPolicyEntry, NewToken, NewUser};
use serde::Deserialize;
use std::collections::HashMap;

/// The orgs in scope, parents before children.
fn tree(orgs: &HashMap<String, Org>) -> Vec<&Org> {
    let mut v: Vec<&Org> = orgs.values().collect();
    v.sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    v
}

fn org_select(s: &Session, orgs: &HashMap<String, Org>) -> Markup {
    html! {
        select #org_id name="org_id" required {
            @for o in tree(orgs) {
                option value=(o.id.as_str()) selected[o.id.as_str() == s.principal().org_id.as_str()] {
                    (" ".repeat(o.path.depth().saturating_sub(1) * 2)) (o.slug) " — " (o.name)
                }
            }
        }
    }
}

pub async fn orgs(State(state): State<AppState>, s: Session) -> Response {
    let p = match require(&s, PageId::Orgs) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let orgs = crate::data::orgs(&state, &s).await;
    let body = html! {
        table.data data-testid="org-table" {
            thead { tr {
                th scope="col" { (lang.t("col-org")) }
                th scope="col" { (lang.t("org-kind")) }
                th scope="col" { (lang.t("org-sector")) }
                th scope="col" { (lang.t("org-networks")) }
                th scope="col" { (lang.t("org-domains")) }
                th scope="col" { (lang.t("page-alerts")) }
            } }
            tbody {
                @for o in tree(&orgs) {
                    tr {
                        th scope="row" class={ "depth-" (o.path.depth().min(6)) } {
                            code { (o.slug) } " " (o.name)
                        }
                        td { (o.kind.as_str()) }
                        td { (o.sector.as_deref().unwrap_or("")) }
                        td { @for n in &o.networks { code { (n.to_string()) } " " } }
                        td { @for d in &o.domains { code { (d) } " " } }
                        td { a href={ "/console/alerts?open=true&org_id=" (url_encode(o.id.as_str())) } { (lang.t("org-open-alerts")) } }
                    }
                }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

pub async fn users(State(state): State<AppState>, s: Session) -> Response {
    users_page(state, s, None).await
}

async fn users_page(state: AppState, s: Session, error: Option<String>) -> Response {
    let p = match require(&s, PageId::Users) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let params = PageParams {
        cursor: None,
        limit: Some(500),
    };
    let list = match identity::list_users(State(state.clone()), s.caller.clone(), ApiQuery(params))
        .await
    {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let manage = s.principal().can(Action::UserManage);
    let body = html! {
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        table.data data-testid="user-table" {
            thead { tr {
                th scope="col" { (lang.t("field-username")) }
                th scope="col" { (lang.t("col-org")) }
                th scope="col" { (lang.t("user-role")) }
                th scope="col" { (lang.t("user-name")) }
                th scope="col" { (lang.t("user-created")) }
                th scope="col" { (lang.t("col-status")) }
            } }
            tbody {
                @for u in &list.items {
                    tr {
                        td { code { (u.username) } }
                        td { (crate::data::slug(&orgs, &u.org_id)) }
                        td { (u.role.as_str()) }
                        td { (u.display_name.as_deref().unwrap_or("")) }
                        td { (time(u.created_at)) }
                        td {
                            @if u.disabled_at.is_some() { (lang.t("user-disabled")) }
                            @else if manage {
                                form.inline method="post" action={ "/console/users/" (url_encode(&u.id)) "/disable" } {
                                    (csrf_field(&s))
                                    button type="submit" { (lang.t("user-disable")) }
                                }
                            } @else { (lang.t("user-active")) }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { (lang.t("user-add")) }
            form.import method="post" action="/console/users" {
                (csrf_field(&s))
                label for="org_id" { (lang.t("col-org")) } (org_select(&s, &orgs))
                label for="username" { (lang.t("field-username")) }
                input #username name="username" required autocomplete="off";
                label for="display_name" { (lang.t("user-name")) }
                input #display_name name="display_name";
                label for="role" { (lang.t("user-role")) }
                select #role name="role" {
                    @for r in mimamori_core::role::ALL_ROLES.into_iter().filter(|r| r.for_humans()) {
                        option value=(r.as_str()) selected[r == Role::OrgAnalyst] { (r.as_str()) }
                    }
                }
                label for="password" { (lang.t("field-password")) " " span.muted { (lang.t("user-password-rule")) } }
                input #password name="password" type="password" required minlength="12" autocomplete="new-password";
                button type="submit" { (lang.t("user-add")) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    csrf: String,
    org_id: String,
    username: String,
    #[serde(default)]
    display_name: String,
    role: String,
    password: String,
}

pub async fn add_user(
    State(state): State<AppState>,
    s: Session,
    Form(f): Form<UserForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let Some(role) = Role::parse(&f.role) else {
        return users_page(state, s, Some(format!("unknown role {:?}", f.role))).await;
    };
    let new = NewUser {
        org_id: f.org_id,
        username: f.username.trim().to_string(),
        display_name: (!f.display_name.trim().is_empty())
            .then(|| f.display_name.trim().to_string()),
        email: None,
        role,
        password: f.password,
    };
    match identity::create_user(State(state.clone()), s.caller.clone(), ApiJson(new)).await {
        Ok(_) => Redirect::to("/console/users").into_response(),
        Err(e)
            if e.status.is_client_error()
                && e.status.as_u16() != 403
                && e.status.as_u16() != 404 =>
        {
            users_page(state, s, Some(e.detail)).await
        }
        Err(e) => api_error(s.lang, e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn disable_user(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    match identity::disable_user(State(state), s.caller.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/console/users").into_response(),
        Err(e) => api_error(s.lang, e),
    }
}

pub async fn tokens(State(state): State<AppState>, s: Session) -> Response {
    tokens_page(state, s, None, None).await
}

async fn tokens_page(
    state: AppState,
    s: Session,
    issued: Option<(String, String)>,
    error: Option<String>,
) -> Response {
    let p = match require(&s, PageId::Tokens) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let params = PageParams {
        cursor: None,
        limit: Some(500),
    };
    let list = match identity::list_tokens(State(state.clone()), s.caller.clone(), ApiQuery(params))
        .await
    {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let manage = s.principal().can(Action::TokenManage);
    let body = html! {
        @if let Some((name, secret)) = &issued {
            div.notice role="status" data-testid="issued-token" {
                p { (lang.ta("token-issued", &[("name", name.clone().into())])) }
                p { code.secret { (secret) } }
            }
        }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        table.data data-testid="token-table" {
            thead { tr {
                th scope="col" { (lang.t("token-name")) }
                th scope="col" { (lang.t("col-org")) }
                th scope="col" { (lang.t("user-role")) }
                th scope="col" { (lang.t("user-created")) }
                th scope="col" { (lang.t("token-expires")) }
                th scope="col" { (lang.t("col-status")) }
            } }
            tbody {
                @for t in &list.items {
                    tr {
                        td { (t.name) }
                        td { (crate::data::slug(&orgs, &t.org_id)) }
                        td { (t.role.as_str()) }
                        td { (time(t.created_at)) }
                        td { @if let Some(x) = t.expires_at { (time(x)) } @else { (lang.t("token-never")) } }
                        td {
                            @if t.revoked_at.is_some() { (lang.t("token-revoked")) }
                            @else if manage {
                                form.inline method="post" action={ "/console/tokens/" (url_encode(&t.id)) "/revoke" } {
                                    (csrf_field(&s))
                                    button type="submit" { (lang.t("token-revoke")) }
                                }
                            } @else { (lang.t("user-active")) }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { (lang.t("token-add")) }
            form.import method="post" action="/console/tokens" {
                (csrf_field(&s))
                label for="org_id" { (lang.t("col-org")) } (org_select(&s, &orgs))
                label for="name" { (lang.t("token-name")) }
                input #name name="name" required placeholder="fluent-bit on dns01";
                label for="role" { (lang.t("user-role")) }
                select #role name="role" {
                    @for r in mimamori_core::role::ALL_ROLES {
                        option value=(r.as_str()) selected[r == Role::Sensor] { (r.as_str()) }
                    }
                }
                label for="days" { (lang.t("token-days")) }
                input #days name="days" type="number" min="0" max="3650" value="365";
                button type="submit" { (lang.t("token-add")) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

#[derive(Debug, Deserialize)]
pub struct TokenForm {
    csrf: String,
    org_id: String,
    name: String,
    role: String,
    #[serde(default)]
    days: String,
}

pub async fn add_token(
    State(state): State<AppState>,
    s: Session,
    Form(f): Form<TokenForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let Some(role) = Role::parse(&f.role) else {
        return tokens_page(state, s, None, Some(format!("unknown role {:?}", f.role))).await;
    };
    let days: u64 = match f.days.trim() {
        "" => 0,
        d => match d.parse() {
            Ok(n) => n,
            Err(_) => {
                return tokens_page(state, s, None, Some(format!("days: {d:?} is not a number")))
                    .await
            }
        },
    };
    let new = NewToken {
        org_id: f.org_id,
        name: f.name.trim().to_string(),
        role,
        expires_in_secs: (days > 0).then_some(days * 86_400),
    };
    match identity::create_token(State(state.clone()), s.caller.clone(), ApiJson(new)).await {
        // The secret is shown on this answer only: it is not stored.
        Ok((_, axum::Json(issued))) => {
            let shown = (issued.token.name.clone(), issued.secret.clone());
            tokens_page(state, s, Some(shown), None).await
        }
        Err(e) if e.status.is_client_error() && e.status.as_u16() != 404 => {
            tokens_page(state, s, None, Some(e.detail)).await
        }
        Err(e) => api_error(s.lang, e),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    match identity::revoke_token(State(state), s.caller.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/console/tokens").into_response(),
        Err(e) => api_error(s.lang, e),
    }
}

pub async fn dns(State(state): State<AppState>, s: Session) -> Response {
    dns_page(state, s, None).await
}

async fn dns_page(state: AppState, s: Session, error: Option<String>) -> Response {
    let p = match require(&s, PageId::DnsPolicy) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let lang = s.lang;
    let params = DnsPolicyParams {
        org_id: None,
        cursor: None,
        limit: Some(500),
    };
    let list = match dns::list(State(state.clone()), s.caller.clone(), ApiQuery(params)).await {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(lang, e),
    };
    let orgs = crate::data::orgs(&state, &s).await;
    let manage = s.principal().can(Action::DnsPolicyManage);
    let body = html! {
        p.muted { (lang.t("dns-help")) }
        @if let Some(e) = &error { p.error role="alert" { (e) } }
        @if list.items.is_empty() {
            p { (lang.t("dns-none")) }
        } @else {
            table.data data-testid="dns-table" {
                thead { tr {
                    th scope="col" { (lang.t("col-org")) }
                    th scope="col" { (lang.t("dns-list")) }
                    th scope="col" { (lang.t("dns-domain")) }
                    th scope="col" { (lang.t("dns-comment")) }
                    th scope="col" { (lang.t("user-created")) }
                    @if manage { th scope="col" { span.visually-hidden { (lang.t("dns-remove")) } } }
                } }
                tbody {
                    @for e in &list.items {
                        tr {
                            td { (crate::data::slug(&orgs, &e.org_id)) }
                            td { (if e.kind == DnsListKind::Allow { lang.t("dns-allow") } else { lang.t("dns-block") }) }
                            td { code { (e.domain) } }
                            td { (e.comment.as_deref().unwrap_or("")) }
                            td { (time(e.created_at)) }
                            @if manage {
                                td {
                                    form.inline method="post" action={ "/console/dns/" (url_encode(&e.id)) "/remove" } {
                                        (csrf_field(&s))
                                        button type="submit" aria-label={ (lang.t("dns-remove")) " " (e.domain) } { (lang.t("dns-remove")) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if manage {
            h2 { (lang.t("dns-add")) }
            form.import method="post" action="/console/dns" {
                (csrf_field(&s))
                label for="org_id" { (lang.t("col-org")) } (org_select(&s, &orgs))
                label for="kind" { (lang.t("dns-list")) }
                select #kind name="kind" {
                    option value="block" { (lang.t("dns-block")) }
                    option value="allow" { (lang.t("dns-allow")) }
                }
                label for="domain" { (lang.t("dns-domain")) }
                input #domain name="domain" required placeholder="example.com";
                label for="comment" { (lang.t("dns-comment")) }
                input #comment name="comment";
                button type="submit" { (lang.t("dns-add")) }
            }
        }
    };
    page(&s, &lang.t(p.key), body)
}

#[derive(Debug, Deserialize)]
pub struct DnsForm {
    csrf: String,
    org_id: String,
    kind: String,
    domain: String,
    #[serde(default)]
    comment: String,
}

pub async fn add_dns(
    State(state): State<AppState>,
    s: Session,
    Form(f): Form<DnsForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    let kind = match f.kind.as_str() {
        "allow" => DnsListKind::Allow,
        "block" => DnsListKind::Block,
        other => return dns_page(state, s, Some(format!("unknown list {other:?}"))).await,
    };
    let new = NewDnsPolicyEntry {
        org_id: f.org_id,
        kind,
        domain: f.domain.trim().to_string(),
        comment: (!f.comment.trim().is_empty()).then(|| f.comment.trim().to_string()),
    };
    match dns::add(State(state.clone()), s.caller.clone(), ApiJson(new)).await {
        Ok(_) => Redirect::to("/console/dns").into_response(),
        Err(e)
            if e.status.is_client_error()
                && e.status.as_u16() != 403
                && e.status.as_u16() != 404 =>
        {
            dns_page(state, s, Some(e.detail)).await
        }
        Err(e) => api_error(s.lang, e),
    }
}

pub async fn remove_dns(
    State(state): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(r) = s.check_csrf(&f.csrf) {
        return *r;
    }
    match dns::remove(State(state), s.caller.clone(), ApiPath(id)).await {
        Ok(_) => Redirect::to("/console/dns").into_response(),
        Err(e) => api_error(s.lang, e),
    }
}
