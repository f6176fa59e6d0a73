//! Upstreams over DNS over TLS (RFC 7858) and DNS over HTTPS (RFC 8484),
//! with hickory-net's clients (one multiplexed connection per upstream,
//! opened on first use and opened again after an error), plus the
//! [`UpstreamSpec`] syntax that names them and a [`Chain`] that tries
//! several in order.
//!
//! - `ADDR:PORT`: plain DNS (UDP, TCP when truncated);
//! - `tls://ADDR[:PORT]#SERVER-NAME`: DoT, port 853 by default; the
//!   certificate must be valid for SERVER-NAME (default: the address);
//! - `https://HOST[:PORT][/PATH][#SERVER-NAME]`: DoH over HTTP/2, port 443
//!   and path `/dns-query` by default; HOST is an address or a name looked
//!   up with the system resolver when connecting.
//!
//! Certificates are checked against a CA file (PEM) when one is given,
//! else against the system's bundle (`/etc/ssl/certs/ca-certificates.crt`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::xfer::{DnsExchange, DnsHandle};
use hickory_proto::op::{DnsRequest, DnsRequestOptions, Message};
use rustls::pki_types::ServerName;

use crate::upstream::{BoxFuture, Forwarder, Upstream, UpstreamError};

/// Where the system keeps its CA bundle on Debian and derivatives.
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One upstream, as written in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamSpec {
    Plain(SocketAddr),
    Tls {
        addr: SocketAddr,
        server_name: String,
    },
    Https {
        host: String,
        port: u16,
        path: String,
        server_name: String,
    },
}

/// Why an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{0:?} is not an upstream: give ADDR:PORT, tls://ADDR[:PORT]#SERVER-NAME or https://HOST[:PORT]/PATH")]
    Syntax(String),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
}

fn host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some((a.ip().to_string(), a.port()));
    }
    if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Some((ip.to_string(), default_port));
    }
    let (h, p) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (s, default_port),
    };
    (!h.is_empty() && !h.contains(['/', '[', ']', ' '])).then(|| (h.to_string(), p))
}

impl FromStr for UpstreamSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Syntax(s.to_string());
        let (main, name) = match s.split_once('#') {
            Some((m, n)) if !n.is_empty() => (m, Some(n.to_string())),
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        if let Some(rest) = main.strip_prefix("tls://") {
            let (host, port) = host_port(rest, 853).ok_or_else(bad)?;
            let ip: IpAddr = host.parse().map_err(|_| bad())?;
            let server_name = name.unwrap_or_else(|| ip.to_string());
            ServerName::try_from(server_name.clone())
                .map_err(|_| SpecError::ServerName(server_name.clone()))?;
            return Ok(UpstreamSpec::Tls {
                addr: SocketAddr::new(ip, port),
                server_name,
            });
        }
        if let Some(rest) = main.strip_prefix("https://") {
            let (authority, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/dns-query"),
            };
            let (host, port) = host_port(authority, 443).ok_or_else(bad)?;
            let server_name = name.unwrap_or_else(|| host.clone());
            ServerName::try_from(server_name.clone())
                .map_err(|_| SpecError::ServerName(server_name.clone()))?;
            return Ok(UpstreamSpec::Https {
                host,
                port,
                path: path.to_string(),
                server_name,
            });
        }
        if name.is_some() {
            return Err(bad());
        }
        main.parse().map(UpstreamSpec::Plain).map_err(|_| bad())
    }
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamSpec::Plain(a) => write!(f, "{a}"),
            UpstreamSpec::Tls { addr, server_name } => write!(f, "tls://{addr}#{server_name}"),
            UpstreamSpec::Https {
                host,
                port,
                path,
                server_name,
            } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "https://{host}:{port}{path}#{server_name}")
            }
        }
    }
}

/// A rustls client configuration trusting the CA certificates in
/// `ca_file` (PEM), or the system's bundle when `None`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, SpecError> {
    let path = ca_file.unwrap_or(Path::new(SYSTEM_CA_FILE));
    let err = |reason: String| SpecError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| err(e.to_string()))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A DoT or DoH upstream.
pub struct SecureUpstream {
    spec: UpstreamSpec,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<DnsExchange<TokioRuntimeProvider>>>,
    /// Owns the connections' background tasks: hickory aborts them when
    /// the last clone of the provider goes.
    provider: TokioRuntimeProvider,
}

impl SecureUpstream {
    /// `spec` must be `Tls` or `Https`.
    pub fn new(spec: UpstreamSpec, tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Self {
        Self {
            spec,
            tls,
            timeout,
            conn: tokio::sync::Mutex::new(None),
            provider: TokioRuntimeProvider::default(),
        }
    }

    fn other(&self, e: impl fmt::Display) -> UpstreamError {
        UpstreamError::Other(format!("upstream {}: {e}", self.spec))
    }

    async fn connect(&self) -> Result<DnsExchange<TokioRuntimeProvider>, UpstreamError> {
        let provider = self.provider.clone();
        match &self.spec {
            UpstreamSpec::Tls { addr, server_name } => {
                let name = ServerName::try_from(server_name.clone()).map_err(|e| self.other(e))?;
                hickory_net::tls::tls_exchange(
                    *addr,
                    name,
                    (*self.tls).clone(),
                    self.timeout,
                    None,
                    provider,
                )
                .await
                .map_err(|e| self.other(e))
            }
            UpstreamSpec::Https {
                host,
                port,
                path,
                server_name,
            } => {
                let addr = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| self.other(e))?
                    .next()
                    .ok_or_else(|| self.other("the host name has no address"))?;
                let mut b = hickory_net::h2::HttpsClientStream::builder(self.tls.clone(), provider);
                b.request_timeout(self.timeout);
                b.exchange(
                    addr,
                    Arc::from(server_name.as_str()),
                    Arc::from(path.as_str()),
                )
                .await
                .map_err(|e| self.other(e))
            }
            UpstreamSpec::Plain(_) => Err(self.other("not a DoT or DoH upstream")),
        }
    }

    async fn query_inner(&self, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let msg = Message::from_vec(req).map_err(|e| self.other(e))?;
        let id = msg.metadata.id;
        let exchange = {
            let mut conn = self.conn.lock().await;
            match conn.as_ref() {
                Some(x) => x.clone(),
                None => {
                    let x = tokio::time::timeout(self.timeout, self.connect())
                        .await
                        .map_err(|_| self.other("connect timed out"))??;
                    *conn = Some(x.clone());
                    x
                }
            }
        };
        let mut responses = exchange.send(DnsRequest::new(msg, DnsRequestOptions::default()));
        let result = tokio::time::timeout(self.timeout, responses.next()).await;
        let resp = match result {
            Ok(Some(Ok(r))) => r,
            failed => {
                // Open a fresh connection for the next query.
                *self.conn.lock().await = None;
                return Err(match failed {
                    Ok(Some(Err(e))) => self.other(e),
                    Ok(None) => self.other("the connection closed"),
                    _ => self.other("timed out"),
                });
            }
        };
        let mut wire = resp.into_buffer();
        if wire.len() < 12 {
            return Err(self.other("short answer"));
        }
        // The client picks its own ID (0 over DoH): give ours back.
        wire[0..2].copy_from_slice(&id.to_be_bytes());
        Ok(wire)
    }
}

impl Upstream for SecureUpstream {
    fn query<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.query_inner(request))
    }
}

/// Tries each upstream in order; the first answer wins.
pub struct Chain(pub Vec<Arc<dyn Upstream>>);

impl Chain {
    /// The upstreams `specs` name, in order; `ca_file` as in
    /// [`client_config`] (read only when a DoT or DoH upstream is named).
    pub fn from_specs(
        specs: &[UpstreamSpec],
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Chain, SpecError> {
        let mut tls = None;
        let mut out: Vec<Arc<dyn Upstream>> = vec![];
        for s in specs {
            match s {
                UpstreamSpec::Plain(a) => out.push(Arc::new(Forwarder::new(vec![*a], timeout))),
                secure => {
                    let cfg = match &tls {
                        Some(c) => Arc::clone(c),
                        None => {
                            let c = client_config(ca_file)?;
                            tls = Some(c.clone());
                            c
                        }
                    };
                    out.push(Arc::new(SecureUpstream::new(secure.clone(), cfg, timeout)));
                }
            }
        }
        Ok(Chain(out))
    }

    async fn query_inner(&self, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let mut last = UpstreamError::NoUpstream;
        for u in &self.0 {
            match u.query(req).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}

impl Upstream for Chain {
    fn query<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.query_inner(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        let p = |s: &str| s.parse::<UpstreamSpec>();
        assert_eq!(
            p("192.0.2.53:53").unwrap(),
            UpstreamSpec::Plain("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            p("tls://9.9.9.9#dns.quad9.net").unwrap().to_string(),
            "tls://9.9.9.9:853#dns.quad9.net"
        );
        assert_eq!(
            p("tls://[2001:db8::1]:8853#x.example").unwrap().to_string(),
            "tls://[2001:db8::1]:8853#x.example"
        );
        assert_eq!(
            p("https://dns.example/dns-query").unwrap().to_string(),
            "https://dns.example:443/dns-query#dns.example"
        );
        assert_eq!(
            p("https://127.0.0.1:8443#up.test").unwrap().to_string(),
            "https://127.0.0.1:8443/dns-query#up.test"
        );
        for bad in [
            "",
            "tls://dns.example#x",
            "tls://1.2.3.4#",
            "1.2.3.4:53#x",
            "https:///x",
            "ftp://x",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
