//! The HTTP listener DoH and the block page share: a connection slot from
//! a semaphore before each accept, TLS when an acceptor is given, and
//! hyper's HTTP/1.1-or-HTTP/2 connection builder serving an axum router
//! with the peer address as `ConnectInfo`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::Service;

/// How a listener treats its connections.
pub(crate) struct Conns {
    /// TLS when given, plain HTTP otherwise.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Connections served at once; past it clients wait in the backlog.
    pub limit: Arc<Semaphore>,
    /// The longest a TLS handshake may take.
    pub idle: Duration,
    /// The longest a connection may stay open, whatever it does.
    pub lifetime: Option<Duration>,
    pub stop: Arc<AtomicBool>,
}

/// The next connection, with the slot it holds (released when dropped);
/// `None` once the semaphore is closed. The slot is taken before accepting:
/// past the limit, clients wait in the kernel's backlog instead of starving
/// the others. An accept error (say, out of descriptors) is logged and
/// retried after a short pause.
pub(crate) async fn accept_within(
    l: &TcpListener,
    limit: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    let permit = limit.clone().acquire_owned().await.ok()?;
    loop {
        match l.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                return Some((stream, peer, permit));
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Accepts connections and serves `app` on each with `builder`; `what`
/// names the listener in logs.
pub(crate) async fn serve(
    l: TcpListener,
    app: Router,
    builder: Builder<TokioExecutor>,
    conns: Conns,
    what: &'static str,
) {
    while !conns.stop.load(Ordering::Relaxed) {
        let Some((stream, peer, permit)) = accept_within(&l, &conns.limit).await else {
            return;
        };
        let app = app.clone();
        let tls = conns.tls.clone();
        let builder = builder.clone();
        let (idle, lifetime) = (conns.idle, conns.lifetime);
        tokio::spawn(async move {
            let _permit = permit;
            let conn = serve_conn(stream, peer, app, &builder, tls, idle);
            let result = match lifetime {
                None => conn.await,
                Some(t) => match tokio::time::timeout(t, conn).await {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::debug!(%peer, what, "connection closed at its time limit");
                        return;
                    }
                },
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, what, "connection ended");
            }
        });
    }
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    builder: &Builder<TokioExecutor>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    idle: Duration,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { app.call(req).await }
    });
    match tls {
        None => builder.serve_connection(TokioIo::new(stream), svc).await,
        Some(acc) => match tokio::time::timeout(idle, acc.accept(stream)).await {
            Ok(Ok(s)) => builder.serve_connection(TokioIo::new(s), svc).await,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                Ok(())
            }
            Err(_) => Ok(()),
        },
    }
}
