//! The console driven over a real socket with a real HTTP client: forms
//! posted as a browser posts them, cookies carried by hand, HTML read back.
//! (The browser tests in `tests/browser/` drive it in Chromium.)

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, Org, OrgKind, Role, Validated};
use mimamori_store::{AuditActor, NewToken, NewUser, Store};
use reqwest::redirect::Policy;
use std::time::Duration;
use tokio::net::TcpListener;

const PASSWORD: &str = "correct horse battery";

struct Console {
    base: String,
    http: reqwest::Client,
    store: Store,
    root: Org,
    a: Org,
    b: Org,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

fn profile(name: &str) -> OrgProfile {
    NewOrg {
        slug: "x".into(),
        name: name.into(),
        ..Default::default()
    }
    .validate()
    .unwrap()
    .1
}

/// A page as the browser gets it.
#[derive(Debug)]
struct Page {
    status: u16,
    location: Option<String>,
    cookies: Vec<String>,
    body: String,
}

impl Page {
    /// The value the server set for cookie `name`, if it set one.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.iter().find_map(|c| {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            kv.strip_prefix(&format!("{name}=")).map(str::to_string)
        })
    }

    /// The CSRF token of the page's first form.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Console {
    async fn start(idle: Duration) -> Console {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let op = AuditActor::local_operator();
        let root = store
            .bootstrap_root(&op, "soc", &profile("中央SOC"))
            .await
            .unwrap();
        let a = store
            .org_create(&op, &root, "a", OrgKind::Member, &profile("財務省"))
            .await
            .unwrap();
        let b = store
            .org_create(&op, &root, "b", OrgKind::Member, &profile("厚生労働省"))
            .await
            .unwrap();
        for (org, name, role) in [
            (&root, "ana", Role::SocAnalyst),
            (&a, "ann", Role::OrgAnalyst),
        ] {
            store
                .user_create(
                    &op,
                    org,
                    &NewUser {
                        org_id: org.id.to_string(),
                        username: name.into(),
                        display_name: None,
                        email: None,
                        role,
                        password: PASSWORD.into(),
                    },
                )
                .await
                .unwrap();
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let console = mimamori_console::routes(mimamori_console::session::ConsoleConfig {
            secure_cookies: false,
            idle_timeout: idle,
        });
        let router = mimamori_api::router_with(mimamori_api::AppState::new(store.clone()), console);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(mimamori_api::serve(listener, router, None, async move {
            let _ = rx.await;
        }));
        Console {
            base,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            store,
            root,
            a,
            b,
            _dir: dir,
            _stop: tx,
        }
    }

    /// An alert in `org`: its id.
    async fn alert(&self, org: &Org, name: &str) -> String {
        let d = mimamori_store::Detection {
            org_id: org.id.to_string(),
            kind: mimamori_store::AlertKind::Indicator,
            rule_id: format!("domain:{name}"),
            title: format!("Indicator match: {name}"),
            severity: mimamori_store::Severity::Critical,
            entity: name.into(),
            attack: vec![],
            context: serde_json::json!({"indicator": name}),
            event_ids: vec!["event-1".into()],
            time: mimamori_core::now_millis(),
            retro: false,
            campaign_key: Some(format!("indicator:domain:{name}")),
        };
        let policy = mimamori_store::CampaignPolicy {
            min_orgs: 1,
            window_ms: 3_600_000,
        };
        let (rec, _) = self
            .store
            .alert_record(&d, 3_600_000, &policy)
            .await
            .unwrap();
        rec.alert_id().unwrap().to_string()
    }

    async fn send(&self, req: reqwest::RequestBuilder, cookies: &[(&str, &str)]) -> Page {
        let mut req = req;
        if !cookies.is_empty() {
            let c: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", c.join("; "));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let cookies = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        Page {
            status,
            location,
            cookies,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, cookies: &[(&str, &str)]) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)), cookies)
            .await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], cookies: &[(&str, &str)]) -> Page {
        self.send(
            self.http.post(format!("{}{path}", self.base)).form(form),
            cookies,
        )
        .await
    }

    /// A new API token of `role` at `org`: its secret.
    async fn token(&self, org: &Org, role: Role) -> String {
        self.store
            .token_issue(
                &AuditActor::local_operator(),
                org,
                None,
                &NewToken {
                    org_id: org.id.to_string(),
                    name: role.to_string(),
                    role,
                    expires_in_secs: None,
                },
            )
            .await
            .unwrap()
            .secret
    }

    /// Signs in with a password: the session cookie's value.
    async fn sign_in(&self, org: &str, user: &str) -> String {
        let form = self.get("/console/login", &[]).await;
        assert_eq!(form.status, 200, "{form:?}");
        let nonce = form.cookie("mimamori_login").expect("login cookie");
        let csrf = form.csrf();
        let r = self
            .post(
                "/console/login",
                &[
                    ("csrf", &csrf),
                    ("next", "/console/alerts"),
                    ("org", org),
                    ("username", user),
                    ("password", PASSWORD),
                ],
                &[("mimamori_login", &nonce)],
            )
            .await;
        assert_eq!(r.status, 303, "{r:?}");
        assert_eq!(r.location.as_deref(), Some("/console/alerts"));
        let set = r
            .cookies
            .iter()
            .find(|c| c.starts_with("mimamori_session="))
            .expect("session cookie");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(set.contains(attr), "{set}");
        }
        r.cookie("mimamori_session").unwrap()
    }
}

#[tokio::test]
async fn a_central_analyst_signs_in_sees_every_org_and_works_an_alert() {
    let c = Console::start(Duration::from_secs(1800)).await;
    let in_a = c.alert(&c.a, "bad-a.example").await;
    let _in_b = c.alert(&c.b, "bad-b.example").await;

    // Not signed in: sent to the sign-in page, which comes back here.
    let r = c.get("/console/alerts", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.location.as_deref(),
        Some("/console/login?next=/console/alerts")
    );

    // A wrong password is refused without saying which part was wrong.
    let form = c.get("/console/login", &[]).await;
    let nonce = form.cookie("mimamori_login").unwrap();
    let r = c
        .post(
            "/console/login",
            &[
                ("csrf", &form.csrf()),
                ("org", "soc"),
                ("username", "ana"),
                ("password", "wrong password!"),
            ],
            &[("mimamori_login", &nonce)],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(
        r.body.contains("Wrong organisation, user name or password"),
        "{}",
        r.body
    );
    assert!(r.cookie("mimamori_session").is_none());

    let session = c.sign_in("soc", "ana").await;
    let s = [("mimamori_session", session.as_str())];
    let list = c.get("/console/alerts", &s).await;
    assert_eq!(list.status, 200);
    assert!(
        list.body.contains("Indicator match: bad-a.example"),
        "{}",
        list.body
    );
    assert!(list.body.contains("Indicator match: bad-b.example"));
    assert!(
        list.body.contains("soc-analyst at soc"),
        "scope line: {}",
        list.body
    );
    assert!(list.body.contains("sees the sub-tree"));
    // Filters narrow through the API's own filter.
    let only_a = c
        .get(&format!("/console/alerts?org_id={}&open=true", c.a.id), &s)
        .await;
    assert!(only_a.body.contains("bad-a.example"));
    assert!(!only_a.body.contains("bad-b.example"));

    // The overview counts both, and links each org to its list.
    let o = c.get("/console/", &s).await;
    assert_eq!(o.status, 200);
    assert!(
        o.body
            .contains(&format!("/console/alerts?open=true&amp;org_id={}", c.a.id)),
        "{}",
        o.body
    );
    assert!(o.body.contains("chart-alerts-data"));

    // Acknowledge: refused without this session's CSRF token, done with it.
    let detail = c.get(&format!("/console/alerts/{in_a}"), &s).await;
    assert_eq!(detail.status, 200);
    let path = format!("/console/alerts/{in_a}/status");
    let r = c
        .post(&path, &[("csrf", "0000"), ("status", "acknowledged")], &s)
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = c
        .post(
            &path,
            &[("csrf", &detail.csrf()), ("status", "acknowledged")],
            &s,
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let r = c
        .post(
            &format!("/console/alerts/{in_a}/comments"),
            &[
                ("csrf", &detail.csrf()),
                ("body", "looked at the proxy logs <b>x</b>"),
            ],
            &s,
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let after = c.get(&format!("/console/alerts/{in_a}"), &s).await;
    assert!(
        after
            .body
            .contains("data-testid=\"alert-status\">Acknowledged<"),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("status New → Acknowledged"),
        "{}",
        after.body
    );
    // Comments are escaped, never markup.
    assert!(after
        .body
        .contains("looked at the proxy logs &lt;b&gt;x&lt;/b&gt;"));
    // The same change, seen through the API and in the audit log.
    let alert = c
        .store
        .alert_get(&mimamori_core::Scope::Subtree(c.root.path.clone()), &in_a)
        .await
        .unwrap();
    assert_eq!(alert.status, mimamori_store::AlertStatus::Acknowledged);
    // The audit log is a SOC admin's page (an analyst has no link to it):
    // signed in with an API token this time.
    assert!(!after.body.contains("href=\"/console/audit\""));
    let admin = c.token(&c.root, Role::SocAdmin).await;
    let form = c.get("/console/login", &[]).await;
    let nonce = form.cookie("mimamori_login").unwrap();
    let r = c
        .post(
            "/console/login/token",
            &[
                ("csrf", &form.csrf()),
                ("token", &admin),
                ("next", "/console/audit"),
            ],
            &[("mimamori_login", &nonce)],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/console/audit"), "{r:?}");
    let cookie = r.cookie("mimamori_session").unwrap();
    let audit = c
        .get("/console/audit", &[("mimamori_session", &cookie)])
        .await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains("alert.update"), "{}", audit.body);

    // Hunt and intel pages render; a server without an archive says so.
    let h = c.get("/console/hunt", &s).await;
    assert_eq!(h.status, 200);
    assert!(h.body.contains("FROM events"));
    let r = c
        .post(
            "/console/hunt",
            &[("csrf", &h.csrf()), ("sql", "SELECT 1"), ("format", "html")],
            &s,
        )
        .await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body.contains("keeps no event archive"), "{}", r.body);
    let i = c.get("/console/intel?contains=nothing", &s).await;
    assert_eq!(i.status, 200);
    assert!(i.body.contains("No indicators match."));

    // An illegal move is the API's 409/422, shown as a page, not a crash.
    let r = c
        .post(&path, &[("csrf", &detail.csrf()), ("status", "new")], &s)
        .await;
    assert!(matches!(r.status, 409 | 422), "{r:?}");
}

#[tokio::test]
async fn an_org_analyst_cannot_reach_another_orgs_alert_campaign_or_audit() {
    let c = Console::start(Duration::from_secs(1800)).await;
    let _in_a = c.alert(&c.a, "bad-a.example").await;
    let in_b = c.alert(&c.b, "bad-b.example").await;
    let b_campaign = c
        .store
        .alert_get(&mimamori_core::Scope::Subtree(c.root.path.clone()), &in_b)
        .await
        .unwrap()
        .campaign_id
        .expect("a campaign");
    let session = c.sign_in("a", "ann").await;
    let s = [("mimamori_session", session.as_str())];
    let list = c.get("/console/alerts", &s).await;
    assert!(list.body.contains("bad-a.example"));
    assert!(!list.body.contains("bad-b.example"), "{}", list.body);
    assert!(list.body.contains("sees only"));
    // The overview counts its own org only.
    let o = c.get("/console/", &s).await;
    assert!(o.body.contains(c.a.id.as_str()), "{}", o.body);
    assert!(!o.body.contains(c.b.id.as_str()), "{}", o.body);
    // By typed URL: not found, and nothing of it on the page.
    for path in [
        format!("/console/alerts/{in_b}"),
        format!("/console/campaigns/{b_campaign}"),
    ] {
        let r = c.get(&path, &s).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.body.contains("bad-b.example"), "{path}");
    }
    // Nor by filtering for the other org.
    let r = c
        .get(&format!("/console/alerts?org_id={}", c.b.id), &s)
        .await;
    assert!(!r.body.contains("bad-b.example"));
    // Nor can it change it.
    let detail = c.get("/console/alerts", &s).await;
    let r = c
        .post(
            &format!("/console/alerts/{in_b}/status"),
            &[("csrf", &detail.csrf()), ("status", "acknowledged")],
            &s,
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    // The audit log is not an org analyst's page.
    let r = c.get("/console/audit", &s).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(
        !list.body.contains("/console/audit"),
        "no link to a refused page"
    );
}

#[tokio::test]
async fn japanese_by_browser_language_or_by_choice() {
    let c = Console::start(Duration::from_secs(1800)).await;
    let ja = c
        .send(
            c.http
                .get(format!("{}/console/login", c.base))
                .header("accept-language", "ja-JP,ja;q=0.9,en;q=0.5"),
            &[],
        )
        .await;
    assert!(ja.body.contains("<html lang=\"ja\">"));
    assert!(ja.body.contains("ユーザー名とパスワードで"), "{}", ja.body);
    // The switch sets a cookie that wins over the browser's language.
    let r = c.get("/console/lang/en?next=/console/alerts", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location.as_deref(), Some("/console/alerts"));
    assert_eq!(r.cookie("mimamori_lang").as_deref(), Some("en"));
    let en = c
        .send(
            c.http
                .get(format!("{}/console/login", c.base))
                .header("accept-language", "ja"),
            &[("mimamori_lang", "en")],
        )
        .await;
    assert!(en.body.contains("With your user name and password"));
    // A signed-in page in Japanese.
    let session = c.sign_in("soc", "ana").await;
    let p = c
        .get(
            "/console/alerts",
            &[("mimamori_session", &session), ("mimamori_lang", "ja")],
        )
        .await;
    assert!(p.body.contains("サインアウト"), "{}", p.body);
    assert!(!p.body.contains('⟦'), "a missing message: {}", p.body);
    // The switch never leaves the console.
    let r = c
        .get("/console/lang/ja?next=https://evil.example/", &[])
        .await;
    assert_eq!(r.location.as_deref(), Some("/console/"));
}

#[tokio::test]
async fn machine_tokens_cannot_sign_in_and_cross_site_posts_are_refused() {
    let c = Console::start(Duration::from_secs(1800)).await;
    let sensor = c.token(&c.a, Role::Sensor).await;
    let form = c.get("/console/login", &[]).await;
    let nonce = form.cookie("mimamori_login").unwrap();
    let r = c
        .post(
            "/console/login/token",
            &[("csrf", &form.csrf()), ("token", &sensor)],
            &[("mimamori_login", &nonce)],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.cookie("mimamori_session").is_none());
    // Even with the cookie set by hand, a sensor gets no page.
    let r = c
        .get("/console/alerts", &[("mimamori_session", &sensor)])
        .await;
    assert_eq!(r.status, 303);
    // The sign-in form without its cookie: a CSRF refusal.
    let r = c
        .post(
            "/console/login",
            &[
                ("csrf", &form.csrf()),
                ("org", "soc"),
                ("username", "ana"),
                ("password", PASSWORD),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 403);
    // Another site's form, even with every token right.
    let r = c
        .send(
            c.http
                .post(format!("{}/console/login", c.base))
                .header("origin", "http://evil.example")
                .form(&[
                    ("csrf", form.csrf().as_str()),
                    ("org", "soc"),
                    ("username", "ana"),
                    ("password", PASSWORD),
                ]),
            &[("mimamori_login", &nonce)],
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    // Pages forbid framing and inline script.
    let p = c.get("/console/login", &[]).await;
    assert_eq!(p.status, 200);
    let h = c
        .http
        .get(format!("{}/console/login", c.base))
        .send()
        .await
        .unwrap();
    let csp = h.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    // A browser at the server's root is sent to the console; a log
    // shipper still gets the Elasticsearch banner.
    let r = c
        .send(
            c.http
                .get(format!("{}/", c.base))
                .header("accept", "text/html"),
            &[],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/console/"));
    let r = c.get("/", &[]).await;
    assert!(r.body.contains("You Know, for Search"));
}

#[tokio::test]
async fn signing_out_and_idling_end_the_session_and_revoke_its_token() {
    let c = Console::start(Duration::from_secs(1)).await;
    let session = c.sign_in("soc", "ana").await;
    let s = [("mimamori_session", session.as_str())];
    let page = c.get("/console/alerts", &s).await;
    assert_eq!(page.status, 200);
    let r = c
        .post("/console/logout", &[("csrf", &page.csrf())], &s)
        .await;
    assert_eq!(r.status, 303);
    assert!(
        r.cookies
            .iter()
            .any(|c| c.starts_with("mimamori_session=;")),
        "{r:?}"
    );
    let r = c.get("/console/alerts", &s).await;
    assert_eq!(r.status, 303, "the old cookie is dead");
    assert!(
        c.store.authenticate(&session).await.is_err(),
        "its token revoked"
    );

    // Idle past the timeout (1 s here): signed out on the next request.
    let session = c.sign_in("soc", "ana").await;
    let s = [("mimamori_session", session.as_str())];
    assert_eq!(c.get("/console/", &s).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = c.get("/console/", &s).await;
    assert_eq!(r.status, 303);
    assert!(r.location.unwrap().contains("expired=1"));
    assert!(c.store.authenticate(&session).await.is_err());
}
