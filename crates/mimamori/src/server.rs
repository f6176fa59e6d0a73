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
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<()> {
    let mut cfg = Config::load(data_dir, args.config.as_deref())?;
    if let Some(l) = args.listen {
        cfg.api.listen = l;
    }
    let running = start(data_dir, &cfg, shutdown_signal()).await?;
    let scheme = if running.tls { "https" } else { "http" };
    println!("mimamori API listening on {scheme}://{}", running.api_addr);
    running
        .handle
        .await
        .context("the API server task failed")??;
    running.store.close().await;
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
    let state = mimamori_api::AppState::new(store.clone());
    let router = mimamori_api::router(state);
    let is_tls = tls.is_some();
    let handle = tokio::spawn(mimamori_api::serve(listener, router, tls, shutdown));
    Ok(Running {
        api_addr,
        tls: is_tls,
        store,
        handle,
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
