//! Upstreams over DoT and DoH, on real sockets: our own resolver's DoT and
//! DoH listeners (an rcgen certificate for `upstream.test`) serve as the
//! upstream of a second resolver that trusts that certificate through a CA
//! file. The first resolver's query log shows which transport each query
//! arrived on.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use mimamori_dns::{query_log, PdnsConfig, Policy, PolicyHandle, Transport, UpstreamSpec};

struct Upstream {
    /// The stand-in authoritative data behind it.
    _data: TestUpstream,
    handle: mimamori_dns::Handle,
    log: mimamori_dns::QueryLogReceiver,
    ca_file: tempfile::NamedTempFile,
}

/// Our resolver with DoT and DoH (HTTPS, h2) listeners, certificate for
/// `upstream.test`, forwarding to a stand-in with `allowed.test`.
fn tls_upstream() -> Upstream {
    let data = TestUpstream::start();
    data.add("allowed.test.", 300, "A", "192.0.2.1");
    let tls = test_tls("upstream.test");
    let mut server_cfg = tls.server;
    server_cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let server_cfg = Arc::new(server_cfg);
    let (log, rx) = query_log(100);
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![data.addr]);
    cfg.udp_threads = 1;
    cfg.query_log = Some(log);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    cfg.tls_listen = Some((any, server_cfg.clone()));
    cfg.doh_listen = Some((any, Some(server_cfg)));
    let handle = mimamori_dns::start(cfg, PolicyHandle::new(Policy::default())).unwrap();
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), tls.pem).unwrap();
    Upstream {
        _data: data,
        handle,
        log: rx,
        ca_file,
    }
}

/// A resolver forwarding to `specs`, trusting `ca_file`.
fn forwarder(specs: &[String], ca_file: &std::path::Path) -> mimamori_dns::Handle {
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![]);
    cfg.udp_threads = 1;
    cfg.upstream_timeout = Duration::from_millis(1500);
    cfg.upstream_specs = specs.iter().map(|s| s.parse().unwrap()).collect();
    cfg.ca_file = Some(ca_file.to_path_buf());
    mimamori_dns::start(cfg, PolicyHandle::new(Policy::default())).unwrap()
}

fn transports(u: &mut Upstream) -> Vec<Transport> {
    u.log.try_iter().map(|e| e.transport).collect()
}

#[test]
fn forwards_over_dns_over_tls() {
    let mut up = tls_upstream();
    let tls = up.handle.tls_addr().unwrap();
    let h = forwarder(&[format!("tls://{tls}#upstream.test")], up.ca_file.path());
    for _ in 0..2 {
        // The second is a cache hit of ours; ask another type to reuse the
        // connection upstream.
        let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::A);
        assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    }
    let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(transports(&mut up), vec![Transport::Tls, Transport::Tls]);
}

#[test]
fn forwards_over_dns_over_https() {
    let mut up = tls_upstream();
    let doh = up.handle.doh_addr().unwrap();
    let h = forwarder(
        &[format!("https://{doh}/dns-query#upstream.test")],
        up.ca_file.path(),
    );
    let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    let m = udp_ask(h.udp_addr(), "nothing-here.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        transports(&mut up),
        vec![Transport::Https, Transport::Https]
    );
}

#[test]
fn certificates_are_checked_and_the_next_upstream_is_tried() {
    let mut up = tls_upstream();
    let tls = up.handle.tls_addr().unwrap();
    // The certificate is not valid for this name: no answer, SERVFAIL.
    let h = forwarder(&[format!("tls://{tls}#other.test")], up.ca_file.path());
    let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(
        transports(&mut up).is_empty(),
        "nothing reached the upstream"
    );
    // A failing DoT upstream first, then a good DoH one.
    let doh = up.handle.doh_addr().unwrap();
    let h = forwarder(
        &[
            format!("tls://{tls}#other.test"),
            format!("https://{doh}#upstream.test"),
        ],
        up.ca_file.path(),
    );
    let m = udp_ask(h.udp_addr(), "allowed.test.", RecordType::A);
    assert_eq!(a_records(&m), vec!["192.0.2.1"]);
    assert_eq!(transports(&mut up), vec![Transport::Https]);
    // A CA file without certificates is refused at start.
    let empty = tempfile::NamedTempFile::new().unwrap();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![]);
    cfg.upstream_specs = vec![format!("tls://{tls}#upstream.test")
        .parse::<UpstreamSpec>()
        .unwrap()];
    cfg.ca_file = Some(empty.path().to_path_buf());
    let err = mimamori_dns::start(cfg, PolicyHandle::new(Policy::default()))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
