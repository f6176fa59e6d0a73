//! The answer cache: upstream answers stored in wire format, so a hit is a
//! copy plus a patched ID, flags and TTLs.
//!
//! Entries hold the upstream answer *before* policy: policy can change at any
//! moment (hot swap), so it is applied on every hit, never baked in. To keep
//! that cheap each entry carries what policy needs besides the query name:
//! the CNAME targets in the answer and the answer's addresses.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::wire::{self, Question};

/// Key: lower-case wire name, qtype, qclass, DO bit.
pub type Key = Vec<u8>;

/// Builds the key into `out` (no allocation once `out` has capacity).
pub fn key_into(out: &mut Vec<u8>, name: &[u8], qtype: u16, qclass: u16, dnssec_ok: bool) {
    out.clear();
    out.extend_from_slice(name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&qclass.to_be_bytes());
    out.push(u8::from(dnssec_ok));
}

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    /// The response without an OPT record; ID and flags are patched per
    /// client, the question is overwritten with the client's.
    pub wire: Box<[u8]>,
    /// Offset just past the question in `wire`.
    pub question_end: usize,
    /// Offsets of every TTL field, with the TTL as received.
    pub ttls: Box<[(u16, u32)]>,
    pub inserted: Instant,
    /// Seconds the entry is fresh (the smallest TTL).
    pub fresh_secs: u32,
    pub rcode: u8,
    /// Lower-case wire names the answer's CNAME chain points to.
    pub cname_targets: Box<[Box<[u8]>]>,
    /// A and AAAA addresses in the answer section.
    pub addrs: Box<[IpAddr]>,
    /// A short human form of the answer for the query log.
    pub summary: std::sync::Arc<str>,
    /// Hits in the prefetch window (the end of the entry's life); counted
    /// only there, so hot entries cause no shared-counter traffic the rest
    /// of the time.
    pub window_hits: std::sync::atomic::AtomicU32,
    /// A refresh of this entry has been scheduled (at most one per entry).
    pub prefetching: std::sync::atomic::AtomicBool,
    /// [`crate::policy::Policy::verdict_memo`] of the last full policy check
    /// that found nothing to apply to this entry (its name, CNAME targets
    /// and addresses) for one org; 0 before any. Lets a hit skip the check
    /// while the same policy is in force.
    pub clear_for: std::sync::atomic::AtomicU64,
}

impl Entry {
    /// Builds an entry from an upstream response, and whether it may be
    /// cached (not when its TTL is 0). `None` for an answer that is no
    /// answer: SERVFAIL, REFUSED and other errors, truncated, malformed
    /// (the caller then tries serve-stale).
    pub fn from_response(resp: &[u8], max_ttl: u32, neg_ttl: u32) -> Option<(Entry, bool)> {
        if resp.len() < 12 {
            return None;
        }
        let flags = u16::from_be_bytes([resp[2], resp[3]]);
        let rcode = (flags & 0xf) as u8;
        if flags & 0x0200 != 0 || !matches!(rcode, wire::RCODE_NOERROR | wire::RCODE_NXDOMAIN) {
            return None;
        }
        // Re-emit without the OPT record (it is per client) and copy the rest.
        let mut out = Vec::with_capacity(resp.len());
        out.extend_from_slice(&resp[..12]);
        let question_end = wire::skip_name(resp, 12)? + 4;
        out.extend_from_slice(resp.get(12..question_end)?);
        let mut ttls = Vec::new();
        let mut min_ttl = u32::MAX;
        let mut soa_neg: Option<u32> = None;
        let mut targets = Vec::new();
        let mut addrs = Vec::new();
        let mut summary = String::new();
        let mut counts = [0u16; 3];
        let mut name = Vec::with_capacity(256);
        let mut bad = false;
        wire::walk_records(resp, |rr| {
            if rr.rtype == wire::TYPE_OPT || bad {
                return;
            }
            // Owner and RDATA may hold compression pointers into the part
            // already copied (everything before this record), which stays
            // valid because records are copied in order at their offsets
            // shifted only by removed OPT records, and OPT is last.
            let start = out.len();
            let src = &resp[rr.owner..rr.rdata + rr.rdlen];
            if start != rr.owner {
                // An OPT record before other records would shift offsets;
                // refuse rather than corrupt pointers.
                bad = true;
                return;
            }
            out.extend_from_slice(src);
            counts[rr.section as usize] += 1;
            let ttl = rr.ttl.min(max_ttl);
            ttls.push(((start + (rr.ttl_at - rr.owner)) as u16, ttl));
            if rr.rtype == wire::TYPE_SOA && rr.section == 1 {
                // RFC 2308 §5: negative TTL = min(SOA TTL, SOA MINIMUM).
                let minimum = resp
                    .get(rr.rdata + rr.rdlen - 4..rr.rdata + rr.rdlen)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                soa_neg = Some(ttl.min(minimum));
            }
            if rr.section == 0 {
                min_ttl = min_ttl.min(ttl);
                let rd = &resp[rr.rdata..rr.rdata + rr.rdlen];
                match rr.rtype {
                    wire::TYPE_A if rd.len() == 4 => {
                        let ip = Ipv4Addr::new(rd[0], rd[1], rd[2], rd[3]);
                        addrs.push(IpAddr::V4(ip));
                        if summary.len() < 200 {
                            summary.push_str(&format!("{}A {ip}", sep(&summary)));
                        }
                    }
                    wire::TYPE_AAAA if rd.len() == 16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(rd);
                        let ip = Ipv6Addr::from(b);
                        addrs.push(IpAddr::V6(ip));
                        if summary.len() < 200 {
                            summary.push_str(&format!("{}AAAA {ip}", sep(&summary)));
                        }
                    }
                    wire::TYPE_CNAME => {
                        if wire::read_name(resp, rr.rdata, &mut name).is_some() {
                            if summary.len() < 200 {
                                summary.push_str(&format!(
                                    "{}CNAME {}",
                                    sep(&summary),
                                    wire::name_to_string(&name)
                                ));
                            }
                            targets.push(name.clone().into_boxed_slice());
                        }
                    }
                    t => {
                        if summary.len() < 200 {
                            summary.push_str(&format!("{}TYPE{t}", sep(&summary)));
                        }
                    }
                }
            }
        })?;
        if bad {
            return None;
        }
        let fresh = if counts[0] > 0 {
            min_ttl
        } else {
            soa_neg.unwrap_or(0).min(neg_ttl)
        };
        out[6..8].copy_from_slice(&counts[0].to_be_bytes());
        out[8..10].copy_from_slice(&counts[1].to_be_bytes());
        out[10..12].copy_from_slice(&counts[2].to_be_bytes());
        if out.len() > u16::MAX as usize {
            return None;
        }
        let entry = Entry {
            wire: out.into_boxed_slice(),
            question_end,
            ttls: ttls.into_boxed_slice(),
            inserted: Instant::now(),
            fresh_secs: fresh,
            rcode,
            cname_targets: targets.into_boxed_slice(),
            addrs: addrs.into_boxed_slice(),
            summary: summary.into(),
            window_hits: Default::default(),
            prefetching: Default::default(),
            clear_for: Default::default(),
        };
        Some((entry, fresh > 0))
    }

    pub fn age(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.inserted)
            .as_secs()
            .min(u64::from(u32::MAX)) as u32
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        self.age(now) < self.fresh_secs
    }

    /// Writes the answer for `q` (packet `pkt`) into `out`. `stale_ttl`
    /// replaces every TTL when serving a stale answer (RFC 8767 §4: 30 s).
    /// An answer longer than `limit` becomes an empty TC=1 answer.
    pub fn write_answer(
        &self,
        out: &mut Vec<u8>,
        pkt: &[u8],
        q: &Question,
        now: Instant,
        stale_ttl: Option<u32>,
        limit: usize,
    ) {
        out.clear();
        out.extend_from_slice(&self.wire);
        out[0..2].copy_from_slice(&q.id.to_be_bytes());
        let stored = u16::from_be_bytes([self.wire[2], self.wire[3]]);
        out[2..4].copy_from_slice(&wire::cached_flags(q, stored).to_be_bytes());
        // The client's question, with its case (same length: same name).
        let qlen = q.question_end - 12;
        if self.question_end - 12 == qlen {
            out[12..q.question_end].copy_from_slice(&pkt[12..q.question_end]);
        }
        let age = self.age(now);
        for &(at, ttl) in self.ttls.iter() {
            let t = stale_ttl.unwrap_or_else(|| ttl.saturating_sub(age));
            let at = at as usize;
            out[at..at + 4].copy_from_slice(&t.to_be_bytes());
        }
        if let Some(e) = q.edns {
            let ar = u16::from_be_bytes([out[10], out[11]]).saturating_add(1);
            out[10..12].copy_from_slice(&ar.to_be_bytes());
            wire::push_opt(out, e, stale_ttl.map(|_| (wire::EDE_STALE, "served stale")));
        }
        if out.len() > limit {
            wire::truncated(out, pkt, q);
        }
    }
}

fn sep(s: &str) -> &'static str {
    if s.is_empty() {
        ""
    } else {
        ", "
    }
}

// foldhash, seeded per shard (a different seed from the shard choice, or
// every key of a shard would share its low bits): SipHash, std's default,
// cost more than the rest of a lookup.
type Shard = Mutex<HashMap<Key, std::sync::Arc<Entry>, foldhash::fast::RandomState>>;

/// A sharded map from key to entry. A lookup locks one shard briefly and
/// clones an `Arc`; inserts replace. When a shard is full an arbitrary entry
/// is evicted (a bound, not an LRU: fine for a protective resolver whose
/// working set is small next to the bound).
pub struct Cache {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: foldhash::fast::RandomState,
    /// How long past expiry an entry may still be served stale.
    pub stale_for: Duration,
}

impl Cache {
    pub fn new(max_entries: usize, stale_for: Duration) -> Self {
        let n = 64;
        Self {
            shards: (0..n)
                .map(|_| Mutex::new(HashMap::with_hasher(Default::default())))
                .collect(),
            per_shard: (max_entries / n).max(1),
            hasher: foldhash::fast::RandomState::default(),
            stale_for,
        }
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % self.shards.len()]
    }

    pub fn get(&self, key: &[u8]) -> Option<std::sync::Arc<Entry>> {
        // A poisoned shard only means a panic elsewhere mid-insert; the map
        // itself is still consistent, so keep serving.
        let m = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        m.get(key).cloned()
    }

    /// Runs `f` on the entry for `key` while holding its shard's lock.
    pub fn with<R>(&self, key: &[u8], f: impl FnOnce(&Entry) -> R) -> Option<R> {
        let m = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        m.get(key).map(|e| f(e))
    }

    pub fn insert(&self, key: Key, entry: Entry) -> std::sync::Arc<Entry> {
        let entry = std::sync::Arc::new(entry);
        let mut m = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= self.per_shard && !m.contains_key(&key) {
            let now = Instant::now();
            let stale_for = self.stale_for.as_secs() as u32;
            m.retain(|_, e| e.age(now) < e.fresh_secs.saturating_add(stale_for));
            if m.len() >= self.per_shard {
                if let Some(k) = m.keys().next().cloned() {
                    m.remove(&k);
                }
            }
        }
        m.insert(key, entry.clone());
        entry
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
