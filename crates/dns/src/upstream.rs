//! Upstream resolution: a forwarder over UDP with TCP fallback, behind a
//! trait so tests (and the RPZ conformance harness) can put a canned
//! upstream in its place.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream configured")]
    NoUpstream,
    #[error("upstream {0} timed out")]
    Timeout(SocketAddr),
    #[error("upstream {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {0} sent a malformed or mismatched answer")]
    Malformed(SocketAddr),
    #[error("{0}")]
    Other(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends a query (wire format, our ID) and returns the response (wire).
pub trait Upstream: Send + Sync + 'static {
    fn query<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>>;
}

/// Forwards to the configured servers in order: UDP first, TCP when the
/// answer is truncated; the next server on timeout or error.
pub struct Forwarder {
    servers: Vec<SocketAddr>,
    timeout: Duration,
}

impl Forwarder {
    pub fn new(servers: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self { servers, timeout }
    }

    async fn udp(&self, addr: SocketAddr, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let io = |source| UpstreamError::Io { addr, source };
        let bind: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        // A fresh socket per query: the OS picks a random source port, which
        // with the random ID is the RFC 5452 defence against spoofing.
        let sock = UdpSocket::bind(bind).await.map_err(io)?;
        sock.connect(addr).await.map_err(io)?;
        sock.send(req).await.map_err(io)?;
        let mut buf = vec![0u8; 65535];
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
                .await
                .map_err(|_| UpstreamError::Timeout(addr))?
                .map_err(io)?;
            // Ignore anything that is not the answer to this query.
            if matches_request(req, &buf[..n]) {
                buf.truncate(n);
                return Ok(buf);
            }
        }
    }

    async fn tcp(&self, addr: SocketAddr, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let io = |source| UpstreamError::Io { addr, source };
        let fut = async {
            let mut s = TcpStream::connect(addr).await.map_err(io)?;
            let len = u16::try_from(req.len()).map_err(|_| UpstreamError::Malformed(addr))?;
            let mut msg = Vec::with_capacity(req.len() + 2);
            msg.extend_from_slice(&len.to_be_bytes());
            msg.extend_from_slice(req);
            s.write_all(&msg).await.map_err(io)?;
            let n = s.read_u16().await.map_err(io)? as usize;
            let mut buf = vec![0u8; n];
            s.read_exact(&mut buf).await.map_err(io)?;
            if matches_request(req, &buf) {
                Ok(buf)
            } else {
                Err(UpstreamError::Malformed(addr))
            }
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| UpstreamError::Timeout(addr))?
    }

    async fn query_inner(&self, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let mut last = UpstreamError::NoUpstream;
        for &addr in &self.servers {
            match self.udp(addr, req).await {
                Ok(resp) if resp.len() > 3 && resp[2] & 0x02 != 0 => {
                    match self.tcp(addr, req).await {
                        Ok(r) => return Ok(r),
                        Err(e) => last = e,
                    }
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    tracing::debug!(error = %e, "upstream failed");
                    last = e;
                }
            }
        }
        Err(last)
    }
}

impl Upstream for Forwarder {
    fn query<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.query_inner(request))
    }
}

/// Whether `resp` answers `req`: same ID, QR set, same question (case
/// insensitive).
pub fn matches_request(req: &[u8], resp: &[u8]) -> bool {
    if resp.len() < 12 || req.len() < 12 || resp[0..2] != req[0..2] || resp[2] & 0x80 == 0 {
        return false;
    }
    let Some(end) = crate::wire::skip_name(req, 12).map(|e| e + 4) else {
        return false;
    };
    match resp.get(12..end) {
        Some(q) => q.eq_ignore_ascii_case(&req[12..end]),
        None => false,
    }
}
