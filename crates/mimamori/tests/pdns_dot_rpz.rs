//! DNS over TLS and RPZ file reloading through the binary: `mimamori pdns`
//! and `serve` answer DoT (RFC 7858) with the configured certificate, and
//! pick up an edited RPZ file (watched, on SIGHUP, and on the audited API
//! call) while a bad edit keeps the zone in force.

mod common;

use common::{dns_query, mimamori, run_ok, spawn_until};
use serde_json::Value;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ZONE_HEAD: &str =
    "$TTL 60\n@ SOA ns.rpz. hostmaster.rpz. 1 3600 600 86400 60\n  NS ns.rpz.\n";

/// A certificate for `dns.test` (the DoT authentication domain name) and
/// its key, as PEM files in `dir`; returns (cert, key, cert PEM).
fn cert(dir: &Path) -> (PathBuf, PathBuf, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["dns.test".to_string()]).unwrap();
    let (cert, key) = (dir.join("dot-cert.pem"), dir.join("dot-key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    (cert, key, ck.cert.pem())
}

/// Replaces `path` as editors do: a new file renamed over it.
fn write_zone(path: &Path, body: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{ZONE_HEAD}{body}")).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// (rcode, A addresses) of the UDP answer for `name`.
fn ask(server: &str, name: &str) -> Option<(u8, Vec<std::net::Ipv4Addr>)> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2000)))
        .unwrap();
    s.send_to(&dns_query(0x5151, name), server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    let a = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    Some((m.metadata.response_code.low(), a))
}

/// Asks until the answer for `name` is `want` (an A address), returning
/// how long that took; fails after a generous deadline.
fn until_answer(server: &str, name: &str, want: &str) -> Duration {
    let want: std::net::Ipv4Addr = want.parse().unwrap();
    let started = Instant::now();
    loop {
        if let Some((0, a)) = ask(server, name) {
            if a == vec![want] {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} never answered {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One query over DoT to `addr`, authenticating `dns.test` with `ca_pem`
/// and offering ALPN "dot": (rcode, the ALPN the server chose).
async fn dot_ask(addr: &str, ca_pem: &str, name: &str) -> (u8, Option<Vec<u8>>) {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"dot".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect("dns.test".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake with the DoT listener");
    let alpn = tls.get_ref().1.alpn_protocol().map(|p| p.to_vec());
    let q = dns_query(0x7858, name);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    tls.write_all(&framed).await.unwrap();
    let len = tokio::time::timeout(Duration::from_secs(5), tls.read_u16())
        .await
        .expect("a DoT answer in time")
        .unwrap();
    let mut buf = vec![0u8; len as usize];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[..2], &[0x78, 0x58]);
    (buf[3] & 0x0f, alpn)
}

/// Whether kdig must be there: in CI (`CI`) or wherever PostgreSQL is
/// required too (`MIMAMORI_REQUIRE_POSTGRES`), as `.ci/run` sets; a
/// missing kdig is then a failure, not a skip.
fn kdig_required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| !v.is_empty() && v != "0" && v != "false")
            .unwrap_or(false)
    };
    on("CI") || on("MIMAMORI_REQUIRE_POSTGRES")
}

/// `kdig +tls` against the listener, authenticating `dns.test` with the
/// CA in `ca`: the rcode it prints. `None` (after printing why) when kdig
/// is not installed and not required (see [`kdig_required`]).
fn kdig_status(addr: &str, ca: &Path, name: &str) -> Option<String> {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let out = Command::new("kdig")
        .args(["-p", port, &format!("@{host}"), "+tls"])
        .arg(format!("+tls-ca={}", ca.display()))
        .args(["+tls-hostname=dns.test", "+timeout=3", "+retry=0", name])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !kdig_required() => {
            eprintln!(
                "SKIPPED: kdig +tls against {addr} (kdig is not installed: apt-get install knot-dnsutils; \
                 set CI=1 to make this a failure)"
            );
            return None;
        }
        Err(e) => panic!("kdig cannot run ({e}); CI needs it: apt-get install knot-dnsutils"),
    };
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kdig failed ({}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .and_then(|s| s.split(';').next())
        .map(|s| s.trim().to_string());
    Some(status.unwrap_or_else(|| panic!("kdig printed no status: {text}")))
}

/// Rewrites `path` in place with `body` (the same length as what it holds)
/// and puts its modification time back: the same inode, size and time, so
/// the watcher cannot see the change. Only a forced reload (SIGHUP or the
/// API call) can put it in force.
fn edit_unseen(path: &Path, body: &str) {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    let text = format!("{ZONE_HEAD}{body}");
    assert_eq!(text.len() as u64, m.len(), "the edit must keep the size");
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.set_modified(m.modified().unwrap()).unwrap();
    drop(f);
    let n = std::fs::metadata(path).unwrap();
    assert_eq!(
        (n.modified().unwrap(), n.len(), n.ino()),
        (m.modified().unwrap(), m.len(), m.ino()),
        "the watcher would see this edit"
    );
    assert_eq!(std::fs::read_to_string(path).unwrap(), text);
}

/// The A answer for `name` stays `want` across several of the watcher's
/// checks (its poll is 250 ms): the watcher did not apply the unseen edit.
fn still_answers(server: &str, name: &str, want: &str) {
    let want: std::net::Ipv4Addr = want.parse().unwrap();
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            ask(server, name),
            Some((0, vec![want])),
            "{name} changed without a forced reload"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_pdns_answers_dot_and_follows_its_rpz_file() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, pem) = cert(dir.path());
    let zone = dir.path().join("block.rpz");
    write_zone(&zone, "evil.example CNAME .\n");
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let log = dir.path().join("pdns.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args(["pdns", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(silent.local_addr().unwrap().to_string())
        .arg("--rpz")
        .arg(format!("{}=rpz", zone.display()))
        .args(["--dot-listen", "127.0.0.1:0", "--dot-tls-cert"])
        .arg(&cert)
        .arg("--dot-tls-key")
        .arg(&key)
        .env("MIMAMORI_LOG", "info");
    let (p, lines) = spawn_with_log(
        &mut cmd,
        &log,
        &["pdns listening", "DNS over TLS listening"],
    );
    let dns = lines[0].split_whitespace().last().unwrap().to_string();
    let dot = lines[1].split_whitespace().last().unwrap().to_string();

    // DoT: the policy applies, ALPN "dot" is chosen.
    let (rcode, alpn) = dot_ask(&dot, &pem, "evil.example").await;
    assert_eq!(rcode, 3, "NXDOMAIN over DoT");
    assert_eq!(alpn.as_deref(), Some(&b"dot"[..]));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    if let Some(status) = kdig_status(&dot, &ca, "evil.example") {
        assert_eq!(status, "NXDOMAIN");
    }

    // The file is edited: the new answer is served without a restart.
    assert_eq!(ask(&dns, "evil.example").map(|r| r.0), Some(3));
    write_zone(&zone, "evil.example A 127.0.0.9\n");
    let took = until_answer(&dns, "evil.example", "127.0.0.9");
    eprintln!("edited RPZ file in force after {} ms", took.as_millis());

    // A bad edit keeps the zone in force and says where it is wrong.
    write_zone(
        &zone,
        "evil.example A 127.0.0.10\nbroken.example A 300.1.1.1\n",
    );
    let started = Instant::now();
    while !read(&log).contains("bad A record") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no error logged: {}",
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let logged = read(&log);
    assert!(
        logged.contains("block.rpz") && logged.contains("line 5"),
        "{logged}"
    );
    assert_eq!(
        ask(&dns, "evil.example"),
        Some((0, vec!["127.0.0.9".parse().unwrap()]))
    );

    // SIGHUP reads the files again (and does not stop the resolver): an
    // edit the watcher cannot see is in force after SIGHUP, and not before.
    write_zone(&zone, "evil.example A 127.0.0.11\n");
    until_answer(&dns, "evil.example", "127.0.0.11");
    edit_unseen(&zone, "evil.example A 127.0.0.13\n");
    still_answers(&dns, "evil.example", "127.0.0.11");
    let pid = p.0.id().to_string();
    run_ok(Command::new("kill").args(["-HUP", &pid]));
    let took = until_answer(&dns, "evil.example", "127.0.0.13");
    assert!(read(&log).contains("SIGHUP"), "{}", read(&log));
    eprintln!("SIGHUP: edit in force after {} ms", took.as_millis());
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// [`spawn_until`] with stderr (the log) to `log`.
fn spawn_with_log(
    cmd: &mut Command,
    log: &Path,
    markers: &[&str],
) -> (common::Running, Vec<String>) {
    // spawn_until sets stderr to inherit; a wrapper shell redirects it.
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("exec \"$@\" 2>>\"$LOGFILE\"")
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .env("LOGFILE", log);
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    spawn_until(&mut sh, markers, Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_dot_and_reloads_rpz_files_by_api_and_by_watching() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report: Value =
        serde_json::from_str(&run_ok(mimamori(&data).args(["init", "--json"]))).unwrap();
    let admin = report["admin_token"].as_str().unwrap().to_string();
    let out = run_ok(mimamori(&data).args([
        "token",
        "create",
        "--org",
        "soc",
        "--role",
        "soc-analyst",
        "--name",
        "analyst",
        "--json",
    ]));
    let analyst = serde_json::from_str::<Value>(&out).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let (cert, key, pem) = cert(dir.path());
    let zone = dir.path().join("soc.rpz");
    write_zone(&zone, "evil.example CNAME .\n");
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = dir.path().join("mimamori.toml");
    std::fs::write(
        &config,
        format!(
            "[pdns]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{}\"]\nrpz = [\"{}=rpz\"]\n\
             unattributed = \"log\"\n\
             dot_listen = \"127.0.0.1:0\"\ndot_tls_cert = \"{}\"\ndot_tls_key = \"{}\"\n",
            silent.local_addr().unwrap(),
            zone.display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let (_server, lines) = spawn_until(
        &mut cmd,
        &[
            "API listening",
            "Protective DNS listening",
            "Protective DNS over TLS listening",
        ],
        Duration::from_secs(60),
    );
    let api = lines[0].split_whitespace().last().unwrap().to_string();
    let dns = lines[1].split_whitespace().last().unwrap().to_string();
    let dot = lines[2].split_whitespace().last().unwrap().to_string();

    let (rcode, alpn) = dot_ask(&dot, &pem, "evil.example").await;
    assert_eq!(rcode, 3, "NXDOMAIN over DoT");
    assert_eq!(alpn.as_deref(), Some(&b"dot"[..]));
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pem).unwrap();
    if let Some(status) = kdig_status(&dot, &ca, "evil.example") {
        assert_eq!(
            status, "NXDOMAIN",
            "kdig +tls against serve's [pdns] dot_listen"
        );
    }

    // Watching: an edit is in force without any call.
    write_zone(&zone, "evil.example A 127.0.0.9\n");
    let took = until_answer(&dns, "evil.example", "127.0.0.9");
    eprintln!(
        "edited RPZ file in force under serve after {} ms",
        took.as_millis()
    );

    // The API call: soc-admin only, audited, reports each file.
    let client = reqwest::Client::new();
    let reload = |token: &str| {
        client
            .post(format!("{api}/api/v1/dns/rpz/reload"))
            .bearer_auth(token)
            .send()
    };
    // An edit the watcher cannot see: in force only after the call.
    edit_unseen(&zone, "evil.example A 127.0.0.8\n");
    still_answers(&dns, "evil.example", "127.0.0.9");
    let r = reload(&analyst).await.unwrap();
    assert_eq!(r.status(), 403);
    still_answers(&dns, "evil.example", "127.0.0.9");
    let r = reload(&admin).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["files"][0]["status"], "reloaded", "{body}");
    assert_eq!(body["files"][0]["zone"], "rpz", "{body}");
    assert_eq!(body["files"][0]["names"], 1, "{body}");
    until_answer(&dns, "evil.example", "127.0.0.8");

    // A bad edit: the call fails naming the line; the zone stays.
    std::fs::write(
        &zone,
        format!("{ZONE_HEAD}evil.example A 127.0.0.10\nx A 1.2.3\n"),
    )
    .unwrap();
    let r = reload(&admin).await.unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("soc.rpz") && detail.contains("line 5") && detail.contains("kept"),
        "{problem}"
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        ask(&dns, "evil.example"),
        Some((0, vec!["127.0.0.8".parse().unwrap()]))
    );
    // Fixed again: in force.
    write_zone(&zone, "evil.example A 127.0.0.12\n");
    until_answer(&dns, "evil.example", "127.0.0.12");

    let audit: Value = client
        .get(format!("{api}/api/v1/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reloads: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "dns.rpz.reload")
        .collect();
    assert_eq!(reloads.len(), 2, "{audit}");
    assert_eq!(reloads[0]["detail"]["files"][0]["status"], "failed");
    assert_eq!(reloads[1]["detail"]["files"][0]["status"], "reloaded");
}
