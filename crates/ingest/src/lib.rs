//! Durable telemetry ingestion.
//!
//! ```text
//! sources ──submit──▶ [bounded queue] ──▶ WAL thread ──fsync──▶ ack
//!                                              │
//!                                              ├──(bounded)──▶ archive thread ──▶ Parquet + checkpoint
//!                                              └──(bounded)──▶ consumer threads ──▶ detection, … + checkpoint
//! ```
//!
//! Invariants:
//! - A submission is acknowledged only after its events are in the WAL and
//!   the WAL is fsync'd. Many submissions share one fsync (group commit).
//! - Memory is bounded: the queue admits at most `queue_events` events;
//!   [`Ingest::try_submit`] refuses more (HTTP answers 429), and
//!   [`Ingest::submit`] waits (file and TCP sources slow down instead).
//! - Every acknowledged event reaches the archive exactly once, across
//!   crashes (see [`archive`]), and every [`Consumer`] at least once, in WAL
//!   order: a WAL segment is deleted only when the archive and every
//!   consumer have checkpointed past it, and a restart replays each of them
//!   from its own checkpoint.
//! - Ids and org are assigned here, never taken from the payload.

pub mod archive;
pub mod raw;
pub mod syslog;
pub mod tls_identity;
pub mod wal;

use archive::Archive;
use mimamori_event::{Event, EventBody};
pub use raw::RawBatch;
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
    /// Most bytes of raw messages ([`RawBatch`]) queued at once: with
    /// messages of up to 64 KiB, an event count alone bounds nothing.
    pub queue_bytes: usize,
    /// Most events past the WAL and not yet archived and consumed (held in
    /// the hand-offs, the archive's buffer and by consumers). Keep it well
    /// above `flush_events`, or the archive waits for `flush_interval`.
    pub pipeline_events: usize,
    /// WAL segment size before rolling to a new file.
    pub segment_bytes: u64,
    /// Archive flush when this many events are buffered…
    pub flush_events: usize,
    /// …or when the oldest buffered event is this old.
    pub flush_interval: Duration,
    /// How the archive's small files are merged (`None`: never).
    pub compaction: Option<archive::CompactionPolicy>,
    /// How often the compaction thread looks for files to merge.
    pub compact_interval: Duration,
}

impl IngestConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        IngestConfig {
            dir: dir.into(),
            queue_events: 200_000,
            queue_bytes: 64 * 1024 * 1024,
            pipeline_events: 200_000,
            segment_bytes: 64 * 1024 * 1024,
            flush_events: 50_000,
            flush_interval: Duration::from_secs(2),
            compaction: Some(archive::CompactionPolicy::default()),
            compact_interval: Duration::from_secs(30),
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
    Io(std::io::Error),
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<std::io::Error> for IngestError {
    fn from(e: std::io::Error) -> Self {
        IngestError::Io(e)
    }
}

/// What a durable submission reports.
#[derive(Debug, Clone)]
pub struct Ack {
    /// Ids assigned to the events, in order. Empty for a [`RawBatch`]: its
    /// events get their ids when they are normalized, after the WAL.
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
    payload: Payload,
    ack: oneshot::Sender<Result<Ack, IngestError>>,
    permits: Permits,
}

/// Queue space held by a submission until it is durable.
struct Permits {
    _events: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

enum Payload {
    /// Parsed events (HTTP, files): stored as NDJSON.
    Events(Vec<EventBody>),
    /// Raw messages (syslog): stored as received, normalized after the WAL.
    Raw(RawBatch),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Events(b) => b.len(),
            Payload::Raw(r) => r.len(),
        }
    }
}

/// A queued submission; [`Pending::durable`] resolves once it is in the
/// fsync'd WAL.
pub struct Pending(oneshot::Receiver<Result<Ack, IngestError>>);

impl Pending {
    pub async fn durable(self) -> Result<Ack, IngestError> {
        self.0.await.map_err(|_| IngestError::Stopped)?
    }
}

/// A durable reader of acknowledged events besides the archive: streaming
/// detection is one.
///
/// Each consumer runs on its own thread behind a bounded channel, so a slow
/// consumer slows ingestion down (the queue fills and sources get 429)
/// instead of growing memory. After [`Consumer::consume`] returns, the
/// consumer's checkpoint (`consumers/<name>.checkpoint` in the ingest
/// directory) moves past the batch; on restart the WAL after that checkpoint
/// is replayed to it. Delivery is therefore at least once: a crash between
/// `consume` and the checkpoint write hands the same events over again, so
/// consumers must tolerate repeats (event ids are stable across replays).
pub trait Consumer: Send + 'static {
    /// Stable name: it names the checkpoint file. Letters, digits, `-`, `_`.
    fn name(&self) -> &str;
    /// Handles a batch of events, in WAL order. Must not return before its
    /// effects are as durable as the consumer needs them to be.
    fn consume(&mut self, events: &[Event]);
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
    /// Events handed to consumers (summed over consumers).
    pub events_consumed: AtomicU64,
    /// Raw messages ([`RawBatch`]) that were made durable but did not parse
    /// into an event when normalized.
    pub raw_rejected: AtomicU64,
    /// What the WAL replay at this start could not recover (damaged or
    /// missing bytes after the checkpoint; see [`wal::Recovery`]).
    pub wal_damaged_regions: AtomicU64,
    pub wal_damaged_bytes: AtomicU64,
    pub wal_lost_records: AtomicU64,
    pub wal_lost_events: AtomicU64,
}

/// The handle sources submit through. Cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    tx: mpsc::UnboundedSender<Msg>,
    permits: Arc<Semaphore>,
    capacity: usize,
    byte_permits: Arc<Semaphore>,
    byte_capacity: usize,
    stats: Arc<Stats>,
    archive: Archive,
    /// WAL damage this start found that no earlier start had reported.
    wal_damage: Arc<Vec<wal::Damage>>,
}

/// The running threads; join them after dropping every [`Ingest`] handle.
pub struct IngestThreads {
    wal: std::thread::JoinHandle<()>,
    normalizer: std::thread::JoinHandle<()>,
    archive: std::thread::JoinHandle<()>,
    compact: Option<std::thread::JoinHandle<()>>,
    consumers: Vec<std::thread::JoinHandle<()>>,
    /// For the clean stop: the WAL directory and every reader's position
    /// (archive, consumers, the lowest absent consumer).
    wal_dir: PathBuf,
    released: Vec<Arc<AtomicU64>>,
    floor: u64,
    /// Held (with its exclusive lock) until the threads are joined.
    _lock: std::fs::File,
}

impl IngestThreads {
    /// Waits until everything submitted is archived, then deletes the WAL
    /// segments the archive and every consumer have checkpointed past.
    pub fn join(self) {
        let _ = self.wal.join();
        let _ = self.normalizer.join();
        let _ = self.archive.join();
        if let Some(c) = self.compact {
            let _ = c.join();
        }
        for c in self.consumers {
            let _ = c.join();
        }
        let covered = self
            .released
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
            .min(self.floor);
        match wal::release_covered(&self.wal_dir, covered) {
            Ok(0) => {}
            Ok(bytes) => tracing::info!(bytes, "removed the WAL segments the checkpoints cover"),
            Err(e) => tracing::warn!(error = %e, "could not delete archived WAL segments"),
        }
    }
}

impl Ingest {
    /// Recovers the archive and WAL in `cfg.dir` (replaying what the
    /// archive lacks) and starts the WAL and archive threads.
    pub fn start(cfg: IngestConfig) -> Result<(Ingest, IngestThreads), IngestError> {
        Self::start_with(cfg, vec![])
    }

    /// Like [`Ingest::start`], with consumers that receive every
    /// acknowledged event (see [`Consumer`]). Before this returns, each
    /// consumer has been handed the WAL records after its checkpoint.
    pub fn start_with(
        cfg: IngestConfig,
        consumers: Vec<Box<dyn Consumer>>,
    ) -> Result<(Ingest, IngestThreads), IngestError> {
        std::fs::create_dir_all(&cfg.dir)?;
        let lock = lock_dir(&cfg.dir)?;
        let (archive, checkpoint) = Archive::recover(&cfg.dir.join("archive"))?;
        let consumer_dir = cfg.dir.join("consumers");
        std::fs::create_dir_all(&consumer_dir)?;
        let mut consumers: Vec<(Box<dyn Consumer>, ConsumerCheckpoint)> = consumers
            .into_iter()
            .map(|c| {
                let cp = ConsumerCheckpoint::open(&consumer_dir, c.name(), checkpoint)?;
                Ok((c, cp))
            })
            .collect::<Result<_, IngestError>>()?;
        // Consumers that have a checkpoint but are not running now (a
        // `mimamori ingest` run without detection, say) still hold the WAL
        // they have not consumed, so they miss nothing when they return.
        // Deleting `consumers/<name>.checkpoint` retires one for good.
        let absent_floor = absent_consumers(&consumer_dir, &consumers)?;
        let replay_from = consumers
            .iter()
            .map(|(_, cp)| cp.position)
            .chain(absent_floor)
            .fold(checkpoint, u64::min);
        let mut replayed: Vec<(u64, Vec<Event>)> = vec![];
        let mut replay_end = checkpoint;
        let mut bad = 0usize;
        let stats = Arc::new(Stats::default());
        let wal = wal::Wal::open(
            &cfg.dir.join("wal"),
            cfg.segment_bytes,
            replay_from,
            |end, payload| {
                match decode_record(payload, &stats) {
                    Ok(evs) => replayed.push((end, evs)),
                    Err(_) => bad += 1,
                }
                replay_end = replay_end.max(end);
            },
        )?;
        let recovery = wal.recovery();
        stats
            .wal_damaged_regions
            .store(recovery.damage.len() as u64, Ordering::Relaxed);
        stats
            .wal_damaged_bytes
            .store(recovery.lost_bytes(), Ordering::Relaxed);
        stats
            .wal_lost_records
            .store(recovery.lost_records(), Ordering::Relaxed);
        stats
            .wal_lost_events
            .store(recovery.lost_events(), Ordering::Relaxed);
        let wal_damage = Arc::new(recovery.new_damage().cloned().collect::<Vec<_>>());
        if bad > 0 {
            tracing::error!(
                bad,
                "WAL records that passed their checksum but do not decode were skipped"
            );
        }
        let for_archive = replayed
            .iter()
            .filter(|(end, _)| *end > checkpoint)
            .flat_map(|(_, evs)| evs);
        if replay_end > checkpoint {
            let n = for_archive.clone().count();
            tracing::info!(events = n, "replayed the WAL into the archive");
            archive.flush(for_archive, checkpoint, replay_end)?;
        }
        for (consumer, cp) in &mut consumers {
            let mut n = 0;
            let from = cp.position;
            for (end, evs) in replayed.iter().filter(|(end, _)| *end > from) {
                consumer.consume(evs);
                n += evs.len();
                cp.position = *end;
            }
            if n > 0 {
                tracing::info!(consumer = consumer.name(), events = n, "replayed the WAL");
            }
            cp.position = cp.position.max(replay_end);
            cp.store()?;
        }
        drop(replayed);
        stats.wal_position.store(wal.position(), Ordering::Relaxed);
        stats
            .archive_checkpoint
            .store(archive.checkpoint()?, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        // Bounded hand-offs to the normalizer and on to the archive: when
        // either lags, the WAL thread waits, the queue fills, and sources
        // get 429 / slow down.
        let (norm_tx, norm_rx) = std::sync::mpsc::sync_channel::<(u64, Record, usize)>(64);
        let gate = Arc::new(InFlight::new(cfg.pipeline_events));
        let (arch_tx, arch_rx) = std::sync::mpsc::sync_channel::<(u64, Batch)>(64);
        // Archived batches go back to the normalize thread to be freed
        // there (see `normalize_loop`). Unbounded, but what it holds is
        // still counted by `gate` until freed.
        let (reclaim_tx, reclaim_rx) = std::sync::mpsc::channel::<Vec<Batch>>();
        let released = Arc::new(AtomicU64::new(0));
        let mut all_released = vec![released.clone()];
        let floor = absent_floor.unwrap_or(u64::MAX);
        let mut outlets = vec![arch_tx];
        let mut consumer_threads = vec![];
        for (consumer, cp) in consumers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Batch)>(16);
            let released = Arc::new(AtomicU64::new(cp.position));
            outlets.push(tx);
            all_released.push(released.clone());
            let stats = stats.clone();
            consumer_threads.push(
                std::thread::Builder::new()
                    .name(format!("mimamori-{}", consumer.name()))
                    .spawn(move || consumer_loop(consumer, cp, rx, released, stats))?,
            );
        }
        let wal_thread = {
            let stats = stats.clone();
            let all_released = all_released.clone();
            std::thread::Builder::new()
                .name("mimamori-wal".into())
                .spawn({
                    let gate = gate.clone();
                    move || wal_loop(wal, rx, norm_tx, gate, all_released, floor, stats)
                })?
        };
        let normalizer_thread = {
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("mimamori-normalize".into())
                .spawn(move || normalize_loop(norm_rx, outlets, gate, stats, reclaim_rx))?
        };
        // The compaction thread ends when the archive thread does (it
        // drops `compact_stop`).
        let (compact_stop, compact_wait) = std::sync::mpsc::channel::<()>();
        let compact_thread = match cfg.compaction.clone() {
            Some(policy) => {
                let archive = archive.clone();
                let every = cfg.compact_interval;
                Some(
                    std::thread::Builder::new()
                        .name("mimamori-compact".into())
                        .spawn(move || compact_loop(archive, policy, every, compact_wait))?,
                )
            }
            None => None,
        };
        let archive_thread = {
            let stats = stats.clone();
            let archive = archive.clone();
            let cfg = cfg.clone();
            let start = archive.checkpoint()?;
            std::thread::Builder::new()
                .name("mimamori-archive".into())
                .spawn(move || {
                    let _stop = compact_stop;
                    archive_loop(archive, arch_rx, cfg, stats, released, start, reclaim_tx)
                })?
        };
        Ok((
            Ingest {
                tx,
                permits: Arc::new(Semaphore::new(cfg.queue_events)),
                capacity: cfg.queue_events,
                byte_permits: Arc::new(Semaphore::new(cfg.queue_bytes)),
                byte_capacity: cfg.queue_bytes,
                stats,
                archive,
                wal_damage,
            },
            IngestThreads {
                wal: wal_thread,
                normalizer: normalizer_thread,
                archive: archive_thread,
                compact: compact_thread,
                consumers: consumer_threads,
                wal_dir: cfg.dir.join("wal"),
                released: all_released,
                floor,
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

    /// WAL damage found at this start that no earlier start had reported:
    /// acknowledged data lost (each also logged as an ERROR).
    pub fn wal_damage(&self) -> &[wal::Damage] {
        &self.wal_damage
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

    /// Most bytes of raw messages the queue holds (the largest
    /// [`RawBatch`] ever admitted).
    pub fn byte_capacity(&self) -> usize {
        self.byte_capacity
    }

    /// Events queued and not yet in the WAL.
    pub fn queued(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    fn enqueue(
        &self,
        org_id: &str,
        payload: Payload,
        permits: Permits,
    ) -> Result<Pending, IngestError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Msg::Submit(Submission {
                org_id: org_id.to_string(),
                payload,
                ack,
                permits,
            }))
            .map_err(|_| IngestError::Stopped)?;
        Ok(Pending(rx))
    }

    fn permits_for(&self, n: usize) -> Result<u32, IngestError> {
        if n > self.capacity {
            return Err(IngestError::BatchTooLarge(n, self.capacity));
        }
        Ok(n.max(1) as u32)
    }

    fn byte_permits_for(&self, batch: &RawBatch) -> Result<u32, IngestError> {
        if batch.bytes() > self.byte_capacity {
            return Err(IngestError::BatchTooLarge(
                batch.bytes(),
                self.byte_capacity,
            ));
        }
        Ok(batch.bytes().max(1) as u32)
    }

    fn overloaded(&self) -> IngestError {
        self.stats.overloaded.fetch_add(1, Ordering::Relaxed);
        IngestError::Overloaded {
            queued: self.queued(),
        }
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
            .map_err(|_| self.overloaded())?;
        let permits = Permits {
            _events: permit,
            _bytes: None,
        };
        Ok(self
            .enqueue(org_id, Payload::Events(bodies), permits)?
            .durable())
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
        let permits = Permits {
            _events: permit,
            _bytes: None,
        };
        self.enqueue(org_id, Payload::Events(bodies), permits)?
            .durable()
            .await
    }

    /// Queues raw messages, waiting for queue space (backpressure: a stream
    /// source that awaits this stops reading), and returns once they are
    /// queued. They are durable when the returned [`Pending`] resolves, and
    /// parsed into events after that (rejects counted in
    /// [`Stats::raw_rejected`]).
    pub async fn queue_raw(&self, org_id: &str, batch: RawBatch) -> Result<Pending, IngestError> {
        let n = self.permits_for(batch.len())?;
        let b = self.byte_permits_for(&batch)?;
        // Always events first, then bytes: one order, so no two waiters
        // can each hold what the other waits for.
        let events = self
            .permits
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| IngestError::Stopped)?;
        let bytes = self
            .byte_permits
            .clone()
            .acquire_many_owned(b)
            .await
            .map_err(|_| IngestError::Stopped)?;
        let permits = Permits {
            _events: events,
            _bytes: Some(bytes),
        };
        self.enqueue(org_id, Payload::Raw(batch), permits)
    }

    /// Like [`Ingest::queue_raw`] without waiting: refuses with
    /// [`IngestError::Overloaded`] when the queue is full (for sources that
    /// cannot push back, such as UDP).
    pub fn try_queue_raw(&self, org_id: &str, batch: RawBatch) -> Result<Pending, IngestError> {
        let n = self.permits_for(batch.len())?;
        let b = self.byte_permits_for(&batch)?;
        let events = self
            .permits
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| self.overloaded())?;
        let bytes = self
            .byte_permits
            .clone()
            .try_acquire_many_owned(b)
            .map_err(|_| self.overloaded())?;
        let permits = Permits {
            _events: events,
            _bytes: Some(bytes),
        };
        self.enqueue(org_id, Payload::Raw(batch), permits)
    }
}

/// Most events written between two fsyncs.
const GROUP_EVENTS: usize = 100_000;

/// Events of one WAL record, shared by the archive and the consumers.
type Batch = Arc<Tracked>;

/// Events past the WAL and not yet let go by every reader (the hand-offs,
/// the archive's buffer, the consumers). The hand-offs are bounded in
/// records, and a record holds one event or 100,000; bounding the events
/// themselves is what bounds memory whatever the batch sizes.
struct InFlight {
    events: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
    limit: usize,
}

impl InFlight {
    fn new(limit: usize) -> Self {
        InFlight {
            events: std::sync::Mutex::new(0),
            freed: std::sync::Condvar::new(),
            limit,
        }
    }

    /// Waits until `n` more events fit (a record larger than the limit
    /// passes alone), then counts them.
    fn take(&self, n: usize) {
        let mut held = self.events.lock().unwrap_or_else(|p| p.into_inner());
        while *held > 0 && *held + n > self.limit {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        *held += n;
    }

    fn give(&self, n: usize) {
        let mut held = self.events.lock().unwrap_or_else(|p| p.into_inner());
        *held = held.saturating_sub(n);
        self.freed.notify_all();
    }
}

/// A record's events, counted in [`InFlight`] until the last reader drops
/// them.
struct Tracked {
    events: Vec<Event>,
    /// Their archive columns' JSON text, made before the archive thread.
    text: archive::EventText,
    taken: usize,
    gate: Arc<InFlight>,
}

impl std::ops::Deref for Tracked {
    type Target = Vec<Event>;
    fn deref(&self) -> &Vec<Event> {
        &self.events
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.gate.give(self.taken);
    }
}

/// A durable WAL record on its way to normalization.
enum Record {
    /// Events and the WAL record's text, whose `fields` and `raw` parts the
    /// archive reuses.
    Events(Vec<Event>, archive::EventText),
    Raw(raw::RawRecord),
}

fn wal_loop(
    mut wal: wal::Wal,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    normalizer: std::sync::mpsc::SyncSender<(u64, Record, usize)>,
    gate: Arc<InFlight>,
    released: Vec<Arc<AtomicU64>>,
    floor: u64,
    stats: Arc<Stats>,
) {
    let mut broken: Option<String> = None;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut stopping = false;
    let mut normalizer = Some(normalizer);
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
                    n += s.payload.len();
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
            buf.clear();
            let (written, record) = match s.payload {
                Payload::Events(bodies) => {
                    // One UUIDv7 per submission, counted up per event (as
                    // for raw records): a fresh one per event cost a
                    // getrandom system call each.
                    let base_id = uuid::Uuid::now_v7().as_u128();
                    let events: Vec<Event> = bodies
                        .into_iter()
                        .enumerate()
                        .map(|(i, body)| Event {
                            id: raw::event_id(base_id, i as u32),
                            org_id: s.org_id.clone(),
                            received,
                            body,
                        })
                        .collect();
                    let text = archive::EventText::encode(&events);
                    let n = events.len() as u32;
                    (
                        wal.append_parts(&[text.as_bytes()], n),
                        Record::Events(events, text),
                    )
                }
                Payload::Raw(batch) => {
                    let base_id = uuid::Uuid::now_v7().as_u128();
                    raw::encode_header(&batch, &s.org_id, received, base_id, &mut buf);
                    let written = wal.append_parts(&[&buf, batch.body()], batch.len() as u32);
                    let rec = raw::RawRecord {
                        org_id: s.org_id,
                        received,
                        base_id,
                        batch,
                    };
                    (written, Record::Raw(rec))
                }
            };
            match written {
                Ok(end) => pending.push((s.ack, record, end, s.permits)),
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
        for (ack, record, end, permits) in pending {
            let (ids, n) = match &record {
                Record::Events(events, _) => {
                    (events.iter().map(|e| e.id.clone()).collect(), events.len())
                }
                Record::Raw(r) => (vec![], r.batch.len()),
            };
            stats.events_acked.fetch_add(n as u64, Ordering::Relaxed);
            stats.batches_acked.fetch_add(1, Ordering::Relaxed);
            let _ = ack.send(Ok(Ack {
                ids,
                wal_position: end,
            }));
            drop(permits);
            if let Some(tx) = &normalizer {
                // Waits while the readers hold too many events: the queue
                // then fills and sources slow down.
                gate.take(n);
                if tx.send((end, record, n)).is_err() {
                    gate.give(n);
                    // The normalizer died (a panic): what is acknowledged
                    // stays in the WAL and is replayed at the next start.
                    tracing::error!("the normalizer thread is gone");
                    normalizer = None;
                }
            }
        }
        let rel = released
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
            .min(floor);
        if rel > 0 {
            if let Err(e) = wal.release_before(rel) {
                tracing::warn!(error = %e, "could not delete archived WAL segments");
            }
        }
    }
    // A clean stop: the mark records exactly where the log ends.
    if broken.is_none() {
        if let Err(e) = wal.close() {
            tracing::warn!(error = %e, "could not record the end of the WAL");
        }
    }
}

/// Turns durable records into events (parsing raw messages) and hands them,
/// in WAL order, to the archive and the consumers. It runs on its own
/// thread so parsing is neither on the acknowledgement path nor on the
/// WAL thread, and the two cores share the work.
fn normalize_loop(
    rx: std::sync::mpsc::Receiver<(u64, Record, usize)>,
    mut outlets: Vec<std::sync::mpsc::SyncSender<(u64, Batch)>>,
    gate: Arc<InFlight>,
    stats: Arc<Stats>,
    reclaim: std::sync::mpsc::Receiver<Vec<Batch>>,
) {
    loop {
        // The archive hands back what it has written, to be freed here:
        // with mimalloc a free on the allocating thread is a local list
        // push, while the archive thread freeing other threads' blocks
        // was a fifth of its time. (A batch a consumer still holds is
        // freed by the last holder.) The wait below is bounded so this
        // also runs when no record comes: the WAL thread may be waiting
        // for exactly these events to be freed.
        while let Ok(done) = reclaim.try_recv() {
            drop(done);
        }
        let (end, record, taken) = match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(msg) => msg,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let (events, text) = match record {
            Record::Events(events, text) => (events, text),
            Record::Raw(rec) => {
                let mut events = Vec::with_capacity(rec.batch.len());
                let rejected = raw::normalize(&rec, &mut events);
                stats.raw_rejected.fetch_add(rejected, Ordering::Relaxed);
                let text = archive::EventText::of(&events);
                (events, text)
            }
        };
        let batch = Arc::new(Tracked {
            events,
            text,
            taken,
            gate: gate.clone(),
        });
        outlets.retain(|o| {
            // A reader whose thread died (a panicking consumer) is
            // dropped; its checkpoint stays put, so the WAL after it is
            // kept and the next start replays to it what it missed.
            let alive = o.send((end, batch.clone())).is_ok();
            if !alive {
                tracing::error!("an archive or consumer thread is gone");
            }
            alive
        });
    }
}

fn archive_loop(
    archive: Archive,
    rx: std::sync::mpsc::Receiver<(u64, Batch)>,
    cfg: IngestConfig,
    stats: Arc<Stats>,
    released: Arc<AtomicU64>,
    mut from: u64,
    reclaim: std::sync::mpsc::Sender<Vec<Batch>>,
) {
    let mut buffer: Vec<Batch> = vec![];
    let mut buffered = 0usize;
    let mut to = from;
    let mut oldest: Option<Instant> = None;
    let flush = |buffer: &mut Vec<Batch>, buffered: &mut usize, from: &mut u64, to: u64| {
        if buffer.is_empty() {
            return;
        }
        let rows = buffer
            .iter()
            .flat_map(|b| b.events.iter().enumerate().map(|(i, e)| (e, b.text.get(i))));
        match archive.flush_rows(rows, *from, to) {
            Ok(_) => {
                stats
                    .events_archived
                    .fetch_add(*buffered as u64, Ordering::Relaxed);
                stats.archive_checkpoint.store(to, Ordering::Relaxed);
                released.store(to, Ordering::Relaxed);
                *from = to;
                // To be freed by the thread that made them; when it is
                // gone (shutting down) the failed send drops them here.
                let _ = reclaim.send(std::mem::take(buffer));
                *buffered = 0;
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
                buffered += events.len();
                buffer.push(events);
                to = end;
                if buffered >= cfg.flush_events {
                    flush(&mut buffer, &mut buffered, &mut from, to);
                    oldest = (!buffer.is_empty()).then(Instant::now);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                flush(&mut buffer, &mut buffered, &mut from, to);
                oldest = (!buffer.is_empty()).then(Instant::now);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                flush(&mut buffer, &mut buffered, &mut from, to);
                return;
            }
        }
    }
}

/// Merges the archive's small files every `every` until `stop` closes.
fn compact_loop(
    archive: Archive,
    policy: archive::CompactionPolicy,
    every: Duration,
    stop: std::sync::mpsc::Receiver<()>,
) {
    loop {
        match stop.recv_timeout(every) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        match archive.compact(now_millis(), &policy) {
            Ok(r) if r.jobs > 0 => tracing::debug!(
                jobs = r.jobs,
                inputs = r.inputs,
                outputs = r.outputs,
                rows = r.rows,
                "archive compaction"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "archive compaction failed; will retry"),
        }
    }
}

/// A consumer's durable position: the WAL position it has consumed up to.
struct ConsumerCheckpoint {
    path: PathBuf,
    position: u64,
}

impl ConsumerCheckpoint {
    /// Reads `<dir>/<name>.checkpoint`; a consumer seen for the first time
    /// starts at `fresh` (the archive's checkpoint: it is not handed the
    /// history, which retro-hunting covers).
    fn open(dir: &Path, name: &str, fresh: u64) -> Result<Self, IngestError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(IngestError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("consumer name {name:?} must be letters, digits, '-' or '_'"),
            )));
        }
        let path = dir.join(format!("{name}.checkpoint"));
        let position = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("bad consumer checkpoint {s:?} in {}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
            Err(e) => return Err(e.into()),
        };
        Ok(ConsumerCheckpoint { path, position })
    }

    fn store(&self) -> std::io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, self.position.to_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn consumer_loop(
    mut consumer: Box<dyn Consumer>,
    mut cp: ConsumerCheckpoint,
    rx: std::sync::mpsc::Receiver<(u64, Batch)>,
    released: Arc<AtomicU64>,
    stats: Arc<Stats>,
) {
    // The checkpoint is written at most every CHECKPOINT_EVERY (and at the
    // end): a crash in between only means some batches are handed over again.
    const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
    let mut stored = cp.position;
    let mut last_store = Instant::now();
    let store = |cp: &ConsumerCheckpoint, stored: &mut u64| {
        if cp.position == *stored {
            return;
        }
        match cp.store() {
            Ok(()) => {
                *stored = cp.position;
                released.store(cp.position, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(consumer = consumer_name(&cp.path), error = %e, "cannot store the consumer checkpoint; will retry")
            }
        }
    };
    loop {
        match rx.recv_timeout(CHECKPOINT_EVERY) {
            Ok((end, batch)) => {
                consumer.consume(&batch);
                stats
                    .events_consumed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                cp.position = end;
                if last_store.elapsed() >= CHECKPOINT_EVERY {
                    store(&cp, &mut stored);
                    last_store = Instant::now();
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                store(&cp, &mut stored);
                last_store = Instant::now();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                store(&cp, &mut stored);
                return;
            }
        }
    }
}

/// The lowest checkpoint of the consumers in `dir` that are not among
/// `running`, with a warning for each.
fn absent_consumers(
    dir: &Path,
    running: &[(Box<dyn Consumer>, ConsumerCheckpoint)],
) -> Result<Option<u64>, IngestError> {
    let mut floor: Option<u64> = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "checkpoint")
            || running.iter().any(|(_, cp)| cp.path == path)
        {
            continue;
        }
        let name = consumer_name(&path);
        let cp = ConsumerCheckpoint::open(dir, &name, 0)?;
        tracing::warn!(
            consumer = %name,
            position = cp.position,
            "a consumer is not running; the WAL after its checkpoint is kept for it (delete {} to retire it)",
            path.display()
        );
        floor = Some(floor.map_or(cp.position, |f| f.min(cp.position)));
    }
    Ok(floor)
}

fn consumer_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A WAL record of events: NDJSON, written by [`archive::EventText::encode`].
fn decode_batch(payload: &[u8]) -> Result<Vec<Event>, serde_json::Error> {
    payload
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect()
}

/// The events of a WAL record of either kind (raw messages are parsed).
fn decode_record(payload: &[u8], stats: &Stats) -> Result<Vec<Event>, String> {
    if raw::is_raw(payload) {
        let rec = raw::decode(payload)?;
        let mut events = Vec::with_capacity(rec.batch.len());
        let rejected = raw::normalize(&rec, &mut events);
        stats.raw_rejected.fetch_add(rejected, Ordering::Relaxed);
        Ok(events)
    } else {
        decode_batch(payload).map_err(|e| e.to_string())
    }
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// The ingest directory inside a data directory.
pub fn ingest_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ingest")
}

/// The WAL position a start of the ingest directory `dir` replays from:
/// the lowest of the archive's and every consumer's checkpoint. Reads
/// only.
pub fn replay_point(dir: &Path) -> Result<u64, IngestError> {
    let archive = archive::Archive::open_read_only(&dir.join("archive"));
    let mut from = archive.checkpoint()?;
    let consumers = dir.join("consumers");
    if consumers.is_dir() {
        for entry in std::fs::read_dir(&consumers)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "checkpoint") {
                let cp = ConsumerCheckpoint::open(&consumers, &consumer_name(&path), 0)?;
                from = from.min(cp.position);
            }
        }
    }
    Ok(from)
}

/// Takes the ingest directory's exclusive lock (held while the returned
/// file lives), as a running server holds it: for maintenance such as
/// `mimamori wal salvage`.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File, IngestError> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))?;
    if lock.try_lock().is_err() {
        return Err(IngestError::Locked(dir.display().to_string()));
    }
    Ok(lock)
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
        // A clean stop removes every WAL segment the archive covers (one
        // just begun, holding only its header, may stay).
        let left = || {
            let segs = wal::segments(&dir.path().join("wal")).unwrap();
            let bytes: u64 = segs
                .iter()
                .map(|(_, p)| std::fs::metadata(p).unwrap().len())
                .sum();
            (segs.len(), bytes)
        };
        let (n, bytes) = left();
        assert!(
            n <= 1 && bytes <= 36,
            "WAL left after a clean stop: {n} segments, {bytes} bytes"
        );
        let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
        assert!(ingest.wal_damage().is_empty());
        drop(ingest);
        threads.join();
        let (n, bytes) = left();
        assert!(
            n <= 1 && bytes <= 36,
            "WAL left: {n} segments, {bytes} bytes"
        );
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
            for half in [&events[..25], &events[25..]] {
                wal.append(archive::EventText::encode(half).as_bytes())
                    .unwrap();
            }
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

    /// Records the ids it is handed.
    struct Recorder {
        name: &'static str,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl Consumer for Recorder {
        fn name(&self) -> &str {
            self.name
        }
        fn consume(&mut self, events: &[Event]) {
            let mut seen = self.seen.lock().unwrap();
            seen.extend(events.iter().map(|e| e.id.clone()));
        }
    }

    #[tokio::test]
    async fn consumers_get_every_acked_event_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(vec![]));
        let mut acked = vec![];
        // A consumer that exists from the start sees everything, once per
        // clean run.
        for round in 0..3 {
            let recorder = Recorder {
                name: "detect",
                seen: seen.clone(),
            };
            let (ingest, threads) =
                Ingest::start_with(cfg(dir.path()), vec![Box::new(recorder)]).unwrap();
            for i in 0..10 {
                let ack = ingest
                    .submit("org-a", vec![body(&format!("c{round}-{i}.example")); 3])
                    .await
                    .unwrap();
                acked.extend(ack.ids);
            }
            drop(ingest);
            threads.join();
        }
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        acked.sort();
        assert_eq!(got, acked);
        assert!(dir.path().join("consumers/detect.checkpoint").exists());

        // Events in the WAL that a consumer has not checkpointed (the
        // process died first) are replayed to it on start, even when the
        // archive already holds them.
        let before =
            std::fs::read_to_string(dir.path().join("consumers/detect.checkpoint")).unwrap();
        let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
        let late = ingest
            .submit("org-a", vec![body("late.example"); 4])
            .await
            .unwrap();
        drop(ingest);
        threads.join();
        // The archive is past `late`, the consumer is not; its WAL is kept.
        let seen2 = Arc::new(std::sync::Mutex::new(vec![]));
        let (ingest, threads) = Ingest::start_with(
            cfg(dir.path()),
            vec![Box::new(Recorder {
                name: "detect",
                seen: seen2.clone(),
            })],
        )
        .unwrap();
        drop(ingest);
        threads.join();
        let mut replayed = seen2.lock().unwrap().clone();
        replayed.sort();
        let mut want = late.ids.clone();
        want.sort();
        assert_eq!(replayed, want, "checkpoint was {before}");
        // The archive did not store the replayed events a second time.
        let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
        assert_eq!(archive.read_events(None).unwrap().len(), acked.len() + 4);
    }

    fn syslog_batch(prefix: &str, n: usize) -> RawBatch {
        let mut b = RawBatch::new(mimamori_parse::Format::Syslog);
        for i in 0..n {
            b.push(format!("<13>1 2026-11-25T10:00:00Z h app - - - {prefix}-{i}").as_bytes());
        }
        b
    }

    fn messages(events: &[Event]) -> Vec<String> {
        let mut m: Vec<String> = events
            .iter()
            .map(|e| e.body.fields.message.clone().unwrap_or_default())
            .collect();
        m.sort();
        m
    }

    #[tokio::test]
    async fn raw_batches_are_archived_and_consumed_once_with_stable_ids() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(vec![]));
        let recorder = Recorder {
            name: "detect",
            seen: seen.clone(),
        };
        let (ingest, threads) =
            Ingest::start_with(cfg(dir.path()), vec![Box::new(recorder)]).unwrap();
        let mut pending = vec![];
        for round in 0..5 {
            let mut batch = syslog_batch(&format!("r{round}"), 30);
            batch.push(b"not syslog at all");
            pending.push(ingest.queue_raw("org-s", batch).await.unwrap());
            // Parsed events and raw batches share the WAL.
            ingest
                .submit("org-s", vec![body(&format!("p{round}.example"))])
                .await
                .unwrap();
        }
        for p in pending {
            let ack = p.durable().await.unwrap();
            assert!(ack.ids.is_empty(), "raw events get their ids after the WAL");
        }
        drop(ingest);
        threads.join();
        let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
        let events = archive.read_events(None).unwrap();
        assert_eq!(events.len(), 5 * 30 + 5);
        let raw: Vec<&Event> = events
            .iter()
            .filter(|e| e.body.fields.message.is_some())
            .collect();
        assert_eq!(raw.len(), 5 * 30);
        assert!(raw.iter().all(|e| e.org_id == "org-s"));
        let mut ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), events.len(), "ids are distinct");
        // The consumer got exactly what the archive holds, ids included.
        let mut consumed = seen.lock().unwrap().clone();
        consumed.sort();
        assert_eq!(consumed, ids);
    }

    #[tokio::test]
    async fn a_raw_record_without_archive_is_replayed_once_with_the_same_ids() {
        let dir = tempfile::tempdir().unwrap();
        // A raw record durable in the WAL, as if the process died right
        // after the fsync.
        let batch = syslog_batch("lost", 40);
        let base = uuid::Uuid::now_v7().as_u128();
        {
            let mut wal = wal::Wal::open(&dir.path().join("wal"), 1 << 20, 0, |_, _| {}).unwrap();
            let mut head = vec![];
            raw::encode_header(&batch, "org-r", 7, base, &mut head);
            wal.append_parts(&[&head, batch.body()], batch.len() as u32)
                .unwrap();
            wal.sync().unwrap();
        }
        let mut first = None;
        for _ in 0..3 {
            let (ingest, threads) = Ingest::start(cfg(dir.path())).unwrap();
            drop(ingest);
            threads.join();
            let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
            let mut events = archive.read_events(None).unwrap();
            events.sort_by(|a, b| a.id.cmp(&b.id));
            assert_eq!(events.len(), 40);
            assert!(events
                .iter()
                .all(|e| e.org_id == "org-r" && e.received == 7));
            let want: Vec<String> = (0..40).map(|i| format!("lost-{i}")).collect();
            let mut want = want;
            want.sort();
            assert_eq!(messages(&events), want);
            match &first {
                None => first = Some(events),
                Some(f) => assert_eq!(f, &events, "a second start changed the archive"),
            }
        }
    }

    #[tokio::test]
    async fn the_raw_queue_is_bounded_in_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, threads) = Ingest::start(IngestConfig {
            queue_bytes: 4096,
            ..cfg(dir.path())
        })
        .unwrap();
        // One event, but more bytes than the whole queue: never fits.
        let mut big = RawBatch::new(mimamori_parse::Format::Syslog);
        big.push(&[b'x'; 5000]);
        assert!(matches!(
            ingest.try_queue_raw("o", big.clone()).err(),
            Some(IngestError::BatchTooLarge(5004, 4096))
        ));
        assert!(matches!(
            ingest.queue_raw("o", big).await.err(),
            Some(IngestError::BatchTooLarge(5004, 4096))
        ));
        // Few events, many bytes: the byte bound refuses where the event
        // bound (200,000) would not.
        let mut refused = 0;
        let mut pending = vec![];
        for i in 0..500 {
            match ingest.try_queue_raw("o", syslog_batch(&format!("b{i}"), 20)) {
                Ok(p) => pending.push(p),
                Err(IngestError::Overloaded { .. }) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        let accepted = pending.len();
        for p in pending {
            p.durable().await.unwrap();
        }
        assert!(refused > 0, "a 4 KiB queue took 500 batches of ~1 KiB");
        // A waiting submitter is let in once there is room again.
        ingest
            .queue_raw("o", syslog_batch("late", 20))
            .await
            .unwrap()
            .durable()
            .await
            .unwrap();
        drop(ingest);
        threads.join();
        let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
        assert_eq!(
            archive.read_events(None).unwrap().len(),
            (accepted + 1) * 20
        );
    }

    /// A consumer that blocks in its first `consume` until told to go on.
    struct Blocked(Option<std::sync::mpsc::Receiver<()>>);

    impl Consumer for Blocked {
        fn name(&self) -> &str {
            "slow"
        }
        fn consume(&mut self, _: &[Event]) {
            if let Some(go) = self.0.take() {
                let _ = go.recv();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_past_the_wal_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (go, wait) = std::sync::mpsc::channel();
        let (ingest, threads) = Ingest::start_with(
            IngestConfig {
                pipeline_events: 10,
                ..cfg(dir.path())
            },
            vec![Box::new(Blocked(Some(wait)))],
        )
        .unwrap();
        // The consumer holds the first batch and has the second waiting:
        // 10 events, the limit. The third is acknowledged, then the WAL
        // thread waits to hand it over, so the fourth is not (the hand-off
        // channels alone would take 16 batches).
        let mut acks = vec![];
        for i in 0..4 {
            let f = ingest
                .try_submit("o", vec![body(&format!("b{i}.example")); 5])
                .unwrap();
            acks.push(tokio::spawn(f));
        }
        let done = || acks.iter().filter(|a| a.is_finished()).count();
        let deadline = Instant::now() + Duration::from_secs(20);
        while done() < 3 {
            assert!(Instant::now() < deadline, "only {} acknowledged", done());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Give the WAL thread every chance to go further than it may.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(done(), 3, "acknowledged while the consumer held the limit");
        go.send(()).unwrap();
        for a in acks {
            a.await.unwrap().unwrap();
        }
        drop(ingest);
        threads.join();
        let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
        assert_eq!(archive.read_events(None).unwrap().len(), 20);
    }

    #[test]
    fn retention_counts_from_the_receive_time_per_org() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _) = Archive::recover(&dir.path().join("archive")).unwrap();
        let day = 86_400_000i64;
        let today = 1_764_115_200_000; // 2025-11-26T00:00:00Z
        let ev = |org: &str, time: i64, received: i64, n: usize| Event {
            id: format!("{org}-{n}"),
            org_id: org.into(),
            received,
            body: EventBody {
                time: Some(time),
                ..body("r.example")
            },
        };
        let events = vec![
            ev("org-a", today, today, 0),
            ev("org-a", today - day, today - day, 1),
            // Received five days ago: expired for org-a (two days).
            ev("org-a", today - 5 * day, today - 5 * day, 2),
            ev("org-b", today - 5 * day, today - 5 * day, 3),
            // Six years old, but received today: kept.
            ev("org-a", today - 2200 * day, today, 4),
        ];
        archive.flush(&events, 0, 10).unwrap();
        let report = archive
            .apply_retention(today + 3_600_000, |org| (org == "org-a").then_some(2 * day))
            .unwrap();
        assert_eq!(
            report.removed,
            vec![("org-a".to_string(), "2025-11-21".to_string())]
        );
        assert_eq!(report.files, 1);
        assert!(report.bytes > 0);
        let mut left: Vec<String> = archive
            .read_events(None)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        left.sort();
        assert_eq!(left, vec!["org-a-0", "org-a-1", "org-a-4", "org-b-3"]);
        // The emptied partition directory is gone too.
        assert!(!dir
            .path()
            .join("archive/org=org-a/date=2025-11-21")
            .exists());
    }

    #[test]
    fn consumer_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let bad = Recorder {
            name: "../x",
            seen: Default::default(),
        };
        let err = Ingest::start_with(cfg(dir.path()), vec![Box::new(bad)])
            .err()
            .unwrap();
        assert!(err.to_string().contains("consumer name"), "{err}");
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
