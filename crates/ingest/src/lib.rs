//! Durable telemetry ingestion.
//!
//! ```text
//! sources ──submit──▶ [bounded queue] ──▶ WAL thread ──fsync──▶ ack
//!                                              │
//!                                              ▼ (bounded)
//!                                        archive thread ──▶ Parquet + checkpoint
//! ```
//!
//! Invariants:
//! - A submission is acknowledged only after its events are in the WAL and
//!   the WAL is fsync'd. Many submissions share one fsync (group commit).
//! - Memory is bounded: the queue admits at most `queue_events` events;
//!   [`Ingest::try_submit`] refuses more (HTTP answers 429), and
//!   [`Ingest::submit`] waits (file and TCP sources slow down instead).
//! - Every acknowledged event reaches the archive exactly once, across
//!   crashes (see [`archive`]).
//! - Ids and org are assigned here, never taken from the payload.

pub mod archive;
pub mod syslog;
pub mod wal;

use archive::Archive;
use mimamori_event::{Event, EventBody};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Tuning knobs, with defaults that suit a 2-core machine.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The ingest directory: `wal/` and `archive/` live below it.
    pub dir: PathBuf,
    /// Most events queued (not yet in the WAL) at once.
    pub queue_events: usize,
    /// WAL segment size before rolling to a new file.
    pub segment_bytes: u64,
    /// Archive flush when this many events are buffered…
    pub flush_events: usize,
    /// …or when the oldest buffered event is this old.
    pub flush_interval: Duration,
}

impl IngestConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        IngestConfig {
            dir: dir.into(),
            queue_events: 200_000,
            segment_bytes: 64 * 1024 * 1024,
            flush_events: 200_000,
            flush_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("ingestion is overloaded: {queued} events are waiting; retry later")]
    Overloaded { queued: usize },
    #[error("a batch of {0} events is larger than the queue ({1}); send smaller batches")]
    BatchTooLarge(usize, usize),
    #[error("ingestion has stopped")]
    Stopped,
    #[error("the write-ahead log failed: {0}")]
    Wal(String),
    #[error("{0} is in use by another mimamori process (only one may ingest into a data directory at a time; stop it or send the data to its HTTP endpoint)")]
    Locked(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// What a durable submission reports.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Ids assigned to the events, in order.
    pub ids: Vec<String>,
    /// WAL position after the batch.
    pub wal_position: u64,
}

enum Msg {
    Submit(Submission),
    /// Stop: store what is queued, then end the threads.
    Stop,
}

struct Submission {
    org_id: String,
    bodies: Vec<EventBody>,
    ack: oneshot::Sender<Result<Ack, IngestError>>,
    _permit: OwnedSemaphorePermit,
}

/// Counters exposed as metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub events_acked: AtomicU64,
    pub batches_acked: AtomicU64,
    pub fsyncs: AtomicU64,
    pub events_archived: AtomicU64,
    pub overloaded: AtomicU64,
    pub wal_position: AtomicU64,
    pub archive_checkpoint: AtomicU64,
}

/// The handle sources submit through. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::UnboundedSender<Msg>,
    permits: Arc<Semaphore>,
    capacity: usize,
    stats: Arc<Stats>,
    archive: Archive,
}

/// The running threads; join them after dropping every [`Ingest`] handle.
pub struct IngestThreads {
    wal: std::thread::JoinHandle<()>,
    archive: std::thread::JoinHandle<()>,
    /// Held (with its exclusive lock) until the threads are joined.
    _lock: std::fs::File,
}

impl IngestThreads {
    /// Waits until everything submitted is archived.
    pub fn join(self) {
        let _ = self.wal.join();
        let _ = self.archive.join();
    }
}

impl Ingest {
    /// Recovers the archive and WAL in `cfg.dir` (replaying what the
    /// archive lacks) and starts the WAL and archive threads.
    pub fn start(cfg: IngestConfig) -> Result<(Ingest, IngestThreads), IngestError> {
        std::fs::create_dir_all(&cfg.dir)?;
        let lock_path = cfg.dir.join("LOCK");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        if lock.try_lock().is_err() {
            return Err(IngestError::Locked(cfg.dir.display().to_string()));
        }
        let (archive, checkpoint) = Archive::recover(&cfg.dir.join("archive"))?;
        let mut replayed: Vec<Event> = vec![];
        let mut replay_end = checkpoint;
        let mut bad = 0usize;
        let wal = wal::Wal::open(
            &cfg.dir.join("wal"),
            cfg.segment_bytes,
            checkpoint,
            |end, payload| {
                match decode_batch(payload) {
                    Ok(evs) => replayed.extend(evs),
                    Err(_) => bad += 1,
                }
                replay_end = end;
            },
        )?;
        if bad > 0 {
            tracing::error!(
                bad,
                "WAL records that passed their checksum but do not decode were skipped"
            );
        }
        if !replayed.is_empty() {
            tracing::info!(events = replayed.len(), "replayed the WAL into the archive");
            archive.flush(&replayed, checkpoint, replay_end)?;
        }
        let stats = Arc::new(Stats::default());
        stats.wal_position.store(wal.position(), Ordering::Relaxed);
        stats
            .archive_checkpoint
            .store(archive.checkpoint()?, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        // Bounded hand-off to the archive: when it lags, the WAL thread
        // waits, the queue fills, and sources get 429 / slow down.
        let (arch_tx, arch_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<Event>)>(64);
        let released = Arc::new(AtomicU64::new(0));
        let wal_thread = {
            let stats = stats.clone();
            let released = released.clone();
            std::thread::Builder::new()
                .name("mimamori-wal".into())
                .spawn(move || wal_loop(wal, rx, arch_tx, stats, released))?
        };
        let archive_thread = {
            let stats = stats.clone();
            let archive = archive.clone();
            let cfg = cfg.clone();
            let start = archive.checkpoint()?;
            std::thread::Builder::new()
                .name("mimamori-archive".into())
                .spawn(move || archive_loop(archive, arch_rx, cfg, stats, released, start))?
        };
        Ok((
            Ingest {
                tx,
                permits: Arc::new(Semaphore::new(cfg.queue_events)),
                capacity: cfg.queue_events,
                stats,
                archive,
            },
            IngestThreads {
                wal: wal_thread,
                archive: archive_thread,
                _lock: lock,
            },
        ))
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Stops the pipeline even while other handles live: what is queued is
    /// stored, later submissions fail with [`IngestError::Stopped`], and the
    /// threads end after the archive's last flush (join them to wait).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Stop);
    }

    /// Most events the queue holds (the largest batch ever admitted).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events queued and not yet in the WAL.
    pub fn queued(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    fn enqueue(
        &self,
        org_id: &str,
        bodies: Vec<EventBody>,
        permit: OwnedSemaphorePermit,
    ) -> Result<oneshot::Receiver<Result<Ack, IngestError>>, IngestError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Msg::Submit(Submission {
                org_id: org_id.to_string(),
                bodies,
                ack,
                _permit: permit,
            }))
            .map_err(|_| IngestError::Stopped)?;
        Ok(rx)
    }

    fn permits_for(&self, n: usize) -> Result<u32, IngestError> {
        if n > self.capacity {
            return Err(IngestError::BatchTooLarge(n, self.capacity));
        }
        Ok(n.max(1) as u32)
    }

    /// Submits without waiting for queue space: refuses with
    /// [`IngestError::Overloaded`] when the queue is full. The returned
    /// future resolves once the events are durable.
    pub fn try_submit(
        &self,
        org_id: &str,
        bodies: Vec<EventBody>,
    ) -> Result<impl std::future::Future<Output = Result<Ack, IngestError>>, IngestError> {
        let n = self.permits_for(bodies.len())?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| {
                self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
                IngestError::Overloaded {
                    queued: self.queued(),
                }
            })?;
        let rx = self.enqueue(org_id, bodies, permit)?;
        Ok(async move { rx.await.map_err(|_| IngestError::Stopped)? })
    }

    /// Submits, waiting for queue space (backpressure), and resolves once
    /// the events are durable.
    pub async fn submit(&self, org_id: &str, bodies: Vec<EventBody>) -> Result<Ack, IngestError> {
        let n = self.permits_for(bodies.len())?;
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| IngestError::Stopped)?;
        let rx = self.enqueue(org_id, bodies, permit)?;
        rx.await.map_err(|_| IngestError::Stopped)?
    }
}

/// Most events written between two fsyncs.
const GROUP_EVENTS: usize = 100_000;

fn wal_loop(
    mut wal: wal::Wal,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    arch_tx: std::sync::mpsc::SyncSender<(u64, Vec<Event>)>,
    stats: Arc<Stats>,
    released: Arc<AtomicU64>,
) {
    let mut broken: Option<String> = None;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut stopping = false;
    while !stopping {
        let Some(first) = rx.blocking_recv() else {
            break;
        };
        let mut group = vec![];
        let mut n = 0;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Submit(s) => {
                    n += s.bodies.len();
                    group.push(s);
                }
                Msg::Stop => stopping = true,
            }
            if n >= GROUP_EVENTS {
                break;
            }
            next = rx.try_recv().ok();
        }
        if stopping {
            // Close the channel; whatever is still in it is stored too.
            rx.close();
            while let Ok(msg) = rx.try_recv() {
                if let Msg::Submit(s) = msg {
                    group.push(s);
                }
            }
        }
        if group.is_empty() {
            continue;
        }
        if let Some(reason) = &broken {
            for s in group {
                let _ = s.ack.send(Err(IngestError::Wal(reason.clone())));
            }
            continue;
        }
        let received = now_millis();
        let mut pending = Vec::with_capacity(group.len());
        let mut failed: Option<String> = None;
        for s in group {
            let events: Vec<Event> = s
                .bodies
                .into_iter()
                .map(|body| Event {
                    id: uuid::Uuid::now_v7().to_string(),
                    org_id: s.org_id.clone(),
                    received,
                    body,
                })
                .collect();
            buf.clear();
            encode_batch(&events, &mut buf);
            match wal.append(&buf) {
                Ok(end) => pending.push((s.ack, events, end, s._permit)),
                Err(e) => {
                    failed = Some(e.to_string());
                    let _ = s.ack.send(Err(IngestError::Wal(e.to_string())));
                }
            }
        }
        if failed.is_none() {
            if let Err(e) = wal.sync() {
                failed = Some(e.to_string());
            } else {
                stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(reason) = failed {
            // After a failed write or fsync nothing in this group can be
            // called durable, and the file state is unknown: refuse
            // everything from now on rather than acknowledge falsely.
            tracing::error!(error = %reason, "WAL write failed; ingestion stops acknowledging");
            for (ack, ..) in pending {
                let _ = ack.send(Err(IngestError::Wal(reason.clone())));
            }
            broken = Some(reason);
            continue;
        }
        stats.wal_position.store(wal.position(), Ordering::Relaxed);
        for (ack, events, end, permit) in pending {
            let ids = events.iter().map(|e| e.id.clone()).collect();
            stats
                .events_acked
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            stats.batches_acked.fetch_add(1, Ordering::Relaxed);
            let _ = ack.send(Ok(Ack {
                ids,
                wal_position: end,
            }));
            drop(permit);
            if arch_tx.send((end, events)).is_err() {
                tracing::error!("the archive thread is gone");
            }
        }
        let rel = released.load(Ordering::Relaxed);
        if rel > 0 {
            if let Err(e) = wal.release_before(rel) {
                tracing::warn!(error = %e, "could not delete archived WAL segments");
            }
        }
    }
}

fn archive_loop(
    archive: Archive,
    rx: std::sync::mpsc::Receiver<(u64, Vec<Event>)>,
    cfg: IngestConfig,
    stats: Arc<Stats>,
    released: Arc<AtomicU64>,
    mut from: u64,
) {
    let mut buffer: Vec<Event> = vec![];
    let mut to = from;
    let mut oldest: Option<Instant> = None;
    let flush = |buffer: &mut Vec<Event>, from: &mut u64, to: u64| {
        if buffer.is_empty() {
            return;
        }
        match archive.flush(buffer, *from, to) {
            Ok(_) => {
                stats
                    .events_archived
                    .fetch_add(buffer.len() as u64, Ordering::Relaxed);
                stats.archive_checkpoint.store(to, Ordering::Relaxed);
                released.store(to, Ordering::Relaxed);
                *from = to;
                buffer.clear();
            }
            // The events stay buffered and in the WAL; the next flush
            // retries. Part files this attempt did write are removed first,
            // or the retry (covering a longer WAL range) would store their
            // events twice.
            Err(e) => {
                tracing::error!(error = %e, "archive flush failed; will retry");
                if let Err(e) = archive.remove_uncommitted() {
                    tracing::error!(error = %e, "cannot remove the part files of the failed flush");
                }
            }
        }
    };
    loop {
        let wait = match oldest {
            Some(t) => cfg.flush_interval.saturating_sub(t.elapsed()),
            None => Duration::from_secs(3600),
        };
        match rx.recv_timeout(wait) {
            Ok((end, events)) => {
                oldest.get_or_insert_with(Instant::now);
                buffer.extend(events);
                to = end;
                if buffer.len() >= cfg.flush_events {
                    flush(&mut buffer, &mut from, to);
                    oldest = (!buffer.is_empty()).then(Instant::now);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                flush(&mut buffer, &mut from, to);
                oldest = (!buffer.is_empty()).then(Instant::now);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                flush(&mut buffer, &mut from, to);
                return;
            }
        }
    }
}

/// A WAL record: the batch's events as NDJSON.
fn encode_batch(events: &[Event], out: &mut Vec<u8>) {
    for e in events {
        // Serializing our own plain data cannot fail.
        if serde_json::to_writer(&mut *out, e).is_ok() {
            out.push(b'\n');
        }
    }
}

fn decode_batch(payload: &[u8]) -> Result<Vec<Event>, serde_json::Error> {
    payload
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect()
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The ingest directory inside a data directory.
pub fn ingest_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ingest")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimamori_event::{Normalized, OcsfClass};

    fn body(q: &str) -> EventBody {
        EventBody {
            time: Some(1_764_000_000_000),
            class: OcsfClass::DnsActivity,
            source: "test".into(),
            fields: Normalized {
                dns_query: Some(q.into()),
                ..Default::default()
            },
            raw: Default::default(),
        }
    }

    fn cfg(dir: &Path) -> IngestConfig {
        IngestConfig {
            flush_interval: Duration::from_millis(50),
            segment_bytes: 4096,
            ..IngestConfig::new(dir)
        }
    }

    #[tokio::test]
    async fn acked_events_reach_the_archive_once_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut all_ids = vec![];
        for round in 0..3 {
            let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
            for i in 0..20 {
                let ack = ingest
                    .submit("org-a", vec![body(&format!("r{round}-{i}.example")); 7])
                    .await
                    .unwrap();
                all_ids.extend(ack.ids);
            }
            drop(ingest);
            threads.join();
        }
        let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
        let mut got: Vec<String> = archive
            .read_events(None)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        got.sort();
        all_ids.sort();
        assert_eq!(got, all_ids);
        // Archived WAL segments are released (at the latest on the next start).
        let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
        drop(ingest);
        threads.join();
        let wal_files = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
        assert!(wal_files <= 2, "{wal_files} WAL segments left");
    }

    #[tokio::test]
    async fn wal_without_archive_is_replayed_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        // Write straight to the WAL, as if the process died before the
        // archive flushed.
        let events: Vec<Event> = (0..50)
            .map(|i| Event {
                id: format!("id-{i:03}"),
                org_id: "org-b".into(),
                received: 1,
                body: body("x.example"),
            })
            .collect();
        {
            let mut wal = wal::Wal::open(&dir.path().join("wal"), 1 << 20, 0, |_, _| {}).unwrap();
            let mut buf = vec![];
            encode_batch(&events[..25], &mut buf);
            wal.append(&buf).unwrap();
            buf.clear();
            encode_batch(&events[25..], &mut buf);
            wal.append(&buf).unwrap();
            wal.sync().unwrap();
        }
        // And a stale part file from an interrupted flush beyond the checkpoint.
        let stale = dir
            .path()
            .join("archive/org=org-b/date=2025-11-24/class=dns_activity");
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::write(
            stale.join("part-00000000000000000000-00000000000000009999-0.parquet"),
            b"junk",
        )
        .unwrap();
        for _ in 0..2 {
            let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
            drop(ingest);
            threads.join();
        }
        let (archive, cp) = Archive::recover(&dir.path().join("archive")).unwrap();
        assert!(cp > 0);
        let ids: Vec<String> = archive
            .read_events(Some(&["org-b".into()]))
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids.len(), 50);
        assert!(archive
            .read_events(Some(&["org-c".into()]))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn one_process_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
        let err = Ingest::start(cfg(dir.path())).err().unwrap();
        assert!(matches!(err, IngestError::Locked(_)), "{err}");
        drop(ingest);
        threads.join();
        let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
        drop(ingest);
        threads.join();
    }

    #[tokio::test]
    async fn a_full_queue_refuses_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, threads) = Ingest::start(IngestConfig {
            queue_events: 10,
            ..cfg(dir.path())
        })
        .unwrap();
        assert!(matches!(
            ingest.try_submit("o", vec![body("a.example"); 11]).err(),
            Some(IngestError::BatchTooLarge(11, 10))
        ));
        // Fill the queue faster than the WAL thread drains it: some refusals.
        let mut refused = 0;
        let mut pending = vec![];
        for _ in 0..2000 {
            match ingest.try_submit("o", vec![body("a.example"); 5]) {
                Ok(f) => pending.push(f),
                Err(IngestError::Overloaded { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        for f in pending {
            f.await.unwrap();
        }
        assert!(
            refused > 0,
            "a 10-event queue took 10,000 events without refusing"
        );
        assert!(ingest.stats().overloaded.load(Ordering::Relaxed) > 0);
        drop(ingest);
        threads.join();
    }
}
