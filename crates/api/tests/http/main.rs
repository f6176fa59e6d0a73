//! The HTTP API driven over real sockets: a server on 127.0.0.1, a real
//! HTTP client, real JSON. One test binary (link time on 2 cores matters).

mod authz;
mod detection;
mod errors;
mod hardening;
mod ingest;
mod intel_share;
mod isolation;
mod openapi;
mod query_limits;
mod taxii;
mod taxii_feed;
mod tenancy;

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, Org, OrgKind, Role, Validated};
use mimamori_store::{AuditActor, NewToken, NewUser, Store};
use reqwest::Method;
use serde_json::Value;
use tokio::net::TcpListener;

/// A running API server on a fresh database.
pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub root: Org,
    pub ingest: mimamori_ingest::Ingest,
    pub hub: mimamori_pipeline::hub::IntelHub,
    _dir: tempfile::TempDir,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A response: status and parsed JSON body (Null when empty).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
}

impl Server {
    /// Sends one DNS Activity event per name as `org`'s sensor over the
    /// HTTP ingest, and waits until all of them are in the archive.
    pub async fn ingest_dns(&self, org: &Org, names: &[String]) {
        let sensor = self.token(org, Role::Sensor).await;
        let body: String = names
            .iter()
            .map(|n| format!("{{\"class\":\"dns_activity\",\"dns_query\":\"{n}\"}}\n"))
            .collect();
        let r = self
            .call_raw(
                Method::POST,
                "/ingest/v1/events",
                Some(&sensor),
                body.into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let start = std::time::Instant::now();
        while self
            .ingest
            .archive()
            .read_events(Some(&[org.id.to_string()]))
            .unwrap()
            .len()
            < names.len()
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "not archived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Starts a server on SQLite, or on the given database URL.
    pub async fn start_with(url: Option<String>) -> Server {
        Self::start_custom(url, |state| state).await
    }

    /// A server whose state `custom` adjusts (a fetch policy, query limits).
    pub async fn start_custom(
        url: Option<String>,
        custom: impl FnOnce(mimamori_api::AppState) -> mimamori_api::AppState,
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let url = url.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("t.db").display()));
        let store = Store::open(&url).await.unwrap();
        let root = store
            .bootstrap_root(&AuditActor::local_operator(), "soc", &profile("中央SOC"))
            .await
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let icfg = mimamori_ingest::IngestConfig {
            flush_interval: std::time::Duration::from_millis(100),
            ..mimamori_ingest::IngestConfig::new(dir.path().join("ingest"))
        };
        // Streaming detection as `serve` runs it: indicator matching, with
        // campaigns at 3 orgs, and the matcher reloaded on intel changes.
        let config = mimamori_pipeline::DetectionConfig::default();
        let matcher = mimamori_pipeline::intel::IntelMatcher::new(
            mimamori_pipeline::intel::IntelSnapshot::load(&store)
                .await
                .unwrap(),
        );
        mimamori_pipeline::intel::watch(
            matcher.clone(),
            store.clone(),
            std::time::Duration::from_millis(200),
        );
        let consumer = mimamori_pipeline::DetectionConsumer::new(
            vec![Box::new(matcher.engine_refreshing(
                store.clone(),
                tokio::runtime::Handle::current(),
            ))],
            store.clone(),
            tokio::runtime::Handle::current(),
            config,
        );
        // The threads stop when the last handle (the router's) is dropped.
        let (ingest, _threads) =
            mimamori_ingest::Ingest::start_with(icfg, vec![Box::new(consumer)]).unwrap();
        let schemas = Some(std::sync::Arc::new(
            mimamori_intel::StixSchemas::bundled().unwrap(),
        ));
        let hub = mimamori_pipeline::hub::IntelHub {
            store: store.clone(),
            matcher,
            hunts: Default::default(),
            archive: Some(ingest.archive().clone()),
            schemas,
            config,
            retro_days: 30,
        };
        let router = mimamori_api::router(custom(
            mimamori_api::AppState::new(store.clone())
                .with_ingest(ingest.clone())
                .with_intel(hub.clone()),
        ));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(mimamori_api::serve(listener, router, None, async move {
            let _ = rx.await;
        }));
        Server {
            base,
            client: reqwest::Client::new(),
            store,
            root,
            ingest,
            hub,
            _dir: dir,
            _shutdown: tx,
        }
    }

    pub async fn start() -> Server {
        Self::start_with(None).await
    }

    /// A server whose fetches (feeds, TAXII polls) may reach loopback,
    /// where the tests' feed servers listen; refused by default.
    pub async fn start_fetching_loopback() -> Server {
        Self::start_custom(None, |st| st.with_fetch_policy(loopback_policy())).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        Self::read(resp).await
    }

    /// A request with a raw body (NDJSON, HEC envelopes, bulk lines).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.unwrap()).await
    }

    pub async fn read(resp: reqwest::Response) -> Resp {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            body,
            content_type,
        }
    }

    pub async fn org(&self, parent: &Org, slug: &str, kind: OrgKind) -> Org {
        self.store
            .org_create(
                &AuditActor::local_operator(),
                parent,
                slug,
                kind,
                &profile(slug),
            )
            .await
            .unwrap()
    }

    pub async fn token(&self, org: &Org, role: Role) -> String {
        self.store
            .token_issue(
                &AuditActor::local_operator(),
                org,
                None,
                &NewToken {
                    org_id: org.id.to_string(),
                    name: format!("{role} test token"),
                    role,
                    expires_in_secs: None,
                },
            )
            .await
            .unwrap()
            .secret
    }

    /// A user in `org`; returns its id.
    pub async fn user(&self, org: &Org, username: &str, role: Role) -> String {
        self.store
            .user_create(
                &AuditActor::local_operator(),
                org,
                &NewUser {
                    org_id: org.id.to_string(),
                    username: username.into(),
                    display_name: None,
                    email: None,
                    role,
                    password: "a long enough password".into(),
                },
            )
            .await
            .unwrap()
            .id
    }
}

/// The shared test corpora (`$MIMAMORI_CORPORA`, else `shared/corpora`
/// beside the repository), if present.
/// A fetch policy that allows loopback (127.0.0.0/8).
pub fn loopback_policy() -> mimamori_fetch::FetchPolicy {
    mimamori_fetch::FetchPolicy::new(vec!["127.0.0.0/8".parse().unwrap()])
}

pub fn corpora() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("MIMAMORI_CORPORA") {
        return Some(p.into());
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    p.is_dir().then_some(p)
}

pub fn profile(name: &str) -> OrgProfile {
    NewOrg {
        slug: "x".into(),
        name: name.into(),
        ..Default::default()
    }
    .validate()
    .unwrap()
    .1
}

/// Asserts a problem+json error with `status`, returning its detail.
#[track_caller]
pub fn problem(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "expected {status}, got {r:?}");
    assert_eq!(r.content_type, "application/problem+json", "{r:?}");
    assert_eq!(r.body["status"], status, "{r:?}");
    r.body["detail"].as_str().expect("detail").to_string()
}
