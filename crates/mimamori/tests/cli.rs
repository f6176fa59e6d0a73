//! The `mimamori` binary driven as a user would: init, admin commands,
//! serve (plain and TLS), and the demo.

mod common;

use common::{corpora, mimamori, run_err, run_ok, Running};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a long-running command and waits (up to `limit`) for a stdout
/// line containing `marker`; returns the child and that line.
fn spawn_until(cmd: &mut Command, marker: &str, limit: Duration) -> (Running, String) {
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no line with {marker:?} within {limit:?}"));
    (child, line)
}

fn url_in(line: &str, scheme: &str) -> String {
    let start = line.find(&format!("{scheme}://")).unwrap();
    line[start..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn init_admin_commands_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // Commands on an uninitialized directory say what to do.
    let err = run_err(mimamori(&data).args(["org", "list"]));
    assert!(
        err.contains("not an initialized data directory") && err.contains("init"),
        "{err}"
    );

    let out = run_ok(mimamori(&data).args(["init", "--json", "--root-name", "中央SOC"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    let admin = report["admin_token"].as_str().unwrap().to_string();
    assert!(admin.starts_with("mmr_"));
    for f in [
        "mimamori.toml",
        "mimamori.db",
        "tls/cert.pem",
        "tls/key.pem",
    ] {
        assert!(data.join(f).exists(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key must not be readable by others"
        );
    }
    let err = run_err(mimamori(&data).arg("init"));
    assert!(err.contains("already initialized"), "{err}");

    run_ok(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "soc",
        "--slug",
        "ipa",
        "--name",
        "情報処理推進機構",
        "--kind",
        "supervisor",
    ]));
    run_ok(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "ipa",
        "--slug",
        "jaxa",
        "--name",
        "宇宙航空研究開発機構",
        "--network",
        "192.0.2.0/24",
        "--domain",
        "jaxa.example.jp",
    ]));
    let err = run_err(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "ipa",
        "--slug",
        "bad",
        "--name",
        "x",
        "--network",
        "192.0.2.0/99",
    ]));
    assert!(
        err.contains("networks[0]") && err.contains("192.0.2.0/99"),
        "{err}"
    );
    let err = run_err(mimamori(&data).args([
        "org", "add", "--parent", "nowhere", "--slug", "x", "--name", "x",
    ]));
    assert!(err.contains("no org with slug or id \"nowhere\""), "{err}");
    let tree = run_ok(mimamori(&data).args(["org", "list"]));
    assert!(
        tree.contains("soc [soc] 中央SOC")
            && tree.contains("  ipa [supervisor]")
            && tree.contains("    jaxa [member]"),
        "{tree}"
    );
    let err = run_err(mimamori(&data).args([
        "token", "create", "--org", "ipa", "--role", "boss", "--name", "x",
    ]));
    assert!(
        err.contains("invalid value 'boss' for '--role <ROLE>'")
            && err.contains("supervisor-analyst"),
        "{err}"
    );
    let out = run_ok(mimamori(&data).args([
        "token",
        "create",
        "--org",
        "ipa",
        "--role",
        "supervisor-analyst",
        "--name",
        "ipa analyst",
        "--json",
    ]));
    let sup: Value = serde_json::from_str(&out).unwrap();
    let sup_token = sup["secret"].as_str().unwrap().to_string();
    run_ok(
        mimamori(&data)
            .args([
                "user",
                "add",
                "--org",
                "jaxa",
                "--username",
                "yamada",
                "--role",
                "org-admin",
            ])
            .env("MIMAMORI_PASSWORD", "a very long password"),
    );

    // serve on a free port; the API sees what the CLI made.
    let (_server, line) = spawn_until(
        mimamori(&data).args(["serve", "--listen", "127.0.0.1:0"]),
        "listening on",
        Duration::from_secs(30),
    );
    let base = url_in(&line, "http");
    let client = reqwest::Client::new();
    let orgs: Value = client
        .get(format!("{base}/api/v1/orgs"))
        .bearer_auth(&sup_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slugs: Vec<&str> = orgs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, vec!["ipa", "jaxa"]);
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"org": "jaxa", "username": "yamada", "password": "a very long password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    // The CLI's actions are in the audit log, attributed to the local operator.
    let audit: Value = client
        .get(format!("{base}/api/v1/audit?limit=500"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = audit["items"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["action"] == "user.create" && e["actor_role"] == "local-operator"));
}

#[tokio::test]
async fn serve_over_tls_with_the_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    let (_server, line) = spawn_until(
        mimamori(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MIMAMORI_API_TLS", "self-signed"),
        "listening on",
        Duration::from_secs(30),
    );
    let base = url_in(&line, "https");
    let addr = base.trim_start_matches("https://").to_string();

    // A TLS client that trusts only the certificate init generated.
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    tls.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("{\"status\":\"ok\"}"), "{resp}");

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[tokio::test]
async fn demo_serves_a_realistic_tree_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    cmd.args(["demo", "--port", "0", "--demo-dir"])
        .arg(&demo_dir)
        .env("MIMAMORI_LOG", "warn");
    let (child, line) = spawn_until(&mut cmd, "API:", Duration::from_secs(60));
    let base = url_in(&line, "http");
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(60));
    drop(child);

    // The demo's tree is in its data dir: 9 orgs, a supervisor with three.
    let tree = run_ok(mimamori(&demo_dir).args(["org", "list"]));
    assert_eq!(tree.lines().count(), 9, "{tree}");
    for slug in ["ipa", "jaxa", "nict", "jst", "mof", "mhlw", "meti", "mext"] {
        assert!(
            tree.contains(&format!("{slug} [")),
            "{slug} missing:\n{tree}"
        );
    }
    assert!(tree.contains("財務省"), "{tree}");
    let err = run_err(
        Command::new(env!("CARGO_BIN_EXE_mimamori"))
            .args(["demo", "--port", "0", "--demo-dir"])
            .arg(&demo_dir),
    );
    assert!(err.contains("not empty"), "{err}");
}

/// `mimamori --data-dir DIR demo` runs the demo in DIR (it was ignored),
/// says how long it keeps events, and on SIGTERM says where its data is.
#[test]
fn demo_honours_data_dir_and_says_where_its_data_is() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("mine");
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_mimamori"))
            .arg("--data-dir")
            .arg(&demo_dir)
            .args(["demo", "--port", "0"])
            .env("MIMAMORI_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l: &String| l.contains("Archive:")) {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(rx.recv_timeout(left).expect("no Archive: line within 60 s"));
    }
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("data dir:   {}", demo_dir.display())),
        "{text}"
    );
    assert!(
        text.contains("keeps the last 60 minutes of events"),
        "{text}"
    );
    assert!(demo_dir.join("mimamori.toml").is_file());
    let pid = child.0.id().to_string();
    run_ok(Command::new("kill").args(["-TERM", &pid]));
    let mut after = vec![];
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        after.push(line);
    }
    let after = after.join("\n");
    assert!(
        after.contains(&format!("is kept in {}", demo_dir.display())),
        "{after}"
    );
    assert!(
        after.contains(&format!("rm -rf {}", demo_dir.display())),
        "{after}"
    );
    // Both spellings for different directories: refused, not guessed.
    let err = run_err(
        Command::new(env!("CARGO_BIN_EXE_mimamori"))
            .arg("--data-dir")
            .arg(dir.path().join("a"))
            .args(["demo", "--port", "0", "--demo-dir"])
            .arg(dir.path().join("b")),
    );
    assert!(err.contains("name different directories"), "{err}");
}

/// `mimamori ingest` over real corpora: every EVTX attack sample, a gzipped
/// Zeek log and CloudTrail records, formats detected per file, all into the
/// archive of the named org.
#[test]
fn ingest_files_from_the_corpora() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    run_ok(mimamori(&data).args([
        "org",
        "add",
        "--parent",
        "soc",
        "--slug",
        "mof",
        "--name",
        "財務省",
    ]));
    let c = corpora();
    let out = run_ok(
        mimamori(&data)
            .args(["ingest", "--org", "mof", "--quiet"])
            .arg(c.join("evtx/attack-samples")),
    );
    assert!(
        out.contains("ingested 8255 events from 277 file(s) into mof"),
        "{out}"
    );
    assert!(out.contains("0 record(s) rejected"), "{out}");
    let out = run_ok(
        mimamori(&data)
            .args(["ingest", "--org", "mof", "--quiet"])
            .arg(c.join("zeek/wrccdc/zeek-json/dns.json.gz"))
            .arg(c.join("cloudtrail/otrf/collection")),
    );
    assert!(
        out.contains("ingested 53718 events from 2 file(s)"),
        "{out}"
    );
    // Unknown org and unknown format are precise errors.
    let err = run_err(
        mimamori(&data)
            .args(["ingest", "--org", "nope"])
            .arg(c.join("cloudtrail/otrf/collection")),
    );
    assert!(err.contains("no org with slug or id \"nope\""), "{err}");
    let err = run_err(
        mimamori(&data)
            .args(["ingest", "--org", "mof", "--format", "pcap"])
            .arg(c.join("cloudtrail/otrf/collection")),
    );
    assert!(err.contains("unknown --format \"pcap\""), "{err}");
    // A running server holds the ingest lock: the CLI says what to do.
    let (_server, _) = spawn_until(
        mimamori(&data).args(["serve", "--listen", "127.0.0.1:0"]),
        "listening on",
        Duration::from_secs(30),
    );
    let err = run_err(
        mimamori(&data)
            .args(["ingest", "--org", "mof"])
            .arg(c.join("cloudtrail/otrf/collection")),
    );
    assert!(err.contains("in use by another mimamori process"), "{err}");
}

/// Retention counts from the receive time: EVTX records from 2019 and
/// earlier, ingested now, survive the retention pass of the next `serve`
/// (which deleted them when it went by event time), and `ingest` says how
/// long they are kept.
#[test]
fn old_events_ingested_now_survive_the_next_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    run_ok(mimamori(&data).args([
        "org", "add", "--parent", "soc", "--slug", "mof", "--name", "MOF",
    ]));
    let out = run_ok(
        mimamori(&data)
            .args(["ingest", "--org", "mof", "--quiet"])
            .arg(corpora().join("evtx/attack-samples")),
    );
    assert!(out.contains("ingested 8255 events"), "{out}");
    assert!(
        out.contains(
            "retention: kept for 90 days from now (retention counts from when events are ingested"
        ),
        "{out}"
    );
    let count = |sql: &str| -> Value {
        let out = run_ok(mimamori(&data).args(["query", sql]));
        serde_json::from_str::<Value>(out.lines().next().unwrap()).unwrap()
    };
    let before = count("SELECT count(*) AS n, min(time) AS oldest FROM events");
    assert_eq!(before["n"], 8255);
    // Older than the 90-day retention by their own time.
    let ninety_days_ago = mimamori_core::now_millis() - 91 * 86_400_000;
    assert!(
        before["oldest"].as_i64().unwrap() < ninety_days_ago,
        "{before}"
    );
    // `serve` runs its first retention pass at start; wait for it.
    let mut child = Running(
        mimamori(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MIMAMORI_LOG", "warn,mimamori=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("retention:") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert!(line.contains("nothing expired"), "{line}");
    drop(child);
    assert_eq!(count("SELECT count(*) AS n FROM events")["n"], 8255);
}

/// The archive is OCSF 1.3 for outside tools: DuckDB reads the Parquet
/// files the binary wrote by OCSF names (`class_uid`, `query.hostname`,
/// `metadata.product.name`, `src_endpoint.ip`) and agrees with `mimamori
/// query`. Skipped (with the reason printed) only where the `duckdb`
/// Python package is missing and `CI` is unset.
#[test]
fn duckdb_reads_the_archive_by_ocsf_names() {
    let probe = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but python3 cannot import duckdb (pip install duckdb): {probe:?}");
        }
        eprintln!("SKIPPED duckdb_reads_the_archive_by_ocsf_names: python3 cannot import duckdb (pip install duckdb)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    run_ok(mimamori(&data).args([
        "org", "add", "--parent", "soc", "--slug", "mof", "--name", "MOF",
    ]));
    run_ok(
        mimamori(&data)
            .args(["ingest", "--org", "mof", "--quiet"])
            .arg(corpora().join("zeek/wrccdc/zeek-json/dns.json.gz"))
            .arg(corpora().join("cloudtrail/otrf/collection")),
    );
    let archive = data.join("ingest/archive");
    let sql = "SELECT query.hostname AS hostname, count(*) AS n FROM events WHERE class_uid = 4003 GROUP BY query.hostname ORDER BY n DESC, hostname LIMIT 5";
    let ours: Vec<(String, i64)> = run_ok(mimamori(&data).args(["query", sql]))
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["hostname"].as_str().unwrap().to_string(),
                v["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ours.len(), 5, "{ours:?}");
    let script = r#"
import duckdb, json, sys
glob = sys.argv[1] + "/**/*.parquet"
top = duckdb.sql(f"SELECT query.hostname AS hostname, count(*) AS n FROM read_parquet('{glob}') WHERE class_uid = 4003 GROUP BY query.hostname ORDER BY n DESC, hostname LIMIT 5").fetchall()
classes = duckdb.sql(f"SELECT class_uid, category_uid, any_value(class_name), count(*) FROM read_parquet('{glob}') GROUP BY ALL ORDER BY class_uid").fetchall()
api = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE class_uid = 6003 AND api.operation IS NOT NULL AND metadata.product.name = 'cloudtrail' AND type_uid = class_uid * 100 + activity_id").fetchall()
src = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}') WHERE class_uid = 4003 AND src_endpoint.ip IS NOT NULL").fetchall()
print(json.dumps({"top": top, "classes": classes, "api": api[0][0], "src": src[0][0]}))
"#;
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(&archive));
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let theirs: Vec<(String, i64)> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap()))
        .collect();
    assert_eq!(theirs, ours);
    let classes = v["classes"].as_array().unwrap();
    assert!(
        classes
            .iter()
            .any(|c| c[0] == 4003 && c[1] == 4 && c[2] == "DNS Activity"),
        "{v}"
    );
    assert!(v["api"].as_i64().unwrap() > 0, "{v}");
    assert!(v["src"].as_i64().unwrap() > 0, "{v}");
}

/// The README's first steps on a fresh machine, and nothing else: `init`,
/// `serve` with the config `init` wrote, a STIX bundle imported over the
/// API (validated by the built-in schemas), and the resolver `init` turned
/// on blocking a domain of that bundle (NXDOMAIN with EDE 15) while
/// answering others from its upstreams.
#[tokio::test]
async fn fresh_init_and_serve_import_stix_and_answer_dns() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run_ok(mimamori(&data).args(["init", "--json"]));
    let report: Value = serde_json::from_str(&out).unwrap();
    let admin = report["admin_token"].as_str().unwrap().to_string();
    let written = std::fs::read_to_string(data.join("mimamori.toml")).unwrap();
    assert!(
        written.contains("\nlisten = \"127.0.0.1:1053\""),
        "{written}"
    );

    // Clients in no org's network are refused unless the config says to
    // answer and log them, as the README's quick start does for asking
    // from this machine.
    assert!(written.contains("\nunattributed = \"refuse\""), "{written}");
    let (_server, lines) = common::spawn_until(
        mimamori(&data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("MIMAMORI_PDNS_UNATTRIBUTED", "log"),
        &["API listening on", "Protective DNS listening on"],
        Duration::from_secs(60),
    );
    let base = url_in(&lines[0], "http");
    let dns: std::net::SocketAddr = lines[1].rsplit(' ').next().unwrap().parse().unwrap();

    let bundle = std::fs::read(corpora().join("stix/examples/threat-reports/apt1.json")).unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{base}/api/v1/intel/import?format=stix&tlp=green"))
        .bearer_auth(&admin)
        .body(bundle)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body["inserted"].as_u64().unwrap() > 0, "{body}");

    // The policy follows the import within the matcher's poll; ask until
    // the bundle's domain is blocked: NXDOMAIN with, in the OPT record,
    // option 15 (Extended DNS Error) with info code 15 (Blocked).
    let blocked =
        |a: &[u8]| a[3] & 0x0f == 3 && a.windows(6).any(|w| w[..2] == [0, 15] && w[4..] == [0, 15]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let ask = |name: &str| -> Option<Vec<u8>> {
        sock.send_to(&common::dns_query(7, name), dns).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf).ok()?;
        Some(buf[..n].to_vec())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ask("hugesoft.org").is_some_and(|a| blocked(&a)) {
        assert!(Instant::now() < deadline, "hugesoft.org is not blocked");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Other names go to the upstream of /etc/resolv.conf. Whatever it
    // answers (SERVFAIL when it cannot be reached), the resolver answers,
    // and neither as a block nor as a refusal of the client.
    let a = ask("www.example.com").expect("an answer for www.example.com");
    assert_eq!(&a[..2], &[0, 7], "the answer to this query: {a:?}");
    assert!(a[2] & 0x80 != 0, "a response: {a:?}");
    assert!(!blocked(&a), "{a:?}");
    assert_ne!(a[3] & 0x0f, 5, "refused: {a:?}");
}
