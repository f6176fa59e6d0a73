//! Streaming indicator matching, measured: N active domain indicators (plus
//! a thousand addresses), then DNS events through the same
//! `IntelSnapshot::evaluate` the detection consumer runs, on one thread.
//!
//! ```text
//! cargo run --release -p mimamori-pipeline --example match_bench -- [INDICATORS=1000000] [EVENTS=2000000]
//! ```
//!
//! Events: 99% names under benign domains that are not indicators, 1% under
//! indicated ones (the hits go through alert building, as in production).
//! Prints the snapshot build time, the RSS the snapshot added, and
//! events/s.

use mimamori_event::{Event, EventBody, Normalized, OcsfClass};
use mimamori_intel::{Indicator, IndicatorKind, Tlp};
use mimamori_pipeline::intel::IntelSnapshot;
use mimamori_store::ActiveIndicator;
use std::collections::HashMap;
use std::time::Instant;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A deterministic label generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn label(&mut self) -> String {
        let n = 4 + (self.next() % 10) as usize;
        (0..n)
            .map(|_| (b'a' + (self.next() % 26) as u8) as char)
            .collect()
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n_ind: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let n_ev: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let now = time::OffsetDateTime::now_utc();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let tlds = ["example", "test", "invalid", "jp", "com", "net"];
    let mut bad = Vec::with_capacity(n_ind);
    let mut indicators = Vec::with_capacity(n_ind + 1000);
    for i in 0..n_ind {
        let d = format!("{}.{}", rng.label(), tlds[i % tlds.len()]);
        let mut ind = Indicator::new(IndicatorKind::Domain { exact: false }, d.clone(), now);
        ind.tlp = Tlp::Amber;
        ind.confidence = 80;
        indicators.push(ActiveIndicator {
            id: format!("ind-{i}"),
            owner_org_id: "root".into(),
            owner_path: "/root/".into(),
            indicator: ind,
            shared_with: vec![],
        });
        bad.push(d);
    }
    for i in 0..1000u32 {
        let ip = format!("198.51.{}.{}", i / 256, i % 256);
        indicators.push(ActiveIndicator {
            id: format!("ip-{i}"),
            owner_org_id: "root".into(),
            owner_path: "/root/".into(),
            indicator: Indicator::new(IndicatorKind::Ipv4, ip, now),
            shared_with: vec![],
        });
    }
    let org_paths: HashMap<String, String> = (0..8)
        .map(|i| (format!("org-{i}"), format!("/root/org-{i}/")))
        .collect();
    let before = rss_kib();
    let t = Instant::now();
    let snap = IntelSnapshot::build(indicators, org_paths, Default::default());
    let build = t.elapsed();
    let after = rss_kib();
    eprintln!(
        "snapshot: {} values in {:.2} s, RSS +{} MB (with the indicator records)",
        snap.len(),
        build.as_secs_f64(),
        after.saturating_sub(before) / 1024
    );
    // Pre-generated events, so the loop measures matching only.
    let mut events = Vec::with_capacity(10_000);
    for i in 0..10_000usize {
        let name = if i % 100 == 0 {
            format!("www.{}", bad[(rng.next() as usize) % bad.len()])
        } else {
            format!("{}.{}.benign.org", rng.label(), rng.label())
        };
        events.push(Event {
            id: format!("e{i}"),
            org_id: format!("org-{}", i % 8),
            received: 0,
            body: EventBody {
                time: Some(0),
                class: OcsfClass::DnsActivity,
                source: "bench".into(),
                fields: Normalized {
                    src_ip: Some(format!("10.0.{}.{}", i % 200, i % 250)),
                    dns_query: Some(name),
                    dns_answers: vec![format!("203.0.113.{}", i % 250)],
                    ..Default::default()
                },
                raw: Default::default(),
            },
        });
    }
    let mut out = Vec::new();
    let mut hits = 0usize;
    let t = Instant::now();
    for i in 0..n_ev {
        out.clear();
        snap.evaluate(&events[i % events.len()], &mut out);
        hits += out.len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{n_ind} indicators: {n_ev} events in {secs:.2} s = {:.0} events/s on one thread; {hits} matches; snapshot built in {:.2} s, +{} MB RSS",
        n_ev as f64 / secs,
        build.as_secs_f64(),
        after.saturating_sub(before) / 1024
    );
}
