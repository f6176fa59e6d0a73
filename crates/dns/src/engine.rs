//! Resolution with policy: the fast path (synchronous, allocation-free on a
//! block or a cache hit) and the full path (async, hickory-proto for the
//! messages it has to build, the upstream for misses).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record};

use crate::cache::{self, Cache, Entry};
use crate::log::{BlockedBy, QueryLog, QueryLogEntry, Transport};
use crate::nsinfo::NsServer;
use crate::policy::{Action, Hit, LocalCname, LocalData, NsHit, Policy, PolicyHandle, Trigger};
use crate::upstream::Upstream;
use crate::wire::{self, Question, Synth, WireError};

/// Tunables of resolution.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Cache capacity in answers.
    pub cache_entries: usize,
    /// Upper bound on any cached TTL.
    pub max_ttl: u32,
    /// Upper bound on a negative answer's cache time.
    pub max_negative_ttl: u32,
    /// How long after expiry an answer may be served when every upstream
    /// fails (RFC 8767 suggests 1–3 days); zero disables serve-stale.
    pub serve_stale_for: Duration,
    /// TTL of a stale answer (RFC 8767 §4: 30 s).
    pub stale_ttl: u32,
    /// TTL of synthesized block answers.
    pub block_ttl: u32,
    /// Per-client UDP rate limit; `None` disables it.
    pub rate_limit: Option<RateLimit>,
    /// Cache misses being resolved at once; past this, a miss is answered
    /// SERVFAIL at once instead of queueing without bound.
    pub max_inflight: usize,
    /// Put the RPZ zone's SOA in the additional section of local-data
    /// answers of client-IP triggers and of every NSDNAME/NSIP rewrite, as
    /// Unbound does with `minimal-responses: no` (it tells a client which
    /// policy zone answered). Off by default: minimal answers.
    pub rpz_soa_in_additional: bool,
    /// Refreshing popular answers before they expire; `None` disables it.
    pub prefetch: Option<Prefetch>,
}

/// Prefetch (as Unbound's `prefetch: yes`): a cached answer asked for
/// `min_hits` times in the last `window_percent` of its TTL is refreshed
/// from the upstream in the background, so popular names never expire
/// into a miss. Bounded: at most `max_inflight` refreshes run at once and
/// at most `queue` wait; past that a refresh is skipped (counted) and the
/// name is simply resolved when it expires.
#[derive(Debug, Clone, Copy)]
pub struct Prefetch {
    pub min_hits: u32,
    pub window_percent: u32,
    pub max_inflight: usize,
    pub queue: usize,
}

impl Default for Prefetch {
    fn default() -> Self {
        Self {
            min_hits: 2,
            window_percent: 10,
            max_inflight: 32,
            queue: 1024,
        }
    }
}

/// A per-client token bucket for UDP queries: `qps` sustained, `burst` at
/// once. Over the limit a query is dropped, except every `slip`-th one,
/// which gets an empty TC=1 answer so a real client can retry over TCP
/// (the BIND RRL "slip"); `slip` 0 drops all.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub qps: u32,
    pub burst: u32,
    pub slip: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            cache_entries: 200_000,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            serve_stale_for: Duration::from_secs(86_400),
            stale_ttl: 30,
            block_ttl: 300,
            rate_limit: None,
            max_inflight: 10_000,
            rpz_soa_in_additional: false,
            prefetch: Some(Prefetch::default()),
        }
    }
}

/// Counters, read with [`Engine::stats`].
#[derive(Debug, Default)]
pub struct Stats {
    pub queries: AtomicU64,
    pub blocked: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub upstream_failures: AtomicU64,
    pub stale_served: AtomicU64,
    pub servfail: AtomicU64,
    pub dropped: AtomicU64,
    pub malformed: AtomicU64,
    pub rate_limited: AtomicU64,
    /// NS lookups made for NSDNAME/NSIP triggers (cache misses of the NS
    /// cache), and those that failed (the name is then judged without).
    pub ns_lookups: AtomicU64,
    pub ns_lookup_failures: AtomicU64,
    pub prefetches: AtomicU64,
    pub prefetch_skipped: AtomicU64,
    pub block_pages: AtomicU64,
    pub block_pages_unblocked: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub queries: u64,
    pub blocked: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub upstream_failures: u64,
    pub stale_served: u64,
    pub servfail: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub rate_limited: u64,
    pub log_dropped: u64,
    pub ns_lookups: u64,
    pub ns_lookup_failures: u64,
    /// Answers refreshed before expiry (upstream queries sent for it).
    pub prefetches: u64,
    /// Prefetches not done because the queue was full (or not running).
    pub prefetch_skipped: u64,
    /// Block pages served for a name blocked for the client.
    pub block_pages: u64,
    /// Block page requests for a name not blocked for the client.
    pub block_pages_unblocked: u64,
}

/// What the fast path did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fast {
    /// The answer is in the output buffer.
    Reply,
    /// Send nothing (RPZ DROP, or a packet not worth answering).
    Drop,
    /// Needs the full path ([`Engine::resolve`]).
    Defer,
}

/// What a cached answer must pass before the fast path serves it.
#[derive(Clone, Copy)]
enum CacheCheck {
    /// Found clear under this memo (see [`Policy::verdict_memo`]) before.
    KnownClear(u64),
    /// A PASSTHRU exempts the name: no check.
    Exempt,
    /// Check the CNAME targets and addresses; remember a clear verdict
    /// under `memo`.
    Full { memo: Option<u64> },
}

/// A cache hit written into the answer buffer.
struct CachedHit {
    rcode: u8,
    summary: Option<Arc<str>>,
    prefetch: bool,
}

/// Per-thread scratch space of the fast path.
#[derive(Default)]
pub struct Scratch {
    key: Vec<u8>,
    /// Query-log records held until [`Engine::flush_log`]; `None`: each
    /// record is sent at once.
    log: Option<Vec<QueryLogEntry>>,
}

impl Scratch {
    /// Scratch space whose query-log records wait for
    /// [`Engine::flush_log`] (the UDP loop's, once per batch).
    pub fn batching_log() -> Self {
        Scratch {
            key: Vec::new(),
            log: Some(Vec::with_capacity(64)),
        }
    }
}

/// The result of applying a query-time hit without resolution.
enum Simple {
    Done(Fast),
    /// Resolve normally and skip later policy (PASSTHRU, TCP-only over TCP).
    ResolveExempt,
    /// Local data the fast path cannot write (CNAME, TXT, ...).
    Complex,
}

pub(crate) fn action_name(a: &Action) -> &'static str {
    match a {
        Action::NxDomain => "nxdomain",
        Action::NoData => "nodata",
        Action::Passthru => "passthru",
        Action::Drop => "drop",
        Action::TcpOnly => "tcp-only",
        Action::Local(_) => "local-data",
    }
}

/// The resolver core shared by every listener.
pub struct Engine {
    policy: PolicyHandle,
    cache: Cache,
    upstream: Arc<dyn Upstream>,
    cfg: EngineConfig,
    pub(crate) stats: Stats,
    log: Option<QueryLog>,
    limiter: Option<Limiter>,
    inflight: std::sync::atomic::AtomicUsize,
    /// Zone cuts found for NSDNAME/NSIP triggers.
    pub(crate) ns_cache: crate::nsinfo::NsCache,
    /// Who hears DNS NOTIFY messages (RFC 1996), see [`Engine::on_notify`].
    notify: std::sync::RwLock<Option<Arc<NotifyHandler>>>,
    /// Cache keys to refresh; drained by [`Engine::run_prefetch`].
    prefetch_tx: tokio::sync::mpsc::Sender<cache::Key>,
    prefetch_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<cache::Key>>>,
}

/// Called with the zone and the sender of a NOTIFY; `true` if the zone is
/// one we take transfers of from that sender.
pub type NotifyHandler = dyn Fn(&Name, IpAddr) -> bool + Send + Sync;

/// Per client: tokens, last refill, queries refused so far.
type BucketShard = std::sync::Mutex<std::collections::HashMap<IpAddr, (f32, Instant, u32)>>;

/// Token buckets per client address, in shards; a shard that grows past
/// its bound forgets everyone (a bound on memory under spoofed floods,
/// at worst a short amnesty).
struct Limiter {
    rl: RateLimit,
    shards: Box<[BucketShard]>,
    hasher: foldhash::fast::RandomState,
}

impl Limiter {
    const SHARD_MAX: usize = 16_384;

    fn new(rl: RateLimit) -> Self {
        Self {
            rl,
            shards: (0..16).map(|_| Default::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// `Ok(())` to answer, `Err(true)` to answer TC=1, `Err(false)` to drop.
    fn check(&self, ip: IpAddr, now: Instant) -> Result<(), bool> {
        use std::hash::BuildHasher;
        let shard = &self.shards[(self.hasher.hash_one(ip) as usize) % self.shards.len()];
        let mut m = shard.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= Self::SHARD_MAX && !m.contains_key(&ip) {
            m.clear();
        }
        let burst = self.rl.burst.max(1) as f32;
        let b = m.entry(ip).or_insert((burst, now, 0));
        let dt = now.saturating_duration_since(b.1).as_secs_f32();
        b.0 = (b.0 + dt * self.rl.qps as f32).min(burst);
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            return Ok(());
        }
        b.2 = b.2.wrapping_add(1);
        Err(self.rl.slip > 0 && b.2.is_multiple_of(self.rl.slip))
    }
}

/// Holds one in-flight miss; see [`Engine::begin_miss`].
pub struct InflightGuard<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to one name while resolving with policy (slow path).
struct Answer {
    rcode: u8,
    records: Vec<Record>,
    /// The unmodified cached answer, when nothing was rewritten: it is sent
    /// as stored (keeps authority/additional and compression).
    entry: Option<Arc<Entry>>,
    blocked: Option<BlockedBy>,
    ede: Option<u16>,
    drop: bool,
    tc: bool,
    stale: bool,
    /// AA on the answer: set for query-time rewrites, not for response-IP
    /// ones (what Unbound does, and its replay tests check).
    aa: bool,
    /// Additional-section records of a rewritten answer (the policy
    /// zone's SOA, see `EngineConfig::rpz_soa_in_additional`).
    additional: Vec<Record>,
    /// RA=0: a policy NXDOMAIN of a zone with `signal_nxdomain_ra`.
    no_ra: bool,
}

impl Answer {
    fn rewritten(rcode: u8, records: Vec<Record>, hit: &Hit<'_>, checked: &[u8]) -> Answer {
        Answer {
            rcode,
            records,
            entry: None,
            blocked: Some(BlockedBy {
                zone: hit.zone.name().clone(),
                rule: hit.rule(checked),
                action: action_name(hit.action),
            }),
            ede: Some(hit.zone.ede()),
            drop: false,
            tc: false,
            stale: false,
            aa: !matches!(hit.trigger, Trigger::ResponseIp(_)),
            additional: vec![],
            no_ra: rcode == wire::RCODE_NXDOMAIN && hit.zone.signals_nxdomain_ra(),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Failure {
    Upstream,
}

pub(crate) fn wire_to_name(w: &[u8]) -> Option<Name> {
    let s = wire::name_to_string(w);
    if s == "." {
        return Some(Name::root());
    }
    Name::from_ascii(s + ".").ok()
}

pub(crate) fn name_to_wire(n: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for l in n.iter() {
        out.push(l.len() as u8);
        out.extend(l.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

fn local_records(owner: &Name, ld: &LocalData, qtype: u16) -> Vec<Record> {
    let mut v = Vec::new();
    let any = qtype == 255;
    if qtype == wire::TYPE_A || any {
        v.extend(
            ld.a.iter()
                .map(|ip| Record::from_rdata(owner.clone(), ld.ttl, RData::A(A(*ip)))),
        );
    }
    if qtype == wire::TYPE_AAAA || any {
        v.extend(
            ld.aaaa
                .iter()
                .map(|ip| Record::from_rdata(owner.clone(), ld.ttl, RData::AAAA(AAAA(*ip)))),
        );
    }
    v.extend(
        ld.other
            .iter()
            .filter(|r| any || u16::from(r.record_type()) == qtype)
            .map(|r| Record::from_rdata(owner.clone(), ld.ttl, r.clone())),
    );
    v
}

fn cname_target(owner: &Name, c: &LocalCname) -> Option<Name> {
    match c {
        LocalCname::Fixed(n) => Some(n.clone()),
        LocalCname::Wildcard(suffix) => {
            let mut n = owner.clone();
            n.set_fqdn(false);
            n.append_name(suffix).ok()
        }
    }
}

impl Engine {
    pub fn new(
        policy: PolicyHandle,
        upstream: Arc<dyn Upstream>,
        cfg: EngineConfig,
        log: Option<QueryLog>,
    ) -> Self {
        let (prefetch_tx, prefetch_rx) =
            tokio::sync::mpsc::channel(cfg.prefetch.map_or(1, |p| p.queue.max(1)));
        Self {
            prefetch_tx,
            prefetch_rx: std::sync::Mutex::new(Some(prefetch_rx)),
            policy,
            cache: Cache::new(cfg.cache_entries, cfg.serve_stale_for),
            upstream,
            limiter: cfg.rate_limit.map(Limiter::new),
            cfg,
            stats: Stats::default(),
            log,
            inflight: std::sync::atomic::AtomicUsize::new(0),
            ns_cache: crate::nsinfo::NsCache::new(65_536),
            notify: std::sync::RwLock::new(None),
        }
    }

    pub fn policy(&self) -> &PolicyHandle {
        &self.policy
    }

    /// Routes DNS NOTIFY messages to `handler` (the secondary RPZ zones);
    /// without one, NOTIFY is answered NOTIMP like any other opcode.
    pub fn on_notify(&self, handler: Arc<NotifyHandler>) {
        *self.notify.write().unwrap_or_else(|e| e.into_inner()) = Some(handler);
    }

    /// The answer to a NOTIFY, if `pkt` is one and a handler is set:
    /// NOERROR when the handler takes it, REFUSED otherwise.
    fn answer_notify(&self, pkt: &[u8], client: SocketAddr) -> Option<Vec<u8>> {
        let handler = self
            .notify
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let req = Message::from_vec(pkt).ok()?;
        if req.metadata.op_code != OpCode::Notify || req.metadata.message_type != MessageType::Query
        {
            return None;
        }
        let q = req.queries.first()?.clone();
        let taken = handler(q.name(), client.ip());
        tracing::info!(zone = %q.name(), from = %client.ip(), taken, "DNS NOTIFY");
        let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Notify);
        m.metadata.authoritative = taken;
        m.metadata.response_code = if taken {
            ResponseCode::NoError
        } else {
            ResponseCode::Refused
        };
        m.add_query(q);
        m.to_vec().ok()
    }

    /// Claims a slot for resolving a miss; `None` when `max_inflight`
    /// misses are already being resolved.
    pub fn begin_miss(&self) -> Option<InflightGuard<'_>> {
        let n = self.inflight.fetch_add(1, Ordering::Relaxed);
        let guard = InflightGuard(&self.inflight);
        (n < self.cfg.max_inflight).then_some(guard)
    }

    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            queries: g(&s.queries),
            blocked: g(&s.blocked),
            cache_hits: g(&s.cache_hits),
            cache_misses: g(&s.cache_misses),
            upstream_failures: g(&s.upstream_failures),
            stale_served: g(&s.stale_served),
            servfail: g(&s.servfail),
            dropped: g(&s.dropped),
            malformed: g(&s.malformed),
            rate_limited: g(&s.rate_limited),
            log_dropped: self.log.as_ref().map_or(0, QueryLog::dropped),
            ns_lookups: g(&s.ns_lookups),
            ns_lookup_failures: g(&s.ns_lookup_failures),
            prefetches: g(&s.prefetches),
            prefetch_skipped: g(&s.prefetch_skipped),
            block_pages: g(&s.block_pages),
            block_pages_unblocked: g(&s.block_pages_unblocked),
        }
    }

    #[allow(clippy::too_many_arguments)]
    /// Sends the query-log records `scratch` holds.
    pub fn flush_log(&self, scratch: &mut Scratch) {
        if let (Some(log), Some(batch)) = (&self.log, scratch.log.as_mut()) {
            log.log_batch(batch);
        }
    }

    /// Counts and logs a query-time block answered without resolution
    /// (`f`: [`Fast::Reply`] with the answer in `out`, or [`Fast::Drop`]).
    #[allow(clippy::too_many_arguments)]
    fn log_block(
        &self,
        batch: Option<&mut Vec<QueryLogEntry>>,
        hit: &Hit<'_>,
        f: Fast,
        out: &[u8],
        start: Instant,
        client: SocketAddr,
        org_name: Option<&Arc<str>>,
        q: &Question,
        transport: Transport,
    ) {
        self.stats.blocked.fetch_add(1, Ordering::Relaxed);
        if f == Fast::Drop {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let rcode = (f == Fast::Reply).then(|| out.get(3).map_or(0, |b| b & 0xf));
        let blocked = BlockedBy {
            zone: hit.zone.name().clone(),
            rule: hit.rule(q.name()),
            action: action_name(hit.action),
        };
        let answer = "".into();
        let (cache_hit, stale) = (false, false);
        self.log(
            batch,
            start,
            client,
            org_name,
            q,
            rcode,
            answer,
            Some(blocked),
            transport,
            cache_hit,
            stale,
        );
    }

    /// Logs a query: into `batch` when given, else sent at once.
    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        batch: Option<&mut Vec<QueryLogEntry>>,
        start: Instant,
        client: SocketAddr,
        org: Option<&Arc<str>>,
        q: &Question,
        rcode: Option<u8>,
        answer: Arc<str>,
        blocked_by: Option<BlockedBy>,
        transport: Transport,
        cache_hit: bool,
        stale: bool,
    ) {
        if let Some(log) = &self.log {
            let entry = QueryLogEntry {
                time: SystemTime::now(),
                client,
                org: org.cloned(),
                name: crate::log::LogName::from_wire(q.name()),
                qtype: q.qtype,
                rcode,
                answer,
                latency: start.elapsed(),
                blocked_by,
                transport,
                cache_hit,
                stale,
            };
            match batch {
                Some(b) => b.push(entry),
                None => log.log(entry),
            }
        }
    }

    /// Applies a query-time hit that needs no resolution, writing into `out`.
    fn simple(
        &self,
        hit: &Hit<'_>,
        pkt: &[u8],
        q: &Question,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Simple {
        let ede = Some((hit.zone.ede(), &**hit.zone.name()));
        let ttl = self.cfg.block_ttl;
        let empty = |rcode, tc| Synth::Empty {
            rcode,
            aa: true,
            tc,
        };
        match hit.action {
            Action::Passthru => Simple::ResolveExempt,
            Action::NxDomain => {
                wire::synth(out, pkt, q, empty(wire::RCODE_NXDOMAIN, false), ttl, ede);
                if hit.zone.signals_nxdomain_ra() {
                    clear_ra(out);
                }
                Simple::Done(Fast::Reply)
            }
            Action::NoData => {
                wire::synth(out, pkt, q, empty(wire::RCODE_NOERROR, false), ttl, ede);
                Simple::Done(Fast::Reply)
            }
            Action::Drop => Simple::Done(Fast::Drop),
            Action::TcpOnly if transport == Transport::Udp => {
                wire::synth(out, pkt, q, empty(wire::RCODE_NOERROR, true), ttl, None);
                Simple::Done(Fast::Reply)
            }
            Action::TcpOnly => Simple::ResolveExempt,
            Action::Local(ld) => {
                if ld.cname.is_some()
                    || (self.cfg.rpz_soa_in_additional
                        && matches!(hit.trigger, Trigger::ClientIp(_)))
                {
                    return Simple::Complex;
                }
                let ttl = ld.ttl;
                if q.qtype == wire::TYPE_A && !ld.a.is_empty() {
                    wire::synth(out, pkt, q, Synth::A(&ld.a), ttl, ede);
                } else if q.qtype == wire::TYPE_AAAA && !ld.aaaa.is_empty() {
                    wire::synth(out, pkt, q, Synth::Aaaa(&ld.aaaa), ttl, ede);
                } else if !ld.has_type(q.qtype) {
                    wire::synth(out, pkt, q, empty(wire::RCODE_NOERROR, false), ttl, ede);
                } else {
                    return Simple::Complex;
                }
                Simple::Done(Fast::Reply)
            }
        }
    }

    /// The synchronous path: answers blocks and fresh cache hits into `out`,
    /// or says the packet needs [`Engine::resolve`]. Counts and logs what it
    /// answers; a deferred packet is counted by `resolve`.
    #[inline]
    pub fn answer_fast(
        &self,
        pkt: &[u8],
        client: SocketAddr,
        transport: Transport,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Fast {
        self.answer_fast_for(pkt, client, None, transport, out, scratch)
    }

    /// [`Engine::answer_fast`] for a client that presented a DoH path token
    /// (its SHA-256, see [`crate::policy::token_digest`]), which selects
    /// its org when its address is in no org's network.
    pub fn answer_fast_for(
        &self,
        pkt: &[u8],
        client: SocketAddr,
        token: Option<&[u8; 32]>,
        transport: Transport,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Fast {
        let start = Instant::now();
        let Ok(q) = wire::parse_query(pkt) else {
            return Fast::Defer;
        };
        if let (Some(l), Transport::Udp) = (&self.limiter, transport) {
            if let Err(slip) = l.check(client.ip(), start) {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                if !slip {
                    return Fast::Drop;
                }
                let tc = Synth::Empty {
                    rcode: wire::RCODE_NOERROR,
                    aa: false,
                    tc: true,
                };
                wire::synth(out, pkt, &q, tc, 0, None);
                return Fast::Reply;
            }
        }
        if q.qclass != wire::CLASS_IN || q.edns.is_some_and(|e| e.version != 0) {
            return Fast::Defer;
        }
        let policy = self.policy.load();
        let Ok(org) = policy.select_org(client.ip(), token) else {
            // The full path refuses it.
            return Fast::Defer;
        };
        cache::key_into(&mut scratch.key, q.name(), q.qtype, q.qclass, q.dnssec_ok());
        let memo = policy.verdict_memo(org);
        // A cached answer already found clear for this org under this very
        // policy needs no policy check: the lookups in large name tables are
        // the costliest part of a hit.
        let known_clear = memo.and_then(|m| {
            let check = CacheCheck::KnownClear(m);
            self.answer_cached(&policy, org, &q, pkt, start, transport, check, out, scratch)
        });
        let hit = match known_clear {
            Some(hit) => hit,
            None => {
                let mut exempt = false;
                if let Some(hit) = policy.check_query(org, client.ip(), q.name()) {
                    match self.simple(&hit, pkt, &q, transport, out) {
                        Simple::Done(f) => {
                            self.stats.queries.fetch_add(1, Ordering::Relaxed);
                            let org_name = policy.org_name(org);
                            let batch = scratch.log.as_mut();
                            self.log_block(
                                batch, &hit, f, out, start, client, org_name, &q, transport,
                            );
                            return f;
                        }
                        Simple::ResolveExempt => exempt = true,
                        Simple::Complex => return Fast::Defer,
                    }
                }
                if !exempt && policy.has_ns_triggers() {
                    // NSDNAME/NSIP triggers need the name servers of the name's
                    // zones, found by lookups: the full path does them.
                    return Fast::Defer;
                }
                let check = if exempt {
                    CacheCheck::Exempt
                } else {
                    CacheCheck::Full { memo }
                };
                match self
                    .answer_cached(&policy, org, &q, pkt, start, transport, check, out, scratch)
                {
                    Some(hit) => hit,
                    None => return Fast::Defer,
                }
            }
        };
        self.log_hit(
            scratch.log.as_mut(),
            start,
            client,
            policy.org_name(org),
            &q,
            hit,
            transport,
        );
        Fast::Reply
    }

    /// Writes a fresh cached answer for `q` (its key in `scratch.key`) into
    /// `out` if the cache holds one that passes `check`, scheduling its
    /// prefetch when due.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn answer_cached(
        &self,
        policy: &Policy,
        org: Option<usize>,
        q: &Question,
        pkt: &[u8],
        now: Instant,
        transport: Transport,
        check: CacheCheck,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Option<CachedHit> {
        let limit = if transport == Transport::Udp {
            q.udp_limit()
        } else {
            65535
        };
        // Under the shard lock: no reference count traffic on the entry,
        // which both receive threads would otherwise bounce between cores.
        let hit = self.cache.with(&scratch.key, |entry| {
            if !entry.is_fresh(now) {
                return None;
            }
            match check {
                CacheCheck::KnownClear(memo) => {
                    if entry.clear_for.load(Ordering::Relaxed) != memo {
                        return None;
                    }
                }
                CacheCheck::Exempt => {}
                CacheCheck::Full { memo } => {
                    if entry
                        .cname_targets
                        .iter()
                        .any(|t| policy.check_name(org, t).is_some())
                        || policy.check_response_ips(org, &entry.addrs).is_some()
                    {
                        return None;
                    }
                    if let Some(memo) = memo {
                        entry.clear_for.store(memo, Ordering::Relaxed);
                    }
                }
            }
            entry.write_answer(out, pkt, q, now, None, limit);
            Some(CachedHit {
                rcode: entry.rcode,
                summary: self.log.is_some().then(|| entry.summary.clone()),
                prefetch: self.wants_prefetch(entry, now),
            })
        })??;
        if hit.prefetch {
            // The one allocation on this path, once per entry and TTL.
            if self.prefetch_tx.try_send(scratch.key.clone()).is_err() {
                self.stats.prefetch_skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(hit)
    }

    /// Counts and logs a cache hit the fast path answered.
    #[allow(clippy::too_many_arguments)]
    fn log_hit(
        &self,
        batch: Option<&mut Vec<QueryLogEntry>>,
        start: Instant,
        client: SocketAddr,
        org: Option<&Arc<str>>,
        q: &Question,
        hit: CachedHit,
        transport: Transport,
    ) {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
        self.log(
            batch,
            start,
            client,
            org,
            q,
            Some(hit.rcode),
            hit.summary.unwrap_or_default(),
            None,
            transport,
            true,
            false,
        );
    }

    /// Whether this hit on `entry` should schedule its refresh: it lands in
    /// the prefetch window and is the `min_hits`-th there, and no refresh
    /// was scheduled yet.
    #[inline]
    fn wants_prefetch(&self, entry: &Entry, now: Instant) -> bool {
        let Some(pf) = &self.cfg.prefetch else {
            return false;
        };
        let window = entry.fresh_secs.saturating_mul(pf.window_percent) / 100;
        if window == 0 || entry.fresh_secs.saturating_sub(entry.age(now)) > window {
            return false;
        }
        let hits = entry.window_hits.fetch_add(1, Ordering::Relaxed) + 1;
        hits >= pf.min_hits && !entry.prefetching.swap(true, Ordering::Relaxed)
    }

    /// Refreshes the cache keys the fast path schedules, at most
    /// `max_inflight` at once, until the engine is dropped. Started by
    /// [`crate::server::start`]; a second call returns at once.
    pub async fn run_prefetch(self: Arc<Self>) {
        let Some(mut rx) = self
            .prefetch_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.cfg.prefetch.map_or(1, |p| p.max_inflight.max(1)),
        ));
        let engine = Arc::downgrade(&self);
        drop(self);
        while let Some(key) = rx.recv().await {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let Some(engine) = engine.upgrade() else {
                return;
            };
            tokio::spawn(async move {
                let _permit = permit;
                engine.refresh(key).await;
            });
        }
    }

    /// Asks the upstream again for a cached key and replaces the entry.
    async fn refresh(&self, key: cache::Key) {
        if key.len() < 6 {
            return;
        }
        let (name, rest) = key.split_at(key.len() - 5);
        let qtype = u16::from_be_bytes([rest[0], rest[1]]);
        let dnssec_ok = rest[4] != 0;
        self.stats.prefetches.fetch_add(1, Ordering::Relaxed);
        let id = getrandom::u32().map(|v| v as u16).unwrap_or(0x5a5a);
        let req = upstream_query(id, name, qtype, dnssec_ok, false);
        match self.upstream.query(&req).await {
            Ok(resp) => {
                if let Some((entry, true)) =
                    Entry::from_response(&resp, self.cfg.max_ttl, self.cfg.max_negative_ttl)
                {
                    self.cache.insert(key, entry);
                }
            }
            Err(e) => {
                // The old entry stays, and expires into an ordinary miss.
                tracing::debug!(error = %e, "prefetch failed");
            }
        }
    }

    /// The full path: everything [`Engine::answer_fast`] does, plus
    /// resolution through the upstream, local-data CNAMEs, CNAME-chain and
    /// response-IP policy, serve-stale and error answers. `None` means send
    /// nothing.
    pub async fn resolve(
        &self,
        pkt: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        self.resolve_for(pkt, client, None, transport).await
    }

    /// [`Engine::resolve`] with a DoH path token (see
    /// [`Engine::answer_fast_for`]). A token the policy does not know (or
    /// no longer knows) is answered REFUSED without resolving anything.
    pub async fn resolve_for(
        &self,
        pkt: &[u8],
        client: SocketAddr,
        token: Option<&[u8; 32]>,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let start = Instant::now();
        let q = match wire::parse_query(pkt) {
            Ok(q) => q,
            Err(e) => {
                if matches!(e, WireError::Opcode) {
                    if let Some(reply) = self.answer_notify(pkt, client) {
                        return Some(reply);
                    }
                }
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                let rcode = match e {
                    WireError::Opcode => wire::RCODE_NOTIMP,
                    _ => wire::RCODE_FORMERR,
                };
                return wire::error_reply(pkt, rcode);
            }
        };
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(512);
        if q.qclass != wire::CLASS_IN {
            return wire::error_reply(pkt, wire::RCODE_REFUSED);
        }
        if let Some(e) = q.edns.filter(|e| e.version != 0) {
            // RFC 6891 §6.1.3: BADVERS, extended rcode 16 = high bits 1.
            let mut m = Message::new(q.id, MessageType::Response, OpCode::Query);
            let mut edns = Edns::new();
            edns.set_max_payload(wire::OUR_UDP_SIZE);
            edns.set_rcode_high(1);
            edns.set_dnssec_ok(e.dnssec_ok);
            m.set_edns(edns);
            return m.to_vec().ok();
        }
        let policy = self.policy.load_full();
        let Ok(org) = policy.select_org(client.ip(), token) else {
            return wire::error_reply(pkt, wire::RCODE_REFUSED);
        };
        let org_name = policy.org_name(org).cloned();
        let mut exempt = false;
        if let Some(hit) = policy.check_query(org, client.ip(), q.name()) {
            match self.simple(&hit, pkt, &q, transport, &mut out) {
                Simple::Done(f) => {
                    let org_name = org_name.as_ref();
                    self.log_block(None, &hit, f, &out, start, client, org_name, &q, transport);
                    return (f != Fast::Drop).then_some(out);
                }
                Simple::ResolveExempt => exempt = true,
                Simple::Complex => {}
            }
        }
        let Some(qname) = wire_to_name(q.name()) else {
            return wire::error_reply(pkt, wire::RCODE_FORMERR);
        };
        let result = self
            .answer_name(
                &policy,
                org,
                client.ip(),
                qname,
                q.name().to_vec(),
                &q,
                transport,
                0,
                !exempt,
                true,
            )
            .await;
        let ans = match result {
            Ok(a) => a,
            Err(Failure::Upstream) => {
                self.stats.servfail.fetch_add(1, Ordering::Relaxed);
                let reply = wire::error_reply(pkt, wire::RCODE_SERVFAIL);
                self.log(
                    None,
                    start,
                    client,
                    org_name.as_ref(),
                    &q,
                    Some(wire::RCODE_SERVFAIL),
                    "".into(),
                    None,
                    transport,
                    false,
                    false,
                );
                return reply;
            }
        };
        if ans.blocked.is_some() {
            self.stats.blocked.fetch_add(1, Ordering::Relaxed);
        }
        if ans.stale {
            self.stats.stale_served.fetch_add(1, Ordering::Relaxed);
        }
        let limit = if transport == Transport::Udp {
            q.udp_limit()
        } else {
            65535
        };
        let (rcode, summary) = if ans.drop {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            (None, Arc::from(""))
        } else if ans.tc {
            wire::synth(
                &mut out,
                pkt,
                &q,
                Synth::Empty {
                    rcode: 0,
                    aa: ans.aa,
                    tc: true,
                },
                0,
                None,
            );
            (Some(0), Arc::from(""))
        } else if let (Some(entry), None) = (&ans.entry, &ans.blocked) {
            let stale = ans.stale.then_some(self.cfg.stale_ttl);
            entry.write_answer(&mut out, pkt, &q, Instant::now(), stale, limit);
            (Some(entry.rcode), entry.summary.clone())
        } else {
            out = self.build(pkt, &q, &ans, limit)?;
            (Some(ans.rcode), summarize(&ans.records))
        };
        self.log(
            None,
            start,
            client,
            org_name.as_ref(),
            &q,
            rcode,
            summary,
            ans.blocked,
            transport,
            false,
            ans.stale,
        );
        if ans.drop {
            None
        } else {
            Some(out)
        }
    }

    /// Builds a rewritten answer with hickory.
    fn build(&self, pkt: &[u8], q: &Question, ans: &Answer, limit: usize) -> Option<Vec<u8>> {
        let req = Message::from_vec(pkt).ok()?;
        let mut m = Message::new(q.id, MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = q.rd();
        m.metadata.checking_disabled = q.cd();
        m.metadata.recursion_available = !ans.no_ra;
        m.metadata.authoritative = ans.aa;
        m.metadata.response_code = ResponseCode::from(0, ans.rcode);
        m.add_queries(req.queries);
        m.add_answers(ans.records.iter().cloned());
        m.add_additionals(ans.additional.iter().cloned());
        if let Some(e) = q.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(wire::OUR_UDP_SIZE);
            edns.set_dnssec_ok(e.dnssec_ok);
            if let (Some(code), Some(b)) = (ans.ede, &ans.blocked) {
                let mut data = code.to_be_bytes().to_vec();
                data.extend_from_slice(&b.zone.as_bytes()[..b.zone.len().min(100)]);
                edns.options_mut().insert(EdnsOption::Unknown(15, data));
            }
            m.set_edns(edns);
        }
        let v = m.to_vec().ok()?;
        if v.len() > limit {
            let mut out = Vec::new();
            wire::truncated(&mut out, pkt, q);
            return Some(out);
        }
        Some(v)
    }

    /// Resolves `name` with policy: local data, upstream (through the
    /// cache), CNAME-chain QNAME triggers and response-IP triggers.
    #[allow(clippy::too_many_arguments)]
    fn answer_name<'a>(
        &'a self,
        policy: &'a Policy,
        org: Option<usize>,
        client: IpAddr,
        name: Name,
        wname: Vec<u8>,
        q: &'a Question,
        transport: Transport,
        depth: u8,
        apply_policy: bool,
        first: bool,
    ) -> crate::upstream::BoxFuture<'a, Result<Answer, Failure>> {
        Box::pin(async move {
            let mut apply_policy = apply_policy;
            // The name servers of the name's zones, looked up only when some
            // zone has NSDNAME/NSIP triggers and no query-time trigger
            // decided (RPZ precedence: query-time triggers first, as in
            // Unbound; NS triggers need lookups).
            let mut servers: Vec<NsServer> = Vec::new();
            // An NS hit that a response-IP trigger of the same or an earlier
            // zone may still override (decided once the answer is in).
            let mut deferred_ns: Option<NsHit<'a>> = None;
            if apply_policy {
                let mut hit = if first {
                    policy.check_query(org, client, &wname)
                } else {
                    policy.check_name(org, &wname)
                };
                let mut ns_server = None;
                if hit.is_none() && policy.has_ns_triggers() {
                    servers = self.name_servers(&wname, policy.has_nsip_triggers()).await;
                    if let Some(h) = policy.check_ns(org, &servers) {
                        if policy.response_ip_zone_until(org, h.ordinal) {
                            deferred_ns = Some(h);
                        } else {
                            hit = Some(h.hit);
                            ns_server = Some(h.server);
                        }
                    }
                }
                if let Some(hit) = hit {
                    let checked = match ns_server.and_then(|i| servers.get(i)) {
                        Some(s) => &s.name[..],
                        None => &wname[..],
                    };
                    // Only a query-time trigger on the query name itself
                    // answers with AA whatever follows a local CNAME.
                    let chained = !first || ns_server.is_some();
                    let applied = self
                        .apply_hit(
                            policy, org, client, &name, checked, q, transport, depth, &hit, chained,
                        )
                        .await?;
                    match applied {
                        None => apply_policy = false,
                        Some(mut a) => {
                            self.decorate(&mut a, &hit, ns_server.is_some());
                            return Ok(a);
                        }
                    }
                }
            }
            let looked = self.lookup(&wname, q.qtype, q.dnssec_ok(), q.cd()).await;
            if let Some(h) = deferred_ns {
                let ip_first = match &looked {
                    Ok((e, _)) => policy
                        .check_response_ips_ranked(org, &e.addrs)
                        .is_some_and(|(o, _)| o <= h.ordinal),
                    // No answer: the NS trigger decides (better than SERVFAIL).
                    Err(_) => false,
                };
                if !ip_first {
                    let checked = servers.get(h.server).map_or(&wname[..], |s| &s.name[..]);
                    let applied = self
                        .apply_hit(
                            policy, org, client, &name, checked, q, transport, depth, &h.hit, true,
                        )
                        .await?;
                    match applied {
                        None => apply_policy = false,
                        Some(mut a) => {
                            self.decorate(&mut a, &h.hit, true);
                            return Ok(a);
                        }
                    }
                }
            }
            let (entry, stale) = looked?;
            let mut ans = Answer {
                rcode: entry.rcode,
                records: vec![],
                entry: Some(entry.clone()),
                blocked: None,
                ede: None,
                drop: false,
                tc: false,
                stale,
                aa: false,
                additional: vec![],
                no_ra: false,
            };
            if !apply_policy {
                return Ok(ans);
            }
            // The first CNAME target (in chain order) a QNAME trigger, or
            // when loaded an NSDNAME/NSIP trigger of its servers, matches.
            let mut trigger_target: Option<&[u8]> = None;
            for t in entry.cname_targets.iter() {
                let ns_hit = policy.has_ns_triggers() && {
                    let servers = self.name_servers(t, policy.has_nsip_triggers()).await;
                    policy.check_ns(org, &servers).is_some()
                };
                if ns_hit || policy.check_name(org, t).is_some() {
                    trigger_target = Some(t);
                    break;
                }
            }
            let chain_hit = trigger_target.is_some();
            let ip_hit = policy.check_response_ips(org, &entry.addrs);
            if !chain_hit && ip_hit.is_none() {
                return Ok(ans);
            }
            let msg = Message::from_vec(&entry.wire).map_err(|_| Failure::Upstream)?;
            if chain_hit {
                // Keep the chain up to the CNAME whose target triggers, then
                // apply policy to that target.
                let mut recs = Vec::new();
                for r in &msg.answers {
                    recs.push(r.clone());
                    if let RData::CNAME(CNAME(t)) = &r.data {
                        let tw = name_to_wire(t);
                        if trigger_target == Some(&tw[..]) && depth < 8 {
                            let sub = self
                                .answer_name(
                                    policy,
                                    org,
                                    client,
                                    t.clone(),
                                    tw,
                                    q,
                                    transport,
                                    depth + 1,
                                    true,
                                    false,
                                )
                                .await?;
                            if sub.drop || sub.tc {
                                return Ok(sub);
                            }
                            let mut out = Answer {
                                rcode: sub.rcode,
                                records: recs,
                                entry: None,
                                blocked: sub.blocked.clone(),
                                ede: sub.ede,
                                drop: false,
                                tc: false,
                                stale,
                                aa: sub.aa,
                                additional: vec![],
                                no_ra: sub.no_ra,
                            };
                            out.records.extend(sub_records(&sub)?);
                            return Ok(out);
                        }
                    }
                }
            }
            if let Some(hit) = ip_hit {
                let mut a = match hit.action {
                    Action::Passthru => return Ok(ans),
                    Action::NxDomain => {
                        Answer::rewritten(wire::RCODE_NXDOMAIN, vec![], &hit, &wname)
                    }
                    Action::NoData => Answer::rewritten(0, vec![], &hit, &wname),
                    Action::Drop => {
                        let mut a = Answer::rewritten(0, vec![], &hit, &wname);
                        a.drop = true;
                        a
                    }
                    Action::TcpOnly if transport != Transport::Udp => return Ok(ans),
                    Action::TcpOnly => {
                        let mut a = Answer::rewritten(0, vec![], &hit, &wname);
                        a.tc = true;
                        a
                    }
                    Action::Local(ld) => {
                        let mut recs = local_records(&name, ld, q.qtype);
                        if let Some(t) = ld.cname.as_ref().and_then(|c| cname_target(&name, c)) {
                            recs.insert(
                                0,
                                Record::from_rdata(name.clone(), ld.ttl, RData::CNAME(CNAME(t))),
                            );
                        }
                        Answer::rewritten(0, recs, &hit, &wname)
                    }
                };
                a.stale = stale;
                return Ok(a);
            }
            ans.records = msg.answers;
            ans.entry = None;
            Ok(ans)
        })
    }

    /// Applies a trigger's action to `name`: `Ok(None)` means resolve it
    /// normally with no further policy (PASSTHRU, TCP-only over TCP).
    /// `checked` is the name the trigger matched (for the log's rule).
    /// `chained`: the trigger is not a query-time one on the query name (an
    /// NS trigger, or a name reached by a CNAME); a local CNAME's answer is
    /// then authoritative only if what it leads to is (Unbound's AA rule,
    /// which its `rpz_cname_handle` scenario checks).
    #[allow(clippy::too_many_arguments)]
    async fn apply_hit(
        &self,
        policy: &Policy,
        org: Option<usize>,
        client: IpAddr,
        name: &Name,
        checked: &[u8],
        q: &Question,
        transport: Transport,
        depth: u8,
        hit: &Hit<'_>,
        chained: bool,
    ) -> Result<Option<Answer>, Failure> {
        Ok(Some(match hit.action {
            Action::Passthru => return Ok(None),
            Action::TcpOnly if transport != Transport::Udp => return Ok(None),
            Action::TcpOnly => {
                let mut a = Answer::rewritten(0, vec![], hit, checked);
                a.tc = true;
                a
            }
            Action::NxDomain => Answer::rewritten(wire::RCODE_NXDOMAIN, vec![], hit, checked),
            Action::NoData => Answer::rewritten(0, vec![], hit, checked),
            Action::Drop => {
                let mut a = Answer::rewritten(0, vec![], hit, checked);
                a.drop = true;
                a
            }
            Action::Local(ld) => {
                let Some(c) = &ld.cname else {
                    let recs = local_records(name, ld, q.qtype);
                    return Ok(Some(Answer::rewritten(0, recs, hit, checked)));
                };
                let Some(target) = cname_target(name, c) else {
                    return Ok(Some(Answer::rewritten(
                        wire::RCODE_SERVFAIL,
                        vec![],
                        hit,
                        checked,
                    )));
                };
                let mut recs = vec![Record::from_rdata(
                    name.clone(),
                    ld.ttl,
                    RData::CNAME(CNAME(target.clone())),
                )];
                let mut rcode = 0;
                let (mut sub_aa, mut sub_no_ra) = (true, false);
                if depth < 8 && q.qtype != wire::TYPE_CNAME {
                    let tw = name_to_wire(&target);
                    let sub = self
                        .answer_name(
                            policy,
                            org,
                            client,
                            target,
                            tw,
                            q,
                            transport,
                            depth + 1,
                            true,
                            false,
                        )
                        .await?;
                    if sub.drop || sub.tc {
                        return Ok(Some(sub));
                    }
                    rcode = sub.rcode;
                    (sub_aa, sub_no_ra) = (sub.aa, sub.no_ra);
                    recs.extend(sub_records(&sub)?);
                }
                let mut a = Answer::rewritten(rcode, recs, hit, checked);
                if chained {
                    a.aa = sub_aa;
                }
                a.no_ra |= sub_no_ra;
                a
            }
        }))
    }

    /// Unbound's finishing touches on a rewritten answer, which its replay
    /// tests check: an NS trigger's TC=1 answer is not authoritative; the
    /// policy zone's SOA goes in the additional section where
    /// `rpz_soa_in_additional` says.
    fn decorate(&self, a: &mut Answer, hit: &Hit<'_>, ns: bool) {
        if ns && a.tc {
            a.aa = false;
        }
        let local = matches!(hit.action, Action::Local(_));
        let soa = self.cfg.rpz_soa_in_additional
            && (ns || (local && matches!(hit.trigger, Trigger::ClientIp(_))));
        if soa && !a.drop && !a.tc {
            a.additional.extend(hit.zone.soa_record());
        }
    }

    /// A cached answer, or the upstream's (cached when cacheable); a stale
    /// one when the upstream fails. The bool says stale.
    pub(crate) async fn lookup(
        &self,
        wname: &[u8],
        qtype: u16,
        dnssec_ok: bool,
        cd: bool,
    ) -> Result<(Arc<Entry>, bool), Failure> {
        let mut key = Vec::with_capacity(wname.len() + 5);
        cache::key_into(&mut key, wname, qtype, wire::CLASS_IN, dnssec_ok);
        let cached = self.cache.get(&key);
        let now = Instant::now();
        if let Some(e) = cached.as_ref().filter(|e| e.is_fresh(now)) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((e.clone(), false));
        }
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        let id = getrandom::u32().map(|v| v as u16).unwrap_or(0x5a5a);
        let req = upstream_query(id, wname, qtype, dnssec_ok, cd);
        let fresh = match self.upstream.query(&req).await {
            Ok(resp) => {
                match Entry::from_response(&resp, self.cfg.max_ttl, self.cfg.max_negative_ttl) {
                    Some((entry, true)) => Ok(self.cache.insert(key, entry)),
                    // Valid but not cacheable (TTL 0): use it once.
                    Some((entry, false)) => Ok(Arc::new(entry)),
                    None => Err(()),
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "upstream query failed");
                Err(())
            }
        };
        match fresh {
            Ok(e) => Ok((e, false)),
            Err(()) => {
                self.stats.upstream_failures.fetch_add(1, Ordering::Relaxed);
                // RFC 8767: serve the expired answer while within the window.
                let window = self.cfg.serve_stale_for.as_secs().min(u64::from(u32::MAX)) as u32;
                match cached {
                    Some(e)
                        if window > 0
                            && e.age(Instant::now()) < e.fresh_secs.saturating_add(window) =>
                    {
                        Ok((e, true))
                    }
                    _ => Err(Failure::Upstream),
                }
            }
        }
    }
}

/// Clears RA in a wire-format answer's header.
fn clear_ra(out: &mut [u8]) {
    if let Some(b) = out.get_mut(3) {
        *b &= !0x80;
    }
}

fn sub_records(sub: &Answer) -> Result<Vec<Record>, Failure> {
    if !sub.records.is_empty() || sub.entry.is_none() {
        return Ok(sub.records.clone());
    }
    let Some(e) = &sub.entry else {
        return Ok(vec![]);
    };
    Message::from_vec(&e.wire)
        .map(|m| m.answers)
        .map_err(|_| Failure::Upstream)
}

fn summarize(records: &[Record]) -> Arc<str> {
    let mut s = String::new();
    for r in records.iter().take(8) {
        if !s.is_empty() {
            s.push_str(", ");
        }
        match &r.data {
            RData::A(a) => s.push_str(&format!("A {a}")),
            RData::AAAA(a) => s.push_str(&format!("AAAA {a}")),
            RData::CNAME(c) => {
                s.push_str(&format!("CNAME {}", c.0.to_ascii().trim_end_matches('.')))
            }
            other => s.push_str(&format!("{}", other.record_type())),
        }
    }
    s.into()
}

/// A recursive query for the upstream: RD, our payload size, DO as asked.
pub fn upstream_query(id: u16, wname: &[u8], qtype: u16, dnssec_ok: bool, cd: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(wname.len() + 32);
    v.extend_from_slice(&id.to_be_bytes());
    let flags: u16 = 0x0100 | if cd { 0x0010 } else { 0 };
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    v.extend_from_slice(wname);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&wire::CLASS_IN.to_be_bytes());
    v.push(0);
    v.extend_from_slice(&wire::TYPE_OPT.to_be_bytes());
    v.extend_from_slice(&wire::OUR_UDP_SIZE.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}
