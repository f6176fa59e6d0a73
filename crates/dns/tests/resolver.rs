//! End-to-end tests over real sockets: a stand-in upstream, the resolver,
//! and clients on UDP, TCP and DoT.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use mimamori_dns::{query_log, OrgPolicy, PdnsConfig, Policy, PolicyHandle, Zone};

const RPZ: &str = "$TTL 60
@ SOA localhost. root.localhost. 1 3600 600 86400 60
@ NS localhost.
sink.test A 10.10.10.10
sink.test AAAA 2001:db8::10
ok.evil.test CNAME rpz-passthru.
gone.test CNAME rpz-drop.
tcp.test CNAME rpz-tcp-only.
nodata.test CNAME *.
txt.test TXT \"blocked by policy\"
alias.test CNAME allowed.test.
";

fn upstream() -> TestUpstream {
    let u = TestUpstream::start();
    u.add("allowed.test.", 300, "A", "192.0.2.1");
    u.add("allowed2.test.", 300, "A", "192.0.2.2");
    u.add("ok.evil.test.", 300, "A", "192.0.2.3");
    u.add("evil.test.", 300, "A", "192.0.2.66");
    u.add("short.test.", 1, "A", "192.0.2.4");
    u.add("tcp.test.", 300, "A", "192.0.2.5");
    u.add("swap.test.", 300, "A", "192.0.2.6");
    u
}

fn base_policy() -> Policy {
    let rpz = Zone::parse_rpz("rpz.test.", RPZ).expect("rpz parses");
    let bl = Zone::blocklist("intel", "evil.test\n").expect("list parses");
    Policy::new(vec![Arc::new(rpz), Arc::new(bl)])
}

fn start(u: &TestUpstream, policy: Policy) -> mimamori_dns::Handle {
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 2;
    cfg.upstream_timeout = Duration::from_millis(300);
    mimamori_dns::start(cfg, PolicyHandle::new(policy)).expect("starts")
}

#[test]
fn blocks_with_nxdomain_and_extended_error() {
    let u = upstream();
    let h = start(&u, base_policy());
    let m = udp_ask(h.udp_addr(), "Evil.Test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    assert_eq!(ede(&m), Some(15), "RFC 8914 Blocked");
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "Evil.Test.",
        "question case echoed"
    );
    // The blocklist blocks every name under the listed one.
    let m = udp_ask(h.udp_addr(), "a.b.evil.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Without EDNS there is no OPT record (and no EDE).
    let req = query("evil.test.", RecordType::A, false);
    let m =
        udp_ask_from("127.0.0.1:0", h.udp_addr(), &req, Duration::from_secs(2)).expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.edns.is_none());
    // The upstream was never asked about a blocked name.
    assert_eq!(u.queries.load(Ordering::SeqCst), 0);
    // Names next to the blocked one resolve.
    let m = udp_ask(h.udp_addr(), "notevil.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), None, "upstream NXDOMAIN, not a block");
    assert_eq!(h.stats().blocked, 3);
}

/// Many clients at once (dense traffic, so the UDP threads coalesce their
/// receives, `PdnsConfig::udp_coalesce`): every query is answered, blocks
/// and cache hits alike.
#[test]
fn dense_traffic_from_many_clients_is_all_answered() {
    let u = upstream();
    let h = start(&u, base_policy());
    let server = h.udp_addr();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..50 {
                    if (i + j) % 5 == 0 {
                        let m = udp_ask(server, "x.evil.test.", RecordType::A);
                        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
                        assert_eq!(ede(&m), Some(15));
                    } else {
                        let m = udp_ask(server, "allowed.test.", RecordType::A);
                        assert_eq!(a_records(&m), vec!["192.0.2.1"]);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client thread");
    }
    assert_eq!(h.stats().blocked, 80);
}

#[test]
fn rpz_actions_sinkhole_passthru_drop_nodata_tcp_only() {
    let u = upstream();
    let h = start(&u, base_policy());
    let m = udp_ask(h.udp_addr(), "sink.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["10.10.10.10"]);
    assert_eq!(ede(&m), Some(15));
    let m = udp_ask(h.udp_addr(), "sink.test.", RecordType::AAAA);
    assert_eq!(a_records(&m), vec!["2001:db8::10"]);
    let m = udp_ask(h.udp_addr(), "sink.test.", RecordType::MX);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty(), "local data without MX: NODATA");
    // Passthru in the first zone beats the blocklist's wildcard.
    let m = udp_ask(h.udp_addr(), "ok.evil.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.3"]);
    assert_eq!(ede(&m), None);
    let m = udp_ask(h.udp_addr(), "nodata.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(ede(&m), Some(15));
    let req = query("gone.test.", RecordType::A, true);
    assert!(
        udp_ask_from(
            "127.0.0.1:0",
            h.udp_addr(),
            &req,
            Duration::from_millis(500)
        )
        .is_none(),
        "rpz-drop answers nothing"
    );
    let m = udp_ask(h.udp_addr(), "tcp.test.", RecordType::A);
    assert!(m.metadata.truncation, "rpz-tcp-only over UDP");
    let m = tcp_ask(h.tcp_addr(), "tcp.test.", RecordType::A);
    assert!(!m.metadata.truncation);
    assert_eq!(a_records(&m), vec!["192.0.2.5"]);
    // TXT local data and a local CNAME resolved through the upstream.
    let m = udp_ask(h.udp_addr(), "txt.test.", RecordType::TXT);
    assert_eq!(m.answers.len(), 1);
    assert!(m.answers[0].data.to_string().contains("blocked by policy"));
    let m = udp_ask(h.udp_addr(), "alias.test.", RecordType::A);
    assert_eq!(m.answers.len(), 2, "{m:?}");
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    assert!(m.metadata.authoritative);
}

#[test]
fn cache_hits_skip_the_upstream_and_count_down_ttl() {
    let u = upstream();
    let h = start(&u, base_policy());
    let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    assert_eq!(m.answers[0].ttl, 300);
    assert_eq!(u.queries.load(Ordering::SeqCst), 1);
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..5 {
        let m = udp_ask(h.udp_addr(), "ALLOWED.test.", RecordType::A);
        assert_eq!(a_records(&m), vec!["192.0.2.1"]);
        assert_eq!(m.queries[0].name().to_ascii(), "ALLOWED.test.");
        assert!(
            m.answers[0].ttl < 300,
            "TTL decremented: {}",
            m.answers[0].ttl
        );
    }
    assert_eq!(u.queries.load(Ordering::SeqCst), 1, "served from cache");
    let s = h.stats();
    assert_eq!(s.cache_hits, 5);
    // A different type is a different cache entry.
    udp_ask(h.udp_addr(), "allowed.test.", RecordType::AAAA);
    assert_eq!(u.queries.load(Ordering::SeqCst), 2);
}

#[test]
fn serves_stale_when_the_upstream_goes_silent() {
    let u = upstream();
    let h = start(&u, base_policy());
    let m = udp_ask(h.udp_addr(), "short.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.4"]);
    std::thread::sleep(Duration::from_millis(2100));
    u.silent.store(true, Ordering::SeqCst);
    let m = udp_ask(h.udp_addr(), "short.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.4"], "stale answer");
    assert_eq!(m.answers[0].ttl, 30, "RFC 8767 stale TTL");
    assert_eq!(ede(&m), Some(3), "EDE Stale Answer");
    assert_eq!(h.stats().stale_served, 1);
    // A name never seen gets SERVFAIL.
    let m = udp_ask(h.udp_addr(), "allowed2.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Back up: fresh answers again.
    u.silent.store(false, Ordering::SeqCst);
    let m = udp_ask(h.udp_addr(), "short.test.", RecordType::A);
    assert_eq!(m.answers[0].ttl, 1);
}

#[test]
fn per_org_policy_by_client_address() {
    let u = upstream();
    let mof_allow = Arc::new(Zone::allowlist("mof-allow", "evil.test\n").unwrap());
    let jaxa_block = Arc::new(
        Zone::blocklist("jaxa-block", "allowed2.test\n")
            .unwrap()
            .with_ede(17),
    );
    let ipa_block = Arc::new(Zone::blocklist("ipa-block", "allowed.test\n").unwrap());
    let policy = base_policy()
        .with_org(OrgPolicy {
            name: "mof".into(),
            networks: vec!["127.0.0.2/32".parse().unwrap()],
            zones: vec![mof_allow],
            contact: None,
        })
        .with_org(OrgPolicy {
            name: "jaxa".into(),
            networks: vec!["127.0.0.3/32".parse().unwrap()],
            // jaxa's own list, then its supervisor ipa's (inherited).
            zones: vec![jaxa_block, ipa_block],
            contact: None,
        });
    let (log, mut rx) = query_log(100);
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.query_log = Some(log);
    let h = mimamori_dns::start(cfg, PolicyHandle::new(policy)).unwrap();
    let ask = |from: &str, name: &str| {
        udp_ask_from(
            from,
            h.udp_addr(),
            &query(name, RecordType::A, true),
            Duration::from_secs(3),
        )
        .expect("answer")
    };
    // mof allows what the SOC blocks.
    let m = ask("127.0.0.2:0", "evil.test.");
    assert_eq!(a_records(&m), vec!["192.0.2.66"]);
    let m = ask("127.0.0.1:0", "evil.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // jaxa blocks extra names, with EDE Filtered, and inherits ipa's list.
    let m = ask("127.0.0.3:0", "allowed2.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(17));
    let m = ask("127.0.0.3:0", "allowed.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(15));
    let m = ask("127.0.0.1:0", "allowed2.test.");
    assert_eq!(a_records(&m), vec!["192.0.2.2"]);
    // A cached answer found clear for one org stays blocked for another:
    // the second ask is a cache hit that remembers the first one's verdict.
    let m = ask("127.0.0.1:0", "allowed2.test.");
    assert_eq!(a_records(&m), vec!["192.0.2.2"]);
    let m = ask("127.0.0.3:0", "allowed2.test.");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // The query log names the org and the rule.
    let entries: Vec<_> = rx.try_iter().collect();
    assert_eq!(entries.len(), 7);
    let jaxa = entries
        .iter()
        .find(|e| e.name == "allowed2.test" && e.org.as_deref() == Some("jaxa"))
        .expect("jaxa entry");
    let b = jaxa.blocked_by.as_ref().expect("blocked");
    assert_eq!(
        (&*b.zone, b.rule.as_str(), b.action),
        ("jaxa-block", "allowed2.test", "nxdomain")
    );
    assert_eq!(jaxa.rcode, Some(3));
    let mof = entries
        .iter()
        .find(|e| e.org.as_deref() == Some("mof"))
        .expect("mof entry");
    assert!(mof.blocked_by.is_none());
    assert_eq!(&*mof.answer, "A 192.0.2.66");
}

/// `mimamori pdns` stops the resolver from async code on a signal.
#[tokio::test]
async fn shutdown_from_async_code_stops_without_panicking() {
    let u = upstream();
    let h = start(&u, base_policy());
    let addr = h.udp_addr();
    h.shutdown();
    let req = query("allowed.test.", RecordType::A, true);
    assert!(udp_ask_from("127.0.0.1:0", addr, &req, Duration::from_millis(300)).is_none());
}

#[test]
fn hot_policy_swap_applies_within_a_second_and_loses_no_query() {
    let u = upstream();
    let h = start(&u, base_policy());
    let server = h.udp_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, blocked_seen) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let client = {
        let (stop, answered, blocked_seen) = (stop.clone(), answered.clone(), blocked_seen.clone());
        std::thread::spawn(move || {
            let mut lost = 0;
            let mut sent = 0;
            let began = Instant::now();
            // Bounded by time, not count: the loop must outlast the swap.
            while !stop.load(Ordering::SeqCst) && began.elapsed() < Duration::from_secs(10) {
                sent += 1;
                let req = query("swap.test.", RecordType::A, true);
                match udp_ask_from("127.0.0.1:0", server, &req, Duration::from_secs(2)) {
                    Some(m) => {
                        answered.fetch_add(1, Ordering::SeqCst);
                        if m.metadata.response_code == ResponseCode::NXDomain {
                            blocked_seen.store(true, Ordering::SeqCst);
                        }
                    }
                    None => lost += 1,
                }
            }
            (sent, lost)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!blocked_seen.load(Ordering::SeqCst));
    let zones = vec![Arc::new(
        Zone::blocklist("intel-v2", "swap.test\n").unwrap(),
    )];
    let swapped = Instant::now();
    h.policy().set(Policy::new(zones));
    while !blocked_seen.load(Ordering::SeqCst) {
        assert!(
            swapped.elapsed() < Duration::from_secs(1),
            "swap not enforced within 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = swapped.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (sent, lost) = client.join().unwrap();
    assert_eq!(lost, 0, "no query lost across the swap ({sent} sent)");
    assert!(answered.load(Ordering::SeqCst) > 50, "client kept querying");
    eprintln!("swap enforced after {took:?}; {sent} queries, none lost");
}

#[test]
fn tcp_listener_applies_the_same_policy_and_pipelines() {
    let u = upstream();
    let h = start(&u, base_policy());
    let mut s = std::net::TcpStream::connect(h.tcp_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let m = stream_ask(&mut s, &query("evil.test.", RecordType::A, true));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(15));
    let m = stream_ask(&mut s, &query("allowed.test.", RecordType::A, true));
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    let m = stream_ask(&mut s, &query("allowed.test.", RecordType::A, false));
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    assert!(m.edns.is_none());
}

#[test]
fn dns_over_tls() {
    let tls = test_tls("localhost");
    let u = upstream();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.tls_listen = Some((
        "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        Arc::new(tls.server),
    ));
    let h = mimamori_dns::start(cfg, PolicyHandle::new(base_policy())).unwrap();

    let conn = rustls::ClientConnection::new(Arc::new(tls.client), "localhost".try_into().unwrap())
        .unwrap();
    let tcp = std::net::TcpStream::connect(h.tls_addr().unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let m = stream_ask(&mut tls, &query("evil.test.", RecordType::A, true));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(15));
    let m = stream_ask(&mut tls, &query("allowed.test.", RecordType::A, true));
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
}

#[test]
fn malformed_packets_get_formerr_or_nothing() {
    let u = upstream();
    let h = start(&u, base_policy());
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A header claiming one question, then garbage: FORMERR.
    s.send_to(
        &[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0],
        h.udp_addr(),
    )
    .unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = s.recv_from(&mut buf).expect("FORMERR answer");
    assert_eq!(&buf[..2], &[0xab, 0xcd]);
    assert_eq!(buf[3] & 0xf, 1, "FORMERR");
    assert!(n >= 12);
    // Too short to answer: nothing.
    s.send_to(&[1, 2, 3], h.udp_addr()).unwrap();
    assert!(s.recv_from(&mut buf).is_err());
    // The server still works.
    let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
}

/// One HTTP/1.1 exchange over `s`; returns (status, content-type, body).
fn http<S: std::io::Read + std::io::Write>(
    s: &mut S,
    head: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let headers = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = headers[9..12].parse().unwrap();
    let ct = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (status, ct, buf[split + 4..].to_vec())
}

#[test]
fn dns_over_https_get_and_post() {
    use base64::Engine as _;
    use hickory_proto::op::Message;
    let u = upstream();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.doh_listen = Some(("127.0.0.1:0".parse().unwrap(), None));
    let h = mimamori_dns::start(cfg, PolicyHandle::new(base_policy())).unwrap();
    let addr = h.doh_addr().unwrap();

    let q = query("evil.test.", RecordType::A, true);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&q);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "GET /dns-query?dns={b64} HTTP/1.1\r\nHost: x\r\nAccept: application/dns-message\r\nConnection: close\r\n\r\n"
    );
    let (status, ct, body) = http(&mut s, &head, b"");
    assert_eq!(status, 200);
    assert_eq!(ct, "application/dns-message");
    let m = Message::from_vec(&body).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(15));

    let q = query("allowed.test.", RecordType::A, false);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: application/dns-message\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        q.len()
    );
    let (status, _, body) = http(&mut s, &head, &q);
    assert_eq!(status, 200);
    let m = Message::from_vec(&body).unwrap();
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);

    // Wrong media type: 415; no dns parameter: 400.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        q.len()
    );
    assert_eq!(http(&mut s, &head, &q).0, 415);
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let (status, _, _) = http(
        &mut s,
        "GET /dns-query HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert_eq!(status, 400);
}

#[test]
fn tcp_connection_limit_closes_the_oldest_idle_connection() {
    let u = upstream();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.tcp.max_connections = 1;
    let h = mimamori_dns::start(cfg, PolicyHandle::new(base_policy())).unwrap();
    let mut a = std::net::TcpStream::connect(h.tcp_addr()).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let m = stream_ask(&mut a, &query("evil.test.", RecordType::A, true));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // A second connection does not wait behind the first, idle one: it
    // takes its place...
    let mut b = std::net::TcpStream::connect(h.tcp_addr()).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let m = stream_ask(&mut b, &query("evil.test.", RecordType::A, true));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // ...and the first was closed.
    let mut buf = [0u8; 2];
    assert!(matches!(
        std::io::Read::read(&mut a, &mut buf),
        Ok(0) | Err(_)
    ));
    let s = h.tcp_stats();
    assert_eq!((s.open, s.evicted_global), (1, 1), "{s:?}");
}

#[test]
fn per_client_rate_limit_drops_and_slips() {
    let u = upstream();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.engine.rate_limit = Some(mimamori_dns::RateLimit {
        qps: 10,
        burst: 5,
        slip: 2,
    });
    let h = mimamori_dns::start(cfg, PolicyHandle::new(base_policy())).unwrap();
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    for _ in 0..40 {
        s.send_to(&query("evil.test.", RecordType::A, true), h.udp_addr())
            .unwrap();
    }
    let (mut full, mut tc) = (0, 0);
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = s.recv_from(&mut buf) {
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
        if m.metadata.truncation {
            tc += 1;
        } else {
            full += 1;
        }
    }
    assert!((5..=7).contains(&full), "burst of 5 (+ refill): {full}");
    assert!(
        (14..=18).contains(&tc),
        "every 2nd limited query slips: {tc}"
    );
    assert!(h.stats().rate_limited >= 33);
    // Another client has its own bucket.
    let m = udp_ask_from(
        "127.0.0.2:0",
        h.udp_addr(),
        &query("evil.test.", RecordType::A, true),
        Duration::from_secs(2),
    )
    .expect("answer");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.truncation);
}
