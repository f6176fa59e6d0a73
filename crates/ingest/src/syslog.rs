//! Syslog sources: RFC 5424 and RFC 3164 over UDP, TCP (octet-counting and
//! newline framing, detected per connection) and TLS.
//!
//! The sender's org comes from the declared networks of the orgs
//! ([`OrgResolver`], longest prefix wins); messages from undeclared senders
//! are dropped and counted, never guessed.
//!
//! Backpressure: a TCP connection reads its next batch only after the
//! previous one is durable, so a full queue stops reading (the sender's
//! window fills) instead of buffering. UDP cannot push back: when the
//! queue is full its batch is dropped and counted.

use crate::Ingest;
use ipnet::IpNet;
use mimamori_parse::{Format, LineParser};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};

/// Largest syslog message accepted (RFC 5425 asks receivers for 8 KiB at
/// least; we allow 64 KiB). Longer frames are rejected and skipped.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Messages per batch handed to the pipeline.
const BATCH: usize = 1000;
/// Longest a message waits in a partial batch.
const BATCH_DELAY: Duration = Duration::from_millis(50);

/// Maps sender addresses to orgs by the orgs' declared networks.
#[derive(Debug, Default)]
pub struct OrgResolver {
    /// (network, org id), longest prefix first.
    nets: RwLock<Vec<(IpNet, String)>>,
}

impl OrgResolver {
    pub fn new(nets: Vec<(IpNet, String)>) -> Self {
        let r = OrgResolver::default();
        r.replace(nets);
        r
    }

    /// Replaces the table (when orgs change).
    pub fn replace(&self, mut nets: Vec<(IpNet, String)>) {
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        *self.nets.write().unwrap_or_else(|p| p.into_inner()) = nets;
    }

    /// The org whose declared network holds `ip` most specifically.
    pub fn resolve(&self, ip: IpAddr) -> Option<String> {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.nets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(n, _)| n.contains(&ip))
            .map(|(_, o)| o.clone())
    }
}

/// Counters for the syslog sources.
#[derive(Debug, Default)]
pub struct SyslogStats {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub unattributed: AtomicU64,
    pub dropped_overload: AtomicU64,
}

/// Everything a syslog listener needs.
#[derive(Clone)]
pub struct SyslogContext {
    pub ingest: Ingest,
    pub orgs: Arc<OrgResolver>,
    pub stats: Arc<SyslogStats>,
}

impl SyslogContext {
    fn parse(&self, msgs: &[Vec<u8>]) -> Vec<mimamori_event::EventBody> {
        let mut parser = LineParser::new(Format::Syslog);
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            match parser.push_line(m) {
                Some(Ok(e)) => out.push(e),
                Some(Err(reason)) => {
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%reason, "rejected syslog message");
                }
                None => {}
            }
        }
        out
    }
}

/// Receives datagrams until the socket fails.
pub async fn serve_udp(socket: UdpSocket, ctx: SyslogContext) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Per-org pending batches, flushed by size or age.
    let mut pending: std::collections::HashMap<String, Vec<Vec<u8>>> = Default::default();
    let mut tick = tokio::time::interval(BATCH_DELAY);
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, peer) = r?;
                ctx.stats.received.fetch_add(1, Ordering::Relaxed);
                let Some(org) = ctx.orgs.resolve(peer.ip()) else {
                    ctx.stats.unattributed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let msg = trim_frame(&buf[..n]).to_vec();
                let batch = pending.entry(org.clone()).or_default();
                batch.push(msg);
                if batch.len() >= BATCH {
                    let msgs = std::mem::take(batch);
                    submit_udp(&ctx, &org, &msgs);
                }
            }
            _ = tick.tick() => {
                for (org, msgs) in pending.iter_mut() {
                    if !msgs.is_empty() {
                        let msgs = std::mem::take(msgs);
                        submit_udp(&ctx, org, &msgs);
                    }
                }
            }
        }
    }
}

fn submit_udp(ctx: &SyslogContext, org: &str, msgs: &[Vec<u8>]) {
    let events = ctx.parse(msgs);
    let n = events.len() as u64;
    if n == 0 {
        return;
    }
    match ctx.ingest.try_submit(org, events) {
        Ok(fut) => {
            let stats = ctx.stats.clone();
            tokio::spawn(async move {
                if fut.await.is_ok() {
                    stats.accepted.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
        Err(_) => {
            ctx.stats.dropped_overload.fetch_add(n, Ordering::Relaxed);
        }
    }
}

fn trim_frame(m: &[u8]) -> &[u8] {
    let mut m = m;
    while let Some((last, rest)) = m.split_last() {
        if *last == b'\n' || *last == b'\r' || *last == 0 {
            m = rest;
        } else {
            break;
        }
    }
    m
}

/// Accepts TCP connections (plain, or TLS when `tls` is given).
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: SyslogContext,
    max_connections: usize,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let (stream, peer) = listener.accept().await?;
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many syslog connections; refusing");
            continue;
        };
        let Some(org) = ctx.orgs.resolve(peer.ip()) else {
            ctx.stats.unattributed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "syslog sender is in no org's declared networks; closing");
            continue;
        };
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match tls {
                None => read_stream(stream, &org, peer, &ctx).await,
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => read_stream(s, &org, peer, &ctx).await,
                        _ => {
                            tracing::debug!(%peer, "syslog TLS handshake failed");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "syslog connection ended");
            }
        });
    }
}

/// Reads frames from one connection, detecting the framing from its first
/// byte (a digit: octet counting, RFC 6587 §3.4.1; else newline framing).
/// A batch is what the connection has already delivered (up to [`BATCH`]):
/// it is stored as soon as reading on would have to wait for the network.
async fn read_stream<S: AsyncRead + Unpin>(
    stream: S,
    org: &str,
    peer: SocketAddr,
    ctx: &SyslogContext,
) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    let octet_counting = match r.fill_buf().await?.first() {
        None => return Ok(()),
        Some(b) => b.is_ascii_digit(),
    };
    let chunk = BATCH.min(ctx.ingest.capacity()).max(1);
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(chunk);
    loop {
        let done = match read_frame(&mut r, octet_counting).await? {
            Some(Ok(m)) => {
                ctx.stats.received.fetch_add(1, Ordering::Relaxed);
                batch.push(m);
                false
            }
            Some(Err(reason)) => {
                ctx.stats.received.fetch_add(1, Ordering::Relaxed);
                ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, %reason, "rejected syslog frame");
                false
            }
            None => true,
        };
        if !batch.is_empty() && (batch.len() >= chunk || done || r.buffer().is_empty()) {
            let events = ctx.parse(&batch);
            tracing::debug!(%peer, frames = batch.len(), events = events.len(), "syslog batch");
            batch.clear();
            let n = events.len() as u64;
            if n > 0 {
                // Durable before we read on: a full queue stops the reading.
                ctx.ingest
                    .submit(org, events)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                ctx.stats.accepted.fetch_add(n, Ordering::Relaxed);
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// One frame: `Some(Ok(msg))`, `Some(Err(reason))` for a frame that is
/// skipped (too long, bad length), `None` at end of stream.
async fn read_frame<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    octet_counting: bool,
) -> std::io::Result<Option<Result<Vec<u8>, String>>> {
    if octet_counting {
        let mut len_buf = Vec::with_capacity(8);
        loop {
            let mut b = [0u8; 1];
            if r.read(&mut b).await? == 0 {
                return Ok(None);
            }
            match b[0] {
                b' ' => break,
                d if d.is_ascii_digit() && len_buf.len() < 7 => len_buf.push(d),
                b'\n' | b'\r' if len_buf.is_empty() => continue,
                _ => return Ok(Some(Err("bad octet-counting length".into()))),
            }
        }
        let len: usize = std::str::from_utf8(&len_buf)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(usize::MAX);
        if len > MAX_MESSAGE {
            // Skip the frame without buffering it.
            let mut skip = (&mut *r).take(len as u64);
            tokio::io::copy(&mut skip, &mut tokio::io::sink()).await?;
            return Ok(Some(Err(format!(
                "frame of {len} bytes exceeds {MAX_MESSAGE}"
            ))));
        }
        let mut msg = vec![0u8; len];
        r.read_exact(&mut msg).await?;
        Ok(Some(Ok(trim_frame(&msg).to_vec())))
    } else {
        let mut msg = Vec::new();
        let mut limited = (&mut *r).take(MAX_MESSAGE as u64 + 1);
        let n = limited.read_until(b'\n', &mut msg).await?;
        if n == 0 {
            return Ok(None);
        }
        if msg.len() > MAX_MESSAGE && !msg.ends_with(b"\n") {
            // Discard the rest of the over-long line.
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let mut chunk = (&mut *r).take(64 * 1024);
                let n = chunk.read_until(b'\n', &mut sink).await?;
                if n == 0 || sink.ends_with(b"\n") {
                    break;
                }
            }
            return Ok(Some(Err(format!("line longer than {MAX_MESSAGE} bytes"))));
        }
        let m = trim_frame(&msg);
        if m.is_empty() {
            return Ok(Some(Err("empty line".into())));
        }
        Ok(Some(Ok(m.to_vec())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], octet: bool) -> Vec<Result<Vec<u8>, String>> {
        let mut r = BufReader::new(input);
        let mut out = vec![];
        while let Some(f) = read_frame(&mut r, octet).await.unwrap() {
            out.push(f);
        }
        out
    }

    #[tokio::test]
    async fn octet_counting_frames() {
        let m1 = "<165>1 2026-11-25T10:00:04Z h a - - - with \n newline";
        let m2 = "<165>1 2026-11-25T10:00:05Z h a - - - second";
        let input = format!("{} {m1}{} {m2}", m1.len(), m2.len());
        let got = frames(input.as_bytes(), true).await;
        assert_eq!(
            got,
            vec![Ok(m1.as_bytes().to_vec()), Ok(m2.as_bytes().to_vec())]
        );
        // A frame over the limit is skipped without buffering; the next survives.
        let big = "x".repeat(MAX_MESSAGE + 1);
        let input = format!("{} {big}{} {m2}", big.len(), m2.len());
        let got = frames(input.as_bytes(), true).await;
        assert!(got[0].as_ref().unwrap_err().contains("exceeds"));
        assert_eq!(got[1], Ok(m2.as_bytes().to_vec()));
        let got = frames(b"12x <13>oops", true).await;
        assert!(got[0].is_err());
    }

    #[tokio::test]
    async fn newline_frames() {
        let got = frames(b"<13>one\r\n<13>two\n\n<13>three", false).await;
        assert_eq!(got[0], Ok(b"<13>one".to_vec()));
        assert_eq!(got[1], Ok(b"<13>two".to_vec()));
        assert!(got[2].is_err());
        assert_eq!(got[3], Ok(b"<13>three".to_vec()));
        let long = format!("{}\n<13>after", "y".repeat(MAX_MESSAGE + 10));
        let got = frames(long.as_bytes(), false).await;
        assert!(got[0].as_ref().unwrap_err().contains("longer than"));
        assert_eq!(got[1], Ok(b"<13>after".to_vec()));
    }

    #[test]
    fn longest_prefix_wins() {
        let r = OrgResolver::new(vec![
            ("10.0.0.0/8".parse().unwrap(), "parent".into()),
            ("10.1.0.0/16".parse().unwrap(), "child".into()),
        ]);
        assert_eq!(
            r.resolve("10.1.2.3".parse().unwrap()).as_deref(),
            Some("child")
        );
        assert_eq!(
            r.resolve("10.2.0.1".parse().unwrap()).as_deref(),
            Some("parent")
        );
        assert_eq!(
            r.resolve("::ffff:10.1.0.1".parse().unwrap()).as_deref(),
            Some("child")
        );
        assert_eq!(r.resolve("192.0.2.1".parse().unwrap()), None);
    }
}
