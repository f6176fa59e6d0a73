//! Recursion end to end over real sockets: a small authoritative hierarchy
//! on loopback (a root, the `test.` TLD and `example.test.`, each a tokio
//! UDP and TCP responder on its own 127.0.10.x address), the resolver
//! started with `PdnsConfig::recursion` pointing at the fake root, and a
//! dig-like client on UDP.
//!
//! Hickory's recursor asks every name server on one port
//! (`RecursiveConfig::port`), so the three servers share an unprivileged
//! port on distinct addresses and the tests need no root.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mimamori_dns::{PdnsConfig, Policy, PolicyHandle, RecursiveConfig, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROOT: Ipv4Addr = Ipv4Addr::new(127, 0, 10, 1);
const TLD: Ipv4Addr = Ipv4Addr::new(127, 0, 10, 2);
const LEAF: Ipv4Addr = Ipv4Addr::new(127, 0, 10, 3);

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn rec(owner: &str, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name(owner), ttl, data)
}

/// One zone served authoritatively, with its delegations.
struct AuthZone {
    apex: Name,
    soa: Record,
    records: Vec<Record>,
    /// Child zone, its name server and the server's address (glue).
    delegations: Vec<(Name, Name, Ipv4Addr)>,
}

impl AuthZone {
    fn new(apex: &str, ns: &str, ns_addr: Ipv4Addr) -> AuthZone {
        let rname = format!("hostmaster.{}", apex.trim_start_matches('.'));
        let soa = SOA::new(name(ns), name(&rname), 1, 3600, 600, 86400, 300);
        let apex_name = name(apex);
        AuthZone {
            soa: Record::from_rdata(apex_name.clone(), 3600, RData::SOA(soa)),
            records: vec![
                rec(apex, 3600, RData::NS(NS(name(ns)))),
                rec(ns, 3600, RData::A(A(ns_addr))),
            ],
            apex: apex_name,
            delegations: vec![],
        }
    }

    /// The answer an authoritative server gives: a referral below a zone
    /// cut, else the records (following an in-zone CNAME), else NODATA or
    /// NXDOMAIN with the SOA.
    fn respond(&self, req: &Message) -> Message {
        let mut r = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
        r.metadata.recursion_desired = req.metadata.recursion_desired;
        let Some(q) = req.queries.first() else {
            r.metadata.response_code = ResponseCode::FormErr;
            return r;
        };
        r.add_query(q.clone());
        let qname = q.name().clone();
        if let Some((child, ns, ip)) = self.delegations.iter().find(|(c, ..)| c.zone_of(&qname)) {
            r.add_authority(Record::from_rdata(
                child.clone(),
                3600,
                RData::NS(NS(ns.clone())),
            ));
            r.add_additional(Record::from_rdata(ns.clone(), 3600, RData::A(A(*ip))));
            return r;
        }
        if !self.apex.zone_of(&qname) {
            r.metadata.response_code = ResponseCode::Refused;
            return r;
        }
        r.metadata.authoritative = true;
        let mut owner = qname.clone();
        for _ in 0..8 {
            let here: Vec<&Record> = self.records.iter().filter(|x| x.name == owner).collect();
            let exact: Vec<Record> = here
                .iter()
                .filter(|x| x.record_type() == q.query_type())
                .map(|x| (*x).clone())
                .collect();
            if !exact.is_empty() {
                r.add_answers(exact);
                return r;
            }
            let cname = here.iter().find_map(|x| match &x.data {
                RData::CNAME(c) => Some(((*x).clone(), c.0.clone())),
                _ => None,
            });
            if let Some((x, target)) = cname.filter(|_| q.query_type() != RecordType::CNAME) {
                r.add_answer(x);
                if !self.apex.zone_of(&target) {
                    return r;
                }
                owner = target;
                continue;
            }
            // The name exists when it owns records or has names below it.
            let exists = !here.is_empty()
                || owner == self.apex
                || self.records.iter().any(|x| owner.zone_of(&x.name));
            if !exists && r.answers.is_empty() {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            r.add_authority(self.soa.clone());
            return r;
        }
        r
    }
}

/// A fake authoritative server: counts and logs the queries it gets, and
/// can be told to go silent.
struct Server {
    zone: AuthZone,
    queries: AtomicUsize,
    log: Mutex<Vec<String>>,
    silent: AtomicBool,
}

impl Server {
    fn answer(&self, req: &[u8]) -> Option<Vec<u8>> {
        let m = Message::from_vec(req).ok()?;
        self.queries.fetch_add(1, Ordering::SeqCst);
        if let Some(q) = m.queries.first() {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} {}", q.name(), q.query_type()));
        }
        if self.silent.load(Ordering::SeqCst) {
            return None;
        }
        self.zone.respond(&m).to_vec().ok()
    }
}

/// The hierarchy: `.` on ROOT delegates `test.` to TLD, which delegates
/// `example.test.` to LEAF. All on one port.
struct Hierarchy {
    port: u16,
    root: Arc<Server>,
    tld: Arc<Server>,
    leaf: Arc<Server>,
    _rt: tokio::runtime::Runtime,
}

impl Hierarchy {
    fn start() -> Hierarchy {
        let mut root = AuthZone::new(".", "ns.root.", ROOT);
        root.delegations
            .push((name("test."), name("ns.test."), TLD));
        let mut tld = AuthZone::new("test.", "ns.test.", TLD);
        tld.delegations
            .push((name("example.test."), name("ns.example.test."), LEAF));
        let mut leaf = AuthZone::new("example.test.", "ns.example.test.", LEAF);
        leaf.records.extend([
            rec("www.example.test.", 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 80)))),
            rec("short.example.test.", 1, RData::A(A(Ipv4Addr::new(192, 0, 2, 81)))),
            rec("evil.example.test.", 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 66)))),
            rec(
                "alias.example.test.",
                300,
                RData::CNAME(CNAME(name("www.example.test."))),
            ),
            rec("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.0.1.2.3.4.5.deep.example.test.", 300, RData::A(A(Ipv4Addr::new(192, 0, 2, 82)))),
        ]);
        let (sockets, port) = bind_all([ROOT, TLD, LEAF]);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let servers: Vec<Arc<Server>> = [root, tld, leaf]
            .into_iter()
            .map(|zone| {
                Arc::new(Server {
                    zone,
                    queries: AtomicUsize::new(0),
                    log: Mutex::default(),
                    silent: AtomicBool::new(false),
                })
            })
            .collect();
        for ((udp, tcp), server) in sockets.into_iter().zip(&servers) {
            let _g = rt.enter();
            udp.set_nonblocking(true).unwrap();
            tcp.set_nonblocking(true).unwrap();
            let udp = tokio::net::UdpSocket::from_std(udp).unwrap();
            let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
            rt.spawn(serve_udp(udp, server.clone()));
            rt.spawn(serve_tcp(tcp, server.clone()));
        }
        let mut it = servers.into_iter();
        Hierarchy {
            port,
            root: it.next().unwrap(),
            tld: it.next().unwrap(),
            leaf: it.next().unwrap(),
            _rt: rt,
        }
    }

    fn total(&self) -> usize {
        [&self.root, &self.tld, &self.leaf]
            .iter()
            .map(|s| s.queries.load(Ordering::SeqCst))
            .sum()
    }

    fn logs(&self) -> String {
        [
            ("root", &self.root),
            ("tld", &self.tld),
            ("leaf", &self.leaf),
        ]
        .iter()
        .map(|(n, s)| format!("{n}: {:?}", s.log.lock().unwrap()))
        .collect::<Vec<_>>()
        .join("; ")
    }

    fn config(&self) -> RecursiveConfig {
        RecursiveConfig {
            root_hints: vec![IpAddr::V4(ROOT)],
            port: self.port,
            allow_servers: vec!["127.0.10.0/24".parse().unwrap()],
            timeout: Duration::from_secs(1),
        }
    }
}

/// UDP and TCP sockets on one port for each address.
fn bind_all(addrs: [Ipv4Addr; 3]) -> (Vec<(std::net::UdpSocket, std::net::TcpListener)>, u16) {
    for _ in 0..50 {
        let Ok(first) = std::net::UdpSocket::bind((addrs[0], 0)) else {
            continue;
        };
        let port = first.local_addr().unwrap().port();
        let mut first = Some(first);
        let bound: Option<Vec<_>> = addrs
            .iter()
            .map(|&a| {
                let udp = match first.take() {
                    Some(u) => u,
                    None => std::net::UdpSocket::bind((a, port)).ok()?,
                };
                let tcp = std::net::TcpListener::bind((a, port)).ok()?;
                Some((udp, tcp))
            })
            .collect();
        if let Some(b) = bound {
            return (b, port);
        }
    }
    panic!("no port free on 127.0.10.1-3 for both UDP and TCP");
}

async fn serve_udp(sock: tokio::net::UdpSocket, server: Arc<Server>) {
    let mut buf = vec![0u8; 4096];
    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
        if let Some(resp) = server.answer(&buf[..n]) {
            let _ = sock.send_to(&resp, from).await;
        }
    }
}

async fn serve_tcp(l: tokio::net::TcpListener, server: Arc<Server>) {
    while let Ok((mut s, _)) = l.accept().await {
        let server = server.clone();
        tokio::spawn(async move {
            loop {
                let Ok(len) = s.read_u16().await else { return };
                let mut req = vec![0u8; len as usize];
                if s.read_exact(&mut req).await.is_err() {
                    return;
                }
                let Some(resp) = server.answer(&req) else {
                    continue;
                };
                let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&resp);
                if s.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn start(h: &Hierarchy, policy: Policy) -> mimamori_dns::Handle {
    // No upstream: recursion replaces forwarding.
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![]);
    cfg.udp_threads = 1;
    cfg.recursion = Some(h.config());
    mimamori_dns::start(cfg, PolicyHandle::new(policy)).expect("starts")
}

fn ask(server: SocketAddr, qname: &str, rtype: RecordType) -> Message {
    udp_ask_from(
        "127.0.0.1:0",
        server,
        &query(qname, rtype, true),
        Duration::from_secs(5),
    )
    .unwrap_or_else(|| panic!("no answer for {qname}"))
}

#[test]
fn resolves_through_the_referral_chain() {
    let h = Hierarchy::start();
    let r = start(&h, Policy::new(vec![]));
    let m = ask(r.udp_addr(), "www.example.test.", RecordType::A);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        h.logs()
    );
    assert_eq!(a_records(&m), ["192.0.2.80"], "{}", h.logs());
    assert!(m.metadata.recursion_available);
    assert!(m.metadata.recursion_desired);
    assert!(
        !m.metadata.authoritative,
        "a recursive answer is not authoritative"
    );
    assert_eq!(m.queries[0].name().to_ascii(), "www.example.test.");
    // Each level was asked: the root for test., the TLD for example.test.,
    // the leaf for the name itself.
    assert!(h.root.queries.load(Ordering::SeqCst) >= 1, "{}", h.logs());
    assert!(h.tld.queries.load(Ordering::SeqCst) >= 1, "{}", h.logs());
    assert!(h.leaf.queries.load(Ordering::SeqCst) >= 1, "{}", h.logs());

    // A name in the same zone: the delegations are cached, so only the
    // leaf is asked.
    let (root, tld) = (
        h.root.queries.load(Ordering::SeqCst),
        h.tld.queries.load(Ordering::SeqCst),
    );
    let m = ask(r.udp_addr(), "alias.example.test.", RecordType::A);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        h.logs()
    );
    assert_eq!(a_records(&m), ["192.0.2.80"]);
    assert!(
        m.answers
            .iter()
            .any(|x| matches!(&x.data, RData::CNAME(c) if c.0 == name("www.example.test."))),
        "the CNAME is in the answer: {:?}",
        m.answers
    );
    assert_eq!(h.root.queries.load(Ordering::SeqCst), root, "{}", h.logs());
    assert_eq!(h.tld.queries.load(Ordering::SeqCst), tld, "{}", h.logs());
}

#[test]
fn nxdomain_and_nodata_pass_through() {
    let h = Hierarchy::start();
    let r = start(&h, Policy::new(vec![]));
    let m = ask(r.udp_addr(), "nope.example.test.", RecordType::A);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        h.logs()
    );
    assert!(m.answers.is_empty());
    assert!(
        m.authorities
            .iter()
            .any(|x| x.record_type() == RecordType::SOA && x.name == name("example.test.")),
        "the zone's SOA comes with the NXDOMAIN: {:?}",
        m.authorities
    );
    assert!(m.metadata.recursion_available);

    let m = ask(r.udp_addr(), "www.example.test.", RecordType::AAAA);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        h.logs()
    );
    assert!(m.answers.is_empty(), "NODATA: {:?}", m.answers);
    assert!(m
        .authorities
        .iter()
        .any(|x| x.record_type() == RecordType::SOA));

    // A name under a TLD the root does not know.
    let m = ask(r.udp_addr(), "www.example.invalid.", RecordType::A);
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        h.logs()
    );
}

#[test]
fn blocked_names_are_never_resolved() {
    let h = Hierarchy::start();
    let bl = Zone::blocklist("intel", "evil.example.test\n").unwrap();
    let r = start(&h, Policy::new(vec![Arc::new(bl)]));
    let m = ask(r.udp_addr(), "evil.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(ede(&m), Some(15), "RFC 8914 Blocked");
    let m = ask(r.udp_addr(), "x.evil.example.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(h.root.queries.load(Ordering::SeqCst), 0, "{}", h.logs());
    assert_eq!(h.total(), 0, "no server was asked: {}", h.logs());
    // The resolver itself recurses for other names.
    let m = ask(r.udp_addr(), "www.example.test.", RecordType::A);
    assert_eq!(a_records(&m), ["192.0.2.80"], "{}", h.logs());
}

#[test]
fn the_second_query_is_a_cache_hit() {
    let h = Hierarchy::start();
    let r = start(&h, Policy::new(vec![]));
    let m = ask(r.udp_addr(), "www.example.test.", RecordType::A);
    assert_eq!(a_records(&m), ["192.0.2.80"], "{}", h.logs());
    let m = ask(r.udp_addr(), "nope.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let seen = h.total();
    let hits = r.stats().cache_hits;
    let m = ask(r.udp_addr(), "WWW.example.test.", RecordType::A);
    assert_eq!(a_records(&m), ["192.0.2.80"]);
    assert_eq!(m.queries[0].name().to_ascii(), "WWW.example.test.");
    let m = ask(r.udp_addr(), "nope.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(h.total(), seen, "no server asked again: {}", h.logs());
    assert_eq!(r.stats().cache_hits, hits + 2);
}

#[test]
fn silent_servers_mean_stale_answers_else_servfail() {
    let h = Hierarchy::start();
    let r = start(&h, Policy::new(vec![]));
    // TTL 1: expired in both caches two seconds later.
    let m = ask(r.udp_addr(), "short.example.test.", RecordType::A);
    assert_eq!(a_records(&m), ["192.0.2.81"], "{}", h.logs());
    std::thread::sleep(Duration::from_millis(2100));
    for s in [&h.root, &h.tld, &h.leaf] {
        s.silent.store(true, Ordering::SeqCst);
    }
    let m = ask(r.udp_addr(), "short.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&m), ["192.0.2.81"], "served stale");
    assert_eq!(ede(&m), Some(3), "RFC 8914 Stale Answer");
    // Nothing cached: SERVFAIL once the recursion gives up.
    let m = ask(r.udp_addr(), "never.example.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let s = r.stats();
    assert!(s.upstream_failures >= 2, "{s:?}");
    assert_eq!(s.stale_served, 1);
}

#[test]
fn deep_names_stay_within_the_recursion_limits() {
    // 36 labels, each walked down with an NS query when nothing is cached
    // (as a reverse IPv6 lookup under ip6.arpa): hickory's default limits
    // would refuse this.
    let h = Hierarchy::start();
    let r = start(&h, Policy::new(vec![]));
    let m = ask(
        r.udp_addr(),
        "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.0.1.2.3.4.5.deep.example.test.",
        RecordType::A,
    );
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{}",
        h.logs()
    );
    assert_eq!(a_records(&m), ["192.0.2.82"]);
}
