//! `mimamori serve`: start every configured service and run until Ctrl-C.

use crate::admin::open_store_with;
use crate::config::Config;
use anyhow::Context;
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (default: DATA_DIR/mimamori.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override the API listen address (e.g. 0.0.0.0:8443).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// The running services, for callers (like the demo) that wire more in.
pub struct Running {
    pub api_addr: SocketAddr,
    pub tls: bool,
    pub store: mimamori_store::Store,
    /// The ingest handle (for in-process sources such as the demo).
    pub ingest: Option<mimamori_ingest::Ingest>,
    /// Syslog listeners: (protocol, bound address).
    pub syslog: Vec<(&'static str, SocketAddr)>,
    /// The Protective DNS resolver, when `[pdns] listen` is set.
    pub pdns: Option<crate::pdns::Running>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
    ingest_threads: Option<mimamori_ingest::IngestThreads>,
    notifier: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Running {
    /// Waits for the shutdown signal, then drains: the API stops, every
    /// acknowledged event is flushed to the archive, the database closes.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let served = (&mut self.handle).await;
        // The resolver stops answering before its log's pipeline drains.
        drop(self.pdns.take());
        // Syslog listeners and the demo feed hold handles too: stop the
        // pipeline explicitly so the archive drains now.
        if let Some(ingest) = self.ingest.take() {
            ingest.shutdown();
        }
        if let Some(threads) = self.ingest_threads.take() {
            tokio::task::spawn_blocking(move || threads.join()).await?;
        }
        // Detection has written its last alerts: deliver what is due, stop.
        if let Some((stop, task)) = self.notifier.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
        self.store.close().await;
        served.context("the API server task failed")??;
        Ok(())
    }
}

pub async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(data_dir, args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.api.listen = l;
    }
    let running = start(data_dir, &cfg, shutdown_signal()).await?;
    let scheme = if running.tls { "https" } else { "http" };
    println!("mimamori API listening on {scheme}://{}", running.api_addr);
    for (proto, addr) in &running.syslog {
        println!("syslog {proto} listening on {addr}");
    }
    if let Some(p) = &running.pdns {
        println!(
            "Protective DNS listening on udp+tcp {}",
            p.handle.udp_addr()
        );
        if let Some(a) = p.handle.tls_addr() {
            println!("Protective DNS over TLS listening on {a}");
        }
        if let Some(a) = p.handle.doh_addr() {
            let scheme = if running.tls { "https" } else { "http" };
            println!("Protective DNS over HTTPS listening on {scheme}://{a}/dns-query");
        }
        if let Some(a) = p.handle.block_page_addr() {
            let scheme = if cfg.pdns.block_page_tls_cert.is_some() {
                "https"
            } else {
                "http"
            };
            println!("Protective DNS block page listening on {scheme}://{a}");
        }
    }
    running.wait().await?;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the API on the configured address.
pub async fn start(
    data_dir: &Path,
    cfg: &Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let store = open_store_with(data_dir, cfg).await?;
    let tls = match cfg.tls_files(data_dir)? {
        Some((cert, key)) => Some(
            mimamori_api::tls::acceptor_from_pem_files(&cert, &key)
                .context("cannot set up TLS for the API")?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(cfg.api.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another mimamori running? choose another with --listen)",
            cfg.api.listen
        )
    })?;
    let api_addr = listener.local_addr()?;
    let mut state = mimamori_api::AppState::new(store.clone())
        .with_verdicts(cfg.intel.verdicts())
        .with_query(cfg.query.clone())
        .with_fetch_policy(cfg.security.fetch_policy())
        .with_login_limits(cfg.api.login_limits());
    let mut consumers: Vec<Box<dyn mimamori_ingest::Consumer>> = vec![];
    let mut detection = None;
    let matcher = crate::detection::matcher(&store).await?;
    if cfg.ingest.enabled && cfg.detection.enabled {
        let consumer = crate::detection::consumer(cfg, &store, &matcher).await?;
        detection = Some(consumer.stats());
        consumers.push(Box::new(consumer));
    }
    let (ingest, ingest_threads) = if cfg.ingest.enabled {
        let icfg = cfg.ingest.to_config(data_dir);
        // Recovery replays the WAL: blocking work, done before serving.
        let (ingest, threads) = tokio::task::spawn_blocking(move || {
            mimamori_ingest::Ingest::start_with(icfg, consumers)
        })
        .await?
        .context("cannot start ingestion")?;
        alert_wal_damage(&store, ingest.wal_damage()).await;
        state = state.with_ingest(ingest.clone());
        (Some(ingest), Some(threads))
    } else {
        (None, None)
    };
    let syslog_stats = std::sync::Arc::new(mimamori_ingest::syslog::SyslogStats::default());
    let syslog = match &ingest {
        Some(ingest) => start_syslog(data_dir, cfg, &store, ingest, syslog_stats.clone()).await?,
        None => vec![],
    };
    if !syslog.is_empty() {
        state = state.with_metrics(syslog_metrics(syslog_stats));
    }
    if let Some(ingest) = &ingest {
        spawn_retention(cfg, &store, ingest.archive().clone());
    }
    if let Some(d) = detection {
        state = state.with_detection(d);
    }
    let pdns = crate::pdns::start_in_serve(
        &cfg.pdns,
        &store,
        &matcher,
        ingest.clone(),
        tls.as_ref().map(|t| t.config().clone()),
    )
    .await?;
    if let Some(p) = &pdns {
        state = state
            .with_metrics(p.metrics())
            .with_dns_reload(p.reload.clone());
    }
    let hub = crate::detection::hub(
        cfg,
        &store,
        matcher,
        ingest.as_ref().map(|i| i.archive().clone()),
    )?;
    // Feed subscriptions are checked for due polls every 10 s.
    mimamori_pipeline::feeds::run(
        hub.clone(),
        std::time::Duration::from_secs(10),
        cfg.security.fetch_policy(),
    );
    state = state.with_intel(hub);
    let notifier = if cfg.notify.enabled {
        let notifier = mimamori_notify::Notifier::new(
            store.clone(),
            mimamori_notify::NotifyConfig {
                smtp_url: cfg.notify.smtp_url.clone(),
                smtp_from: cfg.notify.smtp_from.clone(),
                fetch: cfg.security.fetch_policy(),
                ..Default::default()
            },
        )
        .context("cannot set up notifications")?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(notifier.run(async move {
            let _ = stopped.changed().await;
        }));
        Some((stop, task))
    } else {
        None
    };
    let is_tls = tls.is_some();
    let console = mimamori_console::routes(mimamori_console::session::ConsoleConfig {
        secure_cookies: is_tls,
        idle_timeout: std::time::Duration::from_secs(
            u64::from(cfg.api.console_idle_minutes.max(1)) * 60,
        ),
    });
    let router = mimamori_api::router_with(state, console);
    let handle = tokio::spawn(mimamori_api::serve(listener, router, tls, shutdown));
    Ok(Running {
        api_addr,
        tls: is_tls,
        store,
        ingest,
        syslog,
        pdns,
        handle,
        ingest_threads,
        notifier,
    })
}

/// Raises one alert in the root org (the central SOC) per stretch of WAL
/// damage this start found: acknowledged events that could not be
/// recovered. Each is already logged as an ERROR; a failure to record the
/// alert is logged too, and does not stop the server.
pub(crate) async fn alert_wal_damage(
    store: &mimamori_store::Store,
    damage: &[mimamori_ingest::wal::Damage],
) {
    if damage.is_empty() {
        return;
    }
    let root = match store.root_org().await {
        Ok(Some(root)) => root,
        Ok(None) => {
            tracing::error!("no root org to alert about WAL damage");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot find the root org to alert about WAL damage");
            return;
        }
    };
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    for d in damage {
        let events = d
            .events
            .map_or("an unknown number of".to_string(), |n| n.to_string());
        let det = mimamori_store::Detection {
            org_id: root.id.to_string(),
            kind: mimamori_store::AlertKind::System,
            rule_id: "mimamori:wal-damage".into(),
            title: format!(
                "WAL damage: {}{events} acknowledged events could not be recovered",
                if d.exact { "" } else { "at most " }
            ),
            severity: mimamori_store::Severity::High,
            entity: format!("wal:{}-{}", d.start, d.end),
            attack: vec![],
            context: serde_json::json!({
                "description": d.describe(),
                "wal_start": d.start,
                "wal_end": d.end,
                "bytes": d.bytes(),
                "places": d.places,
                "records_lost": d.records,
                "events_lost": d.events,
                "exact": d.exact,
                "check": "mimamori wal check",
            }),
            event_ids: vec![],
            time: now,
            retro: false,
            campaign_key: None,
        };
        match store
            .alert_record(&det, 0, &mimamori_store::CampaignPolicy::default())
            .await
        {
            Ok(_) => tracing::info!(org = %root.slug, "raised an alert about WAL damage"),
            Err(e) => tracing::error!(error = %e, "cannot record the WAL damage alert"),
        }
    }
}

/// Applies archive retention now and then every hour: `retention_days`
/// for every org, `retention_by_org` (by slug) where given, both counted
/// from when the events were received.
fn spawn_retention(
    cfg: &Config,
    store: &mimamori_store::Store,
    archive: mimamori_ingest::archive::Archive,
) {
    const DAY_MS: i64 = 86_400_000;
    let default_ms = match cfg.ingest.retention_override {
        Some(d) => d.as_millis() as i64,
        None => i64::from(cfg.ingest.retention_days) * DAY_MS,
    };
    let by_slug = cfg.ingest.retention_by_org.clone();
    let store = store.clone();
    // Hourly, or more often for a retention shorter than six hours.
    let every =
        std::time::Duration::from_millis((default_ms.max(60_000) / 6).min(3_600_000) as u64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if store.is_closed() {
                break;
            }
            let by_id = match retention_by_id(&store, &by_slug).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(error = %e, "retention: cannot read the org tree; skipped");
                    continue;
                }
            };
            let archive = archive.clone();
            let now = mimamori_core::now_millis();
            let result = tokio::task::spawn_blocking(move || {
                archive.apply_retention(now, |org| {
                    let ms = by_id
                        .get(org)
                        .map_or(default_ms, |days| i64::from(*days) * DAY_MS);
                    (ms > 0).then_some(ms)
                })
            })
            .await;
            match result {
                Ok(Ok(r)) if !r.removed.is_empty() => tracing::info!(
                    partitions = r.removed.len(),
                    files = r.files,
                    bytes = r.bytes,
                    "retention: removed expired archive partitions"
                ),
                Ok(Ok(_)) => tracing::info!("retention: nothing expired"),
                Ok(Err(e)) => tracing::error!(error = %e, "retention failed"),
                Err(e) => tracing::error!(error = %e, "retention task failed"),
            }
        }
    });
}

/// `retention_by_org` keyed by org id; unknown slugs are reported.
async fn retention_by_id(
    store: &mimamori_store::Store,
    by_slug: &std::collections::BTreeMap<String, u32>,
) -> anyhow::Result<std::collections::HashMap<String, u32>> {
    let mut out = std::collections::HashMap::new();
    if by_slug.is_empty() {
        return Ok(out);
    }
    let Some(root) = store.root_org().await? else {
        return Ok(out);
    };
    let orgs = store
        .org_all(&mimamori_core::Scope::Subtree(root.path.clone()))
        .await?;
    for (slug, days) in by_slug {
        match orgs.iter().find(|o| &o.slug == slug) {
            Some(o) => {
                out.insert(o.id.to_string(), *days);
            }
            None => tracing::warn!(slug, "retention_by_org names an org that does not exist"),
        }
    }
    Ok(out)
}

/// The (network, org id) table syslog attribution uses.
async fn org_networks(
    store: &mimamori_store::Store,
) -> anyhow::Result<Vec<(mimamori_core::org::IpNet, String)>> {
    let Some(root) = store.root_org().await? else {
        return Ok(vec![]);
    };
    let orgs = store
        .org_all(&mimamori_core::Scope::Subtree(root.path.clone()))
        .await?;
    Ok(orgs
        .into_iter()
        .flat_map(|o| {
            let id = o.id.to_string();
            o.networks.into_iter().map(move |n| (n, id.clone()))
        })
        .collect())
}

/// `tls_client_orgs` (identity → org slug) with org ids for slugs;
/// identities naming an org that does not exist are reported and skipped.
async fn client_orgs(
    store: &mimamori_store::Store,
    by_slug: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<Vec<(String, String)>> {
    if by_slug.is_empty() {
        return Ok(vec![]);
    }
    let Some(root) = store.root_org().await? else {
        return Ok(vec![]);
    };
    let orgs = store
        .org_all(&mimamori_core::Scope::Subtree(root.path.clone()))
        .await?;
    let mut out = vec![];
    for (identity, slug) in by_slug {
        match orgs.iter().find(|o| &o.slug == slug) {
            Some(o) => out.push((identity.clone(), o.id.to_string())),
            None => tracing::warn!(
                identity,
                slug,
                "[syslog] tls_client_orgs names an org that does not exist"
            ),
        }
    }
    Ok(out)
}

/// Starts the configured syslog listeners; returns their bound addresses.
async fn start_syslog(
    data_dir: &Path,
    cfg: &Config,
    store: &mimamori_store::Store,
    ingest: &mimamori_ingest::Ingest,
    stats: std::sync::Arc<mimamori_ingest::syslog::SyslogStats>,
) -> anyhow::Result<Vec<(&'static str, SocketAddr)>> {
    use mimamori_ingest::syslog::{self, OrgResolver, SyslogContext, SyslogTls};
    use mimamori_ingest::tls_identity::{self, ClientAuth, ClientOrgs};
    let sc = &cfg.syslog;
    if sc.udp.is_none() && sc.tcp.is_none() && sc.tls.is_none() {
        return Ok(vec![]);
    }
    let orgs = std::sync::Arc::new(OrgResolver::new(org_networks(store).await?));
    let clients = match (&sc.tls, &sc.tls_client_ca) {
        (Some(_), Some(_)) => Some(std::sync::Arc::new(
            ClientOrgs::new(
                client_orgs(store, &sc.tls_client_orgs).await?,
                sc.tls_network_fallback,
            )
            .context("bad [syslog] tls_client_orgs")?,
        )),
        _ => None,
    };
    // Org networks and slugs change through the API and CLI: refresh the
    // tables.
    {
        let (orgs, clients, store) = (orgs.clone(), clients.clone(), store.clone());
        let by_slug = sc.tls_client_orgs.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                every.tick().await;
                if store.is_closed() {
                    break;
                }
                match org_networks(&store).await {
                    Ok(nets) => orgs.replace(nets),
                    Err(e) => tracing::warn!(error = %e, "cannot refresh org networks for syslog"),
                }
                if let Some(clients) = &clients {
                    match client_orgs(&store, &by_slug).await {
                        Ok(table) => {
                            if let Err(e) = clients.replace(table) {
                                tracing::warn!(error = %e, "cannot refresh syslog client identities");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot refresh syslog client identities")
                        }
                    }
                }
            }
        });
    }
    let ctx = SyslogContext {
        ingest: ingest.clone(),
        orgs,
        stats,
    };
    let mut bound = vec![];
    if let Some(addr) = sc.udp {
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .with_context(|| format!("cannot bind syslog UDP {addr}"))?;
        bound.push(("udp", sock.local_addr()?));
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = syslog::serve_udp(sock, ctx).await {
                tracing::error!(error = %e, "syslog UDP listener failed");
            }
        });
    }
    for (proto, addr) in [("tcp", sc.tcp), ("tls", sc.tls)] {
        let Some(addr) = addr else { continue };
        let tls = if proto == "tls" {
            let (cert, key) = match cfg.tls_files(data_dir)? {
                Some(files) => files,
                None => (data_dir.join("tls/cert.pem"), data_dir.join("tls/key.pem")),
            };
            let auth = if sc.tls_client_required {
                ClientAuth::Required
            } else {
                ClientAuth::Optional
            };
            let client_ca = sc.tls_client_ca.as_deref().map(|ca| (ca, auth));
            Some(SyslogTls {
                acceptor: tls_identity::acceptor(&cert, &key, client_ca)
                    .context("cannot set up TLS for syslog")?,
                clients: clients.clone(),
            })
        } else {
            None
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot bind syslog {proto} {addr}"))?;
        bound.push((proto, listener.local_addr()?));
        let (ctx, max) = (ctx.clone(), sc.max_connections.max(1));
        tokio::spawn(async move {
            if let Err(e) = syslog::serve_tcp(listener, tls, ctx, max).await {
                tracing::error!(error = %e, "syslog {proto} listener failed");
            }
        });
    }
    Ok(bound)
}

/// The syslog listeners' counters for `/metrics`.
fn syslog_metrics(
    stats: std::sync::Arc<mimamori_ingest::syslog::SyslogStats>,
) -> std::sync::Arc<mimamori_api::MetricsSource> {
    use std::sync::atomic::Ordering::Relaxed;
    std::sync::Arc::new(move || {
        vec![
            (
                "syslog_messages_received",
                "Syslog messages read from UDP, TCP and TLS senders",
                stats.received.load(Relaxed),
            ),
            (
                "syslog_messages_accepted",
                "Syslog messages queued for the WAL",
                stats.accepted.load(Relaxed),
            ),
            (
                "syslog_messages_rejected",
                "Syslog messages refused (too long, not syslog)",
                stats.rejected.load(Relaxed),
            ),
            (
                "syslog_messages_unattributed",
                "Syslog UDP messages and TCP/TLS connections from senders in no org's network",
                stats.unattributed.load(Relaxed),
            ),
            (
                "syslog_messages_dropped_overload",
                "Syslog UDP messages dropped while ingestion was full",
                stats.dropped_overload.load(Relaxed),
            ),
            (
                "syslog_tls_refused",
                "Syslog TLS handshakes refused (no valid client certificate)",
                stats.tls_refused.load(Relaxed),
            ),
        ]
    })
}

/// Resolves on Ctrl-C or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a signal that arrives while the server is still starting
/// (before anything awaits this) must stop it cleanly too, instead of the
/// default action killing the process and skipping the drain into the
/// archive. Call it from within the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down");
    }
}
