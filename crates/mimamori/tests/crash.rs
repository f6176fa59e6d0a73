//! Durability and overload, tested against the real server process:
//! `kill -9` under load loses nothing that was acknowledged, and an
//! overloaded server answers 429 with bounded memory.

mod common;

use common::{mimamori, run_ok};
use mimamori_ingest::{Ingest, IngestConfig};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An initialized data dir with org `a` and a sensor token for it.
fn setup(data: &Path) -> String {
    run_ok(mimamori(data).args(["init", "--json"]));
    run_ok(mimamori(data).args([
        "org", "add", "--parent", "soc", "--slug", "a", "--name", "A",
    ]));
    let out = run_ok(mimamori(data).args([
        "token", "create", "--org", "a", "--role", "sensor", "--name", "s", "--json",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    v["secret"].as_str().unwrap().to_string()
}

/// Starts `serve` on a free port; returns the child and its base URL.
/// A server child that is killed when dropped, so a failing assertion
/// leaves no server behind (it would hold the test harness's output open).
struct Server(Child);

impl std::ops::Deref for Server {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &Path, env: &[(&str, &str)]) -> (Server, String) {
    let mut cmd = mimamori(data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().unwrap().unwrap();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = line.split_whitespace().last().unwrap().to_string();
    assert!(url.starts_with("http://"), "{line}");
    (Server(child), url)
}

fn batch(prefix: &str, n: usize) -> (Vec<String>, String) {
    let markers: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let body = markers
        .iter()
        .map(|m| {
            format!(
                "{{\"marker\":\"{m}\",\"class\":\"dns_activity\",\"dns_query\":\"{m}.example\"}}\n"
            )
        })
        .collect();
    (markers, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = setup(&data);
    let acked: Arc<Mutex<HashSet<String>>> = Default::default();
    let mut sent_total = 0usize;
    for round in 0..5u64 {
        let (mut child, url) = serve(&data, &[]);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = vec![];
        for c in 0..4 {
            let (url, token, acked, stop) =
                (url.clone(), token.clone(), acked.clone(), stop.clone());
            clients.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut sent = 0;
                for b in 0.. {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let (markers, body) = batch(&format!("r{round}-c{c}-b{b}"), 50);
                    sent += markers.len();
                    let resp = client
                        .post(format!("{url}/ingest/v1/events"))
                        .bearer_auth(&token)
                        .body(body)
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = match r.json().await {
                                Ok(v) => v,
                                Err(_) => break, // killed mid-response: not acknowledged
                            };
                            assert_eq!(v["accepted"], 50, "{v}");
                            acked.lock().unwrap().extend(markers);
                        }
                        Ok(r) if r.status() == 429 => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => break, // the server is gone
                    }
                }
                sent
            }));
        }
        // Let load build, then kill without warning at a varying moment.
        tokio::time::sleep(Duration::from_millis(400 + 150 * round)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for c in clients {
            sent_total += c.await.unwrap();
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 1000,
        "too little load to prove anything: {} acked",
        acked.len()
    );

    // Recovery (as the next start would do), then read the whole archive.
    let (ingest, threads) = Ingest::start(IngestConfig::new(data.join("ingest"))).unwrap();
    // A kill -9 tears at most an unacknowledged tail: never WAL damage.
    assert!(ingest.wal_damage().is_empty(), "{:?}", ingest.wal_damage());
    let archive = ingest.archive().clone();
    drop(ingest);
    threads.join();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in archive.read_events(None).unwrap() {
        let m = e
            .body
            .raw
            .get("marker")
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        *seen.entry(m).or_default() += 1;
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|m| !seen.contains_key(*m))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but lost: {missing:?} (of {})",
        acked.len()
    );
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(dups.is_empty(), "stored more than once: {dups:?}");
    eprintln!(
        "sent {sent_total}, acknowledged {}, stored {}",
        acked.len(),
        seen.len()
    );
}

/// `mimamori_NAME` from the server's `/metrics`.
async fn metric(url: &str, name: &str) -> Option<u64> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("mimamori_{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// Syslog over TCP has no acknowledgement a sender can see, so the test
/// reads the server's own count of durable messages (`ingest_events_acked`,
/// only syslog is sent) just before the kill. After recovery the archive
/// must hold at least that many of the round's messages; and since a
/// connection's batches enter the WAL in order, what it holds of each
/// connection must be exactly a prefix of what was sent: no gap, no
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_syslog_load_loses_nothing_durable() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    run_ok(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "soc",
        "--slug",
        "lo",
        "--name",
        "Lo",
        "--network",
        "127.0.0.0/8",
    ]));
    const CONNS: usize = 4;
    let mut durable_by_round = vec![];
    for round in 0..4u64 {
        let mut cmd = mimamori(&data);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env("MIMAMORI_SYSLOG_TCP", "127.0.0.1:0")
            .stdout(Stdio::piped());
        let mut child = Server(cmd.spawn().unwrap());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut tcp) = (None, None);
        while url.is_none() || tcp.is_none() {
            let line = lines.next().expect("serve exited").unwrap();
            let last = line.split_whitespace().last().unwrap_or("").to_string();
            if line.starts_with("mimamori API listening") {
                url = Some(last);
            } else if line.starts_with("syslog tcp") {
                tcp = Some(last);
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let (url, tcp) = (url.unwrap(), tcp.unwrap());
        let mut senders = vec![];
        for c in 0..CONNS {
            let tcp = tcp.clone();
            senders.push(tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&tcp).await.unwrap();
                // Half the connections use octet counting, half newlines.
                let octet = c % 2 == 0;
                let mut next = 0usize;
                loop {
                    let mut chunk = String::new();
                    for i in next..next + 200 {
                        let m =
                            format!("<13>1 2026-11-25T10:00:00Z c{c} app - - - r{round}-c{c}-{i}");
                        if octet {
                            chunk.push_str(&format!("{} {m}", m.len()));
                        } else {
                            chunk.push_str(&m);
                            chunk.push('\n');
                        }
                    }
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        break; // the server is gone
                    }
                    next += 200;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(500 + 200 * round)).await;
        let durable = metric(&url, "ingest_events_acked").await.unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for s in senders {
            s.await.unwrap();
        }
        durable_by_round.push(durable);
    }

    let (ingest, threads) = Ingest::start(IngestConfig::new(data.join("ingest"))).unwrap();
    let archive = ingest.archive().clone();
    drop(ingest);
    threads.join();
    let events = archive.read_events(None).unwrap();
    let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), events.len(), "an id was stored twice");
    // (round, connection) -> message numbers stored.
    let mut stored: HashMap<(u64, usize), Vec<usize>> = HashMap::new();
    for e in &events {
        let m = e.body.fields.message.as_deref().unwrap();
        let mut parts = m.split('-');
        let (r, c, i) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        stored
            .entry((r[1..].parse().unwrap(), c[1..].parse().unwrap()))
            .or_default()
            .push(i.parse().unwrap());
    }
    for (round, durable) in durable_by_round.iter().enumerate() {
        let mut in_round = 0;
        for c in 0..CONNS {
            let mut got = stored.remove(&(round as u64, c)).unwrap_or_default();
            got.sort_unstable();
            let n = got.len();
            assert!(
                got.iter().copied().eq(0..n),
                "round {round} connection {c}: stored messages are not a prefix of those sent (gap or duplicate)"
            );
            in_round += n as u64;
        }
        assert!(
            in_round >= *durable,
            "round {round}: {durable} messages were durable before the kill, {in_round} stored"
        );
        eprintln!("round {round}: durable before the kill {durable}, stored {in_round}");
    }
    assert!(
        stored.is_empty(),
        "unexpected messages: {:?}",
        stored.keys()
    );
    assert!(
        durable_by_round.iter().sum::<u64>() >= 10_000,
        "too little load to prove anything: {durable_by_round:?}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_answers_429_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = setup(&data);
    let (mut child, url) = serve(
        &data,
        &[
            ("MIMAMORI_INGEST_QUEUE_EVENTS", "200"),
            ("MIMAMORI_INGEST_PIPELINE_EVENTS", "2000"),
        ],
    );
    let pid = child.id();
    let client = reqwest::Client::new();

    // A batch larger than the whole queue can never fit: 413, not 429.
    let (_, big) = batch("big", 201);
    let r = client
        .post(format!("{url}/ingest/v1/events"))
        .bearer_auth(&token)
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let counts: Arc<Mutex<HashMap<u16, usize>>> = Default::default();
    let retry_after_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(3);
    let started_at = rss_kib(pid);
    let mut peak = started_at;
    let mut tasks = vec![];
    for c in 0..48 {
        let (url, token, counts, ra, client) = (
            url.clone(),
            token.clone(),
            counts.clone(),
            retry_after_seen.clone(),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut b = 0;
            while Instant::now() < deadline {
                let (_, body) = batch(&format!("c{c}-b{b}"), 100);
                b += 1;
                let r = client
                    .post(format!("{url}/ingest/v1/events"))
                    .bearer_auth(&token)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                if status == 429 {
                    assert_eq!(r.headers().get("retry-after").unwrap(), "1");
                    ra.store(true, std::sync::atomic::Ordering::Relaxed);
                    let v: Value = r.json().await.unwrap();
                    assert!(v["detail"].as_str().unwrap().contains("overloaded"), "{v}");
                }
                *counts.lock().unwrap().entry(status).or_default() += 1;
            }
        }));
    }
    while Instant::now() < deadline {
        peak = peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counts = counts.lock().unwrap().clone();
    eprintln!("statuses: {counts:?}; server RSS {started_at} KiB before the load, peak {peak} KiB");
    assert!(
        counts.get(&429).copied().unwrap_or(0) > 0,
        "no 429 under overload: {counts:?}"
    );
    assert!(
        counts.get(&200).copied().unwrap_or(0) > 0,
        "nothing got through: {counts:?}"
    );
    assert_eq!(
        counts.keys().filter(|s| **s != 200 && **s != 429).count(),
        0,
        "{counts:?}"
    );
    assert!(retry_after_seen.load(std::sync::atomic::Ordering::Relaxed));
    // A 200-event queue and 2,000 events past the log keep the server from
    // growing however hard it is pushed: what 48 connections and their
    // request buffers take, not what they send. (Measured as growth: the allocator's and the idle
    // server's own footprint are not what this bounds.)
    assert!(
        peak - started_at < 96 * 1024,
        "server RSS grew from {started_at} KiB to {peak} KiB under overload"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Syslog over UDP, TCP (both framings) and TLS, attributed to the org
/// whose declared network holds the sender; stored once SIGTERM drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_udp_tcp_tls_into_the_senders_org() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    run_ok(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "soc",
        "--slug",
        "lo",
        "--name",
        "Loopback",
        "--network",
        "127.0.0.0/8",
    ]));
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("MIMAMORI_SYSLOG_UDP", "127.0.0.1:0")
        .env("MIMAMORI_SYSLOG_TCP", "127.0.0.1:0")
        .env("MIMAMORI_SYSLOG_TLS", "127.0.0.1:0")
        .stdout(Stdio::piped());
    let mut child = Server(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = HashMap::new();
    let mut api = None;
    while addr.len() < 3 || api.is_none() {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("mimamori API listening on ") {
            api = line.split_whitespace().last().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("syslog ") {
            let mut it = rest.split_whitespace();
            let proto = it.next().unwrap().to_string();
            addr.insert(proto, line.split_whitespace().last().unwrap().to_string());
        }
    }
    std::thread::spawn(move || for _ in lines {});

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"<13>Nov 25 10:00:00 udp-host app: first datagram",
        &addr["udp"],
    )
    .unwrap();
    udp.send_to(
        b"<14>1 2026-11-25T10:00:00Z udp-host app - - - second datagram\n",
        &addr["udp"],
    )
    .unwrap();

    let mut tcp = tokio::net::TcpStream::connect(&addr["tcp"]).await.unwrap();
    tcp.write_all(b"<13>Nov 25 10:00:01 nl-host app: one\n<13>Nov 25 10:00:02 nl-host app: two\r\n<13>Nov 25 10:00:03 nl-host app: three\n").await.unwrap();
    drop(tcp);
    let mut tcp = tokio::net::TcpStream::connect(&addr["tcp"]).await.unwrap();
    let m1 = "<165>1 2026-11-25T10:00:04.003Z oc-host evntslog - ID47 [exampleSDID@32473 iut=\"3\"] with spaces and \n newline";
    let m2 = "<165>1 2026-11-25T10:00:05Z oc-host app - - - second";
    tcp.write_all(format!("{} {m1}{} {m2}", m1.len(), m2.len()).as_bytes())
        .await
        .unwrap();
    drop(tcp);

    // TLS with the certificate init generated.
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr["tls"]).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"<13>Nov 25 10:00:06 tls-host app: over tls\n")
        .await
        .unwrap();
    tls.shutdown().await.unwrap();
    drop(tls);

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every message counted on /metrics: 2 datagrams, 3 + 2 TCP, 1 TLS.
    let metrics = reqwest::get(format!("{}/metrics", api.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counter = |name: &str| -> Option<u64> {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    };
    assert_eq!(
        counter("mimamori_syslog_messages_received"),
        Some(8),
        "{metrics}"
    );
    assert_eq!(
        counter("mimamori_syslog_messages_accepted"),
        Some(8),
        "{metrics}"
    );
    assert_eq!(
        counter("mimamori_syslog_messages_rejected"),
        Some(0),
        "{metrics}"
    );
    // SIGTERM: a graceful stop flushes the archive.
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let (ingest, threads) = Ingest::start(IngestConfig::new(data.join("ingest"))).unwrap();
    let events = ingest.archive().read_events(None).unwrap();
    drop(ingest);
    threads.join();
    let mut by_host: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *by_host
            .entry(e.body.fields.hostname.clone().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(by_host.get("udp-host"), Some(&2), "{by_host:?}");
    assert_eq!(by_host.get("nl-host"), Some(&3), "{by_host:?}");
    assert_eq!(by_host.get("oc-host"), Some(&2), "{by_host:?}");
    assert_eq!(by_host.get("tls-host"), Some(&1), "{by_host:?}");
    let oc = events
        .iter()
        .find(|e| {
            e.body
                .fields
                .message
                .as_deref()
                .is_some_and(|m| m.contains("with spaces"))
        })
        .unwrap();
    assert!(
        oc.body
            .fields
            .message
            .as_deref()
            .unwrap()
            .contains("newline"),
        "octet counting keeps embedded newlines"
    );
}
