//! The block page over real sockets: a sinkholed name resolved over UDP
//! leads to the page's address, and the page, fetched with the blocked
//! name as `Host` from each client's own address, says what was blocked,
//! by which list and rule, and whom that client's org asks.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hickory_proto::rr::RecordType;
use mimamori_dns::{Action, BlockPageConfig, OrgPolicy, PdnsConfig, Policy, PolicyHandle, Zone};

/// The sinkhole zone: `evil.test` and everything under it → 127.0.0.1.
fn sinkhole_zone(name: &str) -> Zone {
    let sink = Action::sinkhole(Some("127.0.0.1".parse().unwrap()), None, 60);
    let mut z = Zone::new(name).with_description("Domains the SOC found serving malware");
    z.add_qname("evil.test", sink.clone()).unwrap();
    z.add_qname("*.evil.test", sink).unwrap();
    z
}

fn org(name: &str, net: &str, zones: Vec<Arc<Zone>>, contact: Option<&str>) -> OrgPolicy {
    OrgPolicy {
        name: name.into(),
        networks: vec![net.parse().unwrap()],
        zones,
        contact: contact.map(Into::into),
    }
}

/// Org a (127.0.0.2) and org c (127.0.0.3) get the sinkhole with their own
/// contacts; org b (127.0.0.4) allows evil.test.
fn policy(zone: &str) -> Policy {
    let allow = Arc::new(Zone::allowlist("dns:b", "evil.test\n").unwrap());
    Policy::new(vec![Arc::new(sinkhole_zone(zone))])
        .with_org(org(
            "a",
            "127.0.0.2/32",
            vec![],
            Some("Org A\nHelp desk: help@a.test"),
        ))
        .with_org(org("b", "127.0.0.4/32", vec![allow], None))
        .with_org(org(
            "c",
            "127.0.0.3/32",
            vec![],
            Some("Org C\nIT: +81 3 0000 0000"),
        ))
}

fn start(policy: Policy) -> (mimamori_dns::Handle, TestUpstream) {
    let u = TestUpstream::start();
    u.add("fine.test.", 300, "A", "192.0.2.1");
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    cfg.block_page = Some(BlockPageConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        contact: Some("Central SOC: soc@example.test".into()),
    });
    let h = mimamori_dns::start(cfg, PolicyHandle::new(policy)).unwrap();
    (h, u)
}

fn client(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(from.parse().unwrap()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Fetches `url` with `Host: host`; (status, headers, body).
async fn fetch(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    host: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let r = c
        .request(method, url)
        .header("host", host)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sinkholed_name_leads_to_a_page_saying_why_and_whom_to_ask() {
    let (h, _u) = tokio::task::spawn_blocking(|| start(policy("malware-rpz")))
        .await
        .unwrap();
    let page_port = h.block_page_addr().unwrap().port();
    // Org a's client resolves the name: the sinkhole address, with EDE.
    let udp = h.udp_addr();
    let m = tokio::task::spawn_blocking(move || {
        udp_ask_from(
            "127.0.0.2:0",
            udp,
            &query("www.evil.test.", RecordType::A, true),
            Duration::from_secs(3),
        )
        .expect("an answer")
    })
    .await
    .unwrap();
    assert_eq!(a_records(&m), vec!["127.0.0.1"]);
    assert_eq!(ede(&m), Some(15));
    // Its browser goes there, with the name as Host: any path.
    let url = format!(
        "http://{}:{page_port}/download/setup.exe?x=1",
        a_records(&m)[0]
    );
    let a = client("127.0.0.2");
    let (status, headers, body) = fetch(&a, reqwest::Method::GET, &url, "WWW.Evil.Test:80").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    for want in [
        "www.evil.test",
        "Protective DNS",
        "malware-rpz",
        "Domains the SOC found serving malware",
        "*.evil.test",
        "local-data",
        "Org A<br>Help desk: help@a.test",
        "Central SOC: soc@example.test",
        "does not record why each name is on it",
    ] {
        assert!(body.contains(want), "{want:?} not in {body}");
    }
    // The reference: UTC time, the name and the client.
    let reference = body
        .split("<h2>Reference</h2>\n<p><code>")
        .nth(1)
        .and_then(|r| r.split("</code>").next())
        .expect("a reference");
    let parts: Vec<&str> = reference.split(' ').collect();
    assert_eq!(parts.len(), 3, "{reference}");
    assert!(
        parts[0].ends_with('Z') && parts[0].len() == 20,
        "{reference}"
    );
    assert_eq!(&parts[1..], ["www.evil.test", "127.0.0.2"]);
    assert!(!body.contains("<script"), "nothing runs on the page");

    // Org c's client: the same block, its own contact.
    let (status, _, body) = fetch(
        &client("127.0.0.3"),
        reqwest::Method::GET,
        &url,
        "evil.test",
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("Org C<br>IT: +81 3 0000 0000"), "{body}");
    assert!(!body.contains("help@a.test"), "{body}");
    assert!(
        body.contains("<code>evil.test</code>"),
        "the exact rule: {body}"
    );
    // Org b allows the name: not blocked for it, and nothing is fetched.
    let (status, headers, body) = fetch(
        &client("127.0.0.4"),
        reqwest::Method::GET,
        &url,
        "evil.test",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body.contains("does not block this name"), "{body}");
    // A name nobody blocks.
    let (status, _, body) = fetch(&a, reqwest::Method::GET, &url, "fine.test").await;
    assert_eq!(status, 404);
    assert!(body.contains("fine.test"));
    // Any method: POST and HEAD (headers only) too.
    let (status, _, _) = fetch(&a, reqwest::Method::POST, &url, "evil.test").await;
    assert_eq!(status, 403);
    let (status, headers, body) = fetch(&a, reqwest::Method::HEAD, &url, "evil.test").await;
    assert_eq!(status, 403);
    assert!(body.is_empty());
    let len: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
    assert!(len > 500, "HEAD tells the page's length: {len}");

    // The page reads the policy in force: after a swap the name is free.
    h.policy().set(Policy::new(vec![]));
    let (status, _, _) = fetch(&a, reqwest::Method::GET, &url, "evil.test").await;
    assert_eq!(status, 404);

    let s = h.stats();
    assert_eq!(s.block_pages, 4, "{s:?}");
    assert_eq!(s.block_pages_unblocked, 3, "{s:?}");
    tokio::task::spawn_blocking(move || drop(h)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_names_and_contacts_are_escaped() {
    let evil = "<script>alert('zone')</script>";
    let (h, _u) = tokio::task::spawn_blocking(move || start(policy(evil)))
        .await
        .unwrap();
    h.policy().set(
        Policy::new(vec![Arc::new(sinkhole_zone(evil))]).with_org(org(
            "a",
            "127.0.0.2/32",
            vec![],
            Some("<img src=x onerror=alert(1)>"),
        )),
    );
    let url = format!("http://127.0.0.1:{}/", h.block_page_addr().unwrap().port());
    let (status, _, body) = fetch(
        &client("127.0.0.2"),
        reqwest::Method::GET,
        &url,
        "evil.test",
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        !body.contains("<script") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("&lt;script&gt;alert(&#39;zone&#39;)&lt;/script&gt;"),
        "{body}"
    );
    assert!(
        body.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{body}"
    );
    tokio::task::spawn_blocking(move || drop(h)).await.unwrap();
}

/// One request written as is; (status, whole response).
fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    (text[9..12].parse().unwrap(), text)
}

#[test]
fn a_request_without_a_usable_host_is_refused() {
    let (h, _u) = start(policy("malware-rpz"));
    let addr = h.block_page_addr().unwrap();
    for request in [
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: evil..test\r\nConnection: close\r\n\r\n",
    ] {
        let (status, text) = raw(addr, request);
        assert_eq!(status, 400, "{request:?}: {text}");
        assert!(text.contains("Host header"), "{text}");
    }
    // The same connection path with a usable Host works.
    let (status, text) = raw(addr, "GET / HTTP/1.0\r\nHost: x.evil.test\r\n\r\n");
    assert_eq!(status, 403, "{text}");
    assert_eq!(h.stats().block_pages, 1);
}

#[test]
fn headers_past_the_limit_end_the_connection() {
    let (h, _u) = start(policy("malware-rpz"));
    let big = "a".repeat(20 * 1024);
    let (status, _) = raw(
        h.block_page_addr().unwrap(),
        &format!("GET / HTTP/1.1\r\nHost: evil.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 431, "request header fields too large");
}

#[test]
fn the_page_over_https() {
    let tls = test_tls("evil.test");
    let u = TestUpstream::start();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    let mut bp = BlockPageConfig::new("127.0.0.1:0".parse().unwrap());
    bp.tls = Some(Arc::new(tls.server));
    cfg.block_page = Some(bp);
    let h = mimamori_dns::start(cfg, PolicyHandle::new(policy("malware-rpz"))).unwrap();

    let conn = rustls::ClientConnection::new(Arc::new(tls.client), "evil.test".try_into().unwrap())
        .unwrap();
    let tcp = std::net::TcpStream::connect(h.block_page_addr().unwrap()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = tls.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    // No contact configured anywhere for the fallback (none here): the
    // page still says whom to ask.
    assert!(text.contains("Your IT support or security team"), "{text}");
}

/// A block page port that cannot be bound (taken, or privileged) is an
/// error from `start`, also when called on an async runtime as `serve`
/// does, and nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_an_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let u = TestUpstream::start();
    let mut cfg = PdnsConfig::new("127.0.0.1:0".parse().unwrap(), vec![u.addr]);
    cfg.udp_threads = 1;
    cfg.block_page = Some(BlockPageConfig::new(taken.local_addr().unwrap()));
    match mimamori_dns::start(cfg, PolicyHandle::new(Policy::new(vec![]))) {
        Err(e) => assert!(e.to_string().contains("bind"), "{e}"),
        Ok(_) => panic!("started on a port in use"),
    }
}
