//! The role × scope matrix: every endpoint, every role, a target inside and
//! a target outside the caller's scope. Allowed calls succeed; calls the
//! role forbids get 403; out-of-scope targets get a 404 that is byte-for-byte
//! the answer for an id that does not exist at all.

use super::{problem, Server};
use mimamori_core::{Org, OrgKind, Role};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeSet;

use Role::*;
const READERS: &[Role] = &[
    SocAdmin,
    SocAnalyst,
    SupervisorAnalyst,
    OrgAdmin,
    OrgAnalyst,
];
const ADMINS: &[Role] = &[SocAdmin, OrgAdmin];
/// Who sets DNS policy: an org's admin, a supervisor for its sub-tree, the
/// central SOC's admin for everyone.
const DNS_MANAGERS: &[Role] = &[SocAdmin, SupervisorAnalyst, OrgAdmin];
const EVERYONE: &[Role] = &[
    SocAdmin,
    SocAnalyst,
    SupervisorAnalyst,
    OrgAdmin,
    OrgAnalyst,
    Sensor,
    DnsClient,
];

/// How an endpoint picks what it acts on.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// A listing: no target; the result must stay inside the scope.
    List,
    /// The caller itself (whoami).
    Caller,
    /// An org, or something belonging to an org, given by the target org.
    Org,
    /// Something the caller's own org owns (inside), or another org owns
    /// (outside): threat intel, where visibility is by org and TLP rather
    /// than by sub-tree.
    Own,
}

struct Endpoint {
    method: Method,
    path: &'static str,
    allowed: &'static [Role],
    target: Target,
    ok: u16,
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method, path, allowed, target, ok| Endpoint {
        method,
        path,
        allowed,
        target,
        ok,
    };
    vec![
        e(Method::GET, "/api/v1/orgs", READERS, Target::List, 200),
        e(Method::POST, "/api/v1/orgs", &[SocAdmin], Target::Org, 201),
        e(Method::GET, "/api/v1/orgs/{id}", READERS, Target::Org, 200),
        e(Method::PATCH, "/api/v1/orgs/{id}", ADMINS, Target::Org, 200),
        e(
            Method::DELETE,
            "/api/v1/orgs/{id}",
            &[SocAdmin],
            Target::Org,
            204,
        ),
        e(Method::GET, "/api/v1/whoami", EVERYONE, Target::Caller, 200),
        e(Method::GET, "/api/v1/users", ADMINS, Target::List, 200),
        e(Method::POST, "/api/v1/users", ADMINS, Target::Org, 201),
        e(Method::GET, "/api/v1/users/{id}", ADMINS, Target::Org, 200),
        e(
            Method::POST,
            "/api/v1/users/{id}/disable",
            ADMINS,
            Target::Org,
            200,
        ),
        e(Method::GET, "/api/v1/tokens", ADMINS, Target::List, 200),
        e(Method::POST, "/api/v1/tokens", ADMINS, Target::Org, 201),
        e(Method::GET, "/api/v1/tokens/{id}", ADMINS, Target::Org, 200),
        e(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            ADMINS,
            Target::Org,
            200,
        ),
        e(Method::GET, "/api/v1/audit", ADMINS, Target::List, 200),
        e(
            Method::POST,
            "/ingest/v1/events",
            &[Sensor],
            Target::Caller,
            200,
        ),
        e(Method::POST, "/api/v1/query", READERS, Target::Caller, 200),
        e(Method::GET, "/api/v1/alerts", READERS, Target::List, 200),
        e(
            Method::GET,
            "/api/v1/alerts/summary",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/alerts/{id}",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::PATCH,
            "/api/v1/alerts/{id}",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/alerts/{id}/comments",
            READERS,
            Target::Org,
            201,
        ),
        e(Method::GET, "/api/v1/campaigns", READERS, Target::List, 200),
        e(
            Method::GET,
            "/api/v1/campaigns/{id}",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/suppressions",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/indicators",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/indicators/{id}",
            READERS,
            Target::Own,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/intel/import",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/intel/export",
            READERS,
            Target::Caller,
            200,
        ),
        e(Method::GET, "/api/v1/hunts", READERS, Target::List, 200),
        e(Method::GET, "/api/v1/hunts/{id}", READERS, Target::Org, 200),
        e(
            Method::GET,
            "/api/v1/intel/feeds",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/intel/feeds",
            READERS,
            Target::Org,
            201,
        ),
        e(
            Method::GET,
            "/api/v1/intel/feeds/{id}",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::DELETE,
            "/api/v1/intel/feeds/{id}",
            READERS,
            Target::Org,
            204,
        ),
        e(
            Method::POST,
            "/api/v1/intel/feeds/{id}/poll",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/intel/groups",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/intel/groups",
            ADMINS,
            Target::Org,
            201,
        ),
        e(
            Method::GET,
            "/api/v1/intel/groups/{id}",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::PATCH,
            "/api/v1/intel/groups/{id}",
            ADMINS,
            Target::Org,
            200,
        ),
        e(
            Method::DELETE,
            "/api/v1/intel/groups/{id}",
            ADMINS,
            Target::Org,
            204,
        ),
        e(
            Method::GET,
            "/api/v1/intel/reports",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/intel/reports",
            READERS,
            Target::Org,
            201,
        ),
        e(
            Method::GET,
            "/api/v1/intel/reports/{id}",
            READERS,
            Target::Own,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/intel/reports/{id}/document",
            READERS,
            Target::Own,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/intel/reports/{id}/proposals/{proposal_id}/accept",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/intel/reports/{id}/proposals/{proposal_id}/reject",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::GET,
            "/api/v1/dns/policy",
            READERS,
            Target::List,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/dns/policy",
            DNS_MANAGERS,
            Target::Org,
            201,
        ),
        e(
            Method::GET,
            "/api/v1/dns/policy/{id}",
            READERS,
            Target::Org,
            200,
        ),
        e(
            Method::DELETE,
            "/api/v1/dns/policy/{id}",
            DNS_MANAGERS,
            Target::Org,
            204,
        ),
        // No resolver runs in this server: 404 once the role may ask.
        e(
            Method::POST,
            "/api/v1/dns/rpz/reload",
            &[SocAdmin],
            Target::Caller,
            404,
        ),
        e(
            Method::GET,
            "/api/v1/notify/channels",
            ADMINS,
            Target::List,
            200,
        ),
        e(
            Method::POST,
            "/api/v1/notify/channels",
            ADMINS,
            Target::Org,
            201,
        ),
        e(
            Method::GET,
            "/api/v1/notify/channels/{id}",
            ADMINS,
            Target::Org,
            200,
        ),
        e(
            Method::DELETE,
            "/api/v1/notify/channels/{id}",
            ADMINS,
            Target::Org,
            204,
        ),
        e(
            Method::POST,
            "/api/v1/notify/channels/{id}/test",
            ADMINS,
            Target::Org,
            202,
        ),
    ]
}

/// Endpoints tested elsewhere in this file (not by the matrix).
const PUBLIC: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
];

struct Fixture {
    s: Server,
    root: Org,
    sup: Org,
    a1: Org,
    a2: Org,
    m1: Org,
    counter: std::sync::atomic::AtomicU32,
}

impl Fixture {
    async fn new() -> Fixture {
        Self::on(Server::start().await).await
    }

    async fn on(s: Server) -> Fixture {
        let root = s.root.clone();
        let sup = s.org(&root, "sup", OrgKind::Supervisor).await;
        let a1 = s.org(&sup, "a1", OrgKind::Member).await;
        let a2 = s.org(&sup, "a2", OrgKind::Member).await;
        let m1 = s.org(&root, "m1", OrgKind::Member).await;
        Fixture {
            s,
            root,
            sup,
            a1,
            a2,
            m1,
            counter: Default::default(),
        }
    }

    /// Whether `role` (at its anchor) may see the org `id`: by this test's
    /// own statement of the rules, not by asking the code under test.
    async fn may_see(&self, role: Role, id: &str) -> bool {
        let all = mimamori_core::Scope::Subtree(self.root.path.clone());
        let Ok(org) = self.s.store.org_get(&all, id).await else {
            // A deleted org (the DELETE rows remove leaves) still has audit
            // records; only the whole-tree roles may see those.
            return matches!(role, SocAdmin | SocAnalyst);
        };
        let anchor = self.anchor(role);
        match role {
            SocAdmin | SocAnalyst | SupervisorAnalyst => {
                org.path.as_str().starts_with(anchor.path.as_str())
            }
            OrgAdmin | OrgAnalyst | Sensor | DnsClient => org.id == anchor.id,
        }
    }

    /// A fresh alert in `org`, in a campaign of its own: (alert id,
    /// campaign id).
    async fn alert(&self, org: &Org, n: u32) -> (String, String) {
        let d = mimamori_store::Detection {
            org_id: org.id.to_string(),
            kind: mimamori_store::AlertKind::Indicator,
            rule_id: format!("domain:bad{n}.example"),
            title: format!("Indicator match: bad{n}.example"),
            severity: mimamori_store::Severity::Medium,
            entity: format!("bad{n}.example"),
            attack: vec![],
            context: json!({}),
            event_ids: vec![format!("event-{n}")],
            time: mimamori_core::now_millis(),
            retro: false,
            campaign_key: Some(format!("indicator:domain:bad{n}.example")),
        };
        let policy = mimamori_store::CampaignPolicy {
            min_orgs: 1,
            window_ms: 3_600_000,
        };
        let (rec, camp) = self
            .s
            .store
            .alert_record(&d, 3_600_000, &policy)
            .await
            .unwrap();
        (
            rec.alert_id().unwrap().to_string(),
            camp.unwrap().campaign_id,
        )
    }

    /// A fresh AMBER indicator owned by `org` (shared with nobody); its id.
    async fn indicator(&self, org: &Org, n: u32) -> String {
        let mut ind = mimamori_intel::Indicator::new(
            mimamori_intel::IndicatorKind::Domain { exact: false },
            format!("owned{n}.example"),
            time::OffsetDateTime::now_utc(),
        );
        ind.tlp = mimamori_intel::Tlp::Amber;
        let r = self
            .s
            .store
            .intel_upsert(
                &mimamori_store::AuditActor::local_operator(),
                org,
                &[ind],
                &[],
                "matrix",
            )
            .await
            .unwrap();
        r.changed_ids[0].clone()
    }

    /// A fresh feed subscription of `org` (its URL refuses connections);
    /// its id.
    async fn feed(&self, org: &Org, n: u32) -> String {
        let new = mimamori_store::NewFeed {
            org_id: org.id.to_string(),
            name: format!("matrix-feed{n}"),
            url: "http://127.0.0.1:9/feed.txt".into(),
            format: "plain".into(),
            interval_secs: 3600,
            tlp: "amber".into(),
            confidence: 50,
            subdomains: true,
            auth_header: None,
        };
        self.s
            .store
            .feed_create(&mimamori_store::AuditActor::local_operator(), org, &new)
            .await
            .unwrap()
            .id
    }

    /// A fresh sharing group owned by `org` (no members); its id.
    async fn group(&self, org: &Org, n: u32) -> String {
        self.s
            .store
            .group_create(
                &mimamori_store::AuditActor::local_operator(),
                org,
                &mimamori_store::NewSharingGroup {
                    org_id: org.id.to_string(),
                    name: format!("matrix-group{n}"),
                    description: String::new(),
                    members: vec![],
                },
            )
            .await
            .unwrap()
            .id
    }

    /// A fresh DNS policy entry of `org`; its id.
    async fn dns_entry(&self, org: &Org, n: u32) -> String {
        let new = mimamori_store::NewDnsPolicyEntry {
            org_id: org.id.to_string(),
            kind: mimamori_store::DnsListKind::Block,
            domain: format!("entry{n}.matrix.example"),
            comment: None,
        };
        self.s
            .store
            .dns_policy_add(&mimamori_store::AuditActor::local_operator(), org, &new)
            .await
            .unwrap()
            .id
    }

    /// A fresh AMBER text report of `org` with one proposal: (report id,
    /// proposal id).
    async fn report(&self, org: &Org, n: u32) -> (String, String) {
        let text = format!("matrix report {n}: c2 at evil{n}[.]example");
        let parsed = mimamori_intel::report_from_text(&text);
        let store = &self.s.store;
        let op = mimamori_store::AuditActor::local_operator();
        let r = store
            .report_create(
                &op,
                org,
                &mimamori_store::NewReport {
                    title: format!("matrix{n}"),
                    source: "matrix".into(),
                    tlp: mimamori_intel::Tlp::Amber,
                    format: "text".into(),
                    document: text.into_bytes(),
                    pages: parsed.pages,
                    proposals: parsed.proposals,
                },
                &Default::default(),
            )
            .await
            .unwrap();
        let p = store.report_proposals(&r).await.unwrap();
        (r.id, p[0].id.clone())
    }

    /// A fresh notification channel of `org`; its id.
    async fn channel(&self, org: &Org) -> String {
        let new = mimamori_store::NewChannel {
            org_id: org.id.to_string(),
            kind: mimamori_store::ChannelKind::Syslog,
            target: "udp://127.0.0.1:5514".into(),
            secret: None,
            min_severity: mimamori_store::Severity::Medium,
            subtree: false,
        };
        self.s
            .store
            .channel_create(&mimamori_store::AuditActor::local_operator(), org, &new)
            .await
            .unwrap()
            .id
    }

    /// Sends a request built by [`Fixture::request`]: JSON, except the
    /// intel import, whose body is a raw list.
    async fn send(
        &self,
        ep: &Endpoint,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> super::Resp {
        match (ep.path, body) {
            ("/api/v1/intel/import" | "/api/v1/intel/reports", Some(Value::String(text))) => {
                self.s
                    .call_raw(ep.method.clone(), path, Some(token), text.into_bytes())
                    .await
            }
            (_, body) => {
                self.s
                    .call(ep.method.clone(), path, Some(token), body)
                    .await
            }
        }
    }

    fn next(&self) -> u32 {
        self.counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// The caller's anchor org for each role.
    fn anchor(&self, role: Role) -> &Org {
        match role {
            SocAdmin | SocAnalyst => &self.root,
            SupervisorAnalyst => &self.sup,
            OrgAdmin | OrgAnalyst | Sensor | DnsClient => &self.a1,
        }
    }

    /// A target inside the caller's scope, and one outside (if any).
    fn targets(&self, role: Role) -> (&Org, Option<&Org>) {
        match role {
            SocAdmin | SocAnalyst => (&self.a2, None),
            SupervisorAnalyst => (&self.a2, Some(&self.m1)),
            OrgAdmin | OrgAnalyst | Sensor | DnsClient => (&self.a1, Some(&self.a2)),
        }
    }

    /// Builds the concrete path and body for `ep` acting on `org`, creating
    /// a disposable resource (leaf org, user, token) where the call would
    /// consume one. With `org = None`, the id is one that does not exist.
    async fn request(&self, ep: &Endpoint, org: Option<&Org>) -> (String, Option<Value>, String) {
        let n = self.next();
        let missing = mimamori_core::new_id();
        let mut proposal_id = mimamori_core::new_id();
        let id = match (ep.path, org) {
            (p, _) if !p.contains("{id}") => String::new(),
            (_, None) => missing.clone(),
            ("/api/v1/orgs/{id}", Some(o)) if ep.method == Method::DELETE => self
                .s
                .org(o, &format!("leaf{n}"), OrgKind::Member)
                .await
                .id
                .to_string(),
            ("/api/v1/orgs/{id}", Some(o)) => o.id.to_string(),
            (p, Some(o)) if p.starts_with("/api/v1/users/") => {
                self.s.user(o, &format!("u{n}"), OrgAnalyst).await
            }
            (p, Some(o)) if p.starts_with("/api/v1/tokens/") => {
                // The token's id, found through the store's metadata.
                let secret = self.s.token(o, OrgAnalyst).await;
                self.s
                    .store
                    .authenticate(&secret)
                    .await
                    .unwrap()
                    .token_id
                    .to_string()
            }
            (p, Some(o)) if p.starts_with("/api/v1/notify/channels/") => self.channel(o).await,
            (p, Some(o)) if p.starts_with("/api/v1/dns/policy/") => self.dns_entry(o, n).await,
            (p, Some(o)) if p.starts_with("/api/v1/indicators/") => self.indicator(o, n).await,
            (p, Some(o)) if p.starts_with("/api/v1/intel/feeds/") => self.feed(o, n).await,
            (p, Some(o)) if p.starts_with("/api/v1/intel/groups/") => self.group(o, n).await,
            (p, Some(o)) if p.starts_with("/api/v1/intel/reports/") => {
                let (r, p) = self.report(o, n).await;
                proposal_id = p;
                r
            }
            (p, Some(o)) if p.starts_with("/api/v1/hunts/") => {
                self.s
                    .hub
                    .hunts
                    .begin(&mimamori_pipeline::retro::HuntRequest {
                        what: "matrix".into(),
                        org_ids: Some(vec![o.id.to_string()]),
                        owner_org_id: None,
                        since: 0,
                    })
            }
            (p, Some(o)) if p.starts_with("/api/v1/alerts/") => self.alert(o, n).await.0,
            (p, Some(o)) if p.starts_with("/api/v1/campaigns/") => self.alert(o, n).await.1,
            (p, _) => panic!("no target rule for {p}"),
        };
        let target_org_id = org
            .map(|o| o.id.to_string())
            .unwrap_or_else(|| missing.clone());
        let body = match (ep.method.as_str(), ep.path) {
            ("POST", "/api/v1/orgs") => Some(
                json!({"parent_id": target_org_id, "slug": format!("new{n}"), "name": "新しい組織"}),
            ),
            ("PATCH", "/api/v1/alerts/{id}") => {
                Some(json!({"status": "acknowledged", "assignee": "analyst"}))
            }
            ("POST", "/api/v1/alerts/{id}/comments") => Some(json!({"body": "looked at it"})),
            ("PATCH", "/api/v1/intel/groups/{id}") => Some(json!({"description": "matrix"})),
            ("PATCH", _) => Some(json!({"sector": "health"})),
            ("POST", "/api/v1/users") => Some(
                json!({"org_id": target_org_id, "username": format!("nu{n}"), "role": "org-analyst", "password": "a long enough password"}),
            ),
            ("POST", "/api/v1/intel/feeds") => Some(
                json!({"org_id": target_org_id, "name": format!("feed{n}"), "url": "http://127.0.0.1:9/feed.txt", "format": "plain"}),
            ),
            ("POST", "/api/v1/intel/groups") => {
                Some(json!({"org_id": target_org_id, "name": format!("group{n}"), "members": []}))
            }
            ("POST", "/api/v1/dns/policy") => Some(
                json!({"org_id": target_org_id, "kind": "block", "domain": format!("new{n}.matrix.example")}),
            ),
            ("POST", "/api/v1/notify/channels") => Some(
                json!({"org_id": target_org_id, "kind": "syslog", "target": "udp://127.0.0.1:5514"}),
            ),
            ("POST", "/api/v1/tokens") => {
                Some(json!({"org_id": target_org_id, "name": "sensor", "role": "sensor"}))
            }
            _ => None,
        };
        if ep.path == "/api/v1/intel/import" {
            // A list in the body; the owner in the query.
            let path = format!(
                "{}?format=plain&retro=false&org_id={target_org_id}",
                ep.path
            );
            let body = Some(Value::String(format!("matrix{n}.example\n")));
            return (path, body, target_org_id);
        }
        if ep.path == "/api/v1/intel/reports" && ep.method == Method::POST {
            // A text report in the body; title, source and owner in the query.
            let path = format!(
                "{}?title=matrix{n}&source=matrix&org_id={target_org_id}",
                ep.path
            );
            let body = Some(Value::String(format!("matrix report: evil{n}[.]example\n")));
            return (path, body, target_org_id);
        }
        let path = ep
            .path
            .replace("{id}", &id)
            .replace("{proposal_id}", &proposal_id);
        // The id that would appear in a 404 detail.
        let named = if ep.path.contains("{id}") {
            id
        } else {
            target_org_id
        };
        (path, body, named)
    }
}

/// Org ids the role may see, by the fixture's construction.
fn visible(f: &Fixture, role: Role) -> BTreeSet<String> {
    let orgs: Vec<&Org> = match role {
        SocAdmin | SocAnalyst => vec![&f.root, &f.sup, &f.a1, &f.a2, &f.m1],
        SupervisorAnalyst => vec![&f.sup, &f.a1, &f.a2],
        _ => vec![&f.a1],
    };
    orgs.into_iter().map(|o| o.id.to_string()).collect()
}

#[tokio::test]
async fn role_scope_matrix_covers_every_endpoint() {
    matrix(Fixture::new().await).await;
}

/// The same matrix with PostgreSQL behind the API (required in CI).
#[tokio::test]
async fn role_scope_matrix_on_postgres() {
    if let Some(url) = mimamori_store::testing::fresh_postgres_url().await {
        matrix(Fixture::on(Server::start_with(Some(url)).await).await).await;
    }
}

async fn matrix(f: Fixture) {
    let mut checked = 0;
    for role in EVERYONE.iter().copied() {
        let token = f.s.token(f.anchor(role), role).await;
        for ep in endpoints() {
            checked += 1;
            let allowed = ep.allowed.contains(&role);
            let (inside, outside) = f.targets(role);
            match ep.target {
                Target::Caller if ep.path == "/api/v1/query" => {
                    // Results are scoped by construction (see ingest::query_is_scoped…).
                    let body = json!({"sql": "SELECT count(*) AS n FROM events"});
                    let r =
                        f.s.call(ep.method.clone(), ep.path, Some(&token), Some(body))
                            .await;
                    if allowed {
                        assert_eq!(r.status, ep.ok, "{role} {}: {r:?}", ep.path);
                    } else {
                        problem(&r, 403);
                    }
                }
                Target::Caller if ep.path == "/ingest/v1/events" => {
                    // The org comes from the token: there is no target to scope.
                    let body = format!(
                        "{{\"class\":\"dns_activity\",\"dns_query\":\"{role}.example\"}}\n"
                    );
                    let r =
                        f.s.call_raw(ep.method.clone(), ep.path, Some(&token), body.into_bytes())
                            .await;
                    if allowed {
                        assert_eq!(r.status, ep.ok, "{role} {}: {r:?}", ep.path);
                        assert_eq!(r.body["accepted"], 1);
                    } else {
                        problem(&r, 403);
                    }
                }
                Target::Caller if ep.path == "/api/v1/intel/export" => {
                    let r =
                        f.s.call(
                            ep.method.clone(),
                            "/api/v1/intel/export?format=plain",
                            Some(&token),
                            None,
                        )
                        .await;
                    if allowed {
                        assert_eq!(r.status, ep.ok, "{role} {}: {r:?}", ep.path);
                    } else {
                        problem(&r, 403);
                    }
                }
                Target::Caller if ep.path == "/api/v1/dns/rpz/reload" => {
                    let r =
                        f.s.call(ep.method.clone(), ep.path, Some(&token), None)
                            .await;
                    if allowed {
                        let detail = problem(&r, ep.ok);
                        assert!(detail.contains("[pdns] listen"), "{detail}");
                    } else {
                        problem(&r, 403);
                    }
                }
                Target::Caller => {
                    let r =
                        f.s.call(ep.method.clone(), ep.path, Some(&token), None)
                            .await;
                    assert_eq!(r.status, ep.ok, "{role} {} {}: {r:?}", ep.method, ep.path);
                    assert_eq!(r.body["role"], role.as_str());
                    assert_eq!(r.body["org_id"], f.anchor(role).id.as_str());
                }
                Target::List => {
                    // The alert summary is counts, not a page: its rows
                    // (one per org, status and severity) are checked as
                    // a listing's items are.
                    let summary = ep.path.ends_with("/summary");
                    let path = if summary {
                        ep.path.to_string()
                    } else {
                        format!("{}?limit=500", ep.path)
                    };
                    let r = f.s.call(ep.method.clone(), &path, Some(&token), None).await;
                    if !allowed {
                        problem(&r, 403);
                        continue;
                    }
                    assert_eq!(r.status, ep.ok, "{role} {} {}: {r:?}", ep.method, ep.path);
                    let items = r.body[if summary { "by_org" } else { "items" }]
                        .as_array()
                        .unwrap();
                    let vis = visible(&f, role);
                    for item in items {
                        // Intel is visible by org and TLP: the caller's own
                        // org's, or CLEAR/GREEN (none are shared here).
                        if let (Some(owner), None) =
                            (item.get("owner_org_id"), item.get("indicator"))
                        {
                            // A feed subscription: of an org in scope.
                            assert!(
                                f.may_see(role, owner.as_str().unwrap()).await,
                                "{role}: listed {item}"
                            );
                            continue;
                        }
                        if let Some(owner) = item.get("owner_org_id") {
                            let tlp = &item["indicator"]["tlp"];
                            assert!(
                                owner == f.anchor(role).id.as_str()
                                    || tlp == "clear"
                                    || tlp == "green",
                                "{role}: listed {item}"
                            );
                            continue;
                        }
                        // A campaign names its orgs (a hunt over every org
                        // names none); everything else is of one org (or
                        // is one).
                        let orgs: Vec<&str> = match item.get("org_ids") {
                            Some(Value::Null) => vec![],
                            Some(ids) => ids
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap())
                                .collect(),
                            None => vec![item
                                .get("org_id")
                                .or_else(|| item.get("id"))
                                .and_then(Value::as_str)
                                .unwrap()],
                        };
                        for org_of in orgs {
                            assert!(
                                f.may_see(role, org_of).await,
                                "{role} {}: listed {org_of} outside its scope",
                                ep.path
                            );
                        }
                    }
                    if ep.path == "/api/v1/orgs" {
                        let listed: BTreeSet<String> = items
                            .iter()
                            .map(|i| i["id"].as_str().unwrap().to_string())
                            .collect();
                        assert!(vis.is_subset(&listed), "{role}: missing visible orgs");
                    }
                }
                Target::Org | Target::Own => {
                    let inside = match ep.target {
                        Target::Own => f.anchor(role),
                        _ => inside,
                    };
                    let (path, body, _) = f.request(&ep, Some(inside)).await;
                    let r = f.send(&ep, &path, &token, body).await;
                    if allowed {
                        assert_eq!(r.status, ep.ok, "{role} {} {path}: {r:?}", ep.method);
                    } else {
                        problem(&r, 403);
                    }
                    if let Some(out) = outside {
                        let (path, body, named) = f.request(&ep, Some(out)).await;
                        let r = f.send(&ep, &path, &token, body).await;
                        if allowed {
                            let detail = problem(&r, 404);
                            let (mpath, mbody, mnamed) = f.request(&ep, None).await;
                            let m = f.send(&ep, &mpath, &token, mbody).await;
                            let mdetail = problem(&m, 404);
                            assert_eq!(
                                detail.replace(&named, "ID"),
                                mdetail.replace(&mnamed, "ID"),
                                "{role} {} {}: out-of-scope and absent must look the same",
                                ep.method,
                                ep.path
                            );
                        } else {
                            problem(&r, 403);
                        }
                    }
                }
            }
        }
    }
    // Without any token, every matrix endpoint is 401.
    for ep in endpoints() {
        let path = ep.path.replace("{id}", &mimamori_core::new_id());
        let r = f.s.call(ep.method.clone(), &path, None, None).await;
        problem(&r, 401);
    }
    assert_eq!(checked, EVERYONE.len() * endpoints().len());
}

#[tokio::test]
async fn matrix_and_openapi_list_the_same_endpoints() {
    let s = Server::start().await;
    let r = s
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in r.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let mut tested: BTreeSet<(String, String)> = endpoints()
        .iter()
        .map(|e| (e.method.as_str().to_lowercase(), e.path.to_string()))
        .collect();
    tested.extend(PUBLIC.iter().map(|(m, p)| (m.to_string(), p.to_string())));
    assert_eq!(
        documented, tested,
        "every documented endpoint is in the matrix, and nothing else"
    );
}

#[tokio::test]
async fn grants_never_exceed_the_granter() {
    let f = Fixture::new().await;
    let org_admin = f.s.token(&f.a1, OrgAdmin).await;
    for role in ["soc-admin", "soc-analyst", "supervisor-analyst"] {
        let r =
            f.s.call(
                Method::POST,
                "/api/v1/tokens",
                Some(&org_admin),
                Some(json!({"org_id": f.a1.id, "name": "x", "role": role})),
            )
            .await;
        let d = problem(&r, 403);
        assert!(d.contains("cannot grant"), "{d}");
        let r = f
            .s
            .call(Method::POST, "/api/v1/users", Some(&org_admin), Some(json!({"org_id": f.a1.id, "username": format!("x{role}"), "role": role, "password": "a long enough password"})))
            .await;
        problem(&r, 403);
    }
    // soc-admin may grant root roles only at the root.
    let soc = f.s.token(&f.root, SocAdmin).await;
    let r =
        f.s.call(
            Method::POST,
            "/api/v1/tokens",
            Some(&soc),
            Some(json!({"org_id": f.a1.id, "name": "x", "role": "soc-analyst"})),
        )
        .await;
    assert!(problem(&r, 403).contains("root"));
    // Sensors cannot be humans.
    let r = f
        .s
        .call(Method::POST, "/api/v1/users", Some(&soc), Some(json!({"org_id": f.a1.id, "username": "robot", "role": "sensor", "password": "a long enough password"})))
        .await;
    assert_eq!(
        problem(&r, 422),
        "sensor is a machine role: issue a sensor token instead of a user"
    );
}

#[tokio::test]
async fn public_endpoints_and_sessions() {
    let f = Fixture::new().await;
    for path in ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"] {
        let r = f.s.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let metrics =
        f.s.client
            .get(format!("{}/metrics", f.s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(
        metrics.contains("mimamori_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/healthz\""), "{metrics}");

    // Login as a user of a1 gives a session scoped to a1, logout ends it.
    f.s.user(&f.a1, "sato", OrgAdmin).await;
    let bad =
        f.s.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"org": "a1", "username": "sato", "password": "not the password"})),
        )
        .await;
    let unknown =
        f.s.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"org": "a1", "username": "nobody", "password": "not the password"})),
        )
        .await;
    assert_eq!(problem(&bad, 401), problem(&unknown, 401));
    let r =
        f.s.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"org": "a1", "username": "sato", "password": "a long enough password"})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let session = r.body["secret"].as_str().unwrap().to_string();
    assert!(r.body["token"]["expires_at"].as_i64().is_some());
    let who =
        f.s.call(Method::GET, "/api/v1/whoami", Some(&session), None)
            .await;
    assert_eq!(who.body["org_slug"], "a1");
    assert_eq!(who.body["role"], "org-admin");
    let orgs =
        f.s.call(Method::GET, "/api/v1/orgs", Some(&session), None)
            .await;
    assert_eq!(orgs.body["items"].as_array().unwrap().len(), 1);
    for role in EVERYONE.iter().copied() {
        let t = f.s.token(f.anchor(role), role).await;
        let r =
            f.s.call(Method::POST, "/api/v1/auth/logout", Some(&t), None)
                .await;
        assert_eq!(r.status, 204, "{role}: {r:?}");
        let r =
            f.s.call(Method::GET, "/api/v1/whoami", Some(&t), None)
                .await;
        assert_eq!(problem(&r, 401), "the bearer token was revoked");
    }
    // The login and the failed login are in a1's audit log, seen by its admin.
    let admin = f.s.token(&f.a1, OrgAdmin).await;
    let audit =
        f.s.call(Method::GET, "/api/v1/audit?limit=500", Some(&admin), None)
            .await;
    let actions: Vec<&str> = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"auth.login_failed"), "{actions:?}");
    assert!(actions.contains(&"token.issue"), "{actions:?}");
    // ...but not in a2's.
    let admin2 = f.s.token(&f.a2, OrgAdmin).await;
    let audit2 =
        f.s.call(Method::GET, "/api/v1/audit?limit=500", Some(&admin2), None)
            .await;
    assert!(audit2.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["org_id"] == f.a2.id.as_str()));
}

#[tokio::test]
async fn only_soc_admin_changes_declared_networks() {
    let f = Fixture::new().await;
    let admin = f.s.token(&f.a1, OrgAdmin).await;
    let path = format!("/api/v1/orgs/{}", f.a1.id);
    let r =
        f.s.call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"networks": ["10.0.0.0/8"]})),
        )
        .await;
    assert!(problem(&r, 403).contains("declared networks"));
    let r =
        f.s.call(
            Method::PATCH,
            &path,
            Some(&admin),
            Some(json!({"sector": "health"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let soc = f.s.token(&f.root, SocAdmin).await;
    let r =
        f.s.call(
            Method::PATCH,
            &path,
            Some(&soc),
            Some(json!({"networks": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(r.body["networks"], json!(["10.0.0.0/8"]));
}

#[tokio::test]
async fn mutations_are_audited_with_actor_and_address() {
    let f = Fixture::new().await;
    let soc = f.s.token(&f.root, SocAdmin).await;
    let r =
        f.s.call(
            Method::PATCH,
            &format!("/api/v1/orgs/{}", f.m1.id),
            Some(&soc),
            Some(json!({"name": "文部科学省", "domains": ["mext.example.go.jp"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["name"], "文部科学省");
    let audit =
        f.s.call(Method::GET, "/api/v1/audit?limit=1", Some(&soc), None)
            .await;
    let e = &audit.body["items"][0];
    assert_eq!(e["action"], "org.update");
    assert_eq!(e["target_id"], f.m1.id.as_str());
    assert_eq!(e["actor_role"], "soc-admin");
    assert!(e["actor"].as_str().unwrap().starts_with("token:"));
    assert!(e["remote_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(e["detail"]["after"]["name"], "文部科学省");
    assert_eq!(e["detail"]["before"]["name"], "m1");
    assert!(audit.body["next_cursor"].is_string());
}
