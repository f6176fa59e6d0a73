//! The block page: where a sinkhole answer leads a browser. A policy whose
//! block action is local data pointing at this listener's address (an RPZ
//! `A`/`AAAA` record, or `[pdns] sinkhole_v4`/`sinkhole_v6`) sends the
//! user's browser here with the blocked name in the `Host` header; the
//! page says what was blocked, by which list and rule, and whom to ask.
//!
//! Every request (any path, any method) is answered from the policy in
//! force *now*, for the client's org chosen as the resolver chooses it (its
//! source address, else the fallback org; a block page has no DoH token):
//! 403 with the page when the name is blocked for that client, 404 with a
//! short page when it is not (the site is never fetched or proxied), 400
//! without a usable `Host`. Nothing is cached (`no-store`): the answer
//! depends on the client and on a policy that changes.
//!
//! Over HTTPS (a certificate and key configured), a browser still warns
//! about the certificate unless it trusts its CA *and* the certificate
//! names the blocked site, which no certificate can do for every name:
//! only plain HTTP shows the page without a warning, and a site reached
//! over HTTPS (HSTS, or the user typing `https://`) shows an error instead.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;

use crate::engine::{action_name, Engine};
use crate::policy::{text_to_wire, Action};

/// The block page listener.
#[derive(Clone)]
pub struct BlockPageConfig {
    /// Its address; a sinkhole answer must lead clients to it (port 80 for
    /// plain HTTP, as a browser assumes).
    pub listen: SocketAddr,
    /// HTTPS with this config, plain HTTP without (see the module docs on
    /// certificate warnings).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The SOC's contact, shown on every page under the client org's own
    /// ([`crate::OrgPolicy::contact`]).
    pub contact: Option<String>,
}

impl BlockPageConfig {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tls: None,
            contact: None,
        }
    }
}

/// Request headers past this size (HTTP/1.1 buffer, HTTP/2 header list)
/// end the connection: a browser's request for a page is far smaller.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The longest a block page connection stays open: a browser needs one
/// request (and a favicon) from it.
const CONN_LIFETIME: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Page {
    engine: Arc<Engine>,
    soc_contact: Option<Arc<str>>,
}

/// The block page as a router: every path and method is the page.
pub fn router(engine: Arc<Engine>, soc_contact: Option<String>) -> Router {
    Router::new().fallback(page).with_state(Page {
        engine,
        soc_contact: soc_contact.filter(|c| !c.trim().is_empty()).map(Arc::from),
    })
}

/// The connection builder: bounded headers, and a deadline for them so
/// an idle or slow client does not hold a connection slot.
pub(crate) fn builder(idle: Duration) -> Builder<TokioExecutor> {
    let mut b = Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(64);
    b.http2()
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(16);
    b
}

pub(crate) fn lifetime() -> Option<Duration> {
    Some(CONN_LIFETIME)
}

/// The name a request asks for: the `Host` header (the HTTP/2 authority
/// when there is none), without its port and trailing dot, lower-cased,
/// and in wire form. `None` for anything that is not a host name (an IP
/// literal included: no block applies to one).
fn requested_name(headers: &HeaderMap, uri: &Uri) -> Option<(String, Vec<u8>)> {
    let raw = match headers.get(header::HOST) {
        Some(v) => v.to_str().ok()?,
        None => uri.authority()?.as_str(),
    };
    let host = match raw.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        // An IPv6 literal, or not a host at all.
        Some(_) => return None,
        None => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    // Browsers send IDNs as punycode: letters, digits, `-` (and `_`, which
    // some names carry) are all a name can hold here.
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    if host.is_empty() || !host.bytes().all(ok) || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let host = host.to_ascii_lowercase();
    let mut wire = Vec::with_capacity(host.len() + 2);
    // Empty or over-long labels, or a name over 255 bytes.
    text_to_wire(&host, &[0], &mut wire)?;
    Some((host, wire))
}

async fn page(
    State(p): State<Page>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let Some((name, wire)) = requested_name(&headers, &uri) else {
        return respond(&method, StatusCode::BAD_REQUEST, bad_request());
    };
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; org
    // networks are declared as IPv4.
    let client = peer.ip().to_canonical();
    let policy = p.engine.policy().load();
    let org = policy.org_of(client);
    let contact = Contacts {
        org: policy.org_contact(org).map(|c| &**c),
        soc: p.soc_contact.as_deref(),
    };
    let reference = format!("{} {name} {client}", utc(SystemTime::now()));
    let hit = policy
        .check_query(org, client, &wire)
        .filter(|h| blocks(h.action));
    let stats = &p.engine.stats;
    match hit {
        Some(hit) => {
            stats.block_pages.fetch_add(1, Ordering::Relaxed);
            let why = Why {
                zone: hit.zone.name(),
                description: hit.zone.description().map(|d| &**d),
                rule: &hit.rule(&wire),
                action: hit.action,
            };
            tracing::debug!(%client, %name, zone = %why.zone, rule = why.rule, "block page");
            let html = blocked_page(&name, &why, &contact, &reference);
            respond(&method, StatusCode::FORBIDDEN, html)
        }
        None => {
            stats.block_pages_unblocked.fetch_add(1, Ordering::Relaxed);
            let html = unblocked_page(&name, &contact, &reference);
            respond(&method, StatusCode::NOT_FOUND, html)
        }
    }
}

/// Whether an action keeps the client from the name: PASSTHRU exempts it,
/// and TCP-only resolves it normally over TCP.
fn blocks(a: &Action) -> bool {
    !matches!(a, Action::Passthru | Action::TcpOnly)
}

fn respond(method: &Method, status: StatusCode, html: String) -> Response {
    let len = html.len();
    // HEAD: the headers of the page, its length included, and no body.
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(html)
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    // The page depends on the client and on a policy that changes.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Nothing on the page runs or loads: say so, in case escaping is ever
    // missed somewhere.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

/// Text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escaped text with its line breaks kept.
fn esc_lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(esc)
        .collect::<Vec<_>>()
        .join("<br>")
}

/// `2024-05-01T12:34:56Z`.
fn utc(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t).replace_nanosecond(0);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "(time unknown)".into())
}

struct Why<'a> {
    zone: &'a str,
    description: Option<&'a str>,
    rule: &'a str,
    action: &'a Action,
}

struct Contacts<'a> {
    org: Option<&'a str>,
    soc: Option<&'a str>,
}

fn action_text(a: &Action) -> String {
    let what = match a {
        Action::NxDomain => "answered as a name that does not exist",
        Action::NoData => "answered with no addresses",
        Action::Drop => "left unanswered",
        Action::Local(_) => "answered with a replacement, such as this page's address",
        Action::Passthru | Action::TcpOnly => "not blocked",
    };
    format!("{what} ({})", action_name(a))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f5;color:#18181b}\
main{max-width:40rem;margin:3rem auto;padding:2rem;background:#fff;border-radius:8px;border-top:6px solid #b91c1c}\
h1{margin-top:0;font-size:1.6rem}h2{font-size:1.1rem;margin-top:1.8rem}\
.name{font-family:ui-monospace,monospace;font-size:1.2rem;word-break:break-all;background:#fef2f2;padding:.5rem}\
dt{font-weight:600;margin-top:.5rem}dd{margin-left:1rem}.note{color:#52525b;font-size:.9rem}\
code{word-break:break-all}main.free{border-top-color:#71717a}";

/// The page around `body`; `class` marks `<main>` (`free`: not a block).
fn shell(title: &str, class: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>{title}</title>\
<style>{STYLE}</style></head>\n<body><main class=\"{class}\">\n{body}</main></body></html>\n"
    )
}

fn contacts_html(c: &Contacts<'_>) -> String {
    let mut out = String::new();
    if let Some(org) = c.org {
        out.push_str(&format!(
            "<p><strong>Your organisation</strong><br>{}</p>\n",
            esc_lines(org)
        ));
    }
    if let Some(soc) = c.soc {
        out.push_str(&format!(
            "<p><strong>Security operations centre</strong><br>{}</p>\n",
            esc_lines(soc)
        ));
    }
    if out.is_empty() {
        out.push_str("<p>Your IT support or security team.</p>\n");
    }
    out
}

fn blocked_page(name: &str, why: &Why<'_>, contact: &Contacts<'_>, reference: &str) -> String {
    let description = why
        .description
        .map(|d| format!("<br>{}", esc(d)))
        .unwrap_or_default();
    let body = format!(
        "<h1>This site is blocked</h1>\n<p class=\"name\">{name}</p>\n\
<p>Protective DNS, the filtering DNS resolver your network uses, blocked this name to protect \
you and your organisation from malicious or unwanted sites.</p>\n\
<h2>Why</h2>\n<dl><dt>List</dt><dd>{zone}{description}</dd>\n\
<dt>Rule</dt><dd><code>{rule}</code></dd>\n<dt>Action</dt><dd>{action}</dd></dl>\n\
<p class=\"note\">The list does not record why each name is on it; its owners can tell you, \
given the reference below.</p>\n\
<h2>Whom to contact</h2>\n{contacts}\
<p>If you think this is a mistake, or you need this site for your work, tell them the \
reference below.</p>\n<h2>Reference</h2>\n<p><code>{reference}</code></p>\n",
        name = esc(name),
        zone = esc(why.zone),
        rule = esc(why.rule),
        action = esc(&action_text(why.action)),
        contacts = contacts_html(contact),
        reference = esc(reference),
    );
    shell(&format!("Blocked: {}", esc(name)), "blocked", &body)
}

fn unblocked_page(name: &str, contact: &Contacts<'_>, reference: &str) -> String {
    let body = format!(
        "<h1>Not blocked</h1>\n<p class=\"name\">{name}</p>\n\
<p>Protective DNS does not block this name for your network now, and this page never \
leads on to the site. If a block brought you here, the policy may have changed since \
(try again in a few minutes), or the block came from the address or the name servers the \
name resolved to, which this page does not check again.</p>\n\
<h2>Whom to contact</h2>\n{contacts}\
<h2>Reference</h2>\n<p><code>{reference}</code></p>\n",
        name = esc(name),
        contacts = contacts_html(contact),
        reference = esc(reference),
    );
    shell(&format!("Not blocked: {}", esc(name)), "free", &body)
}

fn bad_request() -> String {
    shell(
        "Bad request",
        "free",
        "<h1>Bad request</h1>\n<p>This is the Protective DNS block page: it explains why a \
domain name was blocked, and needs the name in the request's Host header.</p>\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(host: Option<&str>) -> Option<String> {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, HeaderValue::from_str(v).expect("header"));
        }
        requested_name(&h, &Uri::from_static("/")).map(|(name, _)| name)
    }

    #[test]
    fn host_header_to_name() {
        assert_eq!(
            name_of(Some("Evil.Example")).as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            name_of(Some("evil.example.:8080")).as_deref(),
            Some("evil.example")
        );
        assert_eq!(
            name_of(Some("xn--bcher-kva.example")).as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(name_of(None), None);
        for bad in [
            "",
            ":80",
            "a..b",
            "[::1]:80",
            "192.0.2.1",
            "evil.example:http",
            "<script>.example",
            "user@evil.example",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert_eq!(name_of(Some(bad)), None, "{bad:?}");
        }
        // HTTP/2 carries the host in the authority.
        let uri: Uri = "http://Evil.Example:80/x".parse().expect("uri");
        let (name, wire) = requested_name(&HeaderMap::new(), &uri).expect("a name");
        assert_eq!(name, "evil.example");
        assert_eq!(wire, b"\x04evil\x07example\x00");
    }

    #[test]
    fn utc_dates() {
        let at = |s: u64| utc(std::time::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
    }

    #[test]
    fn everything_interpolated_is_escaped() {
        let local = Action::sinkhole(Some("192.0.2.1".parse().expect("ip")), None, 60);
        let why = Why {
            zone: "<script>alert('zone')</script>",
            description: Some("\"><img src=x>"),
            rule: "*.<b>rule",
            action: &local,
        };
        let contact = Contacts {
            org: Some("Ops & <Co>\nphone <i>1</i>"),
            soc: Some("<script>soc</script>"),
        };
        let html = blocked_page("<x>.example", &why, &contact, "ref <u>");
        for raw in ["<script", "<img", "<b>", "<i>", "<u>", "<x>", "<Co>"] {
            assert!(!html.contains(raw), "{raw} unescaped in {html}");
        }
        assert!(html.contains("&lt;script&gt;alert(&#39;zone&#39;)&lt;/script&gt;"));
        assert!(html.contains("Ops &amp; &lt;Co&gt;<br>phone &lt;i&gt;1&lt;/i&gt;"));
        let html = unblocked_page("<x>.example", &contact, "ref <u>");
        assert!(!html.contains("<x>") && !html.contains("<script"));
    }
}
