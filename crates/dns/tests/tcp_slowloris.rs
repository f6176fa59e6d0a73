//! The TCP listener under a slowloris: hundreds of idle connections, from
//! one address or many, opened once or reopened as soon as the resolver
//! closes them, while a legitimate client asks over TCP. Real sockets on
//! loopback (127.0.0.0/8 gives every attacker its own source address).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use mimamori_dns::{PdnsConfig, Policy, PolicyHandle, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// Far above what an answer takes, far below the 10 s the idle
/// connections used to hold the listener for: a generous deadline, not a
/// benchmark (bench/pdns-slowloris.sh measures).
const DEADLINE: Duration = Duration::from_secs(5);

fn start(u: &TestUpstream) -> mimamori_dns::Handle {
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    cfg.async_threads = 2;
    let bl = Zone::blocklist("intel", "evil.test\n").unwrap();
    mimamori_dns::start(cfg, PolicyHandle::new(Policy::new(vec![Arc::new(bl)]))).unwrap()
}

async fn connect_from(src: IpAddr, server: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src, 0))?;
    s.connect(server).await
}

/// One query on a fresh connection from `src`: the answer, or why not.
async fn legit_ask(src: IpAddr, server: SocketAddr, name: &str) -> Result<Message, String> {
    let ask = async {
        let mut s = connect_from(src, server).await.map_err(|e| e.to_string())?;
        let q = query(name, RecordType::A, true);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        s.write_all(&framed).await.map_err(|e| e.to_string())?;
        let len = s.read_u16().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; len as usize];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Message::from_vec(&buf).map_err(|e| e.to_string())
    };
    tokio::time::timeout(DEADLINE, ask)
        .await
        .map_err(|_| format!("no answer within {DEADLINE:?}"))?
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_from_one_address_do_not_delay_others() {
    let u = upstream_with_names();
    let h = start(&u);
    // The attack: 500 idle connections opened once, from one
    // address.
    let mut idle = vec![];
    for _ in 0..500 {
        if let Ok(s) = connect_from(ip("127.0.0.1"), h.tcp_addr()).await {
            idle.push(s);
        }
    }
    assert!(idle.len() >= 400, "only {} connections opened", idle.len());
    for src in ["127.0.0.2", "127.0.0.1"] {
        // Another client, and one behind the attacker's own address.
        let started = Instant::now();
        let m = legit_ask(ip(src), h.tcp_addr(), "evil.test.")
            .await
            .unwrap_or_else(|e| panic!("from {src}: {e}"));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        let m = legit_ask(ip(src), h.tcp_addr(), "allowed.test.")
            .await
            .unwrap_or_else(|e| panic!("from {src}: {e}"));
        assert_eq!(a_records(&m), vec!["192.0.2.1"]);
        eprintln!("from {src}: two answers in {:?}", started.elapsed());
    }
    let s = h.tcp_stats();
    // One address holds at most 32: the rest were closed to make room.
    assert!(s.open <= 33, "{s:?}");
    assert!(s.evicted_client >= 400, "{s:?}");
}

fn upstream_with_names() -> TestUpstream {
    let u = TestUpstream::start();
    u.add("allowed.test.", 300, "A", "192.0.2.1");
    u
}

/// Keeps a connection open from `src`, opening another whenever the
/// resolver closes it, until `stop`.
async fn reconnecting_attacker(
    src: IpAddr,
    server: SocketAddr,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        match connect_from(src, server).await {
            Ok(mut s) => {
                opened.fetch_add(1, Ordering::Relaxed);
                let mut b = [0u8; 1];
                // Returns when the resolver closes the connection.
                tokio::select! {
                    _ = s.read(&mut b) => {}
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_attackers_from_many_addresses_do_not_starve_a_client() {
    let u = upstream_with_names();
    let h = start(&u);
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    // 500 connections from 50 addresses: under the per-client limit, over
    // the global one (256), reopened as soon as they are closed.
    let mut tasks = vec![];
    for a in 1..=50u8 {
        for _ in 0..10 {
            tasks.push(tokio::spawn(reconnecting_attacker(
                IpAddr::from([127, 0, 1, a]),
                h.tcp_addr(),
                stop.clone(),
                opened.clone(),
            )));
        }
    }
    let until = Instant::now() + Duration::from_secs(10);
    // A connect succeeds once the kernel has completed the handshake, before
    // the resolver accepts it, so wait for both counts: CI once saw 500
    // connects but 484 accepts at the instant the first one reached 500.
    while (opened.load(Ordering::Relaxed) < 500 || h.tcp_stats().accepted < 500)
        && Instant::now() < until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The attack is on: 500 connections were accepted. How many are open
    // at this instant depends on the machine: under load the shrunken
    // timeouts close them as fast as they come (CI saw 172 open, 454 timed
    // out), which is the defence working, not a weaker attack.
    let stats = h.tcp_stats();
    assert!(
        opened.load(Ordering::Relaxed) >= 500 && stats.accepted >= 500,
        "the attack did not get going: {stats:?}"
    );
    assert!(
        stats.open >= 200 || stats.timed_out + stats.evicted_global > 0,
        "the table never came under pressure: {stats:?}"
    );
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        let started = Instant::now();
        let name = if i % 2 == 0 {
            "evil.test."
        } else {
            "allowed.test."
        };
        let m = legit_ask(ip("127.0.0.2"), h.tcp_addr(), name)
            .await
            .unwrap_or_else(|e| panic!("query {i} ({name}) under attack: {e}"));
        if i % 2 == 0 {
            assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        } else {
            assert_eq!(a_records(&m), vec!["192.0.2.1"]);
        }
        slowest = slowest.max(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let s = h.tcp_stats();
    eprintln!(
        "slowest of 10 answers under attack: {slowest:?}; attacker connections: {}; {s:?}",
        opened.load(Ordering::Relaxed)
    );
    // The table made room one way or the other: by closing the oldest idle
    // connection when full, or, on a slow machine where the shrunken
    // timeouts (200 ms when nearly full) close attackers before the table
    // fills, by timing them out. Which one wins is a race; both are the
    // defence. `conns::tests::global_limit_closes_the_oldest_idle_anywhere`
    // covers eviction itself deterministically.
    assert!(
        s.evicted_global + s.timed_out > 0,
        "the resolver made room: {s:?}"
    );
    assert!(s.open <= 256, "never over the global limit: {s:?}");
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_time_out() {
    let u = upstream_with_names();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    cfg.tcp.initial_timeout = Duration::from_millis(300);
    cfg.tcp.idle_timeout = Duration::from_millis(600);
    let h = mimamori_dns::start(cfg, PolicyHandle::new(Policy::new(vec![]))).unwrap();
    let closed_within = |mut s: tokio::net::TcpStream| async move {
        let started = Instant::now();
        let mut b = [0u8; 64];
        loop {
            match tokio::time::timeout(DEADLINE, s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("still open after {DEADLINE:?}"),
            }
        }
    };
    // Silent: never sends a byte.
    let silent = connect_from(ip("127.0.0.1"), h.tcp_addr()).await.unwrap();
    // Trickling: half a length prefix, then nothing.
    let mut trickle = connect_from(ip("127.0.0.1"), h.tcp_addr()).await.unwrap();
    trickle.write_all(&[0]).await.unwrap();
    // Answered once, then idle: the idle timeout applies.
    let mut used = connect_from(ip("127.0.0.1"), h.tcp_addr()).await.unwrap();
    let q = query("allowed.test.", RecordType::A, true);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    used.write_all(&framed).await.unwrap();
    let (a, b, c) = tokio::join!(closed_within(silent), closed_within(trickle), async {
        let len = used.read_u16().await.unwrap();
        let mut buf = vec![0u8; len as usize];
        used.read_exact(&mut buf).await.unwrap();
        closed_within(used).await
    });
    eprintln!("closed after: silent {a:?}, trickling {b:?}, idle {c:?}");
    assert!(h.tcp_stats().timed_out >= 3, "{:?}", h.tcp_stats());
}
