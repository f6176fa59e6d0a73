//! RPZ zones from a primary: loaded by AXFR (RFC 5936), kept current by
//! IXFR (RFC 1995, falling back to AXFR), refreshed on the SOA refresh
//! timer (RFC 1034 §4.3.5) and when the primary sends a NOTIFY (RFC 1996).
//!
//! Each successful transfer builds a new immutable [`Zone`] and publishes
//! it with an atomic swap; the caller's `on_change` then rebuilds the
//! [`crate::Policy`] and swaps that in ([`crate::PolicyHandle::set`]), so
//! queries never wait and never see half a zone. A failed transfer keeps
//! the zone in force, is logged and counted, and is retried after the
//! SOA's retry interval.
//!
//! Messages are hickory-proto's. The exchange over TCP (a two-byte length
//! before each message, RFC 1035 §4.2.2) and the end-of-transfer rules are
//! written here: hickory-client 0.26 exists only as an alpha on an older
//! hickory-proto, and hickory-net 0.26's `zone_transfer` asserts that the
//! zone name equals the SOA's MNAME and files the IXFR's SOA under the
//! MNAME (RFC 1995 §3 puts it under the zone name), so an IXFR for a real
//! zone would panic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::policy::{PolicyError, Zone};

/// Errors of a zone transfer.
#[derive(Debug, thiserror::Error)]
pub enum XfrError {
    #[error("primary {0}: {1}")]
    Io(SocketAddr, std::io::Error),
    #[error("primary {0}: no answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("primary {addr} answered {qtype} with {rcode}")]
    Refused {
        addr: SocketAddr,
        qtype: RecordType,
        rcode: ResponseCode,
    },
    #[error("primary {0}: {1}")]
    Protocol(SocketAddr, String),
    #[error("zone {zone}: transfer over {max} records")]
    TooLarge { zone: String, max: usize },
    #[error(transparent)]
    Zone(#[from] PolicyError),
    #[error("bad zone transfer source {0:?}: {1}")]
    Spec(String, String),
}

/// Where a zone comes from and the bounds of its transfers.
#[derive(Debug, Clone)]
pub struct XfrConfig {
    /// The zone's name (its apex).
    pub zone: Name,
    pub primary: SocketAddr,
    /// Bound on connecting and on each read from the primary.
    pub timeout: Duration,
    /// Bound on a whole transfer.
    pub transfer_timeout: Duration,
    /// Most records a zone may have (a bound on memory).
    pub max_records: usize,
    /// The SOA refresh and retry intervals are clamped to this range, so a
    /// zone with a refresh of 0 does not hammer its primary and one with a
    /// year does not go stale.
    pub min_interval: Duration,
    pub max_interval: Duration,
}

impl XfrConfig {
    pub fn new(zone: Name, primary: SocketAddr) -> Self {
        Self {
            zone,
            primary,
            timeout: Duration::from_secs(10),
            transfer_timeout: Duration::from_secs(600),
            max_records: 20_000_000,
            min_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(86_400),
        }
    }

    /// Parses `ZONE@ADDR:PORT` (the port defaults to 53; an IPv6 address
    /// goes in brackets: `rpz.example@[2001:db8::1]:53`).
    pub fn parse(spec: &str) -> Result<Self, XfrError> {
        let bad = |why: &str| XfrError::Spec(spec.to_string(), why.to_string());
        let (zone, addr) = spec
            .rsplit_once('@')
            .ok_or_else(|| bad("expected ZONE@ADDR[:PORT]"))?;
        if zone.is_empty() {
            return Err(bad("empty zone name"));
        }
        let mut zone = Name::from_ascii(zone).map_err(|e| bad(&e.to_string()))?;
        zone.set_fqdn(true);
        let primary = match addr.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                let ip = addr
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| bad("bad primary address"))?;
                SocketAddr::new(ip, 53)
            }
        };
        Ok(Self::new(zone, primary))
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refreshed {
    /// The primary has no newer serial.
    Unchanged,
    /// Applied an incremental transfer up to this serial.
    Ixfr(u32),
    /// Loaded the whole zone at this serial.
    Axfr(u32),
}

/// Counters of a secondary zone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XfrStats {
    pub axfr: u64,
    pub ixfr: u64,
    pub failures: u64,
    /// The serial in force (0 before the first load).
    pub serial: u32,
}

/// The zone's records, kept to apply IXFR differences to. Keyed by owner
/// (lower case), type and data; the value is the TTL.
#[derive(Default)]
struct Records {
    soa: Option<Record>,
    set: HashMap<(Name, RecordType, RData), u32>,
}

impl Records {
    fn key(r: &Record) -> (Name, RecordType, RData) {
        (r.name.to_lowercase(), r.record_type(), r.data.clone())
    }
    fn serial(&self) -> Option<u32> {
        match self.soa.as_ref().map(|r| &r.data) {
            Some(RData::SOA(s)) => Some(s.serial),
            _ => None,
        }
    }
    fn soa(&self) -> Option<&SOA> {
        match self.soa.as_ref().map(|r| &r.data) {
            Some(RData::SOA(s)) => Some(s),
            _ => None,
        }
    }
}

/// An RPZ zone kept current from its primary.
pub struct Secondary {
    cfg: XfrConfig,
    records: tokio::sync::Mutex<Records>,
    zone: ArcSwapOption<Zone>,
    axfr: AtomicU64,
    ixfr: AtomicU64,
    failures: AtomicU64,
    serial: AtomicU32,
    notified: tokio::sync::Notify,
}

/// RFC 1982 serial arithmetic: whether `a` is newer than `b`.
fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000_0000
}

fn soa_serial(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    }
}

impl Secondary {
    pub fn new(cfg: XfrConfig) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            records: Default::default(),
            zone: ArcSwapOption::empty(),
            axfr: AtomicU64::new(0),
            ixfr: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            serial: AtomicU32::new(0),
            notified: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> &XfrConfig {
        &self.cfg
    }

    /// The zone in force, `None` before the first successful load.
    pub fn zone(&self) -> Option<Arc<Zone>> {
        self.zone.load_full()
    }

    pub fn stats(&self) -> XfrStats {
        XfrStats {
            axfr: self.axfr.load(Ordering::Relaxed),
            ixfr: self.ixfr.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            serial: self.serial.load(Ordering::Relaxed),
        }
    }

    /// Starts from zone text (a zone file kept from an earlier run, as
    /// Unbound's `zonefile:` beside `master:`); transfers then bring it up
    /// to date from its serial.
    pub async fn seed(&self, text: &str) -> Result<(), XfrError> {
        // Records without a TTL get 3600, as in the RPZ file parser (a
        // `$TTL` in the text overrides it).
        let text = format!("$TTL 3600\n{text}");
        let parsed =
            hickory_proto::serialize::txt::Parser::new(text, None, Some(self.cfg.zone.clone()))
                .parse()
                .map_err(|e| {
                    XfrError::Zone(PolicyError::Syntax {
                        zone: self.cfg.zone.to_ascii(),
                        line: 0,
                        reason: e.to_string(),
                    })
                })?;
        let mut recs = Records::default();
        for rrset in parsed.1.values() {
            for r in rrset.records_without_rrsigs() {
                if r.record_type() == RecordType::SOA {
                    if recs.soa.is_none() && r.name == self.cfg.zone {
                        recs.soa = Some(r.clone());
                    }
                    continue;
                }
                recs.set.insert(Records::key(r), r.ttl);
            }
        }
        self.publish(&recs)?;
        *self.records.lock().await = recs;
        Ok(())
    }

    /// Asks the primary for a newer version and loads it: IXFR from the
    /// serial in force (AXFR when the primary cannot, or there is none
    /// yet). On error the zone in force stays.
    pub async fn refresh(&self) -> Result<Refreshed, XfrError> {
        let result = self.refresh_inner().await;
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(zone = %self.cfg.zone, primary = %self.cfg.primary, error = %e,
                "RPZ zone transfer failed; keeping the zone in force");
        }
        result
    }

    async fn refresh_inner(&self) -> Result<Refreshed, XfrError> {
        let mut recs = self.records.lock().await;
        if let (Some(ours), Some(old_soa)) = (recs.serial(), recs.soa.clone()) {
            let theirs = self.query_soa().await?;
            if !serial_newer(theirs, ours) {
                return Ok(Refreshed::Unchanged);
            }
            match self.transfer(Some(&old_soa)).await {
                Ok(answers) => match self.apply(&mut recs, &answers, ours) {
                    Ok(r) => return Ok(r),
                    Err(e) => {
                        tracing::info!(zone = %self.cfg.zone, error = %e, "IXFR not usable; trying AXFR")
                    }
                },
                Err(e) => {
                    tracing::info!(zone = %self.cfg.zone, error = %e, "IXFR failed; trying AXFR")
                }
            }
        }
        let answers = self.transfer(None).await?;
        let serial = self.load_full(&mut recs, &answers)?;
        Ok(Refreshed::Axfr(serial))
    }

    /// Interprets an IXFR answer: an up-to-date SOA, a full zone (the
    /// primary's fallback, RFC 1995 §4) or a sequence of differences.
    fn apply(
        &self,
        recs: &mut Records,
        answers: &[Record],
        ours: u32,
    ) -> Result<Refreshed, XfrError> {
        let proto = |m: &str| XfrError::Protocol(self.cfg.primary, m.to_string());
        let first = answers.first().ok_or_else(|| proto("empty IXFR answer"))?;
        let new_serial = soa_serial(first).ok_or_else(|| proto("IXFR answer without SOA"))?;
        if answers.len() == 1 {
            if serial_newer(new_serial, ours) {
                return Err(proto("IXFR answered with a lone newer SOA"));
            }
            return Ok(Refreshed::Unchanged);
        }
        if answers[1].record_type() != RecordType::SOA {
            let serial = self.load_full(recs, answers)?;
            return Ok(Refreshed::Axfr(serial));
        }
        // Differences: SOA(old) deletions SOA(new) additions, repeated,
        // then the final SOA. Applied to a copy: a bad sequence leaves the
        // zone as it was.
        let mut next = Records {
            soa: Some(first.clone()),
            set: recs.set.clone(),
        };
        let body = &answers[1..answers.len() - 1];
        #[derive(PartialEq)]
        enum Phase {
            Start,
            Deleting,
            Adding,
        }
        let mut phase = Phase::Start;
        // The version the differences so far lead to.
        let mut at = ours;
        for r in body {
            if let Some(s) = soa_serial(r) {
                phase = match phase {
                    Phase::Start | Phase::Adding if s != at => {
                        return Err(proto("IXFR difference does not start at our version"))
                    }
                    Phase::Start | Phase::Adding => Phase::Deleting,
                    Phase::Deleting => {
                        at = s;
                        Phase::Adding
                    }
                };
                continue;
            }
            match phase {
                Phase::Start => return Err(proto("IXFR record before the first SOA")),
                Phase::Deleting => {
                    next.set.remove(&Records::key(r));
                }
                Phase::Adding => {
                    if next.set.len() >= self.cfg.max_records {
                        return Err(XfrError::TooLarge {
                            zone: self.cfg.zone.to_ascii(),
                            max: self.cfg.max_records,
                        });
                    }
                    next.set.insert(Records::key(r), r.ttl);
                }
            }
        }
        if phase != Phase::Adding || at != new_serial {
            return Err(proto("IXFR differences do not end at the new serial"));
        }
        self.publish(&next)?;
        *recs = next;
        self.ixfr.fetch_add(1, Ordering::Relaxed);
        tracing::info!(zone = %self.cfg.zone, serial = new_serial, records = recs.set.len(), "RPZ zone updated by IXFR");
        Ok(Refreshed::Ixfr(new_serial))
    }

    /// Loads a whole zone from an AXFR(-style) answer.
    fn load_full(&self, recs: &mut Records, answers: &[Record]) -> Result<u32, XfrError> {
        let proto = |m: &str| XfrError::Protocol(self.cfg.primary, m.to_string());
        let first = answers.first().ok_or_else(|| proto("empty AXFR answer"))?;
        let serial = soa_serial(first).ok_or_else(|| proto("AXFR answer without SOA"))?;
        let mut next = Records {
            soa: Some(first.clone()),
            set: HashMap::with_capacity(answers.len()),
        };
        for r in &answers[1..answers.len().saturating_sub(1)] {
            if r.record_type() != RecordType::SOA {
                next.set.insert(Records::key(r), r.ttl);
            }
        }
        self.publish(&next)?;
        *recs = next;
        self.axfr.fetch_add(1, Ordering::Relaxed);
        tracing::info!(zone = %self.cfg.zone, serial, records = recs.set.len(), "RPZ zone loaded by AXFR");
        Ok(serial)
    }

    /// Builds the zone from `recs` and swaps it in.
    fn publish(&self, recs: &Records) -> Result<(), XfrError> {
        let soa = recs
            .soa()
            .map(|s| (recs.soa.as_ref().map_or(0, |r| r.ttl), s.clone()));
        let zone = Zone::from_records(
            &self.cfg.zone,
            soa,
            recs.set.iter().map(|((name, _, rd), ttl)| (name, *ttl, rd)),
        )?;
        self.serial
            .store(recs.serial().unwrap_or(0), Ordering::Relaxed);
        self.zone.store(Some(Arc::new(zone)));
        Ok(())
    }

    /// Wakes the refresh loop (a NOTIFY from the primary).
    pub fn notify(&self) {
        self.notified.notify_one();
    }

    /// Keeps the zone current until the task is dropped: a refresh now,
    /// then after the SOA refresh interval (the retry interval after a
    /// failure), or at once on [`Secondary::notify`]. `on_change` runs after
    /// every load that changed the zone.
    pub async fn run(self: Arc<Self>, on_change: Arc<dyn Fn() + Send + Sync>) {
        loop {
            let wait = match self.refresh().await {
                Ok(Refreshed::Unchanged) => self.interval(|s| s.refresh),
                Ok(_) => {
                    on_change();
                    self.interval(|s| s.refresh)
                }
                Err(_) => self.interval(|s| s.retry),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.notified.notified() => {
                    tracing::debug!(zone = %self.cfg.zone, "NOTIFY: refreshing");
                }
            }
        }
    }

    fn interval(&self, pick: impl Fn(&SOA) -> i32) -> Duration {
        let secs = self
            .records
            .try_lock()
            .ok()
            .and_then(|r| r.soa().map(|s| pick(s).max(0) as u64))
            .unwrap_or(60);
        Duration::from_secs(secs).clamp(self.cfg.min_interval, self.cfg.max_interval)
    }

    /// The primary's SOA serial.
    async fn query_soa(&self) -> Result<u32, XfrError> {
        let answers = self.exchange(RecordType::SOA, None).await?;
        answers
            .iter()
            .find_map(soa_serial)
            .ok_or_else(|| XfrError::Protocol(self.cfg.primary, "SOA answer without SOA".into()))
    }

    /// An AXFR, or an IXFR from `since`; the answer records of all
    /// messages in order.
    async fn transfer(&self, since: Option<&Record>) -> Result<Vec<Record>, XfrError> {
        let qtype = if since.is_some() {
            RecordType::IXFR
        } else {
            RecordType::AXFR
        };
        let deadline = self.cfg.transfer_timeout;
        tokio::time::timeout(deadline, self.exchange(qtype, since))
            .await
            .map_err(|_| XfrError::Timeout(self.cfg.primary, deadline))?
    }

    /// One request over TCP and its answer messages until the transfer is
    /// complete.
    async fn exchange(
        &self,
        qtype: RecordType,
        since: Option<&Record>,
    ) -> Result<Vec<Record>, XfrError> {
        let addr = self.cfg.primary;
        let t = self.cfg.timeout;
        let io = |e| XfrError::Io(addr, e);
        let proto = |m: String| XfrError::Protocol(addr, m);
        let id = getrandom::u32().map(|v| v as u16).unwrap_or(0x7a7a);
        let mut req = Message::new(id, MessageType::Query, OpCode::Query);
        let mut q = Query::query(self.cfg.zone.clone(), qtype);
        q.set_query_class(DNSClass::IN);
        req.add_query(q);
        if let Some(soa) = since {
            // RFC 1995 §3: the version the client has, as an SOA in the
            // authority section under the zone's name.
            let mut soa = soa.clone();
            soa.name = self.cfg.zone.clone();
            req.add_authority(soa);
        }
        let bytes = req.to_vec().map_err(|e| proto(e.to_string()))?;
        let mut stream = tokio::time::timeout(t, TcpStream::connect(addr))
            .await
            .map_err(|_| XfrError::Timeout(addr, t))?
            .map_err(io)?;
        let len = u16::try_from(bytes.len()).map_err(|_| proto("request too long".into()))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.map_err(io)?;

        let mut answers: Vec<Record> = Vec::new();
        let mut buf = Vec::new();
        let started = Instant::now();
        loop {
            let mut len = [0u8; 2];
            tokio::time::timeout(t, stream.read_exact(&mut len))
                .await
                .map_err(|_| XfrError::Timeout(addr, t))?
                .map_err(io)?;
            buf.resize(usize::from(u16::from_be_bytes(len)), 0);
            tokio::time::timeout(t, stream.read_exact(&mut buf))
                .await
                .map_err(|_| XfrError::Timeout(addr, t))?
                .map_err(io)?;
            let msg = Message::from_vec(&buf).map_err(|e| proto(e.to_string()))?;
            if msg.metadata.id != id || msg.metadata.message_type != MessageType::Response {
                return Err(proto("answer does not match the request".into()));
            }
            if msg.metadata.response_code != ResponseCode::NoError {
                return Err(XfrError::Refused {
                    addr,
                    qtype,
                    rcode: msg.metadata.response_code,
                });
            }
            if answers.len() + msg.answers.len() > self.cfg.max_records {
                return Err(XfrError::TooLarge {
                    zone: self.cfg.zone.to_ascii(),
                    max: self.cfg.max_records,
                });
            }
            answers.extend(msg.answers);
            if transfer_complete(qtype, &answers) {
                tracing::debug!(zone = %self.cfg.zone, ?qtype, records = answers.len(),
                    elapsed_ms = started.elapsed().as_millis() as u64, "transfer received");
                return Ok(answers);
            }
            if qtype == RecordType::SOA {
                return Err(proto("SOA query answered without an SOA".into()));
            }
        }
    }
}

/// A handler for [`crate::Engine::on_notify`]: a NOTIFY for one of the
/// zones, from the address of its primary, wakes its refresh loop.
pub fn notify_router(secondaries: Vec<Arc<Secondary>>) -> Arc<crate::engine::NotifyHandler> {
    Arc::new(move |zone: &Name, from: std::net::IpAddr| {
        let mut taken = false;
        for s in &secondaries {
            if s.cfg.zone == *zone && s.cfg.primary.ip() == from {
                s.notify();
                taken = true;
            }
        }
        taken
    })
}

/// Whether the answers so far make a whole response: an SOA answer; an
/// AXFR's closing SOA (RFC 5936 §2.2); an IXFR's lone SOA (up to date), a
/// full zone's closing SOA, or the new serial's SOA closing the last
/// difference (RFC 1995 §4).
fn transfer_complete(qtype: RecordType, answers: &[Record]) -> bool {
    let Some(first) = answers.first().and_then(soa_serial) else {
        return qtype == RecordType::SOA && !answers.is_empty();
    };
    match qtype {
        RecordType::SOA => true,
        RecordType::AXFR => answers.len() > 1 && answers.last().and_then(soa_serial).is_some(),
        _ => {
            if answers.len() == 1 {
                return true;
            }
            let Some(last) = answers.last().and_then(soa_serial) else {
                return false;
            };
            if answers.len() == 2 {
                // An empty zone in AXFR style ends here; differences start
                // with the old serial.
                return last == first;
            }
            if answers[1].record_type() != RecordType::SOA {
                return last == first;
            }
            // After the first SOA, differences come in SOA pairs; the final
            // SOA makes the count odd.
            let soas = answers[1..]
                .iter()
                .filter(|r| r.record_type() == RecordType::SOA)
                .count();
            last == first && soas % 2 == 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        let c = XfrConfig::parse("rpz.example.com@192.0.2.1:5353").expect("ok");
        assert_eq!(c.zone.to_ascii(), "rpz.example.com.");
        assert_eq!(c.primary, "192.0.2.1:5353".parse().expect("addr"));
        let c = XfrConfig::parse("rpz.example@[2001:db8::1]").expect("ok");
        assert_eq!(c.primary, "[2001:db8::1]:53".parse().expect("addr"));
        assert!(XfrConfig::parse("rpz.example").is_err());
        assert!(XfrConfig::parse("@192.0.2.1").is_err());
        assert!(XfrConfig::parse("rpz@nowhere:53").is_err());
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_newer(2, 1));
        assert!(!serial_newer(1, 1));
        assert!(!serial_newer(1, 2));
        assert!(serial_newer(1, u32::MAX));
    }
}
