//! Prefetch over real sockets: a popular answer asked for near the end of
//! its TTL is refreshed from the upstream in the background, so the next
//! client gets the upstream's new answer from the cache, before the old
//! one would have expired, without a cache miss.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;
use mimamori_dns::{PdnsConfig, Policy, PolicyHandle, Prefetch};

#[test]
fn popular_answers_are_refreshed_before_they_expire() {
    let u = TestUpstream::start();
    u.add("pop.test.", 4, "A", "192.0.2.1");
    u.add("cold.test.", 4, "A", "192.0.2.7");
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    // Refresh when asked twice in the last half of the TTL (2 of 4 s).
    cfg.engine.prefetch = Some(Prefetch {
        min_hits: 2,
        window_percent: 50,
        max_inflight: 4,
        queue: 16,
    });
    let h = mimamori_dns::start(cfg, PolicyHandle::new(Policy::default())).unwrap();
    let first = Instant::now();
    let m = udp_ask(h.udp_addr(), "pop.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    udp_ask(h.udp_addr(), "cold.test.", RecordType::A);
    // Popular early on: hits outside the window schedule nothing.
    for _ in 0..5 {
        udp_ask(h.udp_addr(), "pop.test.", RecordType::A);
    }
    assert_eq!(h.stats().prefetches, 0);
    assert_eq!(u.queries.load(Ordering::SeqCst), 2);
    // The upstream's answer changes.
    u.add("pop.test.", 4, "A", "192.0.2.99");
    u.add("cold.test.", 4, "A", "192.0.2.98");
    std::thread::sleep(Duration::from_millis(2200).saturating_sub(first.elapsed()));
    // Two hits in the window: still the old answer, and a refresh starts.
    for _ in 0..2 {
        let m = udp_ask(h.udp_addr(), "pop.test.", RecordType::A);
        assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    }
    // One hit on the cold name in the window: no refresh.
    udp_ask(h.udp_addr(), "cold.test.", RecordType::A);
    // Before the old answer expires (4 s), the new one is served from the
    // cache.
    let mut got = vec![];
    while first.elapsed() < Duration::from_millis(3800) {
        got = a_records(&udp_ask(h.udp_addr(), "pop.test.", RecordType::A));
        if got.len() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(got, vec!["192.0.2.1", "192.0.2.99"], "refreshed in time");
    let s = h.stats();
    assert_eq!(s.prefetches, 1, "{s:?}");
    assert_eq!(s.prefetch_skipped, 0);
    assert_eq!(s.cache_misses, 2, "no miss for the refreshed name: {s:?}");
    assert_eq!(u.queries.load(Ordering::SeqCst), 3);
    // The refreshed entry's TTL started again at 4.
    let m = udp_ask(h.udp_addr(), "pop.test.", RecordType::A);
    assert!(m.answers.iter().all(|r| r.ttl >= 2), "{:?}", m.answers);
}
