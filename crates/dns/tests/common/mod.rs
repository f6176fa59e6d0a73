//! Shared helpers for the integration tests: the corpora locator, a stand-in
//! upstream DNS server and a tiny client.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// The shared test corpora: `$MIMAMORI_CORPORA`, else `shared/corpora` beside
/// the repository (where the workplace and CI put it).
pub fn corpora() -> PathBuf {
    if let Some(p) = std::env::var_os("MIMAMORI_CORPORA") {
        return PathBuf::from(p);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    assert!(
        beside.is_dir(),
        "test corpora not found at {} (set MIMAMORI_CORPORA)",
        beside.display()
    );
    beside
}

/// Every file under `dir` whose name ends with `suffix`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

type Records = HashMap<(String, RecordType), Vec<Record>>;

/// A stand-in authoritative upstream on 127.0.0.1 (UDP and TCP, same port)
/// answering from a fixed record set; NXDOMAIN for anything else. It can be
/// told to go silent (for serve-stale).
pub struct TestUpstream {
    pub addr: SocketAddr,
    records: Arc<Mutex<Records>>,
    pub silent: Arc<AtomicBool>,
    pub queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn answer(records: &Mutex<Records>, req: &[u8]) -> Option<Vec<u8>> {
    let m = Message::from_vec(req).ok()?;
    let q = m.queries.first()?.clone();
    let key = (q.name().to_ascii().to_ascii_lowercase(), q.query_type());
    let mut r = Message::new(m.metadata.id, MessageType::Response, OpCode::Query);
    r.metadata.recursion_desired = m.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_query(q.clone());
    let recs = records.lock().unwrap();
    match recs.get(&key) {
        Some(v) => {
            r.add_answers(v.iter().cloned());
        }
        None => {
            let exists = recs.keys().any(|(n, _)| *n == key.0);
            if !exists {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
        }
    }
    if m.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        r.set_edns(e);
    }
    r.to_vec().ok()
}

impl TestUpstream {
    pub fn start() -> TestUpstream {
        // UDP and TCP on one port: the port the kernel picks for UDP may be
        // taken for TCP (by another test's connection), so try again.
        let (udp, tcp, addr) = (0..20)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let addr = udp.local_addr().ok()?;
                let tcp = TcpListener::bind(addr).ok()?;
                Some((udp, tcp, addr))
            })
            .expect("a port free for both UDP and TCP");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let records: Arc<Mutex<Records>> = Arc::default();
        let silent = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (records, silent, queries, stop) = (
                records.clone(),
                silent.clone(),
                queries.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        queries.fetch_add(1, Ordering::SeqCst);
                        if silent.load(Ordering::SeqCst) {
                            continue;
                        }
                        if let Some(resp) = answer(&records, &buf[..n]) {
                            let _ = udp.send_to(&resp, from);
                        }
                    }
                }
            });
        }
        {
            let (records, silent, queries, stop) = (
                records.clone(),
                silent.clone(),
                queries.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut s, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(20));
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
                    queries.fetch_add(1, Ordering::SeqCst);
                    if silent.load(Ordering::SeqCst) {
                        continue;
                    }
                    if let Some(resp) = answer(&records, &req) {
                        let mut out = (resp.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&resp);
                        let _ = s.write_all(&out);
                    }
                }
            });
        }
        TestUpstream {
            addr,
            records,
            silent,
            queries,
            stop,
        }
    }

    /// Adds `name TTL IN TYPE rdata` to the answers.
    pub fn add(&self, name: &str, ttl: u32, rtype: &str, rdata: &str) {
        let rt = RecordType::from_str(rtype).unwrap();
        let n = Name::from_ascii(name).unwrap();
        let rd = RData::try_from_str(rt, rdata).unwrap();
        self.records
            .lock()
            .unwrap()
            .entry((n.to_ascii().to_ascii_lowercase(), rt))
            .or_default()
            .push(Record::from_rdata(n, ttl, rd));
    }
}

/// Builds a query with a random-ish ID, RD set, optional EDNS.
pub fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::new(rand_id(), MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

pub fn rand_id() -> u16 {
    use std::sync::atomic::AtomicU16;
    static N: AtomicU16 = AtomicU16::new(0x1000);
    N.fetch_add(7919, Ordering::Relaxed)
}

/// Sends `req` over UDP from `bind` and waits up to `wait` for the answer.
pub fn udp_ask_from(bind: &str, server: SocketAddr, req: &[u8], wait: Duration) -> Option<Message> {
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.send_to(req, server).unwrap();
    let mut buf = [0u8; 65535];
    loop {
        let (n, _) = s.recv_from(&mut buf).ok()?;
        let m = Message::from_vec(&buf[..n]).expect("answer decodes");
        if m.metadata.id == u16::from_be_bytes([req[0], req[1]]) {
            return Some(m);
        }
    }
}

pub fn udp_ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp_ask_from(
        "127.0.0.1:0",
        server,
        &query(name, rtype, true),
        Duration::from_secs(3),
    )
    .unwrap_or_else(|| panic!("no answer for {name}"))
}

/// One query over an open TCP (or TLS) stream.
pub fn stream_ask<S: Read + Write>(s: &mut S, req: &[u8]) -> Message {
    let mut out = (req.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(req);
    s.write_all(&out).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    Message::from_vec(&buf).unwrap()
}

pub fn tcp_ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut s = TcpStream::connect(server).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream_ask(&mut s, &query(name, rtype, true))
}

/// The EDE info code of an answer, if any.
pub fn ede(m: &Message) -> Option<u16> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(_, d) if d.len() >= 2 => Some(u16::from_be_bytes([d[0], d[1]])),
        _ => None,
    }
}

/// The A addresses in the answer section, as text.
pub fn a_records(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.to_string()),
            RData::AAAA(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

/// Builds the answer messages to one request (several for a transfer).
pub type PrimaryHandler = dyn Fn(&Message) -> Vec<Message> + Send + Sync;

/// A stand-in primary on 127.0.0.1 TCP: each request on a connection is
/// answered with the messages `handler` builds (none: the connection is
/// closed). Stops when dropped.
pub struct TestPrimary {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pub requests: Arc<AtomicUsize>,
}

impl Drop for TestPrimary {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl TestPrimary {
    pub fn start(handler: Arc<PrimaryHandler>) -> TestPrimary {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        tcp.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut s, _)) = tcp.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).is_err() {
                            break;
                        }
                        let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut req).is_err() {
                            break;
                        }
                        requests.fetch_add(1, Ordering::SeqCst);
                        let Ok(m) = Message::from_vec(&req) else {
                            break;
                        };
                        let answers = handler(&m);
                        if answers.is_empty() {
                            break;
                        }
                        for a in answers {
                            let bytes = a.to_vec().unwrap();
                            let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
                            out.extend_from_slice(&bytes);
                            if s.write_all(&out).is_err() {
                                break;
                            }
                        }
                    }
                }
            });
        }
        TestPrimary {
            addr,
            stop,
            requests,
        }
    }
}

/// A response to `req` carrying `answers`.
pub fn response_to(req: &Message, answers: Vec<Record>, rcode: ResponseCode) -> Message {
    let mut r = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    r.metadata.authoritative = true;
    r.metadata.response_code = rcode;
    if let Some(q) = req.queries.first() {
        r.add_query(q.clone());
    }
    r.add_answers(answers);
    r
}

/// A self-signed certificate for `name`: a server config (ring) serving it,
/// a client config trusting only it, and the certificate in PEM (for a CA
/// file).
pub struct TestTls {
    pub server: rustls::ServerConfig,
    pub client: rustls::ClientConfig,
    pub pem: String,
}

pub fn test_tls(name: &str) -> TestTls {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TestTls {
        server,
        client,
        pem: ck.cert.pem(),
    }
}
