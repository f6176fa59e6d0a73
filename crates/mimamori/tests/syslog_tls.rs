//! Syslog over TLS with client certificates, against the real server: the
//! sender's org comes from its certificate (by common name or fingerprint),
//! senders without a valid certificate are refused, and the network
//! fallback applies only when configured.

mod common;

use common::{mimamori, run_ok, Running};
use mimamori_ingest::{Ingest, IngestConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A client certificate with common name `cn`, signed by `ca`.
fn client_cert(ca: &Ca, cn: &str) -> (CertificateDer<'static>, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.der().clone(), key)
}

fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    // As `openssl x509 -fingerprint -sha256` prints it: upper case, colons.
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn org_id(data: &Path, slug: &str) -> String {
    let v: Value =
        serde_json::from_str(&run_ok(mimamori(data).args(["org", "show", slug]))).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Starts `serve` with the config file given; returns it and its syslog
/// TLS address.
fn serve(data: &Path) -> (Running, String) {
    let mut cmd = mimamori(data);
    // This config has no resolver upstreams: no Protective DNS here.
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("MIMAMORI_PDNS_LISTEN")
        .stdout(Stdio::piped());
    let mut child = Running(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if line.starts_with("syslog tls") {
            break line.split_whitespace().last().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Connects with the given client certificate (or none), sends `lines`
/// newline-framed, and waits until the server closes (it closes a refused
/// connection at once; an accepted one when we half-close).
async fn send(
    data: &Path,
    addr: &str,
    client: Option<(CertificateDer<'static>, &KeyPair)>,
    lines: &[String],
) {
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connected = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    // With TLS 1.3 a refused client certificate may only show on the
    // first read after the handshake; either way nothing may be stored.
    let Ok(mut tls) = connected else { return };
    let mut body = String::new();
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    if tls.write_all(body.as_bytes()).await.is_err() {
        return;
    }
    let _ = tls.shutdown().await;
    let mut sink = vec![];
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut sink)).await;
}

/// A stored event: its org and the host that sent it.
struct Stored {
    org_id: String,
    host: String,
}

fn stop_and_read(data: &Path, mut child: Running) -> Vec<Stored> {
    assert!(Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.0.wait().unwrap().success());
    let (ingest, threads) = Ingest::start(IngestConfig::new(data.join("ingest"))).unwrap();
    let events = ingest.archive().read_events(None).unwrap();
    drop(ingest);
    threads.join();
    events
        .into_iter()
        .map(|e| Stored {
            org_id: e.org_id,
            host: e.body.fields.hostname.unwrap_or_default(),
        })
        .collect()
}

fn lines(host: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("<14>1 2026-11-25T10:00:0{i}Z {host} app - - - message {i} from {host}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificates_name_the_senders_org() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    run_ok(mimamori(&data).args(["init", "--json"]));
    for (slug, net) in [
        ("a", "10.91.0.0/16"),
        ("b", "10.92.0.0/16"),
        ("lo", "127.0.0.0/8"),
    ] {
        run_ok(mimamori(&data).args([
            "org",
            "add",
            "--parent",
            "soc",
            "--slug",
            slug,
            "--name",
            slug,
            "--network",
            net,
        ]));
    }
    let (a, b, lo) = (org_id(&data, "a"), org_id(&data, "b"), org_id(&data, "lo"));

    let trusted = ca("syslog senders CA");
    let rogue = ca("someone else's CA");
    let (cert_a, key_a) = client_cert(&trusted, "sender-a.example");
    let (cert_b, key_b) = client_cert(&trusted, "sender-b.example");
    let (cert_unmapped, key_unmapped) = client_cert(&trusted, "stranger.example");
    // Claims to be sender a, but is signed by a CA we do not trust.
    let (cert_forged, key_forged) = client_cert(&rogue, "sender-a.example");
    let ca_file = dir.path().join("senders-ca.pem");
    std::fs::write(&ca_file, trusted.cert.pem()).unwrap();
    let write_config = |extra: &str| {
        std::fs::write(
            data.join("mimamori.toml"),
            format!(
                "[syslog]\ntls = \"127.0.0.1:0\"\ntls_client_ca = {ca:?}\n{extra}\n[syslog.tls_client_orgs]\n\"cn:sender-a.example\" = \"a\"\n\"sha256:{fp}\" = \"b\"\n",
                ca = ca_file.display().to_string(),
                fp = fingerprint(&cert_b),
            ),
        )
        .unwrap();
    };

    // Certificates required, no fallback to the sender's address (which
    // is in org lo's network).
    write_config("");
    let (child, addr) = serve(&data);
    send(&data, &addr, Some((cert_a, &key_a)), &lines("a-host", 3)).await;
    send(
        &data,
        &addr,
        Some((cert_b.clone(), &key_b)),
        &lines("b-host", 2),
    )
    .await;
    send(
        &data,
        &addr,
        Some((cert_unmapped.clone(), &key_unmapped)),
        &lines("unmapped-host", 2),
    )
    .await;
    send(
        &data,
        &addr,
        Some((cert_forged, &key_forged)),
        &lines("forged-host", 2),
    )
    .await;
    send(&data, &addr, None, &lines("nocert-host", 2)).await;
    let events = stop_and_read(&data, child);
    let mut by: HashMap<(String, String), usize> = HashMap::new();
    for e in &events {
        *by.entry((e.host.clone(), e.org_id.clone())).or_default() += 1;
    }
    let want: HashMap<(String, String), usize> = [
        (("a-host".to_string(), a.clone()), 3),
        (("b-host".to_string(), b.clone()), 2),
    ]
    .into();
    assert_eq!(by, want, "events by (host, org); lo is {lo}");

    // Certificates optional, with the network fallback: a sender without
    // a certificate, or with one that names no org, is attributed by its
    // address; a mapped certificate still wins over the address.
    write_config("tls_client_required = false\ntls_network_fallback = true\n");
    let (child, addr) = serve(&data);
    send(&data, &addr, None, &lines("nocert2-host", 2)).await;
    send(
        &data,
        &addr,
        Some((cert_unmapped, &key_unmapped)),
        &lines("unmapped2-host", 1),
    )
    .await;
    send(&data, &addr, Some((cert_b, &key_b)), &lines("b2-host", 1)).await;
    let events = stop_and_read(&data, child);
    let mut by: HashMap<(String, String), usize> = HashMap::new();
    for e in &events {
        *by.entry((e.host.clone(), e.org_id.clone())).or_default() += 1;
    }
    let want: HashMap<(String, String), usize> = [
        (("a-host".to_string(), a.clone()), 3),
        (("b-host".to_string(), b.clone()), 2),
        (("nocert2-host".to_string(), lo.clone()), 2),
        (("unmapped2-host".to_string(), lo.clone()), 1),
        (("b2-host".to_string(), b.clone()), 1),
    ]
    .into();
    assert_eq!(by, want, "events by (host, org)");
}
