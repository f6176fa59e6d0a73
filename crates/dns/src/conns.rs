//! Admission and time limits of the TCP and DoT connections: the defence
//! against slowloris (idle connections opened to exhaust the listener), as
//! Unbound and BIND do it.
//!
//! - **Per-client limit**: one client address (an IPv4 address, an IPv6
//!   /64) holds at most [`TcpLimits::max_per_client`] connections. A new
//!   one past it closes that client's own oldest idle connection, so one
//!   noisy host (or a NAT in front of many) only ever competes with itself.
//! - **Global limit with eviction**: at [`TcpLimits::max_connections`], a
//!   new connection closes an idle one instead of waiting in the accept
//!   backlog behind it: the oldest idle connection of the client holding
//!   the most, so a flood from addresses that each hold many cannot push
//!   out a client with one. Only when every connection is busy resolving
//!   is the new one refused (closed at once).
//! - **Short timeouts that shrink under pressure**: a connection must send
//!   its first query within [`TcpLimits::initial_timeout`] and each next
//!   one within [`TcpLimits::idle_timeout`] (RFC 7766 §6.2.3). Past half
//!   the global limit both shrink linearly with the free room, down to
//!   [`MIN_TIMEOUT`] when full, as Unbound shrinks `tcp-idle-timeout`.
//!
//! "Idle" means the peer's turn: waiting for (the rest of) a query, for
//! the TLS handshake, or for the peer to take an answer. A connection is
//! never closed while the resolver works on its query. The time limits are
//! kept by one reaper task that checks every [`REAP_EVERY`]; a closed
//! connection's task sees it at its next wait on the peer.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The limits of [`crate::PdnsConfig::tcp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// TCP + DoT connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv4 address or
    /// IPv6 /64).
    pub max_per_client: usize,
    /// How long a new connection may take to complete its TLS handshake
    /// (DoT) and first query.
    pub initial_timeout: Duration,
    /// How long a connection may stay idle between queries.
    pub idle_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_per_client: 32,
            initial_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// The shortest a timeout shrinks to under pressure (unless configured
/// shorter still).
pub const MIN_TIMEOUT: Duration = Duration::from_millis(200);

/// How often the time limits are checked.
pub const REAP_EVERY: Duration = Duration::from_millis(100);

/// Counters of the TCP and DoT listeners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Connections open now.
    pub open: u64,
    /// Connections admitted.
    pub accepted: u64,
    /// Idle connections closed to make room for a new one from the same
    /// client (per-client limit).
    pub evicted_client: u64,
    /// Idle connections closed to make room for a new one (global limit).
    pub evicted_global: u64,
    /// New connections closed at once: every connection was busy.
    pub refused: u64,
    /// Connections closed by the initial or idle timeout.
    pub timed_out: u64,
}

/// A cloneable reader of a listener's [`TcpStats`] (for `/metrics`).
#[derive(Clone)]
pub struct TcpCounters(pub(crate) Arc<Conns>);

impl TcpCounters {
    pub fn get(&self) -> TcpStats {
        self.0.stats()
    }
}

struct Entry {
    client: IpAddr,
    /// The peer's turn (evictable); false while resolving.
    waiting: bool,
    /// At least one query answered: the idle timeout applies, not the
    /// initial one.
    answered: bool,
    /// When `waiting` last changed.
    since: Instant,
    close: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_client: HashMap<IpAddr, usize>,
}

impl Table {
    /// Removes `id`; returns whether it was there.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        if let Some(n) = self.per_client.get_mut(&e.client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&e.client);
            }
        }
        Some(e)
    }

    /// Closes the oldest idle connection of `client`, or (`None`) of the
    /// client holding the most connections: a client with few is the last
    /// to lose one to a flood from addresses that each hold many.
    fn evict_oldest(&mut self, client: Option<IpAddr>) -> bool {
        let per_client = &self.per_client;
        let victim = self
            .conns
            .iter()
            .filter(|(_, e)| e.waiting && client.is_none_or(|c| e.client == c))
            .max_by_key(|(id, e)| {
                let held = per_client.get(&e.client).copied().unwrap_or(0);
                (held, std::cmp::Reverse((e.since, **id)))
            })
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.remove(id)) {
            Some(e) => {
                e.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// The connection table a listener (TCP and DoT share one) admits into.
pub(crate) struct Conns {
    limits: TcpLimits,
    table: Mutex<Table>,
    accepted: AtomicU64,
    evicted_client: AtomicU64,
    evicted_global: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

/// What the limit counts as one client: the IPv4 address, or the /64 of
/// an IPv6 one (a host usually has a whole /64).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Conns {
    pub(crate) fn new(limits: TcpLimits) -> Arc<Self> {
        let limits = TcpLimits {
            max_connections: limits.max_connections.max(1),
            max_per_client: limits.max_per_client.max(1),
            ..limits
        };
        Arc::new(Self {
            limits,
            table: Mutex::new(Table::default()),
            accepted: AtomicU64::new(0),
            evicted_client: AtomicU64::new(0),
            evicted_global: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent at every await-free step; a panic
        // elsewhere while holding it cannot leave it half-changed.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn stats(&self) -> TcpStats {
        TcpStats {
            open: self.lock().conns.len() as u64,
            accepted: self.accepted.load(Ordering::Relaxed),
            evicted_client: self.evicted_client.load(Ordering::Relaxed),
            evicted_global: self.evicted_global.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
        }
    }

    /// Admits a connection from `peer`, closing an idle one if a limit is
    /// reached; `None` when it must be refused (every candidate busy).
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Conn> {
        let client = client_key(peer.ip());
        let mut t = self.lock();
        if t.per_client.get(&client).copied().unwrap_or(0) >= self.limits.max_per_client {
            if !t.evict_oldest(Some(client)) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            self.evicted_client.fetch_add(1, Ordering::Relaxed);
        }
        if t.conns.len() >= self.limits.max_connections {
            if !t.evict_oldest(None) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            self.evicted_global.fetch_add(1, Ordering::Relaxed);
        }
        let id = t.next_id;
        t.next_id += 1;
        let close = Arc::new(Notify::new());
        t.conns.insert(
            id,
            Entry {
                client,
                waiting: true,
                answered: false,
                since: Instant::now(),
                close: close.clone(),
            },
        );
        *t.per_client.entry(client).or_insert(0) += 1;
        drop(t);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Some(Conn {
            conns: self.clone(),
            id,
            close,
        })
    }

    /// `base` shrunk for `open` connections: whole up to half the limit,
    /// then linearly less with the free room, never under [`MIN_TIMEOUT`]
    /// (or `base`, when shorter).
    pub(crate) fn effective(&self, base: Duration, open: usize) -> Duration {
        let max = self.limits.max_connections as f64;
        let used = (open as f64 / max).min(1.0);
        let factor = if used <= 0.5 { 1.0 } else { (1.0 - used) * 2.0 };
        base.mul_f64(factor).max(base.min(MIN_TIMEOUT))
    }

    /// Closes the connections idle past their (effective) timeout.
    pub(crate) fn reap(&self, now: Instant) {
        let mut t = self.lock();
        let open = t.conns.len();
        if open == 0 {
            return;
        }
        let initial = self.effective(self.limits.initial_timeout, open);
        let idle = self.effective(self.limits.idle_timeout, open);
        let expired: Vec<u64> = t
            .conns
            .iter()
            .filter(|(_, e)| {
                let limit = if e.answered { idle } else { initial };
                e.waiting && now.saturating_duration_since(e.since) > limit
            })
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(e) = t.remove(id) {
                e.close.notify_one();
                self.timed_out.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Runs [`Conns::reap`] every [`REAP_EVERY`] until `stop`.
    pub(crate) async fn run_reaper(self: Arc<Self>, stop: Arc<AtomicBool>) {
        let mut tick = tokio::time::interval(REAP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            self.reap(Instant::now());
        }
    }
}

/// One admitted connection; dropping it frees its place.
pub(crate) struct Conn {
    conns: Arc<Conns>,
    id: u64,
    close: Arc<Notify>,
}

impl Conn {
    /// Waits for `f` (something the peer must do) unless the connection is
    /// closed first (evicted or timed out): then `None`.
    pub(crate) async fn peer<F: Future>(&self, f: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            _ = self.close.notified() => None,
            r = f => Some(r),
        }
    }

    /// Marks the connection's turn: `waiting` (the peer's, evictable) or
    /// not (resolving). `answered`: a query has been answered. False when
    /// the connection was closed meanwhile.
    fn set(&self, waiting: bool, answered: bool) -> bool {
        let mut t = self.conns.lock();
        match t.conns.get_mut(&self.id) {
            Some(e) => {
                e.waiting = waiting;
                e.answered |= answered;
                e.since = Instant::now();
                true
            }
            None => false,
        }
    }

    /// A whole query arrived: the resolver's turn. False when closed.
    pub(crate) fn working(&self) -> bool {
        self.set(false, false)
    }

    /// The answer is ready: the peer's turn again. False when closed.
    pub(crate) fn answered(&self) -> bool {
        self.set(true, true)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.conns.lock().remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn limits(max: usize, per_client: usize) -> TcpLimits {
        TcpLimits {
            max_connections: max,
            max_per_client: per_client,
            ..TcpLimits::default()
        }
    }

    #[test]
    fn per_client_limit_closes_that_clients_oldest_idle() {
        let c = Conns::new(limits(10, 2));
        let a1 = c.admit(addr("192.0.2.1:1000")).unwrap();
        let a2 = c.admit(addr("192.0.2.1:1001")).unwrap();
        let b = c.admit(addr("192.0.2.2:1000")).unwrap();
        assert!(a2.working(), "a2 busy: not evictable");
        let a3 = c.admit(addr("192.0.2.1:1002")).unwrap();
        // a1 was the oldest idle of 192.0.2.1; b (another client) kept.
        assert!(!a1.answered(), "a1 closed");
        assert!(b.working() && a2.answered() && a3.working());
        // Every 192.0.2.1 connection busy: the next is refused.
        assert!(a2.working());
        assert!(c.admit(addr("192.0.2.1:1003")).is_none());
        let s = c.stats();
        assert_eq!((s.open, s.evicted_client, s.refused), (3, 1, 1));
    }

    #[test]
    fn global_limit_closes_the_oldest_idle_anywhere() {
        let c = Conns::new(limits(3, 3));
        let x = c.admit(addr("192.0.2.1:1")).unwrap();
        let y = c.admit(addr("192.0.2.2:1")).unwrap();
        let z = c.admit(addr("[2001:db8::1]:1")).unwrap();
        assert!(x.working());
        let w = c.admit(addr("192.0.2.9:1")).unwrap();
        assert!(!y.answered(), "y, the oldest idle, was closed");
        assert!(x.answered() && z.working() && w.working());
        drop(w);
        assert_eq!(c.stats().open, 2);
        // The client holding the most loses one first, even a newer one.
        let c = Conns::new(limits(3, 3));
        let lone = c.admit(addr("192.0.2.1:1")).unwrap();
        let m1 = c.admit(addr("192.0.2.2:1")).unwrap();
        let m2 = c.admit(addr("192.0.2.2:2")).unwrap();
        let _n = c.admit(addr("192.0.2.3:1")).unwrap();
        assert!(lone.working(), "the oldest, but its client holds one");
        assert!(!m1.working(), "the heaviest client's oldest idle");
        assert!(m2.working());
        // An IPv6 /64 is one client.
        let c = Conns::new(limits(10, 1));
        let v1 = c.admit(addr("[2001:db8::1]:1")).unwrap();
        let _v2 = c.admit(addr("[2001:db8::2]:1")).unwrap();
        assert!(!v1.working());
        let _v3 = c.admit(addr("[2001:db8:0:1::1]:1")).unwrap();
        assert_eq!(c.stats().open, 2);
    }

    #[test]
    fn timeouts_shrink_under_pressure_and_reap() {
        let c = Conns::new(limits(100, 100));
        let base = Duration::from_secs(10);
        assert_eq!(c.effective(base, 10), base);
        assert_eq!(c.effective(base, 50), base);
        assert_eq!(c.effective(base, 75), Duration::from_secs(5));
        assert_eq!(c.effective(base, 100), MIN_TIMEOUT);
        assert_eq!(
            c.effective(Duration::from_millis(50), 100),
            Duration::from_millis(50)
        );

        let fresh = c.admit(addr("192.0.2.1:1")).unwrap();
        let used = c.admit(addr("192.0.2.1:2")).unwrap();
        assert!(used.working() && used.answered());
        let busy = c.admit(addr("192.0.2.1:3")).unwrap();
        assert!(busy.working());
        let now = Instant::now();
        // Past the initial timeout, before the idle one.
        c.reap(now + Duration::from_secs(3));
        assert!(!fresh.working(), "no first query in time: closed");
        assert!(used.answered(), "within its idle timeout");
        assert!(busy.working(), "resolving: never closed");
        c.reap(now + Duration::from_secs(11));
        assert!(!used.working(), "idle past the idle timeout: closed");
        assert!(busy.working());
        assert_eq!(c.stats().timed_out, 2);
    }
}
