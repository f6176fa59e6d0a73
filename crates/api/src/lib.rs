//! The HTTP API of mimamori: axum routes under `/api/v1`, bearer-token
//! authentication, role × scope authorization, RFC 7807 errors, OpenAPI,
//! Prometheus metrics, and a listener that speaks plain HTTP or TLS.
//!
//! Architecture invariant: this is the only crate that knows HTTP. Handlers
//! check the role first (403), then look the target up *through the
//! caller's scope* (404 when absent or out of scope — indistinguishable),
//! then act through the store, which audits in the same transaction.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod throttle;
pub mod tls;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use metrics::Metrics;
use mimamori_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Telemetry ingestion, when this server runs it.
    pub ingest: Option<mimamori_ingest::Ingest>,
    pub hec_acks: Arc<routes::ingest::HecAcks>,
    /// The threat-intel hub (import, matcher, retro-hunts).
    pub intel: Option<Arc<mimamori_pipeline::hub::IntelHub>>,
    pub taxii_statuses: Arc<routes::taxii::Statuses>,
    /// Streaming detection's counters, when it runs.
    pub detection: Option<Arc<mimamori_pipeline::DetectionStats>>,
    /// More counters for `/metrics` from services the binary runs (the
    /// DNS resolver): each gives `(name, help, value)` when scraped.
    pub extra_metrics: Vec<Arc<MetricsSource>>,
    /// What closing an indicator alert does to its indicators
    /// (`[intel] true_positive_extend_days`, `false_positive_confidence_drop`).
    pub verdicts: mimamori_store::VerdictPolicy,
    /// Reads the running resolver's policy files again, when this server
    /// runs one (`POST /api/v1/dns/rpz/reload`).
    pub dns_reload: Option<Arc<DnsReloader>>,
    /// SQL over the archive (`[query]`): its runtime, concurrency and limits.
    pub query: mimamori_query::QueryEngine,
    /// Which addresses feed polls may reach (`[security] allow_fetch_networks`).
    pub fetch_policy: mimamori_fetch::FetchPolicy,
    /// Wrong-password lockouts (`[api] login_*`).
    pub login_throttle: Arc<throttle::LoginThrottle>,
}

/// Reads the resolver's policy files again: what became of each.
pub type DnsReloader = dyn Fn()
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<routes::dns::ZoneReload>> + Send>>
    + Send
    + Sync;

/// A source of counters for `/metrics`.
pub type MetricsSource = dyn Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync;

impl AppState {
    pub fn new(store: Store) -> Self {
        AppState {
            store,
            metrics: Arc::new(Metrics::default()),
            ingest: None,
            hec_acks: Default::default(),
            intel: None,
            taxii_statuses: Default::default(),
            detection: None,
            extra_metrics: vec![],
            verdicts: Default::default(),
            dns_reload: None,
            query: mimamori_query::QueryEngine::new(Default::default()),
            fetch_policy: Default::default(),
            login_throttle: Default::default(),
        }
    }

    pub fn with_login_limits(mut self, limits: throttle::LoginLimits) -> Self {
        self.login_throttle = Arc::new(throttle::LoginThrottle::new(limits));
        self
    }

    pub fn with_fetch_policy(mut self, policy: mimamori_fetch::FetchPolicy) -> Self {
        self.fetch_policy = policy;
        self
    }

    pub fn with_query(mut self, config: mimamori_query::EngineConfig) -> Self {
        self.query = mimamori_query::QueryEngine::new(config);
        self
    }

    pub fn with_verdicts(mut self, verdicts: mimamori_store::VerdictPolicy) -> Self {
        self.verdicts = verdicts;
        self
    }

    pub fn with_detection(mut self, stats: Arc<mimamori_pipeline::DetectionStats>) -> Self {
        self.detection = Some(stats);
        self
    }

    pub fn with_metrics(mut self, source: Arc<MetricsSource>) -> Self {
        self.extra_metrics.push(source);
        self
    }

    pub fn with_intel(mut self, hub: mimamori_pipeline::hub::IntelHub) -> Self {
        self.intel = Some(Arc::new(hub));
        self
    }

    pub fn with_dns_reload(mut self, reload: Arc<DnsReloader>) -> Self {
        self.dns_reload = Some(reload);
        self
    }

    pub fn with_ingest(mut self, ingest: mimamori_ingest::Ingest) -> Self {
        self.ingest = Some(ingest);
        self
    }
}

/// The complete router.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The complete router with `extra` routes (the web console) merged in,
/// under the same layers (metrics, panics caught, body limits).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    use routes::{
        alerts, audit, dns, identity, ingest, intel, notify, orgs, query, reports, sharing, system,
        taxii,
    };
    let api = Router::new()
        .route("/orgs", get(orgs::list).post(orgs::create))
        .route(
            "/orgs/{id}",
            get(orgs::get).patch(orgs::update).delete(orgs::delete),
        )
        .route("/whoami", get(identity::whoami))
        .route("/auth/login", post(identity::login))
        .route("/auth/logout", post(identity::logout))
        .route(
            "/users",
            get(identity::list_users).post(identity::create_user),
        )
        .route("/users/{id}", get(identity::get_user))
        .route("/users/{id}/disable", post(identity::disable_user))
        .route(
            "/tokens",
            get(identity::list_tokens).post(identity::create_token),
        )
        .route(
            "/tokens/{id}",
            get(identity::get_token).delete(identity::revoke_token),
        )
        .route("/audit", get(audit::list))
        .route("/alerts", get(alerts::list))
        .route("/alerts/summary", get(alerts::summary))
        .route("/alerts/{id}", get(alerts::get).patch(alerts::update))
        .route("/alerts/{id}/comments", post(alerts::comment))
        .route("/campaigns", get(alerts::campaigns))
        .route("/campaigns/{id}", get(alerts::campaign))
        .route("/suppressions", get(alerts::suppressions))
        .route("/notify/channels", get(notify::list).post(notify::create))
        .route(
            "/notify/channels/{id}",
            get(notify::get).delete(notify::delete),
        )
        .route("/notify/channels/{id}/test", post(notify::test))
        .route("/indicators", get(intel::list))
        .route("/indicators/{id}", get(intel::get))
        .route("/intel/export", get(intel::export))
        .route("/intel/feeds", get(intel::feeds).post(intel::create_feed))
        .route(
            "/intel/feeds/{id}",
            get(intel::feed).delete(intel::delete_feed),
        )
        .route("/intel/feeds/{id}/poll", post(intel::poll_feed))
        .route("/intel/groups", get(sharing::list).post(sharing::create))
        .route(
            "/intel/groups/{id}",
            get(sharing::get)
                .patch(sharing::update)
                .delete(sharing::delete),
        )
        .route("/intel/reports/{id}", get(reports::get))
        .route("/intel/reports/{id}/document", get(reports::document))
        .route(
            "/intel/reports/{id}/proposals/{proposal_id}/accept",
            post(reports::accept),
        )
        .route(
            "/intel/reports/{id}/proposals/{proposal_id}/reject",
            post(reports::reject),
        )
        .route("/dns/policy", get(dns::list).post(dns::add))
        .route("/dns/policy/{id}", get(dns::get).delete(dns::remove))
        .route("/dns/rpz/reload", post(dns::rpz_reload))
        .route("/hunts", get(intel::hunts))
        .route("/hunts/{id}", get(intel::hunt))
        .route("/query", post(query::query))
        .route("/openapi.json", get(system::openapi));
    // Intel documents are larger than API requests in general.
    let import = Router::new()
        .route("/api/v1/intel/import", post(intel::import))
        .route(
            "/api/v1/intel/reports",
            get(reports::list).post(reports::upload),
        )
        .route("/taxii2/", get(taxii::discovery))
        .route("/taxii2/api/", get(taxii::api_root))
        .route("/taxii2/api/collections/", get(taxii::collections))
        .route("/taxii2/api/collections/{id}/", get(taxii::get_collection))
        .route(
            "/taxii2/api/collections/{id}/objects/",
            get(taxii::objects).post(taxii::add_objects),
        )
        .route(
            "/taxii2/api/collections/{id}/objects/{object_id}/",
            get(taxii::object),
        )
        .route(
            "/taxii2/api/collections/{id}/manifest/",
            get(taxii::manifest),
        )
        .route("/taxii2/api/status/{id}/", get(taxii::status))
        .layer(axum::middleware::from_fn(|req, next| {
            error::limit_body(routes::intel::MAX_IMPORT_BODY, req, next)
        }))
        .layer(DefaultBodyLimit::max(routes::intel::MAX_IMPORT_BODY))
        .layer(axum::Extension(error::BodyLimitHint(
            routes::intel::MAX_IMPORT_BODY,
        )));
    let ingest = Router::new()
        .route("/ingest/v1/events", post(ingest::events))
        .route("/services/collector", post(ingest::hec_event))
        .route("/services/collector/event", post(ingest::hec_event))
        .route("/services/collector/event/1.0", post(ingest::hec_event))
        .route("/services/collector/raw", post(ingest::hec_raw))
        .route("/services/collector/raw/1.0", post(ingest::hec_raw))
        .route("/services/collector/ack", post(ingest::hec_ack))
        .route("/services/collector/health", get(ingest::hec_health))
        .route("/services/collector/health/1.0", get(ingest::hec_health))
        .route("/", get(ingest::es_root).head(ingest::es_root))
        .route("/_bulk", post(ingest::es_bulk))
        .route("/{index}/_bulk", post(ingest::es_bulk))
        .layer(axum::middleware::from_fn(|req, next| {
            error::limit_body(routes::ingest::MAX_INGEST_BODY, req, next)
        }))
        .layer(DefaultBodyLimit::max(routes::ingest::MAX_INGEST_BODY))
        .layer(axum::Extension(error::BodyLimitHint(
            routes::ingest::MAX_INGEST_BODY,
        )));
    Router::new()
        .nest(
            "/api/v1",
            api.layer(axum::middleware::from_fn(|req, next| {
                error::limit_body(MAX_BODY_BYTES, req, next)
            }))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .merge(ingest)
        .merge(import)
        .merge(extra)
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such endpoint; see /api/v1/openapi.json",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method; see /api/v1/openapi.json",
            )
        })
        // Routes outside the groups above (health, metrics, the fallback)
        // take no body: refuse the largest the server takes anywhere.
        .layer(axum::middleware::from_fn(|req, next| {
            error::limit_body(routes::intel::MAX_IMPORT_BODY, req, next)
        }))
        .layer(axum::middleware::from_fn(error::shape_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::internal())
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, over TLS when
/// `tls` is given. Open connections get a few seconds to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = router
            .clone()
            .map_request(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                req
            });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let builder = builder.clone();
        match &tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::warn!("connections still open after 5 s; closing them");
        }
    }
    Ok(())
}
