//! The name servers NSDNAME and NSIP triggers are checked against.
//!
//! A recursive resolver meets the authoritative servers of a name while it
//! iterates; a forwarder does not, so it asks its upstream: NS queries for
//! the name and each ancestor (an answer's SOA lets the walk jump straight
//! to the enclosing zone's apex), and, when some zone has NSIP triggers,
//! the addresses of the name servers (glue from the NS answer, else A and
//! AAAA queries). Every query goes through the answer cache (TTLs,
//! serve-stale); each zone cut found is also kept here, parsed, until the
//! shortest TTL it was built from runs out.
//!
//! The servers checked are those of the query name's zone and of every
//! ancestor zone up to the root, as BIND's NSDNAME/NSIP triggers match
//! "a parent of the query name" too, and Unbound checks every delegation
//! point it passes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};

use crate::engine::{name_to_wire, Engine};
use crate::wire;

/// One name server: its name (lower-case wire) and, when NSIP triggers
/// need them, its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsServer {
    pub name: Box<[u8]>,
    pub addrs: Box<[IpAddr]>,
}

/// At most this many name servers per zone are looked at (a bound on the
/// lookups one query can cause; real zones have 2–13).
const MAX_SERVERS: usize = 13;
/// At most this many NS queries per name walked (a bound against names
/// with hundreds of labels).
const MAX_STEPS: usize = 16;

/// What one NS query told about a name.
#[derive(Debug, Clone)]
struct Step {
    /// The name is a zone apex with these servers.
    servers: Option<Arc<[NsServer]>>,
    /// Whether `servers` carry addresses (looked up for NSIP).
    with_addrs: bool,
    /// The apex of the zone holding the name, from an SOA in the answer:
    /// the walk continues there instead of label by label.
    zone: Option<Box<[u8]>>,
    expires: Instant,
}

/// Zone cuts by name, bounded; when full it forgets everything (the
/// answer cache still holds the NS answers, so refilling is cheap).
pub(crate) struct NsCache {
    map: Mutex<HashMap<Box<[u8]>, Step>>,
    max: usize,
}

impl NsCache {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max,
        }
    }

    fn get(&self, name: &[u8], addrs: bool, now: Instant) -> Option<Step> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.get(name)
            .filter(|s| s.expires > now && (s.with_addrs || !addrs || s.servers.is_none()))
            .cloned()
    }

    fn put(&self, name: &[u8], step: Step) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.max && !m.contains_key(name) {
            m.clear();
        }
        m.insert(name.into(), step);
    }
}

/// The parent of a wire name (`None` for the root).
fn parent(name: &[u8]) -> Option<&[u8]> {
    let len = *name.first()? as usize;
    if len == 0 {
        return None;
    }
    name.get(1 + len..)
}

/// Whether `apex` is a proper suffix of `name` on a label boundary.
fn is_proper_ancestor(apex: &[u8], name: &[u8]) -> bool {
    let mut cur = name;
    while let Some(p) = parent(cur) {
        if p == apex {
            return true;
        }
        cur = p;
    }
    false
}

/// Seconds an entry stays fresh from now (at least 1).
fn remaining(e: &crate::cache::Entry, stale: bool, now: Instant) -> u32 {
    if stale {
        return 30;
    }
    e.fresh_secs.saturating_sub(e.age(now)).max(1)
}

impl Engine {
    /// The name servers of `wname`'s zone and of every ancestor zone,
    /// closest first; with addresses when `addrs`. Lookups that fail are
    /// counted and skipped (the query is then judged without them).
    pub(crate) async fn name_servers(&self, wname: &[u8], addrs: bool) -> Vec<NsServer> {
        let mut out = Vec::new();
        let mut cur: Box<[u8]> = wname.into();
        for _ in 0..MAX_STEPS {
            let step = self.ns_step(&cur, addrs).await;
            if let Some(s) = step.as_ref().and_then(|s| s.servers.as_ref()) {
                out.extend(s.iter().cloned());
            }
            let next = match step.and_then(|s| s.zone) {
                Some(z) if is_proper_ancestor(&z, &cur) => z,
                _ => match parent(&cur) {
                    Some(p) => p.into(),
                    None => break,
                },
            };
            cur = next;
        }
        out
    }

    /// One NS query (through both caches); `None` when it failed.
    async fn ns_step(&self, name: &[u8], addrs: bool) -> Option<Step> {
        let now = Instant::now();
        if let Some(s) = self.ns_cache.get(name, addrs, now) {
            return Some(s);
        }
        self.stats.ns_lookups.fetch_add(1, Ordering::Relaxed);
        let Ok((entry, stale)) = self.lookup(name, wire::TYPE_NS, false, false).await else {
            self.stats
                .ns_lookup_failures
                .fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let Ok(msg) = Message::from_vec(&entry.wire) else {
            self.stats
                .ns_lookup_failures
                .fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let mut ttl = remaining(&entry, stale, now);
        let mut names: Vec<Box<[u8]>> = Vec::new();
        for r in &msg.answers {
            if let RData::NS(ns) = &r.data {
                if name_to_wire(&r.name) == name && names.len() < MAX_SERVERS {
                    let n: Box<[u8]> = name_to_wire(&ns.0).into();
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
            }
        }
        let zone = msg
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| name_to_wire(&r.name).into_boxed_slice());
        let servers = if names.is_empty() {
            None
        } else {
            let mut servers = Vec::with_capacity(names.len());
            for n in names {
                let mut found: Vec<IpAddr> = msg
                    .additionals
                    .iter()
                    .filter(|r| name_to_wire(&r.name)[..] == n[..])
                    .filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })
                    .collect();
                if addrs && found.is_empty() {
                    for qtype in [wire::TYPE_A, wire::TYPE_AAAA] {
                        match self.lookup(&n, qtype, false, false).await {
                            Ok((e, stale)) => {
                                ttl = ttl.min(remaining(&e, stale, now));
                                found.extend(e.addrs.iter().copied());
                            }
                            Err(_) => {
                                self.stats
                                    .ns_lookup_failures
                                    .fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                servers.push(NsServer {
                    name: n,
                    addrs: found.into(),
                });
            }
            Some(Arc::from(servers))
        };
        let step = Step {
            servers,
            with_addrs: addrs,
            zone,
            expires: now + Duration::from_secs(u64::from(ttl)),
        };
        self.ns_cache.put(name, step.clone());
        Some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_wire_names() {
        let n = b"\x03www\x07example\x03com\x00";
        assert_eq!(parent(n), Some(&b"\x07example\x03com\x00"[..]));
        assert_eq!(parent(b"\x00"), None);
        assert!(is_proper_ancestor(b"\x03com\x00", n));
        assert!(is_proper_ancestor(b"\x00", n));
        assert!(!is_proper_ancestor(n, n));
        assert!(!is_proper_ancestor(b"\x02om\x00", n));
    }
}
