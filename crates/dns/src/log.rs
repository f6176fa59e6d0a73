//! The query log: one record per query on a bounded channel the caller
//! drains. A full channel drops the record and counts it; the answer path
//! never waits for the log.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How the query arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Https,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Https => "https",
        }
    }
}

/// Which policy rule rewrote the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedBy {
    /// The zone (RPZ zone name, or list name).
    pub zone: Arc<str>,
    /// The trigger, e.g. `*.evil.example` or `rpz-client-ip 192.0.2.0/24`.
    pub rule: String,
    /// `nxdomain`, `nodata`, `drop`, `tcp-only`, `local-data`.
    pub action: &'static str,
}

/// One answered (or dropped) query.
#[derive(Debug, Clone)]
pub struct QueryLogEntry {
    pub time: SystemTime,
    pub client: SocketAddr,
    /// The org the client's address belongs to.
    pub org: Option<Arc<str>>,
    /// The query name (lower case); `name.to_string()` gives
    /// `www.example.com`.
    pub name: LogName,
    pub qtype: u16,
    /// `None` when no answer was sent (DROP).
    pub rcode: Option<u8>,
    /// A short form of the answer records, e.g. `A 192.0.2.1, CNAME x.example`.
    pub answer: Arc<str>,
    pub latency: Duration,
    pub blocked_by: Option<BlockedBy>,
    pub transport: Transport,
    pub cache_hit: bool,
    pub stale: bool,
}

/// A query name kept inline in wire form: the answer path formats nothing
/// and allocates nothing for it, and the drain side frees nothing (a string
/// freed on another thread costs glibc an arena lock).
#[derive(Clone, Copy)]
pub struct LogName {
    len: u8,
    wire: [u8; crate::wire::MAX_NAME],
}

impl LogName {
    pub fn from_wire(wire: &[u8]) -> Self {
        let len = wire.len().min(crate::wire::MAX_NAME);
        let mut n = LogName {
            len: len as u8,
            wire: [0; crate::wire::MAX_NAME],
        };
        n.wire[..len].copy_from_slice(&wire[..len]);
        n
    }
    /// The lower-case wire form.
    pub fn wire(&self) -> &[u8] {
        &self.wire[..self.len as usize]
    }
}

impl std::fmt::Display for LogName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::wire::name_to_string(self.wire()))
    }
}

impl std::fmt::Debug for LogName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

impl PartialEq<&str> for LogName {
    fn eq(&self, other: &&str) -> bool {
        let mut w = Vec::with_capacity(other.len() + 2);
        crate::policy::text_to_wire(other, &[0], &mut w).is_some() && w == self.wire()
    }
}

/// The sending side, held by the resolver.
#[derive(Clone)]
pub struct QueryLog {
    tx: SyncSender<QueryLogEntry>,
    dropped: Arc<AtomicU64>,
}

/// A query log with room for `capacity` records, and its receiver.
pub fn query_log(capacity: usize) -> (QueryLog, Receiver<QueryLogEntry>) {
    let (tx, rx) = sync_channel(capacity);
    (
        QueryLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl QueryLog {
    /// Queues a record or, when the queue is full or nobody drains it, counts
    /// a drop.
    pub fn log(&self, entry: QueryLogEntry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
