//! The query log: one record per query, sent in batches on a bounded
//! channel the caller drains. A full log drops the records and counts them;
//! the answer path never waits for the log.
//!
//! Batches because a channel send costs a shared-memory handshake, and one
//! to a receiver blocked in `recv` a futex wake-up, which cost the answer
//! threads more than the record: the UDP threads send one batch per
//! `recvmmsg` batch.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvError, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
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
    tx: SyncSender<Vec<QueryLogEntry>>,
    /// Records sent and not yet taken by the receiver: the bound.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

/// The receiving side: records one at a time, in the order sent.
pub struct QueryLogReceiver {
    rx: Receiver<Vec<QueryLogEntry>>,
    queued: Arc<AtomicUsize>,
    batch: std::vec::IntoIter<QueryLogEntry>,
}

/// A query log with room for `capacity` records, and its receiver.
pub fn query_log(capacity: usize) -> (QueryLog, QueryLogReceiver) {
    let capacity = capacity.max(1);
    // Counted in batches; the records are bounded by `queued`.
    let (tx, rx) = sync_channel(capacity);
    let queued = Arc::new(AtomicUsize::new(0));
    (
        QueryLog {
            tx,
            queued: queued.clone(),
            capacity,
            dropped: Arc::new(AtomicU64::new(0)),
        },
        QueryLogReceiver {
            rx,
            queued,
            batch: Vec::new().into_iter(),
        },
    )
}

impl QueryLog {
    /// Queues a record or, when the log is full or nobody drains it, counts
    /// a drop.
    pub fn log(&self, entry: QueryLogEntry) {
        self.send(vec![entry]);
    }

    /// Queues the records in `batch` (leaving it empty, its capacity kept
    /// for the next), or counts them all dropped.
    pub fn log_batch(&self, batch: &mut Vec<QueryLogEntry>) {
        if batch.is_empty() {
            return;
        }
        let full = std::mem::replace(batch, Vec::with_capacity(batch.capacity()));
        self.send(full);
    }

    fn send(&self, batch: Vec<QueryLogEntry>) {
        let n = batch.len();
        let before = self.queued.fetch_add(n, Ordering::Relaxed);
        if before + n > self.capacity {
            self.queued.fetch_sub(n, Ordering::Relaxed);
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(n, Ordering::Relaxed);
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// Records dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl QueryLogReceiver {
    /// The next record: from the batch at hand, else from the next batch
    /// `fetch` takes off the channel (its error when it takes none).
    fn next<E>(
        &mut self,
        mut fetch: impl FnMut(&Receiver<Vec<QueryLogEntry>>) -> Result<Vec<QueryLogEntry>, E>,
    ) -> Result<QueryLogEntry, E> {
        loop {
            if let Some(e) = self.batch.next() {
                return Ok(e);
            }
            let batch = fetch(&self.rx)?;
            self.queued.fetch_sub(batch.len(), Ordering::Relaxed);
            self.batch = batch.into_iter();
        }
    }

    /// The next record, waiting for one; an error once every sender is
    /// gone and everything sent was taken.
    pub fn recv(&mut self) -> Result<QueryLogEntry, RecvError> {
        self.next(|rx| rx.recv())
    }

    /// [`QueryLogReceiver::recv`] waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<QueryLogEntry, RecvTimeoutError> {
        let deadline = std::time::Instant::now() + timeout;
        self.next(|rx| {
            rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        })
    }

    /// The next record if one is there.
    pub fn try_recv(&mut self) -> Result<QueryLogEntry, TryRecvError> {
        self.next(|rx| rx.try_recv())
    }

    /// The records there now, without waiting.
    pub fn try_iter(&mut self) -> impl Iterator<Item = QueryLogEntry> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u16) -> QueryLogEntry {
        QueryLogEntry {
            time: SystemTime::UNIX_EPOCH,
            client: ([127, 0, 0, 1], 53).into(),
            org: None,
            name: LogName::from_wire(b"\x07example\x00"),
            qtype: i,
            rcode: Some(0),
            answer: "".into(),
            latency: Duration::ZERO,
            blocked_by: None,
            transport: Transport::Udp,
            cache_hit: true,
            stale: false,
        }
    }

    #[test]
    fn batches_are_bounded_in_records_and_read_back_one_by_one_in_order() {
        let (log, mut rx) = query_log(5);
        let mut batch: Vec<_> = (0..3).map(entry).collect();
        log.log_batch(&mut batch);
        assert!(batch.is_empty());
        // 3 queued + 3 would pass the bound of 5: all three dropped.
        let mut over: Vec<_> = (3..6).map(entry).collect();
        log.log_batch(&mut over);
        assert_eq!(log.dropped(), 3);
        log.log(entry(6));
        log.log(entry(7));
        let got: Vec<u16> = rx.try_iter().map(|e| e.qtype).collect();
        assert_eq!(got, vec![0, 1, 2, 6, 7]);
        // Taking them made room again.
        let mut again: Vec<_> = (8..13).map(entry).collect();
        log.log_batch(&mut again);
        assert_eq!(log.dropped(), 3);
        assert_eq!(rx.recv().map(|e| e.qtype), Ok(8));
        assert_eq!(rx.try_iter().count(), 4);
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        ));
        drop(log);
        assert!(rx.recv().is_err());
    }
}
