//! Per-org Protective DNS policy through the binary: allow and block lists
//! managed over the API (`/api/v1/dns/policy`) and enforced by the running
//! resolver on real DNS (UDP from each org's declared address), with the
//! central SOC's and a supervisor's blocks applying down the tree; and DNS
//! client tokens selecting the org over DoH (`/dns-query/<token>`, HTTP/2)
//! for a client outside every org's network; the sinkhole and the block
//! page with each org's contacts.

mod common;

use common::{dns_query, mimamori, run_ok, spawn_until, Running};
use serde_json::{json, Value};
use std::net::{SocketAddr, UdpSocket};

use std::time::{Duration, Instant};

/// A stand-in upstream: answers every A query with 192.0.2.1, TTL 1 (so
/// cached answers age out quickly; policy is applied on hits anyway).
/// Stops when the returned socket's twin is dropped with the test.
fn upstream() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = s.local_addr().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok((n, peer)) = s.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            // Header, then the question up to its end (name, type, class).
            let mut i = 12;
            while i < n && q[i] != 0 {
                i += 1 + q[i] as usize;
            }
            let qend = i + 5;
            if qend > n {
                continue;
            }
            let mut r = q[..qend].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6..12].copy_from_slice(&[0, 1, 0, 0, 0, 0]);
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 192, 0, 2, 1]);
            let _ = s.send_to(&r, peer);
        }
    });
    (addr, stop)
}

/// Asks `server` from the local address `from` and returns the rcode.
fn ask(from: &str, server: &str, name: &str) -> u8 {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    s.send_to(&dns_query(0x4d4d, name), server).unwrap();
    let mut buf = [0u8; 1500];
    let (n, _) = s.recv_from(&mut buf).expect("an answer");
    assert!(n >= 12);
    assert_eq!(&buf[..2], &[0x4d, 0x4d]);
    buf[3] & 0x0f
}

const NOERROR: u8 = 0;
const NXDOMAIN: u8 = 3;

/// Waits until `from` gets `want` for `name`; returns how long that took.
fn until(from: &str, server: &str, name: &str, want: u8) -> Duration {
    let started = Instant::now();
    loop {
        let got = ask(from, server, name);
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} from {from}: rcode {got}, want {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Adds an entry; its id.
    async fn add(&self, token: &str, org: &str, kind: &str, domain: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/dns/policy",
                token,
                Some(json!({"org_id": org, "kind": kind, "domain": domain, "comment": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    async fn token(&self, admin: &str, org: &str, role: &str) -> (String, String) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/tokens",
                admin,
                Some(json!({"org_id": org, "name": format!("{role} token"), "role": role})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["secret"].as_str().unwrap().to_string(),
            body["token"]["id"].as_str().unwrap().to_string(),
        )
    }
}

fn org_add(
    data: &std::path::Path,
    parent: &str,
    slug: &str,
    kind: &str,
    net: Option<&str>,
) -> String {
    let mut cmd = mimamori(data);
    cmd.args([
        "org", "add", "--parent", parent, "--slug", slug, "--name", slug, "--kind", kind, "--json",
    ]);
    if let Some(n) = net {
        cmd.args(["--network", n]);
    }
    let out: Value = serde_json::from_str(&run_ok(&mut cmd)).unwrap();
    out["id"].as_str().unwrap().to_string()
}

/// The tree every test here runs on, after `init`: soc → sup → a1
/// (127.0.0.2); soc → m1 (127.0.0.3). 127.0.0.1 is in no org's network:
/// the roaming client. `soc` is the admin token, the rest org ids
/// (`root`: the central SOC's).
struct Tree {
    soc: String,
    root: String,
    sup: String,
    a1: String,
    m1: String,
}

fn tree(data: &std::path::Path) -> Tree {
    let report: Value =
        serde_json::from_str(&run_ok(mimamori(data).args(["init", "--json"]))).unwrap();
    let soc = report["admin_token"].as_str().unwrap().to_string();
    let root = report["root_org_id"].as_str().unwrap().to_string();
    let sup = org_add(data, "soc", "sup", "supervisor", None);
    let a1 = org_add(data, "sup", "a1", "member", Some("127.0.0.2/32"));
    let m1 = org_add(data, "soc", "m1", "member", Some("127.0.0.3/32"));
    Tree {
        soc,
        root,
        sup,
        a1,
        m1,
    }
}

/// Starts `cmd` (a `serve` with the resolver on) and waits until it has
/// said where the API and the resolver listen, and the `more` lines:
/// the API, the resolver's address, and the address each `more` line ends
/// with.
fn serve_until(
    cmd: &mut std::process::Command,
    more: &[&str],
) -> (Running, Api, String, Vec<String>) {
    let mut markers = vec!["API listening", "Protective DNS listening"];
    markers.extend_from_slice(more);
    let (server, lines) = spawn_until(cmd, &markers, Duration::from_secs(60));
    let last = |l: &str| l.split_whitespace().last().unwrap().to_string();
    let api = Api {
        base: last(&lines[0]),
        client: reqwest::Client::new(),
    };
    let dns = last(&lines[1]);
    (
        server,
        api,
        dns,
        lines[2..].iter().map(|l| last(l)).collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_org_lists_apply_down_the_tree_and_doh_tokens_select_the_org() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Tree {
        soc,
        root,
        sup,
        a1,
        m1,
    } = tree(&data);
    let (up, stop) = upstream();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("MIMAMORI_PDNS_LISTEN", "127.0.0.1:0")
        .env("MIMAMORI_PDNS_DOH_LISTEN", "127.0.0.1:0")
        .env("MIMAMORI_PDNS_UPSTREAMS", up.to_string())
        .env("MIMAMORI_PDNS_UNATTRIBUTED", "log");
    let (_server, api, dns, more) = serve_until(&mut cmd, &["over HTTPS listening"]);
    let doh = more[0].clone();
    let (a1_admin, _) = api.token(&soc, &a1, "org-admin").await;
    let (sup_analyst, _) = api.token(&soc, &sup, "supervisor-analyst").await;
    let (a1_analyst, _) = api.token(&soc, &a1, "org-analyst").await;

    // Intel of the central SOC blocks for everyone.
    let r = api
        .client
        .post(format!(
            "{}/api/v1/intel/import?format=plain&subdomains=true&confidence=90&source=t",
            api.base
        ))
        .bearer_auth(&soc)
        .body("intel-bad.example\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    until("127.0.0.2", &dns, "www.intel-bad.example", NXDOMAIN);
    assert_eq!(ask("127.0.0.2", &dns, "fine.example"), NOERROR);

    // The central SOC's and the supervisor's blocks; a1's own list.
    api.add(&soc, &root, "block", "soc-mandate.example").await;
    api.add(&sup_analyst, &sup, "block", "sup-mandate.example")
        .await;
    // An analyst may read but not change the list.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/dns/policy",
            &a1_analyst,
            Some(json!({"org_id": a1, "kind": "block", "domain": "x.example"})),
        )
        .await;
    assert_eq!(status, 403);
    // a1's admin cannot touch m1's list (out of scope looks absent).
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/api/v1/dns/policy",
            &a1_admin,
            Some(json!({"org_id": m1, "kind": "block", "domain": "x.example"})),
        )
        .await;
    assert_eq!(status, 404);
    let allow_intel = api.add(&a1_admin, &a1, "allow", "intel-bad.example").await;
    api.add(&a1_admin, &a1, "allow", "sup-mandate.example")
        .await;
    api.add(&a1_admin, &a1, "allow", "soc-mandate.example")
        .await;
    let a1_block = api.add(&a1_admin, &a1, "block", "a1-only.example").await;
    let t = until("127.0.0.2", &dns, "a1-only.example", NXDOMAIN);
    eprintln!("a1's new block enforced after {} ms", t.as_millis());

    // a1: its allow lifts the intel block, not the ancestors' blocks.
    assert_eq!(ask("127.0.0.2", &dns, "www.intel-bad.example"), NOERROR);
    assert_eq!(ask("127.0.0.2", &dns, "sup-mandate.example"), NXDOMAIN);
    assert_eq!(ask("127.0.0.2", &dns, "x.soc-mandate.example"), NXDOMAIN);
    assert_eq!(ask("127.0.0.2", &dns, "sub.a1-only.example"), NXDOMAIN);
    // m1 (not under sup): the intel and the SOC's block, nothing of a1's
    // or sup's.
    assert_eq!(ask("127.0.0.3", &dns, "www.intel-bad.example"), NXDOMAIN);
    assert_eq!(ask("127.0.0.3", &dns, "sup-mandate.example"), NOERROR);
    assert_eq!(ask("127.0.0.3", &dns, "soc-mandate.example"), NXDOMAIN);
    assert_eq!(ask("127.0.0.3", &dns, "a1-only.example"), NOERROR);
    // A client in no org's network gets the root's policy (`unattributed
    // = "log"`), credited to no org.
    assert_eq!(ask("127.0.0.1", &dns, "soc-mandate.example"), NXDOMAIN);
    assert_eq!(ask("127.0.0.1", &dns, "a1-only.example"), NOERROR);
    // An intel hit too: credited to the root, it would be the root's alert
    // (checked at the end).
    assert_eq!(ask("127.0.0.1", &dns, "www.intel-bad.example"), NXDOMAIN);

    // Removing entries applies as fast.
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/dns/policy/{allow_intel}"),
            &a1_admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let t = until("127.0.0.2", &dns, "www.intel-bad.example", NXDOMAIN);
    eprintln!("a1's removed allow enforced after {} ms", t.as_millis());

    // Every change is in a1's audit log.
    let (_, audit) = api
        .call(
            reqwest::Method::GET,
            "/api/v1/audit?limit=50",
            &a1_admin,
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"dns_policy.add"), "{actions:?}");
    assert!(actions.contains(&"dns_policy.remove"), "{actions:?}");

    // DoH with a DNS client token of a1, from 127.0.0.1 (in no org's
    // network), over HTTP/2: a1's policy applies.
    let (laptop, laptop_id) = api.token(&a1_admin, &a1, "dns-client").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let post = |path: String, name: &'static str| {
        let h2 = h2.clone();
        async move {
            let r = h2
                .post(path)
                .header("content-type", "application/dns-message")
                .body(dns_query(0, name))
                .send()
                .await
                .unwrap();
            let version = r.version();
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap();
            (version, status, body)
        }
    };
    let started = Instant::now();
    let (version, status, body) = loop {
        let r = post(format!("{doh}/{laptop}"), "a1-only.example").await;
        if r.1 == 200 || started.elapsed() > Duration::from_secs(10) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "new DNS client token usable after {} ms",
        started.elapsed().as_millis()
    );
    assert_eq!(version, reqwest::Version::HTTP_2);
    assert_eq!(status, 200);
    assert_eq!(
        body[3] & 0x0f,
        NXDOMAIN,
        "a1's block over DoH with a1's token"
    );
    // GET works the same.
    use base64::Engine as _;
    let q = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(dns_query(0, "sub.a1-only.example"));
    let r = h2
        .get(format!("{doh}/{laptop}?dns={q}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap()[3] & 0x0f, NXDOMAIN);
    // Without the token the same client is the root's: not blocked.
    let (_, status, body) = post(doh.clone(), "a1-only.example").await;
    assert_eq!(status, 200);
    assert_eq!(body[3] & 0x0f, NOERROR);
    // An unknown token is refused, with nothing resolved.
    let (_, status, body) = post(format!("{doh}/mmr_not-a-token"), "a1-only.example").await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("DNS client token"));
    // A client inside m1's network keeps m1's policy whatever token it
    // shows (checked on the library level in crates/dns/tests); revoking
    // the token ends it.
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{laptop_id}"),
            &a1_admin,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    loop {
        let (_, status, _) = post(format!("{doh}/{laptop}"), "a1-only.example").await;
        if status == 403 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "revoked token still works"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "revoked DNS client token refused after {} ms",
        started.elapsed().as_millis()
    );
    // a1's block removed: gone for a1 too.
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/dns/policy/{a1_block}"),
            &a1_admin,
            None,
        )
        .await;
    assert_eq!(status, 204);
    until("127.0.0.2", &dns, "a1-only.example", NOERROR);

    // The unattributed queries (UDP and DoH without a token, blocked and
    // not, an intel hit among them) are credited to no org: after m1's
    // query, asked last, is in the archive, no event and no alert is the
    // root's (nor any org's but a1's and m1's, whose addresses asked).
    assert_eq!(ask("127.0.0.3", &dns, "last.intel-bad.example"), NXDOMAIN);
    let started = Instant::now();
    let by_org = loop {
        let (status, r) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/query",
                &soc,
                Some(json!({"sql": "SELECT org_id, count(*) AS n, \
                    sum(CASE WHEN query.hostname = 'last.intel-bad.example' THEN 1 ELSE 0 END) AS last \
                    FROM events GROUP BY org_id ORDER BY org_id"})),
            )
            .await;
        assert!(status == 200 || status == 429, "{status} {r}");
        let rows = r["rows"].as_array().cloned().unwrap_or_default();
        if rows
            .iter()
            .any(|x| x["org_id"] == m1.as_str() && x["last"] == 1)
        {
            break rows;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "m1's last query not archived: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let orgs: Vec<&str> = by_org
        .iter()
        .map(|x| x["org_id"].as_str().unwrap())
        .collect();
    assert!(
        !orgs.contains(&root.as_str()),
        "root has events: {by_org:?}"
    );
    for o in &orgs {
        assert!(*o == a1 || *o == m1, "{o} has events: {by_org:?}");
    }
    // m1's two intel hits raised m1's alert (once it counts the last one,
    // detection has seen every query before it); the root has none.
    let started = Instant::now();
    loop {
        let (status, a) = api
            .call(
                reqwest::Method::GET,
                "/api/v1/alerts?kind=indicator&limit=500",
                &soc,
                None,
            )
            .await;
        assert_eq!(status, 200, "{a}");
        let items = a["items"].as_array().cloned().unwrap_or_default();
        assert!(
            !items.iter().any(|x| x["org_id"] == root.as_str()),
            "an alert credited to the root: {a}"
        );
        if items.iter().any(|x| {
            x["org_id"] == m1.as_str()
                && x["rule_id"] == "domain:intel-bad.example"
                && x["event_count"].as_i64() >= Some(2)
        }) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no alert for m1: {a}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Imports `body` (a plain list) as owned by `org` with `params` (e.g.
/// `tlp=amber&subdomains=true`).
async fn import(api: &Api, token: &str, org: &str, params: &str, body: &str) {
    let r = api
        .client
        .post(format!(
            "{}/api/v1/intel/import?format=plain&org_id={org}&source=t&{params}",
            api.base
        ))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(status, 200, "{}", r.text().await.unwrap());
}

/// The value of one counter on `/metrics`.
/// Zeek JSON DNS lines sent by a sensor over the HTTP ingest: all
/// accepted, none rejected.
async fn ingest_zeek(api: &Api, sensor: &str, body: String) {
    let r = api
        .client
        .post(format!("{}/ingest/v1/events?format=zeek-json", api.base))
        .bearer_auth(sensor)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["rejected"], 0, "{b}");
}

async fn metric(api: &Api, name: &str) -> u64 {
    let text = api
        .client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("mimamori_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Indicator changes reach the running resolver as patches of its policy
/// (no rebuild): additions for everyone and per org, a GREEN indicator
/// made AMBER (it leaves everyone's zone for its owner's sub-tree), an
/// AMBER share made RED (it leaves the org it was shared with), exact
/// names; and an org added to the tree, with no intel rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intel_changes_are_patched_into_the_running_resolver() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Tree {
        soc,
        root,
        sup,
        a1,
        m1,
    } = tree(&data);
    let (up, _stop) = upstream();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("MIMAMORI_PDNS_LISTEN", "127.0.0.1:0")
        .env("MIMAMORI_PDNS_UPSTREAMS", up.to_string())
        .env("MIMAMORI_PDNS_UNATTRIBUTED", "log");
    let (_server, api, dns, _) = serve_until(&mut cmd, &[]);
    let (a1_host, m1_host, roaming) = ("127.0.0.2", "127.0.0.3", "127.0.0.1");

    // The supervisor's GREEN indicator blocks for everyone.
    import(
        &api,
        &soc,
        &sup,
        "tlp=green&subdomains=true",
        "turns-amber.example\n",
    )
    .await;
    let t = until(m1_host, &dns, "www.turns-amber.example", NXDOMAIN);
    eprintln!("GREEN indicator enforced after {} ms", t.as_millis());
    assert_eq!(ask(a1_host, &dns, "www.turns-amber.example"), NXDOMAIN);
    assert_eq!(ask(roaming, &dns, "turns-amber.example"), NXDOMAIN);
    // Reported again as AMBER (the stricter TLP wins): the supervisor's
    // sub-tree only.
    import(
        &api,
        &soc,
        &sup,
        "tlp=amber&subdomains=true",
        "turns-amber.example\n",
    )
    .await;
    let t = until(m1_host, &dns, "www.turns-amber.example", NOERROR);
    eprintln!("GREEN → AMBER enforced after {} ms", t.as_millis());
    assert_eq!(ask(a1_host, &dns, "www.turns-amber.example"), NXDOMAIN);
    assert_eq!(ask(roaming, &dns, "turns-amber.example"), NOERROR);

    // a1's AMBER indicator shared with m1; then a1 makes it RED.
    import(
        &api,
        &soc,
        &a1,
        &format!("tlp=amber&subdomains=true&share_with={m1}"),
        "shared-then-red.example\n",
    )
    .await;
    until(m1_host, &dns, "x.shared-then-red.example", NXDOMAIN);
    assert_eq!(ask(a1_host, &dns, "shared-then-red.example"), NXDOMAIN);
    assert_eq!(ask(roaming, &dns, "shared-then-red.example"), NOERROR);
    import(
        &api,
        &soc,
        &a1,
        "tlp=red&subdomains=true",
        "shared-then-red.example\n",
    )
    .await;
    until(m1_host, &dns, "x.shared-then-red.example", NOERROR);
    assert_eq!(ask(a1_host, &dns, "x.shared-then-red.example"), NXDOMAIN);

    // The central SOC's exact name (`=name`: not its sub-domains, which a
    // domain covers by default): the name, not what is under it.
    import(&api, &soc, &root, "tlp=amber", "=exact-only.example\n").await;
    until(m1_host, &dns, "exact-only.example", NXDOMAIN);
    assert_eq!(ask(m1_host, &dns, "www.exact-only.example"), NOERROR);
    // The same for a source of exact names.
    import(
        &api,
        &soc,
        &root,
        "tlp=amber&subdomains=false",
        "exact-source.example\n",
    )
    .await;
    until(m1_host, &dns, "exact-source.example", NXDOMAIN);
    assert_eq!(ask(m1_host, &dns, "www.exact-source.example"), NOERROR);
    until(m1_host, &dns, "exact-only.example", NXDOMAIN);
    assert_eq!(ask(m1_host, &dns, "www.exact-only.example"), NOERROR);
    assert_eq!(ask(a1_host, &dns, "exact-only.example"), NXDOMAIN);

    // Each change was a patch; the policy was never rebuilt.
    assert!(metric(&api, "pdns_policy_patches").await >= 5);
    assert_eq!(metric(&api, "pdns_policy_rebuilds").await, 0);

    // An org-tree change: a new member under the supervisor, on a
    // network of its own, is protected by the supervisor's AMBER intel at
    // once; the policy is assembled again around the intel zones it has,
    // which are not rebuilt.
    let a2_host = "127.0.0.4";
    assert_eq!(ask(a2_host, &dns, "www.turns-amber.example"), NOERROR);
    org_add(&data, "sup", "a2", "member", Some("127.0.0.4/32"));
    let t = until(a2_host, &dns, "www.turns-amber.example", NXDOMAIN);
    eprintln!("org-tree change enforced after {} ms", t.as_millis());
    assert!(metric(&api, "pdns_policy_reassemblies").await >= 1);
    assert_eq!(metric(&api, "pdns_policy_rebuilds").await, 0);
}

/// With a sinkhole configured, what the intel and the orgs' lists block
/// resolves to the block page's address, and the page, fetched from each
/// org's address, names the list that blocked it and that org's contacts
/// (its own, else its nearest ancestor's) beside the SOC's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_page_names_the_list_and_the_orgs_contacts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Tree { soc, sup, a1, .. } = tree(&data);
    let (up, _stop) = upstream();
    let config = dir.path().join("mimamori.toml");
    std::fs::write(
        &config,
        format!(
            "[pdns]\nlisten = \"127.0.0.1:0\"\nupstreams = [\"{up}\"]\n\
             sinkhole_v4 = \"127.0.0.1\"\nblock_page_listen = \"127.0.0.1:0\"\n\
             block_page_contact = \"Central SOC desk: soc@example.test\"\n"
        ),
    )
    .unwrap();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config);
    let (_server, api, dns, more) = serve_until(&mut cmd, &["block page listening"]);
    let page = more[0].clone();
    let page_port = page.rsplit(':').next().unwrap().to_string();

    // The supervisor lists contacts; a1 lists none of its own. Its users
    // see the help desk, not the incident line listed first.
    let (status, body) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/api/v1/orgs/{sup}"),
            &soc,
            Some(json!({"contacts": [
                {"name": "Sup CISO", "role": "incident", "phone": "+81-90-0000-0000"},
                {"name": "Sup Helpdesk", "role": "helpdesk", "email": "help@sup.example", "phone": "+81-3-0000-0000"}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    api.add(&soc, &a1, "block", "a1-blocked.example").await;
    let r = api
        .client
        .post(format!(
            "{}/api/v1/intel/import?format=plain&subdomains=true&confidence=90&source=t",
            api.base
        ))
        .bearer_auth(&soc)
        .body("intel-bad.example\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Both blocks answer with the sinkhole address (NOERROR, an A record).
    let started = Instant::now();
    let sinkholed = |from: &str, name: &str| {
        let s = UdpSocket::bind(format!("{from}:0")).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(2500)))
            .unwrap();
        s.send_to(&dns_query(0x4d4f, name), &dns).unwrap();
        let mut buf = [0u8; 1500];
        let (n, _) = s.recv_from(&mut buf).expect("an answer");
        let m = hickory_proto::op::Message::from_vec(&buf[..n]).unwrap();
        m.answers.iter().any(|r| {
            matches!(&r.data, hickory_proto::rr::RData::A(a) if a.0 == std::net::Ipv4Addr::LOCALHOST)
        })
    };
    while !(sinkholed("127.0.0.2", "www.a1-blocked.example")
        && sinkholed("127.0.0.3", "www.intel-bad.example"))
    {
        assert!(started.elapsed() < Duration::from_secs(10), "no sinkhole");
        std::thread::sleep(Duration::from_millis(50));
    }
    let fetch = |from: &'static str, host: &'static str| {
        let url = format!("http://127.0.0.1:{page_port}/");
        async move {
            let c = reqwest::Client::builder()
                .local_address(Some(from.parse().unwrap()))
                .build()
                .unwrap();
            let r = c.get(url).header("host", host).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    // a1's own list; the supervisor's contacts, a1 having none.
    let (status, body) = fetch("127.0.0.2", "www.a1-blocked.example").await;
    assert_eq!(status, 403, "{body}");
    for want in [
        "dns:a1",
        "The DNS block list of a1",
        "*.a1-blocked.example",
        "sup<br>Sup Helpdesk (helpdesk): help@sup.example, +81-3-0000-0000",
        "Central SOC desk: soc@example.test",
    ] {
        assert!(body.contains(want), "{want:?} not in {body}");
    }
    assert!(!body.contains("Sup CISO"), "{body}");
    // m1 (under the root, whose contacts init left empty): the intel, and
    // only the SOC's contact.
    let (status, body) = fetch("127.0.0.3", "www.intel-bad.example").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<dd>intel<br>Threat intelligence"), "{body}");
    assert!(!body.contains("Sup Helpdesk"), "{body}");
    assert!(!body.contains("Your organisation"), "{body}");
    // a1's block is a1's alone.
    let (status, _) = fetch("127.0.0.3", "www.a1-blocked.example").await;
    assert_eq!(status, 404);
    assert_eq!(metric(&api, "pdns_block_pages").await, 2);
    assert_eq!(metric(&api, "pdns_block_pages_unblocked").await, 1);
}

/// One Zeek `dns.log` record (JSON) of `host` asking for `query`, `ago`
/// seconds before now.
fn zeek_dns(host: &str, query: &str, ago: u64) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - ago as f64;
    json!({
        "_path": "dns", "ts": ts, "uid": format!("C{}", query.len()),
        "id.orig_h": host, "id.orig_p": 41772, "id.resp_h": "10.0.0.53", "id.resp_p": 53,
        "proto": "udp", "trans_id": 36329, "query": query, "qclass": 1,
        "qclass_name": "C_INTERNET", "qtype": 1, "qtype_name": "A", "rcode": 0,
        "rcode_name": "NOERROR", "AA": false, "TC": false, "RD": true, "RA": true,
        "Z": 0, "answers": ["192.0.2.10"], "TTLs": [300.0], "rejected": false
    })
    .to_string()
}

/// Issue 22's scenario, through the binary's real HTTP and DNS: eight
/// member orgs send Zeek DNS events over the HTTP ingest; three of them
/// had asked for sub-domains of `bad.example`, one for the look-alike
/// `notbad.example`. Then a STIX 2.1 bundle naming the malicious domains
/// (TLP:GREEN) is imported over HTTP. The retro-hunt gives each of the
/// three its alert and the three-org campaign forms; the look-alike
/// matches nothing; the resolver blocks the sub-domains for the members
/// right after the import; and a client in no org's network is refused
/// (the default `unattributed = "refuse"`), not answered as the root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_domains_of_imported_intel_are_detected_retro_hunted_and_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report: Value =
        serde_json::from_str(&run_ok(mimamori(&data).args(["init", "--json"]))).unwrap();
    let soc = report["admin_token"].as_str().unwrap().to_string();
    let orgs: Vec<(String, String)> = (1..=8)
        .map(|i| {
            let net = format!("127.0.0.{}/32", 10 + i);
            let id = org_add(&data, "soc", &format!("m{i}"), "member", Some(&net));
            (id, format!("127.0.0.{}", 10 + i))
        })
        .collect();
    let (up, _stop) = upstream();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("MIMAMORI_PDNS_LISTEN", "127.0.0.1:0")
        .env("MIMAMORI_PDNS_UPSTREAMS", up.to_string());
    let (_server, api, dns, _) = serve_until(&mut cmd, &[]);

    // What each org's hosts asked, before anyone knew.
    let asked = |i: usize| -> Vec<&'static str> {
        match i {
            0 => vec!["update.bad.example", "www.example.com"],
            1 => vec!["cdn7.bad.example"],
            2 => vec!["a.b.cdn.bad.example", "www.example.org"],
            3 => vec!["notbad.example", "www.notbad.example"],
            _ => vec!["www.example.com", "mail.example.net"],
        }
    };
    let mut total = 0;
    for (i, (org, _)) in orgs.iter().enumerate() {
        let (sensor, _) = api.token(&soc, org, "sensor").await;
        let mut body = String::new();
        for (k, q) in asked(i).iter().enumerate() {
            let line = zeek_dns(&format!("10.{i}.0.{}", 10 + k), q, 120 + k as u64);
            body.push_str(&line);
            body.push('\n');
            total += 1;
        }
        ingest_zeek(&api, &sensor, body).await;
    }
    // The retro-hunt reads the archive: wait until every event is in it.
    let started = Instant::now();
    loop {
        let (status, r) = api
            .call(
                reqwest::Method::POST,
                "/api/v1/query",
                &soc,
                Some(
                    json!({"sql": "SELECT count(*) AS n FROM events WHERE query.hostname IS NOT NULL"}),
                ),
            )
            .await;
        if status == 200 && r["rows"][0]["n"] == total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{total} events not archived: {status} {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing is blocked yet.
    assert_eq!(ask(&orgs[0].1, &dns, "update.bad.example"), NOERROR);

    let bundle = json!({
        "type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
        "objects": [
            {"type": "indicator", "spec_version": "2.1",
             "id": "indicator--8e2e2d2b-17d4-4cbf-938f-98ee46b3cd3f",
             "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
             "name": "attacker infrastructure", "indicator_types": ["malicious-activity"],
             "pattern": "[domain-name:value = 'bad.example']", "pattern_type": "stix",
             "valid_from": "2026-01-01T00:00:00Z",
             "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]},
            {"type": "indicator", "spec_version": "2.1",
             "id": "indicator--1f3c1e4e-8d3a-4b8e-9a53-0c6d1b7f2a10",
             "created": "2026-01-01T00:00:00.000Z", "modified": "2026-01-01T00:00:00.000Z",
             "name": "second stage", "indicator_types": ["malicious-activity"],
             "pattern": "[domain-name:value = 'stage2-c2.example']", "pattern_type": "stix",
             "valid_from": "2026-01-01T00:00:00Z",
             "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]}
        ]
    });
    let imported = Instant::now();
    let r = api
        .client
        .post(format!("{}/api/v1/intel/import?format=stix", api.base))
        .bearer_auth(&soc)
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["inserted"], 2, "{b}");

    // The resolver blocks the sub-domains (polled over UDP; the deadline
    // is generous, the time is printed).
    let t = until(&orgs[0].1, &dns, "update.bad.example", NXDOMAIN);
    eprintln!(
        "update.bad.example blocked {} ms after the import was sent ({} ms of polling after it answered)",
        imported.elapsed().as_millis(),
        t.as_millis()
    );
    assert_eq!(ask(&orgs[1].1, &dns, "cdn7.bad.example"), NXDOMAIN);
    assert_eq!(ask(&orgs[2].1, &dns, "a.b.cdn.bad.example"), NXDOMAIN);
    assert_eq!(ask(&orgs[2].1, &dns, "bad.example"), NXDOMAIN);
    assert_eq!(ask(&orgs[2].1, &dns, "x.stage2-c2.example"), NXDOMAIN);
    // The look-alike is not a sub-domain.
    assert_eq!(ask(&orgs[3].1, &dns, "notbad.example"), NOERROR);
    assert_eq!(ask(&orgs[3].1, &dns, "www.notbad.example"), NOERROR);
    // A client in no org's network is refused, not answered as the root.
    assert_eq!(ask("127.0.0.1", &dns, "update.bad.example"), 5);
    assert_eq!(ask("127.0.0.1", &dns, "www.example.com"), 5);

    // The indicator's detail says it covers its sub-domains.
    let (status, list) = api
        .call(
            reqwest::Method::GET,
            "/api/v1/indicators?limit=10",
            &soc,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let bad = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["indicator"]["value"] == "bad.example")
        .cloned()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(bad["subdomains"], true, "{bad}");
    assert_eq!(bad["indicator"]["tlp"], "green", "{bad}");

    // Every org that asked for a sub-domain has its alert, the campaign
    // spans exactly those three, and the look-alike's org has none.
    let hit: Vec<&str> = orgs[..3].iter().map(|(id, _)| id.as_str()).collect();
    let started = Instant::now();
    loop {
        let (_, a) = api
            .call(
                reqwest::Method::GET,
                "/api/v1/alerts?kind=indicator&limit=500",
                &soc,
                None,
            )
            .await;
        let (_, c) = api
            .call(reqwest::Method::GET, "/api/v1/campaigns", &soc, None)
            .await;
        let alerts = a["items"].as_array().cloned().unwrap_or_default();
        let alerted = |org: &str| alerts.iter().any(|x| x["org_id"] == org);
        let campaign = c["items"].as_array().and_then(|v| {
            v.iter()
                .find(|c| c["key"] == "indicator:domain:bad.example")
                .cloned()
        });
        let members = campaign.as_ref().map(|c| {
            let mut ids: Vec<String> = c["org_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            ids.sort();
            ids
        });
        let mut want: Vec<String> = hit.iter().map(|s| s.to_string()).collect();
        want.sort();
        if hit.iter().all(|o| alerted(o)) && members.as_ref() == Some(&want) {
            assert!(
                alerts.iter().any(|x| x["retro"] == true),
                "found by the retro-hunt: {a}"
            );
            for (org, _) in &orgs[3..] {
                assert!(!alerted(org), "no alert for {org}: {a}");
            }
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "alerts: {a}\ncampaigns: {c}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The id of the indicator of `value` owned by `owner`, then its detail
/// (`GET /api/v1/indicators/{id}`).
async fn indicator_detail(api: &Api, token: &str, owner: &str, value: &str) -> Value {
    let (status, list) = api
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/indicators?contains={value}&limit=100"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let id = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["indicator"]["value"] == value && i["owner_org_id"] == owner)
        .and_then(|i| i["id"].as_str())
        .unwrap_or_else(|| panic!("no indicator {value} of {owner}: {list}"))
        .to_string();
    let (status, detail) = api
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/indicators/{id}"),
            token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["id"], id.as_str(), "{detail}");
    assert_eq!(detail["indicator"]["value"], value, "{detail}");
    detail
}

/// Sub-domain coverage from every source, through the running server:
/// MISP events (default, and `mimamori:subdomains="false"` on the event
/// and on one attribute), a TAXII 2.1 write to the server's collection
/// (default, and `x_mimamori_subdomains: false`), a STIX import with
/// `x_mimamori_subdomains: false`, and `mimamori intel import --subdomains
/// false` on the command line while the server runs. Each indicator's
/// detail says what it covers, the resolver enforces just that, and a live
/// event (not a retro-hunt) for a sub-domain of a covering indicator,
/// ingested after the import, raises its alert while one for a sub-domain
/// of an exact-only name raises none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_intel_source_says_whether_a_domain_covers_its_sub_domains() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let Tree { soc, root, .. } = tree(&data);
    // An org with no network: only what its sensor sends is its telemetry
    // (the DNS questions below come from m1's address).
    let m2 = org_add(&data, "soc", "m2", "member", None);
    let (up, _stop) = upstream();
    let mut cmd = mimamori(&data);
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("MIMAMORI_PDNS_LISTEN", "127.0.0.1:0")
        .env("MIMAMORI_PDNS_UPSTREAMS", up.to_string());
    let (_server, api, dns, _) = serve_until(&mut cmd, &[]);
    let m1_host = "127.0.0.3";

    // MISP: an event without the tag (one attribute tagged exact), and an
    // event tagged exact for all its attributes. No retro-hunt: the alert
    // below can only come from the live event.
    let misp = |body: Value| {
        let api = &api;
        let soc = &soc;
        async move {
            let r = api
                .client
                .post(format!(
                    "{}/api/v1/intel/import?format=misp&retro=false&source=misp",
                    api.base
                ))
                .bearer_auth(soc)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let b: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{b}");
            assert_eq!(b["rejected"], 0, "{b}");
            assert!(b["retro_hunt_id"].is_null(), "{b}");
            b
        }
    };
    let b = misp(json!({"Event": {
        "uuid": "5f1e1c2a-0000-4000-8000-000000000101", "info": "c2 infrastructure",
        "date": "2026-11-01", "timestamp": "1790000000", "distribution": "1",
        "Tag": [{"name": "tlp:green"}],
        "Attribute": [
            {"type": "domain", "category": "Network activity", "to_ids": true,
             "value": "misp-covered.example"},
            {"type": "hostname", "category": "Network activity", "to_ids": true,
             "value": "misp-attr-exact.example",
             "Tag": [{"name": "mimamori:subdomains=\"false\""}]}
        ]
    }}))
    .await;
    assert_eq!(b["inserted"], 2, "{b}");
    let b = misp(json!({"Event": {
        "uuid": "5f1e1c2a-0000-4000-8000-000000000102", "info": "a shared host",
        "date": "2026-11-01", "timestamp": "1790000000", "distribution": "1",
        "Tag": [{"name": "tlp:green"}, {"name": "mimamori:subdomains=\"false\""}],
        "Attribute": [
            {"type": "domain", "category": "Network activity", "to_ids": true,
             "value": "misp-exact.example"}
        ]
    }}))
    .await;
    assert_eq!(b["inserted"], 1, "{b}");

    // TAXII 2.1: the collection as the server lists it, then an envelope.
    let taxii = "application/taxii+json;version=2.1";
    let r = api
        .client
        .get(format!("{}/taxii2/api/collections/", api.base))
        .bearer_auth(&soc)
        .header("accept", taxii)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cols: Value = r.json().await.unwrap();
    let col = cols["collections"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["can_write"] == true))
        .and_then(|c| c["id"].as_str())
        .unwrap_or_else(|| panic!("no writable collection: {cols}"))
        .to_string();
    let green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
    let stix_indicator = |id: &str, value: &str| {
        json!({"type": "indicator", "spec_version": "2.1", "id": id,
            "created": "2026-11-01T00:00:00.000Z", "modified": "2026-11-01T00:00:00.000Z",
            "name": value, "indicator_types": ["malicious-activity"],
            "pattern": format!("[domain-name:value = '{value}']"), "pattern_type": "stix",
            "valid_from": "2026-11-01T00:00:00Z", "object_marking_refs": [green]})
    };
    let mut taxii_exact = stix_indicator(
        "indicator--2b3c4d5e-0000-4000-8000-000000000202",
        "taxii-exact.example",
    );
    taxii_exact["x_mimamori_subdomains"] = json!(false);
    let envelope = json!({"objects": [
        stix_indicator("indicator--2b3c4d5e-0000-4000-8000-000000000201", "taxii-covered.example"),
        taxii_exact,
    ]});
    let r = api
        .client
        .post(format!(
            "{}/taxii2/api/collections/{col}/objects/",
            api.base
        ))
        .bearer_auth(&soc)
        .header("accept", taxii)
        .header("content-type", taxii)
        .body(envelope.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{b}");
    assert_eq!(b["success_count"], 2, "{b}");
    assert_eq!(b["failure_count"], 0, "{b}");

    // STIX over the import endpoint, the indicator marked exact.
    let mut stix_exact = stix_indicator(
        "indicator--3c4d5e6f-0000-4000-8000-000000000301",
        "stix-exact.example",
    );
    stix_exact["x_mimamori_subdomains"] = json!(false);
    let bundle = json!({"type": "bundle", "id": "bundle--3c4d5e6f-0000-4000-8000-000000000300",
        "objects": [stix_exact]});
    let r = api
        .client
        .post(format!("{}/api/v1/intel/import?format=stix", api.base))
        .bearer_auth(&soc)
        .body(bundle.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let b: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["inserted"], 1, "{b}");

    // The command line, on the running server's data directory: a source
    // of exact names.
    let list = dir.path().join("exact-names.txt");
    std::fs::write(&list, "# exact names\ncli-exact.example\n").unwrap();
    run_ok(
        mimamori(&data)
            .args([
                "intel",
                "import",
                "--format",
                "plain",
                "--tlp",
                "green",
                "--subdomains",
                "false",
            ])
            .arg(&list),
    );

    // Each detail says what the source said; the resolver does just that.
    for (value, covers) in [
        ("misp-covered.example", true),
        ("misp-attr-exact.example", false),
        ("misp-exact.example", false),
        ("taxii-covered.example", true),
        ("taxii-exact.example", false),
        ("stix-exact.example", false),
        ("cli-exact.example", false),
    ] {
        let d = indicator_detail(&api, &soc, &root, value).await;
        assert_eq!(d["subdomains"], covers, "{value}: {d}");
        until(m1_host, &dns, value, NXDOMAIN);
        let sub = format!("sub.{value}");
        let want = if covers { NXDOMAIN } else { NOERROR };
        assert_eq!(ask(m1_host, &dns, &sub), want, "{sub}");
    }
    // The sources are kept: MISP's and TAXII's writes say who wrote them.
    let d = indicator_detail(&api, &soc, &root, "taxii-covered.example").await;
    assert!(
        d["indicator"]["sources"].to_string().contains("taxii:"),
        "{d}"
    );

    // Live: m2's sensor reports hosts asking for sub-domains, after the
    // import. The covering indicator alerts; the exact-only ones do not.
    let (sensor, _) = api.token(&soc, &m2, "sensor").await;
    // (The covering one last: once its alert is there, detection has seen
    // the others.)
    let body: String = [
        "www.misp-exact.example",
        "www.misp-attr-exact.example",
        "www.taxii-exact.example",
        "www.stix-exact.example",
        "www.cli-exact.example",
        "cdn.misp-covered.example",
    ]
    .iter()
    .enumerate()
    .map(|(k, q)| zeek_dns(&format!("10.2.0.{}", 10 + k), q, 1) + "\n")
    .collect();
    ingest_zeek(&api, &sensor, body).await;
    let started = Instant::now();
    let alerts = loop {
        let (_, a) = api
            .call(
                reqwest::Method::GET,
                "/api/v1/alerts?kind=indicator&limit=500",
                &soc,
                None,
            )
            .await;
        let mine: Vec<Value> = a["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|x| x["org_id"] == m2.as_str())
            .collect();
        if mine
            .iter()
            .any(|x| x["rule_id"] == "domain:misp-covered.example")
        {
            break mine;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no live alert for m2: {a}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(alerts.len(), 1, "only the covering indicator: {alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert["retro"], false, "{alert}");
    assert_eq!(
        alert["context"]["observed"]["value"], "cdn.misp-covered.example",
        "{alert}"
    );
}
