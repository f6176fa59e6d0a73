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

use crate::tls_identity::ClientOrgs;
use crate::{Ingest, RawBatch};
use ipnet::IpNet;
use mimamori_parse::Format;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};

/// Largest syslog message accepted (RFC 5425 asks receivers for 8 KiB at
/// least; we allow 64 KiB). Longer frames are rejected and skipped.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Datagrams per batch handed to the pipeline.
const UDP_BATCH: usize = 1000;
/// Longest a datagram waits in a partial batch.
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
    /// TLS handshakes that failed (no or no valid client certificate, …).
    pub tls_refused: AtomicU64,
}

/// Everything a syslog listener needs.
#[derive(Clone)]
pub struct SyslogContext {
    pub ingest: Ingest,
    pub orgs: Arc<OrgResolver>,
    pub stats: Arc<SyslogStats>,
}

/// Receives datagrams until the socket fails.
pub async fn serve_udp(socket: UdpSocket, ctx: SyslogContext) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Per-org pending batches, flushed by size or age.
    let mut pending: std::collections::HashMap<String, RawBatch> = Default::default();
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
                let msg = trim_frame(&buf[..n]);
                if msg.is_empty() {
                    ctx.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let batch = pending
                    .entry(org.clone())
                    .or_insert_with(|| RawBatch::new(Format::Syslog));
                batch.push(msg);
                if batch.len() >= UDP_BATCH {
                    let batch = std::mem::replace(batch, RawBatch::new(Format::Syslog));
                    submit_udp(&ctx, &org, batch);
                }
            }
            _ = tick.tick() => {
                for (org, batch) in pending.iter_mut() {
                    if !batch.is_empty() {
                        let batch = std::mem::replace(batch, RawBatch::new(Format::Syslog));
                        submit_udp(&ctx, org, batch);
                    }
                }
            }
        }
    }
}

fn submit_udp(ctx: &SyslogContext, org: &str, batch: RawBatch) {
    let n = batch.len() as u64;
    match ctx.ingest.try_queue_raw(org, batch) {
        Ok(pending) => {
            let stats = ctx.stats.clone();
            tokio::spawn(async move {
                if pending.durable().await.is_ok() {
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

/// A TLS listener's setup.
#[derive(Clone)]
pub struct SyslogTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// When the acceptor asks for client certificates: which certificate
    /// belongs to which org (see [`crate::tls_identity`]). `None`: senders
    /// are attributed by address, as over plain TCP.
    pub clients: Option<Arc<ClientOrgs>>,
}

/// Accepts TCP connections (plain, or TLS when `tls` is given).
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<SyslogTls>,
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
        let by_network = ctx.orgs.resolve(peer.ip());
        let by_certificate = tls.as_ref().and_then(|t| t.clients.clone());
        if by_certificate.is_none() && by_network.is_none() {
            ctx.stats.unattributed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "syslog sender is in no org's declared networks; closing");
            continue;
        }
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let result = match (tls, by_network) {
                (None, Some(org)) => read_stream(stream, &org, peer, &ctx).await,
                (None, None) => Ok(()),
                (Some(tls), by_network) => {
                    let accepted =
                        tokio::time::timeout(Duration::from_secs(10), tls.acceptor.accept(stream))
                            .await;
                    match accepted {
                        Ok(Ok(s)) => {
                            let org = match &tls.clients {
                                None => by_network,
                                Some(clients) => {
                                    let cert =
                                        s.get_ref().1.peer_certificates().and_then(|c| c.first());
                                    cert.and_then(|c| clients.resolve(c.as_ref())).or_else(|| {
                                        clients.network_fallback().then_some(by_network).flatten()
                                    })
                                }
                            };
                            match org {
                                Some(org) => read_stream(s, &org, peer, &ctx).await,
                                None => {
                                    ctx.stats.unattributed.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(%peer, "syslog TLS sender's certificate names no org; closing");
                                    Ok(())
                                }
                            }
                        }
                        Ok(Err(e)) => {
                            ctx.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%peer, error = %e, "syslog TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            ctx.stats.tls_refused.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%peer, "syslog TLS handshake timed out");
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

/// Bytes read from a connection at once. Every complete frame of a read
/// goes to the pipeline as one batch (one queue entry, one WAL record).
const READ_BUF: usize = 256 * 1024;
/// Batches of one connection queued and not yet durable. Reading goes on
/// while earlier batches wait for their fsync (so one connection can fill
/// more than one group commit), but no further: with the queue's own bounds
/// this keeps a connection's memory bounded.
const IN_FLIGHT: usize = 4;

/// Reads frames from one connection, detecting the framing from its first
/// byte (a digit: octet counting, RFC 6587 §3.4.1; else newline framing).
/// A message counts as accepted once its batch is in the fsync'd WAL; when
/// the queue is full, the connection is not read (the sender's TCP window
/// fills) until there is room.
async fn read_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    org: &str,
    peer: SocketAddr,
    ctx: &SyslogContext,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    let (mut start, mut end) = (0usize, 0usize);
    let mut framer = Framer::default();
    let mut in_flight: VecDeque<(u64, crate::Pending)> = VecDeque::with_capacity(IN_FLIGHT);
    let stats = &ctx.stats;
    let settle = |(n, pending): (u64, crate::Pending)| async move {
        pending
            .durable()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        stats.accepted.fetch_add(n, Ordering::Relaxed);
        Ok::<(), std::io::Error>(())
    };
    loop {
        if start > 0 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let n = stream.read(&mut buf[end..]).await?;
        let eof = n == 0;
        end += n;
        // One batch per read, unless the queue is configured smaller than
        // a read's messages: then several, each small enough to be
        // admitted (a batch larger than the queue would be refused).
        let (max_events, max_bytes) = (ctx.ingest.capacity(), ctx.ingest.byte_capacity());
        let mut batches = vec![RawBatch::with_capacity(
            Format::Syslog,
            (end - start + 1024).min(max_bytes),
        )];
        let mut rejected = 0u64;
        let mut received = 0u64;
        let used = framer.frames(&buf[start..end], eof, |frame| match frame {
            Ok(m) => {
                received += 1;
                let full = batches.last().is_some_and(|b| {
                    !b.is_empty() && (b.len() >= max_events || b.bytes() + 4 + m.len() > max_bytes)
                });
                if full {
                    batches.push(RawBatch::new(Format::Syslog));
                }
                if let Some(b) = batches.last_mut() {
                    b.push(m);
                }
            }
            Err(reason) => {
                rejected += 1;
                tracing::debug!(%peer, %reason, "rejected syslog frame");
            }
        });
        start += used;
        if start == 0 && end == buf.len() {
            // Cannot happen: a full buffer always holds a complete or an
            // over-long (skipped) frame. Guard anyway, since a read into an
            // empty slice would look like the end of the stream.
            return Err(std::io::Error::other("syslog framing made no progress"));
        }
        stats
            .received
            .fetch_add(received + rejected, Ordering::Relaxed);
        stats.rejected.fetch_add(rejected, Ordering::Relaxed);
        for batch in batches.into_iter().filter(|b| !b.is_empty()) {
            if in_flight.len() >= IN_FLIGHT {
                if let Some(oldest) = in_flight.pop_front() {
                    settle(oldest).await?;
                }
            }
            let n = batch.len() as u64;
            let pending = ctx
                .ingest
                .queue_raw(org, batch)
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            in_flight.push_back((n, pending));
        }
        if eof {
            break;
        }
    }
    for p in in_flight {
        settle(p).await?;
    }
    Ok(())
}

/// Splits a byte stream into syslog frames (RFC 6587), across reads,
/// without copying: [`Framer::frames`] hands out slices of the buffer it is
/// given and says how much of it it used; the rest (a partial frame) must be
/// given again, with more bytes after it, on the next call. Public for the
/// fuzz target (`fuzz/fuzz_targets/syslog_framer.rs`), which checks that
/// however a stream is cut into reads, the frames are the same.
#[derive(Debug, Default)]
pub struct Framer {
    /// `None` until the first byte: a digit means octet counting.
    octet_counting: Option<bool>,
    /// Bytes still to skip of an over-long octet-counted frame.
    skip_bytes: usize,
    /// Skipping to the end of an over-long (or unframeable) line.
    skip_line: bool,
}

/// Longest octet count accepted (7 digits: the count itself is checked
/// against [`MAX_MESSAGE`]).
const MAX_LEN_DIGITS: usize = 7;

impl Framer {
    /// The frames of a whole stream `input` delivered in reads of
    /// `read_size` bytes, as `read_stream` feeds them (unconsumed bytes
    /// come again before the next read's): what the tests and the fuzz
    /// target compare across read sizes. Panics if the framer consumes
    /// more than it was given or leaves bytes at the end of the stream.
    pub fn frames_in_reads(input: &[u8], read_size: usize) -> Vec<Result<Vec<u8>, String>> {
        let mut framer = Framer::default();
        let mut out = vec![];
        let mut buf: Vec<u8> = vec![];
        let mut fed = 0;
        loop {
            let take = read_size.max(1).min(input.len() - fed);
            buf.extend_from_slice(&input[fed..fed + take]);
            fed += take;
            let eof = take == 0;
            let used = framer.frames(&buf, eof, |f| out.push(f.map(<[u8]>::to_vec)));
            assert!(used <= buf.len(), "consumed {used} of {} bytes", buf.len());
            buf.drain(..used);
            if eof {
                assert!(buf.is_empty(), "{} bytes left at end of stream", buf.len());
                return out;
            }
        }
    }

    /// Calls `out` for every complete frame in `data` (`Err` for a skipped
    /// one, with the reason) and returns the number of bytes consumed. At
    /// `eof`, a final unterminated line counts as a frame.
    pub fn frames<'a>(
        &mut self,
        data: &'a [u8],
        eof: bool,
        mut out: impl FnMut(Result<&'a [u8], String>),
    ) -> usize {
        let mut pos = 0;
        loop {
            if self.skip_bytes > 0 {
                let n = self.skip_bytes.min(data.len() - pos);
                self.skip_bytes -= n;
                pos += n;
                if self.skip_bytes > 0 {
                    return pos;
                }
            }
            if self.skip_line {
                match memchr::memchr(b'\n', &data[pos..]) {
                    Some(i) => {
                        pos += i + 1;
                        self.skip_line = false;
                    }
                    None => return data.len(),
                }
            }
            let rest = &data[pos..];
            if rest.is_empty() {
                return pos;
            }
            let octet = *self
                .octet_counting
                .get_or_insert_with(|| rest[0].is_ascii_digit());
            if octet {
                // Line ends between frames are tolerated.
                if rest[0] == b'\n' || rest[0] == b'\r' {
                    pos += 1;
                    continue;
                }
                let digits = rest
                    .iter()
                    .take(MAX_LEN_DIGITS + 1)
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                match rest.get(digits) {
                    None if !eof && digits <= MAX_LEN_DIGITS => return pos,
                    Some(b' ') if digits > 0 && digits <= MAX_LEN_DIGITS => {}
                    _ if eof && digits == rest.len() => {
                        out(Err("truncated frame at end of stream".into()));
                        return data.len();
                    }
                    _ => {
                        // The stream is out of step: no length can be
                        // trusted any more. Resynchronize at the next line
                        // end (most senders end frames with one).
                        out(Err("bad octet-counting length".into()));
                        self.skip_line = true;
                        continue;
                    }
                }
                let len: usize = rest[..digits]
                    .iter()
                    .fold(0, |n, d| n * 10 + usize::from(d - b'0'));
                let body = digits + 1;
                if len > MAX_MESSAGE {
                    out(Err(format!("frame of {len} bytes exceeds {MAX_MESSAGE}")));
                    pos += body;
                    self.skip_bytes = len;
                    continue;
                }
                if rest.len() < body + len {
                    if eof {
                        out(Err("truncated frame at end of stream".into()));
                        return data.len();
                    }
                    return pos;
                }
                out(Ok(trim_frame(&rest[body..body + len])));
                pos += body + len;
            } else {
                let window = &rest[..rest.len().min(MAX_MESSAGE + 1)];
                let line = match memchr::memchr(b'\n', window) {
                    Some(i) => {
                        pos += i + 1;
                        &rest[..i]
                    }
                    None if window.len() > MAX_MESSAGE => {
                        out(Err(format!("line longer than {MAX_MESSAGE} bytes")));
                        pos += window.len();
                        self.skip_line = true;
                        continue;
                    }
                    None if eof => {
                        pos = data.len();
                        rest
                    }
                    None => return pos,
                };
                let m = trim_frame(line);
                if m.is_empty() {
                    out(Err("empty line".into()));
                } else {
                    out(Ok(m));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], octet: bool) -> Vec<Result<Vec<u8>, String>> {
        let whole = Framer::frames_in_reads(input, input.len().max(1));
        if let Some(first) = input.iter().find(|b| **b != b'\n' && **b != b'\r') {
            assert_eq!(first.is_ascii_digit(), octet);
        }
        // However the stream is cut into reads, the frames are the same.
        for chunk in [1, 2, 7, 100, 4096] {
            assert_eq!(
                Framer::frames_in_reads(input, chunk),
                whole,
                "reads of {chunk} bytes"
            );
        }
        whole
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
        // A bad length skips to the next line end, where framing resumes.
        let input = format!("12x garbage\n{} {m2}", m2.len());
        let got = frames(input.as_bytes(), true).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Ok(m2.as_bytes().to_vec()));
        // Frames as loggen sends them: the count includes a trailing line end.
        let input = format!("{} {m2}\n{} {m2}\n", m2.len() + 1, m2.len() + 1);
        let got = frames(input.as_bytes(), true).await;
        assert_eq!(got, vec![Ok(m2.as_bytes().to_vec()); 2]);
        // A frame cut off by the end of the stream is rejected, not stored.
        let input = format!("{} {m2}{} {}", m2.len(), m2.len(), &m2[..10]);
        let got = frames(input.as_bytes(), true).await;
        assert_eq!(got[0], Ok(m2.as_bytes().to_vec()));
        assert!(got[1].as_ref().unwrap_err().contains("truncated"));
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

    /// A queue smaller than one read's messages: the read is split into
    /// batches the queue admits, and nothing is lost.
    #[tokio::test]
    async fn reads_larger_than_the_queue_are_split_not_refused() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().unwrap();
        let (ingest, threads) = crate::Ingest::start(crate::IngestConfig {
            queue_events: 7,
            flush_interval: Duration::from_millis(50),
            ..crate::IngestConfig::new(dir.path())
        })
        .unwrap();
        let ctx = SyslogContext {
            ingest: ingest.clone(),
            orgs: Arc::new(OrgResolver::new(vec![(
                "127.0.0.0/8".parse().unwrap(),
                "org-lo".into(),
            )])),
            stats: Default::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_tcp(listener, None, ctx.clone(), 4));
        let mut lines = String::new();
        for i in 0..500 {
            lines.push_str(&format!("<13>1 2026-11-25T10:00:00Z h app - - - m{i}\n"));
        }
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(lines.as_bytes()).await.unwrap();
        drop(tcp);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while ctx.stats.accepted.load(Ordering::Relaxed) < 500 {
            assert!(
                std::time::Instant::now() < deadline,
                "accepted {} of 500",
                ctx.stats.accepted.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.abort();
        let _ = server.await;
        ingest.shutdown();
        threads.join();
        let (archive, _) = crate::archive::Archive::recover(&dir.path().join("archive")).unwrap();
        let events = archive.read_events(None).unwrap();
        assert_eq!(events.len(), 500);
        assert!(events.iter().all(|e| e.org_id == "org-lo"));
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
