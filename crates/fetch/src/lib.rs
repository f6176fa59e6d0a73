//! Server-side HTTP fetches that cannot reach internal addresses.
//!
//! Org admins set URLs the server fetches or posts to: webhooks, feeds,
//! TAXII collections polled as feeds. Without a check those are a way into
//! the SOC's own network (server-side request forgery): the loopback
//! interface, the cloud metadata service at 169.254.169.254, private
//! ranges. A [`Fetcher`] refuses every address outside the public internet
//! unless the configuration allows its range (`[security]
//! allow_fetch_networks`), and checks where it really connects:
//! - host names through a DNS resolver that drops refused addresses (so a
//!   name resolving to 127.0.0.1 is refused, and a name with public and
//!   private addresses only ever connects to the public ones);
//! - IP literals in the URL before the request is sent;
//! - every redirect, by the same two checks (its IP literal in the
//!   redirect policy, its host name through the resolver again).
//!
//! Proxies from the environment are not used: a proxy would connect on
//! the server's behalf to addresses this check never sees.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "{host} is {ip}, {why}: the server does not fetch from there unless \
         [security] allow_fetch_networks allows it"
    )]
    Refused {
        host: String,
        ip: IpAddr,
        why: &'static str,
    },
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Http(String),
}

/// Which addresses server-side fetches may connect to.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicy {
    allow: Vec<IpNet>,
}

/// Ranges that are not the public internet, and why.
const BLOCKED: &[(&str, &str)] = &[
    ("0.0.0.0/8", "a \"this network\" address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a carrier-grade NAT address"),
    ("127.0.0.0/8", "a loopback address"),
    (
        "169.254.0.0/16",
        "a link-local address (cloud metadata services live here)",
    ),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol assignment"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b::/96", "a NAT64 address"),
    ("64:ff9b:1::/48", "a NAT64 address"),
    ("fc00::/7", "a unique local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
];

impl FetchPolicy {
    /// Refuses internal addresses except in `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        FetchPolicy { allow }
    }

    /// Why `ip` is refused, or `None` when it may be fetched from.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        // ::ffff:127.0.0.1 is 127.0.0.1.
        let ip = ip.to_canonical();
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return None;
        }
        BLOCKED.iter().find_map(|(net, why)| {
            net.parse::<IpNet>()
                .ok()
                .filter(|n| n.contains(&ip))
                .map(|_| *why)
        })
    }

    /// Checks a URL before it is requested: an http(s) scheme, and an IP
    /// literal host outside the refused ranges (names are checked when
    /// resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::Url(format!(
                "{url}: only http and https URLs are fetched"
            )));
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            Some(url::Host::Domain(_)) => return Ok(()),
            None => return Err(FetchError::Url(format!("{url}: the URL names no host"))),
        };
        match self.refusal(ip) {
            Some(why) => Err(FetchError::Refused {
                host: url.host_str().unwrap_or_default().to_string(),
                ip,
                why,
            }),
            None => Ok(()),
        }
    }
}

/// Resolves names with the system resolver and keeps only the addresses
/// the policy allows.
struct CheckingResolver {
    policy: Arc<FetchPolicy>,
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.refusal(a.ip()) {
                    Some(why) => {
                        refused = Some((a.ip(), why));
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let e: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some((ip, why)) => Box::new(FetchError::Refused { host, ip, why }),
                    None => format!("{host} has no address").into(),
                };
                return Err(e);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// An HTTP client whose every connection is checked against a policy.
#[derive(Clone)]
pub struct Fetcher {
    http: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

/// Most redirects followed.
pub const MAX_REDIRECTS: usize = 10;

impl Fetcher {
    /// A client from `builder` (timeouts, user agent) with the checks added.
    pub fn new(policy: FetchPolicy, builder: reqwest::ClientBuilder) -> Result<Self, FetchError> {
        let policy = Arc::new(policy);
        let redirects = policy.clone();
        let http = builder
            .no_proxy()
            .dns_resolver(Arc::new(CheckingResolver {
                policy: policy.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            }))
            .build()
            .map_err(|e| FetchError::Http(describe(&e)))?;
        Ok(Fetcher { http, policy })
    }

    /// The client, to build requests with; send them with [`Fetcher::send`].
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Sends `req` after checking its URL.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, FetchError> {
        let req = req.build().map_err(|e| FetchError::Http(describe(&e)))?;
        self.policy.check_url(req.url())?;
        self.http
            .execute(req)
            .await
            .map_err(|e| FetchError::Http(describe(&e)))
    }
}

/// An error with its causes (reqwest's own message hides the refusal).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    #[test]
    fn internal_ranges_are_refused_unless_allowed() {
        let p = FetchPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(p.refusal(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["93.184.215.14", "1.1.1.1", "2606:4700::1111"] {
            assert!(p.refusal(ip.parse().unwrap()).is_none(), "{ip}");
        }
        let p = FetchPolicy::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(p.refusal("10.9.9.9".parse().unwrap()).is_none());
        assert!(p.refusal("192.168.1.1".parse().unwrap()).is_some());
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(p.check_url(&u("file:///etc/passwd")).is_err());
        assert!(p.check_url(&u("http://[::1]:80/")).is_err());
        assert!(p.check_url(&u("http://10.0.0.1/")).is_ok());
    }

    /// A one-route HTTP server answering every request with `response`.
    async fn server(addr: &str, response: String) -> SocketAddr {
        let l = TcpListener::bind(addr).await.unwrap();
        let a = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let response = response.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(response.as_bytes()).await;
                });
            }
        });
        a
    }

    fn ok() -> String {
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".into()
    }

    #[tokio::test]
    async fn loopback_is_refused_by_default_allowed_by_config_and_redirects_checked() {
        let target = server("127.0.0.1:0", ok()).await;
        let fetch = |allow: Vec<&str>| {
            Fetcher::new(
                FetchPolicy::new(allow.iter().map(|a| a.parse().unwrap()).collect()),
                reqwest::Client::builder(),
            )
            .unwrap()
        };
        // By IP literal and by name.
        for url in [
            format!("http://{target}/"),
            format!("http://localhost:{}/", target.port()),
        ] {
            let f = fetch(vec![]);
            let e = f.send(f.http().get(&url)).await.unwrap_err();
            assert!(e.to_string().contains("loopback"), "{url}: {e}");
            let f = fetch(vec!["127.0.0.0/8"]);
            let r = f.send(f.http().get(&url)).await.unwrap();
            assert_eq!(r.text().await.unwrap(), "ok");
        }
        // A server allowed (127.0.0.2 only) redirecting to one that is not.
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{target}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let hop = server("127.0.0.2:0", redirect).await;
        let f = fetch(vec!["127.0.0.2/32"]);
        let e = f
            .send(f.http().get(format!("http://{hop}/")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        // …and by name: localhost resolves to refused addresses only.
        let redirect = format!(
            "HTTP/1.1 302 Found\r\nlocation: http://localhost:{}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            target.port()
        );
        let hop = server("127.0.0.2:0", redirect).await;
        let e = f
            .send(f.http().get(format!("http://{hop}/")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
