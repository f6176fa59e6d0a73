//! The product loop through the binary: intel in over the API → the
//! Protective DNS resolver blocks it (real DNS over UDP) → the blocked
//! query is telemetry → detection raises an alert for the client's org.
//! The standalone resolver's sinkhole and block page. Plus the offline
//! tools: `mimamori hunt`, `mimamori rules check`,
//! `mimamori intel import/export`, `mimamori intel report add`, and the
//! demo's detections.

mod common;

use common::{corpora, dns_query, mimamori, run_err, run_ok, spawn_until};
use serde_json::{json, Value};
use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sends a query and returns (rcode, whether an EDE option is present).
fn ask(server: &str, name: &str) -> Option<(u8, bool)> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    s.send_to(&dns_query(0x4d4d, name), server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    let r = &buf[..n];
    assert_eq!(&r[..2], &[0x4d, 0x4d], "answer to another query");
    // EDE: option code 15 inside the OPT record.
    let ede = r.windows(2).any(|w| w == [0x00, 0x0f]);
    Some((r[3] & 0x0f, ede))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intel_blocks_in_dns_and_the_blocked_query_becomes_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report: Value =
        serde_json::from_str(&run_ok(mimamori(&data).args(["init", "--json"]))).unwrap();
    let admin = report["admin_token"].as_str().unwrap().to_string();
    // Clients on loopback belong to mof.
    run_ok(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "soc",
        "--slug",
        "mof",
        "--name",
        "財務省",
        "--network",
        "127.0.0.0/8",
    ]));
    // An upstream that never answers: only blocked names are asked.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream = silent.local_addr().unwrap().to_string();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("MIMAMORI_PDNS_LISTEN", "127.0.0.1:0")
        .env("MIMAMORI_PDNS_UPSTREAMS", &upstream);
    let (_server, lines) = spawn_until(
        &mut cmd,
        &["API listening", "Protective DNS listening"],
        Duration::from_secs(60),
    );
    let api = lines[0].split_whitespace().last().unwrap().to_string();
    let dns = lines[1].split_whitespace().last().unwrap().to_string();
    let client = reqwest::Client::new();

    // The SOC adds a C2 domain to its intel.
    let r = client
        .post(format!(
            "{api}/api/v1/intel/import?format=plain&subdomains=true&confidence=90&source=c2"
        ))
        .bearer_auth(&admin)
        .body("c2.loop-test.example\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    // The resolver blocks it (and its sub-domains) once the policy reloads.
    let started = Instant::now();
    let (rcode, ede) = loop {
        match ask(&dns, "beacon.c2.loop-test.example") {
            Some((3, ede)) => break (3, ede),
            _ if started.elapsed() > Duration::from_secs(10) => {
                panic!("the intel was not enforced by the resolver")
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    eprintln!(
        "intel enforced by the resolver after {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(rcode, 3, "NXDOMAIN");
    assert!(ede, "blocked answers carry an Extended DNS Error");

    // The blocked query is telemetry of mof, and detection alerts mof.
    let started = Instant::now();
    let alert = loop {
        let r: Value = client
            .get(format!("{api}/api/v1/alerts?kind=indicator"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(a) = r["items"].as_array().and_then(|a| a.first()) {
            break a.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no alert from the blocked query: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alert["entity"], "c2.loop-test.example");
    assert_eq!(
        alert["context"]["observed"]["value"],
        "beacon.c2.loop-test.example"
    );
    let orgs: Value = client
        .get(format!("{api}/api/v1/orgs"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mof = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["slug"] == "mof")
        .unwrap();
    assert_eq!(alert["org_id"], mof["id"]);
    // And analysts can query it in the archive.
    let started = Instant::now();
    loop {
        let r: Value = client
            .post(format!("{api}/api/v1/query"))
            .bearer_auth(&admin)
            .json(
                &json!({"sql": "SELECT query.hostname AS hostname, raw FROM events WHERE class_uid = 4003 AND metadata.product.name = 'mimamori.pdns'"}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // The queries before the reload went upstream (and failed); the
        // blocked one says by what.
        let rows = r["rows"].as_array().cloned().unwrap_or_default();
        if rows.iter().any(|row| {
            row["hostname"] == "beacon.c2.loop-test.example"
                && row["raw"].as_str().unwrap().contains("blocked_by")
        }) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The resolver's counters are on /metrics.
    let metrics = client
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pdns_blocked"), "{metrics}");
    assert!(metrics.contains("detection_alerts_opened"), "{metrics}");
}

#[test]
fn standalone_pdns_blocks_from_an_rpz_file() {
    let dir = tempfile::tempdir().unwrap();
    let zone = dir.path().join("block.rpz");
    std::fs::write(
        &zone,
        "$TTL 60\n@ SOA ns.rpz. hostmaster.rpz. 1 3600 600 86400 60\n  NS ns.rpz.\nevil.example CNAME .\n*.evil.example CNAME .\n",
    )
    .unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args(["pdns", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(silent.local_addr().unwrap().to_string())
        .arg("--rpz")
        .arg(format!("{}=rpz", zone.display()))
        .env("MIMAMORI_LOG", "warn");
    let (_p, lines) = spawn_until(&mut cmd, &["pdns listening"], Duration::from_secs(30));
    let addr = lines[0].split_whitespace().last().unwrap().to_string();
    assert_eq!(ask(&addr, "www.evil.example").map(|r| r.0), Some(3));
    // A missing zone file is a clear error.
    let err = run_err(Command::new(env!("CARGO_BIN_EXE_mimamori")).args([
        "pdns",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:53",
        "--rpz",
        "/nonexistent.rpz",
    ]));
    assert!(err.contains("nonexistent.rpz"), "{err}");
}

/// The A addresses of the answer to `name` from `server`.
fn addresses(server: &str, name: &str) -> Vec<std::net::IpAddr> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    s.send_to(&dns_query(0x4d4e, name), server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).expect("an answer");
    let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            hickory_proto::rr::RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_pdns_sinkholes_to_its_block_page() {
    let dir = tempfile::tempdir().unwrap();
    // An RPZ sinkhole (local data), and a blocklist the sinkhole option
    // turns into one.
    let zone = dir.path().join("sinkhole.rpz");
    std::fs::write(
        &zone,
        "$TTL 60\n@ SOA ns.rpz. hostmaster.rpz. 1 3600 600 86400 60\n  NS ns.rpz.\n\
         evil.example A 127.0.0.1\n*.evil.example A 127.0.0.1\n",
    )
    .unwrap();
    let list = dir.path().join("block.txt");
    std::fs::write(&list, "ads.example\n").unwrap();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args(["pdns", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(silent.local_addr().unwrap().to_string())
        .arg("--rpz")
        .arg(format!("{}=rpz", zone.display()))
        .arg("--blocklist")
        .arg(&list)
        .args(["--sinkhole-v4", "127.0.0.1", "--block-page", "127.0.0.1:0"])
        .args(["--block-contact", "SOC desk <soc@example.test>"])
        .env("MIMAMORI_LOG", "warn");
    let (_p, lines) = spawn_until(
        &mut cmd,
        &["pdns listening", "block page listening"],
        Duration::from_secs(30),
    );
    let dns = lines[0].split_whitespace().last().unwrap().to_string();
    let page: std::net::SocketAddr = lines[1]
        .split_whitespace()
        .last()
        .and_then(|u| u.strip_prefix("http://"))
        .unwrap()
        .parse()
        .unwrap();
    let sink: Vec<std::net::IpAddr> = vec!["127.0.0.1".parse().unwrap()];
    assert_eq!(addresses(&dns, "www.evil.example"), sink);
    assert_eq!(addresses(&dns, "ads.example"), sink);
    // The browser goes to the sinkhole address, the name as Host.
    let url = format!("http://{}:{}/", sink[0], page.port());
    let client = reqwest::Client::new();
    let get = |host: &'static str| {
        let r = client.get(&url).header("host", host).send();
        async move {
            let r = r.await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = get("www.evil.example").await;
    assert_eq!(status, 403, "{body}");
    for want in [
        "www.evil.example",
        "<dd>rpz</dd>",
        "*.evil.example",
        "SOC desk &lt;soc@example.test&gt;",
    ] {
        assert!(body.contains(want), "{want:?} not in {body}");
    }
    let (status, body) = get("ads.example").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("block.txt"), "the list's name: {body}");
    let (status, _) = get("fine.example").await;
    assert_eq!(status, 404);
}

#[test]
fn standalone_pdns_recursive_blocks_and_checks_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("block.txt");
    std::fs::write(&list, "evil.example\n").unwrap();
    // A root server that is never asked (TEST-NET): blocked names are
    // answered without recursing.
    let hints = dir.path().join("named.root");
    std::fs::write(
        &hints,
        ". 3600000 NS A.ROOT.\nA.ROOT. 3600000 A 192.0.2.1\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args([
        "pdns",
        "--listen",
        "127.0.0.1:0",
        "--recursive",
        "--root-hints",
    ])
    .arg(&hints)
    .arg("--blocklist")
    .arg(&list)
    .env("MIMAMORI_LOG", "warn");
    let (_p, lines) = spawn_until(&mut cmd, &["pdns listening"], Duration::from_secs(30));
    let addr = lines[0].split_whitespace().last().unwrap().to_string();
    assert_eq!(ask(&addr, "www.evil.example").map(|r| r.0), Some(3));

    let pdns = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mimamori"));
        c.args(["pdns", "--listen", "127.0.0.1:0"]).args(args);
        run_err(&mut c)
    };
    // Neither way to resolve, or both: clap says which flags.
    let err = pdns(&[]);
    assert!(
        err.contains("--upstream") && err.contains("--recursive"),
        "{err}"
    );
    let err = pdns(&["--recursive", "--upstream", "127.0.0.1:53"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = pdns(&["--upstream", "127.0.0.1:53", "--root-hints", "/x"]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = pdns(&["--root-hints", "/x"]);
    assert!(err.contains("--recursive"), "{err}");
    let err = pdns(&[
        "--upstream",
        "127.0.0.1:53",
        "--recursion-allow",
        "10.0.0.0/8",
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = pdns(&["--recursive", "--recursion-allow", "10.0.0.300/8"]);
    assert!(err.contains("--recursion-allow"), "{err}");
    // A bad root hints file names its line.
    std::fs::write(&hints, ";\nA.ROOT. 3600000 A 192.0.2.300\n").unwrap();
    let err = pdns(&["--recursive", "--root-hints", hints.to_str().unwrap()]);
    assert!(err.contains("line 2") && err.contains("IPv4"), "{err}");
}

/// A stand-in primary for `rpz.test.` on 127.0.0.1 TCP: answers SOA and
/// AXFR from the current version (serial, owner → CNAME target); refuses
/// IXFR so the secondary falls back to AXFR. Stops when dropped.
/// The primary's zone: its serial and (owner, CNAME target) pairs.
type PrimaryZone = std::sync::Arc<std::sync::Mutex<(u32, Vec<(&'static str, &'static str)>)>>;

struct Primary {
    addr: std::net::SocketAddr,
    zone: PrimaryZone,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Primary {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Primary {
    fn start(serial: u32, names: Vec<(&'static str, &'static str)>) -> Primary {
        use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
        use hickory_proto::rr::{Name, RData, Record, RecordType};
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let zone = std::sync::Arc::new(std::sync::Mutex::new((serial, names)));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (z, st) = (zone.clone(), stop.clone());
        std::thread::spawn(move || {
            let apex = Name::from_ascii("rpz.test.").unwrap();
            let soa = |serial: u32| {
                let rd = format!("ns.rpz.test. hostmaster.rpz.test. {serial} 3600 600 86400 60");
                Record::from_rdata(
                    apex.clone(),
                    60,
                    RData::try_from_str(RecordType::SOA, &rd).unwrap(),
                )
            };
            while !st.load(Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = s.set_nonblocking(false);
                let mut len = [0u8; 2];
                if s.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                if s.read_exact(&mut req).is_err() {
                    continue;
                }
                let req = Message::from_vec(&req).unwrap();
                let q = req.queries[0].clone();
                let mut r = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
                r.metadata.authoritative = true;
                r.add_query(q.clone());
                let (serial, names) = z.lock().unwrap().clone();
                match q.query_type() {
                    RecordType::SOA => {
                        r.add_answer(soa(serial));
                    }
                    RecordType::AXFR => {
                        r.add_answer(soa(serial));
                        for (owner, target) in names {
                            let n = Name::from_ascii(format!("{owner}.rpz.test.")).unwrap();
                            let rd = RData::try_from_str(RecordType::CNAME, target).unwrap();
                            r.add_answer(Record::from_rdata(n, 60, rd));
                        }
                        r.add_answer(soa(serial));
                    }
                    _ => r.metadata.response_code = ResponseCode::NotImp,
                }
                let bytes = r.to_vec().unwrap();
                let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
                out.extend_from_slice(&bytes);
                let _ = s.write_all(&out);
            }
        });
        Primary { addr, zone, stop }
    }
}

#[test]
fn standalone_pdns_transfers_its_rpz_zone_and_follows_notify() {
    let primary = Primary::start(1, vec![("evil.example", "."), ("*.evil.example", ".")]);
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args(["pdns", "--listen", "127.0.0.1:0", "--upstream"])
        .arg(silent.local_addr().unwrap().to_string())
        .arg("--rpz-primary")
        .arg(format!("rpz.test@{}", primary.addr))
        .env("MIMAMORI_LOG", "warn");
    let (_p, lines) = spawn_until(&mut cmd, &["pdns listening"], Duration::from_secs(30));
    let addr = lines[0].split_whitespace().last().unwrap().to_string();
    assert_eq!(ask(&addr, "www.evil.example").map(|r| r.0), Some(3));

    // A new version on the primary, announced by NOTIFY (RFC 1996).
    *primary.zone.lock().unwrap() = (2, vec![("worse.example", ".")]);
    let mut notify = vec![0x12, 0x34, 0x20, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["rpz", "test"] {
        notify.push(label.len() as u8);
        notify.extend_from_slice(label.as_bytes());
    }
    notify.extend_from_slice(&[0, 0, 6, 0, 1]);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.send_to(&notify, &addr).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = s.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..2], &[0x12, 0x34]);
    assert_eq!(buf[2] & 0x78, 0x20, "a NOTIFY answer");
    assert_eq!(buf[3] & 0x0f, 0, "NOTIFY accepted: {:?}", &buf[..n]);
    let started = Instant::now();
    while ask(&addr, "worse.example").map(|r| r.0) != Some(3) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new zone version is not in force"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The old version's names are no longer blocked (the silent upstream
    // makes them SERVFAIL instead of NXDOMAIN).
    assert_ne!(ask(&addr, "www.evil.example").map(|r| r.0), Some(3));
    // A bad source is a clear error.
    let err = run_err(Command::new(env!("CARGO_BIN_EXE_mimamori")).args([
        "pdns",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:53",
        "--rpz-primary",
        "rpz.test",
    ]));
    assert!(err.contains("ZONE@ADDR"), "{err}");
}

#[test]
fn hunt_and_rules_check_over_the_corpora() {
    let c = corpora();
    let out = Command::new(env!("CARGO_BIN_EXE_mimamori"))
        .arg("hunt")
        .arg("--rules")
        .arg(c.join("sigma/rules"))
        .arg("--quiet")
        .arg(c.join("evtx/attack-samples/Execution"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 10, "{} detections", lines.len());
    for d in &lines {
        for field in [
            "rule_id",
            "rule_title",
            "level",
            "timestamp",
            "source",
            "record_id",
        ] {
            assert!(d.get(field).is_some(), "{field} missing in {d}");
        }
        assert!(d["source"].as_str().unwrap().contains("Execution"), "{d}");
    }
    let summary = String::from_utf8(out.stderr).unwrap();
    assert!(summary.contains("detection"), "{summary}");
    // Every SigmaHQ rule compiles: `rules check` succeeds.
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_mimamori"))
            .args(["rules", "check"])
            .arg(c.join("sigma/rules")),
    );
    let err = run_err(Command::new(env!("CARGO_BIN_EXE_mimamori")).args([
        "hunt",
        "--rules",
        "/nonexistent",
        ".",
    ]));
    assert!(err.contains("nonexistent"), "{err}");
    // A data directory would be ignored by hunt: it is refused, by name.
    let err = run_err(
        Command::new(env!("CARGO_BIN_EXE_mimamori"))
            .args(["--data-dir", "/tmp/x", "hunt", "--rules"])
            .arg(c.join("sigma/rules"))
            .arg("."),
    );
    assert!(
        err.contains("--data-dir has no effect on `mimamori hunt`"),
        "{err}"
    );
}

#[test]
fn intel_import_and_export_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    run_ok(mimamori(&data).args([
        "org", "add", "--parent", "soc", "--slug", "mof", "--name", "MOF",
    ]));
    let list = dir.path().join("feed.txt");
    std::fs::write(
        &list,
        "# feed\nhxxp://bad[.]example/x\nbad-domain.example\n10.66.0.0/16\nnot a value\n",
    )
    .unwrap();
    let out = run_ok(
        mimamori(&data)
            .args(["intel", "import", "--format", "plain", "--tlp", "green"])
            .arg(&list),
    );
    assert!(out.contains("3 new"), "{out}");
    // Importing again adds nothing: the feed re-observed the same three
    // (their last-seen time moves, which resets their score's decay).
    let out = run_ok(
        mimamori(&data)
            .args(["intel", "import", "--format", "plain", "--tlp", "green"])
            .arg(&list),
    );
    assert!(out.contains("0 new, 3 updated"), "{out}");
    // STIX from the corpora, validated by the built-in schemas (and, below,
    // by a schema folder given on the command line).
    let c = corpora();
    let out = run_ok(
        mimamori(&data)
            .args(["intel", "import", "--format", "stix", "--strict"])
            .arg(c.join("stix/examples/threat-reports/apt1.json")),
    );
    assert!(out.contains("new"), "{out}");
    let err = run_err(
        mimamori(&data)
            .args([
                "intel",
                "import",
                "--format",
                "stix",
                "--strict",
                "--stix-schemas",
            ])
            .arg(c.join("stix/schemas"))
            .arg(c.join("stix/validator-cases/test_examples/invalid_timestamp.json")),
    );
    assert!(
        err.contains("nothing stored") || err.contains("modified"),
        "{err}"
    );
    // mof sees the GREEN indicators; the RPZ has the domain.
    let rpz = run_ok(mimamori(&data).args(["intel", "export", "--org", "mof", "--format", "rpz"]));
    assert!(rpz.contains("bad-domain.example"), "{rpz}");
    assert!(rpz.contains("SOA"), "{rpz}");
    let feed = dir.path().join("feed-out");
    run_ok(
        mimamori(&data)
            .args([
                "intel",
                "export",
                "--format",
                "misp-feed",
                "--max-tlp",
                "green",
                "--output",
            ])
            .arg(&feed),
    );
    assert!(feed.join("manifest.json").exists());
    assert!(feed.join("hashes.csv").exists());
}

/// A one-font PDF with one page per text, cross-reference table and all,
/// written by hand (independent of the reader under test).
fn pdf(pages: &[&str]) -> Vec<u8> {
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 4 + 2 * i))
        .collect();
    let mut objs = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
    ];
    for (i, text) in pages.iter().enumerate() {
        objs.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
            5 + 2 * i
        ));
        let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET\n");
        objs.push(format!(
            "<< /Length {} >>\nstream\n{content}endstream",
            content.len()
        ));
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = vec![];
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        out.extend(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objs.len() + 1
        )
        .as_bytes(),
    );
    out
}

#[test]
fn intel_report_add_reads_a_pdf_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    let report = dir.path().join("q3.pdf");
    std::fs::write(
        &report,
        pdf(&["Q3 report", "Payloads were staged on cdn-update[.]example"]),
    )
    .unwrap();
    let out = run_ok(
        mimamori(&data)
            .args([
                "intel", "report", "add", "--tlp", "amber", "--title", "Q3", "--source", "cert",
            ])
            .arg(&report),
    );
    assert!(out.contains("2 page(s) of pdf"), "{out}");
    // A name in prose is proposed as that host (exact), not its sub-domains.
    assert!(out.contains("hostname cdn-update.example"), "{out}");
    // A broken PDF is refused with the reason.
    let broken = dir.path().join("broken.pdf");
    std::fs::write(&broken, b"%PDF-1.7\nnot really").unwrap();
    let err = run_err(
        mimamori(&data)
            .args(["intel", "report", "add"])
            .arg(&broken),
    );
    assert!(
        err.contains("broken.pdf") && err.contains("cannot be parsed"),
        "{err}"
    );
}

#[tokio::test]
async fn the_demo_raises_alerts_and_a_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args(["demo", "--port", "0", "--demo-dir"])
        .arg(&demo_dir)
        .env("MIMAMORI_CORPORA", corpora())
        .env("MIMAMORI_LOG", "warn");
    let (_demo, lines) = spawn_until(&mut cmd, &["API:", "block page:"], Duration::from_secs(90));
    let url = |line: &str| {
        line.split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    };
    let base = url(&lines[0]);
    // The C2 domain's sinkhole leads to the block page, which names the
    // intel and the SOC's contact.
    let page = reqwest::Client::new()
        .get(url(&lines[1]))
        .header("Host", "x.update-check.cdn-telemetry.example")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("intel") && page.contains("Central SOC (demo)"),
        "{page}"
    );
    let token: Value = serde_json::from_str(&run_ok(mimamori(&demo_dir).args([
        "token",
        "create",
        "--org",
        "soc",
        "--role",
        "soc-analyst",
        "--name",
        "test",
        "--json",
    ])))
    .unwrap();
    let token = token["secret"].as_str().unwrap().to_string();
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let c: Value = client
            .get(format!("{base}/api/v1/campaigns"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let a: Value = client
            .get(format!("{base}/api/v1/alerts?limit=500"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let alerts = a["items"].as_array().cloned().unwrap_or_default();
        let sigma = alerts
            .iter()
            .any(|x| x["kind"] == "sigma" && x["entity"] == "meti-pc042");
        // The C2 domain is queried at mof, mhlw and jaxa.
        let campaign = c["items"]
            .as_array()
            .and_then(|v| {
                v.iter()
                    .find(|c| c["key"] == "indicator:domain:update-check.cdn-telemetry.example")
            })
            .map(|c| c["org_ids"].as_array().unwrap().len());
        if sigma && campaign == Some(3) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "campaigns: {c}\nalerts: {a}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// An HTTP server on `addr` answering every request with `response`;
/// counts the requests it read.
async fn counting_server(
    addr: &str,
    response: String,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let response = response.clone();
            let n = n.clone();
            tokio::spawn(async move {
                // The head, then the body its content-length announces.
                let mut req = vec![];
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(k) = sock.read(&mut buf).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..k]);
                    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = sock.write_all(response.as_bytes()).await;
            });
        }
    });
    (a, count)
}

/// Webhooks an org admin sets up over the API are delivered by `serve`
/// only to addresses outside the SOC's own networks: loopback (by address
/// and by name), the cloud metadata address, private ranges, and
/// redirects to any of them from an allowed server are refused, each
/// delivery failing with the reason; the one allowed range
/// (`[security] allow_fetch_networks`) gets its test message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_set_up_by_an_org_admin_cannot_reach_internal_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report: Value =
        serde_json::from_str(&run_ok(mimamori(&data).args(["init", "--json"]))).unwrap();
    let soc = report["admin_token"].as_str().unwrap().to_string();
    // The central SOC allows one address: its own webhook receiver.
    let config = data.join("mimamori.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let line = "# allow_fetch_networks = []";
    assert!(text.contains(line), "{text}");
    std::fs::write(
        &config,
        text.replacen(line, "allow_fetch_networks = [\"127.0.0.2/32\"]", 1),
    )
    .unwrap();
    let m1: Value = serde_json::from_str(&run_ok(mimamori(&data).args([
        "org", "add", "--parent", "soc", "--slug", "m1", "--name", "m1", "--json",
    ])))
    .unwrap();
    let m1 = m1["id"].as_str().unwrap().to_string();

    let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string();
    let redirect = |to: String| {
        format!("HTTP/1.1 307 Temporary Redirect\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    };
    // On loopback, outside the allowed address: must never be reached.
    let (inside, inside_hits) = counting_server("127.0.0.1:0", ok.clone()).await;
    let port = inside.port();
    // On the allowed address: the receiver, and three that redirect inside.
    let (receiver, received) = counting_server("127.0.0.2:0", ok.clone()).await;
    let (hop_ip, hop_ip_hits) =
        counting_server("127.0.0.2:0", redirect(format!("http://{inside}/hook"))).await;
    let (hop_name, hop_name_hits) = counting_server(
        "127.0.0.2:0",
        redirect(format!("http://localhost:{port}/hook")),
    )
    .await;
    let (hop_meta, hop_meta_hits) = counting_server(
        "127.0.0.2:0",
        redirect("http://169.254.169.254/latest/meta-data/".into()),
    )
    .await;

    let (_server, lines, log) =
        serve_logged(mimamori(&data).args(["serve", "--listen", "127.0.0.1:0"]));
    let api = lines.split_whitespace().last().unwrap().to_string();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{api}/api/v1/tokens"))
        .bearer_auth(&soc)
        .json(&json!({"org_id": m1, "name": "m1 admin", "role": "org-admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let admin = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // m1's admin adds each webhook and asks for a test message.
    let channel = |target: String| {
        let (client, api, admin, m1) = (&client, &api, &admin, &m1);
        async move {
            let r = client
                .post(format!("{api}/api/v1/notify/channels"))
                .bearer_auth(admin)
                .json(&json!({"org_id": m1, "kind": "webhook", "target": target,
                    "secret": "a-webhook-secret-of-some-length", "min_severity": "low"}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, 201, "{target}: {body}");
            let id = body["id"].as_str().unwrap().to_string();
            let r = client
                .post(format!("{api}/api/v1/notify/channels/{id}/test"))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{target}");
            id
        }
    };
    let mut refused = vec![];
    for target in [
        format!("http://{inside}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.1.2.3/hook".to_string(),
        "http://172.16.5.4/hook".to_string(),
        "http://192.168.1.1/hook".to_string(),
        format!("http://{hop_ip}/hook"),
        format!("http://{hop_name}/hook"),
        format!("http://{hop_meta}/hook"),
    ] {
        let id = channel(target.clone()).await;
        refused.push((target, id));
    }
    channel(format!("http://{receiver}/hook")).await;

    // Every refused delivery fails with the reason; the receiver has its
    // message.
    let started = Instant::now();
    loop {
        let log = log.lock().unwrap().clone();
        let missing: Vec<&(String, String)> = refused
            .iter()
            .filter(|(_, id)| {
                !log.iter().any(|l| {
                    l.contains(id.as_str())
                        && l.contains("notification delivery failed")
                        && l.contains("allow_fetch_networks")
                })
            })
            .collect();
        let delivered = received.load(std::sync::atomic::Ordering::SeqCst);
        if missing.is_empty() && delivered >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "delivered {delivered}; no refusal logged for {missing:?}\nlog:\n{}",
            log.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The redirecting servers were asked (they are allowed); where they
    // pointed was not.
    for (name, hits) in [
        ("redirect by address", &hop_ip_hits),
        ("redirect by name", &hop_name_hits),
        ("redirect to the metadata address", &hop_meta_hits),
    ] {
        assert!(
            hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
            "{name} never asked"
        );
    }
    assert_eq!(
        inside_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a webhook reached loopback"
    );
}

/// Starts `serve`; returns it once its API listens, with that line and
/// every line it logs (stderr) as it comes.
fn serve_logged(
    cmd: &mut Command,
) -> (
    common::Running,
    String,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = common::Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let log = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let stderr = child.0.stderr.take().unwrap();
    let l = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("serve: {line}");
            l.lock().unwrap().push(line);
        }
    });
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    loop {
        let left = Duration::from_secs(60).saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("serve did not say where its API listens"));
        if line.contains("API listening") {
            return (child, line, log);
        }
    }
}
