//! The OpenAPI 3 document, generated from the handlers' annotations.

use crate::error::Problem;
use crate::routes::{self, List};
use mimamori_core::org::Contact;
use mimamori_core::{NewOrg, Org, OrgKind, OrgPatch, Role};
use mimamori_store::{
    Alert, AlertComment, AlertKind, AlertStatus, AuditEntry, Campaign, ChannelKind, DnsListKind,
    DnsPolicyEntry, Feed, IssuedToken, NewChannel, NewDnsPolicyEntry, NewFeed, NewToken, NewUser,
    NotifyChannel, Severity, StoredIndicator, Suppression, TokenInfo, UpsertReport, User,
};
use mimamori_store::{
    NewSharingGroup, Proposal, ProposalStatus, Report, ReportHit, ReportPage, SharingGroup,
    SharingGroupPatch,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "mimamori API", description = "Cross-organization security operations platform. Every call is scoped to the caller's org (or sub-tree); out-of-scope resources answer 404 exactly as absent ones do. Errors are RFC 7807 problem+json."),
    paths(
        routes::system::healthz, routes::system::readyz, routes::system::metrics, routes::system::openapi,
        routes::orgs::list, routes::orgs::get, routes::orgs::create, routes::orgs::update, routes::orgs::delete,
        routes::identity::whoami, routes::identity::login, routes::identity::logout,
        routes::identity::list_users, routes::identity::get_user, routes::identity::create_user, routes::identity::disable_user,
        routes::identity::list_tokens, routes::identity::get_token, routes::identity::create_token, routes::identity::revoke_token,
        routes::audit::list,
        routes::alerts::list, routes::alerts::summary, routes::alerts::get, routes::alerts::update, routes::alerts::comment,
        routes::alerts::campaigns, routes::alerts::campaign, routes::alerts::suppressions,
        routes::notify::list, routes::notify::create, routes::notify::get, routes::notify::delete, routes::notify::test,
        routes::intel::list, routes::intel::get, routes::intel::import, routes::intel::export, routes::intel::hunts, routes::intel::hunt,
        routes::intel::feeds, routes::intel::create_feed, routes::intel::feed, routes::intel::delete_feed, routes::intel::poll_feed,
        routes::sharing::list, routes::sharing::create, routes::sharing::get, routes::sharing::update, routes::sharing::delete,
        routes::reports::upload, routes::reports::list, routes::reports::get, routes::reports::document,
        routes::reports::accept, routes::reports::reject,
        routes::dns::list, routes::dns::add, routes::dns::get, routes::dns::remove, routes::dns::rpz_reload,
        routes::ingest::events,
        routes::query::query,
    ),
    components(schemas(Problem, Org, OrgKind, NewOrg, OrgPatch, Contact, Role, User, NewUser, TokenInfo, NewToken, IssuedToken, AuditEntry,
        List<Org>, List<User>, List<TokenInfo>, List<AuditEntry>, routes::identity::WhoAmI, routes::identity::LoginRequest,
        routes::ingest::IngestResult, routes::ingest::RejectInfo,
        routes::query::QueryRequest, routes::query::QueryResponse,
        Alert, AlertStatus, AlertKind, Severity, AlertComment, Campaign, Suppression, List<Alert>, List<Campaign>, List<Suppression>,
        routes::alerts::AlertDetail, routes::alerts::AlertPatch, routes::alerts::NewComment,
        mimamori_store::AlertSummary, mimamori_store::AlertCount, mimamori_store::TimelineCount,
        NotifyChannel, NewChannel, ChannelKind, List<NotifyChannel>,
        StoredIndicator, List<StoredIndicator>, UpsertReport, routes::intel::ImportResult,
        Feed, NewFeed, List<Feed>,
        SharingGroup, NewSharingGroup, SharingGroupPatch, List<SharingGroup>,
        Report, ReportPage, ReportHit, Proposal, ProposalStatus, List<Report>, List<ReportHit>,
        routes::reports::ReportDetail, routes::reports::AcceptBody, routes::reports::Decision,
        DnsPolicyEntry, NewDnsPolicyEntry, DnsListKind, List<DnsPolicyEntry>,
        routes::dns::ZoneReload, routes::dns::ZoneReloadReport)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `/api/v1/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
