//! Recursion instead of forwarding: [`Recursive`] is an [`Upstream`] that
//! answers a query by walking the delegations down from the root servers
//! with hickory-resolver's `Recursor`, and writes the result back as the
//! response a forwarder would have received, so the engine (cache, policy,
//! serve-stale, prefetch, NS lookups) works the same either way.
//!
//! The root servers come from [`IANA_ROOT_HINTS`] or from a root hints
//! file in named.root (master file) format, read by [`parse_root_hints`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::config::ConnectionConfig;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::recursor::{Recursor, RecursorError, RecursorOptions};
use hickory_resolver::{ConnectionProvider, PoolContext};
use ipnet::IpNet;

use crate::upstream::{BoxFuture, Upstream, UpstreamError};

/// The IANA root servers' addresses (A, then AAAA, for a. to m.), from
/// InterNIC's named.root (<https://www.internic.net/domain/named.root>),
/// last updated April 18, 2024 (root zone 2024041801). Hickory does not
/// prime (ask the roots for the current list): it keeps asking these, so a
/// retired address costs a timeout now and then, and the other servers
/// answer, until this list or the `--root-hints` file is updated.
pub const IANA_ROOT_HINTS: [IpAddr; 26] = [
    IpAddr::V4(Ipv4Addr::new(198, 41, 0, 4)),
    IpAddr::V4(Ipv4Addr::new(170, 247, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(192, 33, 4, 12)),
    IpAddr::V4(Ipv4Addr::new(199, 7, 91, 13)),
    IpAddr::V4(Ipv4Addr::new(192, 203, 230, 10)),
    IpAddr::V4(Ipv4Addr::new(192, 5, 5, 241)),
    IpAddr::V4(Ipv4Addr::new(192, 112, 36, 4)),
    IpAddr::V4(Ipv4Addr::new(198, 97, 190, 53)),
    IpAddr::V4(Ipv4Addr::new(192, 36, 148, 17)),
    IpAddr::V4(Ipv4Addr::new(192, 58, 128, 30)),
    IpAddr::V4(Ipv4Addr::new(193, 0, 14, 129)),
    IpAddr::V4(Ipv4Addr::new(199, 7, 83, 42)),
    IpAddr::V4(Ipv4Addr::new(202, 12, 27, 33)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x503, 0xba3e, 0, 0, 0, 0x2, 0x30)),
    IpAddr::V6(Ipv6Addr::new(0x2801, 0x1b8, 0x10, 0, 0, 0, 0, 0xb)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x2, 0, 0, 0, 0, 0xc)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x2d, 0, 0, 0, 0, 0xd)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0xa8, 0, 0, 0, 0, 0xe)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x2f, 0, 0, 0, 0, 0xf)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x12, 0, 0, 0, 0, 0xd0d)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x1, 0, 0, 0, 0, 0x53)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x7fe, 0, 0, 0, 0, 0, 0x53)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x503, 0xc27, 0, 0, 0, 0x2, 0x30)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x7fd, 0, 0, 0, 0, 0, 0x1)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0x500, 0x9f, 0, 0, 0, 0, 0x42)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdc3, 0, 0, 0, 0, 0, 0x35)),
];

/// How to recurse.
#[derive(Debug, Clone)]
pub struct RecursiveConfig {
    /// Where every resolution starts: the root servers' addresses.
    pub root_hints: Vec<IpAddr>,
    /// The port every name server is asked on. 53 in the real world;
    /// another value serves a test or lab hierarchy on unprivileged ports
    /// (hickory's recursor has no per-server port, so this replaces it for
    /// all of them).
    pub port: u16,
    /// Name server networks asked even though hickory's default deny list
    /// covers them (loopback, RFC 1918, CG-NAT, link-local, documentation
    /// and other special-purpose ranges): without an exception a referral to
    /// such an address is ignored, which keeps a public name from steering
    /// the resolver at internal hosts.
    pub allow_servers: Vec<IpNet>,
    /// The longest one resolution may take. Hickory waits 5 s for a silent
    /// server before trying the next (fixed in its recursor), so this leaves
    /// room for one such wait; stub resolvers (glibc: 5 s, 2 attempts) have
    /// given up by 10 s, when an answer helps no one. Past it the query
    /// fails: serve-stale, else SERVFAIL.
    pub timeout: Duration,
}

impl Default for RecursiveConfig {
    fn default() -> Self {
        Self {
            root_hints: IANA_ROOT_HINTS.to_vec(),
            port: 53,
            allow_servers: vec![],
            timeout: Duration::from_secs(8),
        }
    }
}

/// Why recursion could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RecursiveError {
    #[error("no root hints: recursion needs at least one root server address")]
    NoRootHints,
    #[error("recursor: {0}")]
    Recursor(String),
}

/// Why a root hints file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RootHintsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("no A or AAAA record: a root hints file lists the root servers' addresses")]
    Empty,
}

/// The addresses of the A and AAAA records in a root hints file (RFC 1035
/// master file syntax, as InterNIC's named.root), in file order, each once.
/// NS records are checked for shape and otherwise skipped: the addresses
/// are what the recursor starts from.
pub fn parse_root_hints(text: &str) -> Result<Vec<IpAddr>, RootHintsError> {
    let mut out: Vec<IpAddr> = vec![];
    let mut have_owner = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let bad = |reason: String| RootHintsError::Line { line, reason };
        // named.root has no quoted strings, so ';' always starts a comment.
        let body = raw.split(';').next().unwrap_or("");
        let mut tokens = body.split_whitespace().peekable();
        let Some(&first) = tokens.peek() else {
            continue;
        };
        if body.contains(['(', ')']) {
            return Err(bad("multi-line records are not supported".into()));
        }
        if let Some(directive) = first.strip_prefix('$') {
            match directive.to_ascii_uppercase().as_str() {
                // Neither changes which addresses are listed.
                "TTL" | "ORIGIN" => continue,
                _ => return Err(bad(format!("unsupported directive {first}"))),
            }
        }
        // A line starting with blanks continues the previous owner.
        if raw.starts_with([' ', '\t']) {
            if !have_owner {
                return Err(bad("a record without an owner name".into()));
            }
        } else {
            tokens.next();
            have_owner = true;
        }
        // Optional TTL and class, in either order.
        let mut rtype = None;
        for _ in 0..3 {
            let Some(t) = tokens.next() else { break };
            if crate::rpz::parse_ttl(t).is_some() || t.eq_ignore_ascii_case("IN") {
                continue;
            }
            rtype = Some(t);
            break;
        }
        let Some(rtype) = rtype else {
            return Err(bad("no record type".into()));
        };
        let rdata: Vec<&str> = tokens.collect();
        let one = |what: &str| match rdata.as_slice() {
            [v] => Ok(*v),
            _ => Err(bad(format!(
                "{rtype} needs exactly one {what}, found {}",
                rdata.len()
            ))),
        };
        let ip = match rtype.to_ascii_uppercase().as_str() {
            "A" => {
                let v = one("IPv4 address")?;
                IpAddr::V4(
                    v.parse::<Ipv4Addr>()
                        .map_err(|_| bad(format!("{v:?} is not an IPv4 address")))?,
                )
            }
            "AAAA" => {
                let v = one("IPv6 address")?;
                IpAddr::V6(
                    v.parse::<Ipv6Addr>()
                        .map_err(|_| bad(format!("{v:?} is not an IPv6 address")))?,
                )
            }
            "NS" => {
                one("name server name")?;
                continue;
            }
            _ => {
                let why = "a root hints file holds NS, A and AAAA records";
                return Err(bad(format!("unexpected record type {rtype:?} ({why})")));
            }
        };
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err(RootHintsError::Empty);
    }
    Ok(out)
}

/// [`parse_root_hints`] on a file.
pub fn load_root_hints(path: &Path) -> Result<Vec<IpAddr>, RootHintsError> {
    let text = std::fs::read_to_string(path).map_err(|source| RootHintsError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_root_hints(&text)
}

/// Tokio connections to name servers, on [`RecursiveConfig::port`].
#[derive(Clone)]
struct PortProvider {
    tokio: TokioRuntimeProvider,
    port: u16,
}

impl ConnectionProvider for PortProvider {
    type Conn = <TokioRuntimeProvider as ConnectionProvider>::Conn;
    type FutureConn = <TokioRuntimeProvider as ConnectionProvider>::FutureConn;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        cx: &PoolContext,
    ) -> Result<Self::FutureConn, NetError> {
        let mut config = config.clone();
        config.port = self.port;
        self.tokio.new_connection(ip, &config, cx)
    }

    fn runtime_provider(&self) -> &TokioRuntimeProvider {
        &self.tokio
    }
}

/// Resolves by recursion from the root servers (hickory-resolver's
/// non-validating `Recursor`, with its own caches of delegations and
/// answers behind the engine's).
pub struct Recursive {
    recursor: Recursor<PortProvider>,
    timeout: Duration,
}

impl Recursive {
    pub fn new(cfg: &RecursiveConfig) -> Result<Self, RecursiveError> {
        // Hickory asserts on an empty list: refuse it here instead.
        if cfg.root_hints.is_empty() {
            return Err(RecursiveError::NoRootHints);
        }
        let options = RecursorOptions {
            // Zone cuts kept with their name server pools (and as many
            // name server connections). Every registered domain a client
            // visits is one; hickory's 1,024 would churn on a busy site.
            ns_cache_size: 4_096,
            // Hickory's cache of what it learnt on the way: NS sets and
            // server addresses per zone, CNAME targets, final answers. The
            // engine's answer cache in front holds what clients ask, so
            // this one mostly serves delegation walks; hickory's default
            // (1M entries) would hold far more than they need.
            response_cache_size: 65_536,
            // Hickory adds one to the depth per label it walks down that
            // is not a cached zone cut, and per CNAME followed; with its
            // default (24) a cold reverse lookup of an IPv6 address
            // (34 labels under ip6.arpa) would fail. 48 covers that plus
            // glueless name servers and CNAMEs; the work of one query stays
            // bounded by hickory's fixed budget of 200 server queries.
            recursion_limit: 48,
            ns_recursion_limit: 48,
            allow_server: cfg.allow_servers.clone(),
            ..RecursorOptions::default()
        };
        let provider = PortProvider {
            tokio: TokioRuntimeProvider::default(),
            port: cfg.port,
        };
        let recursor = Recursor::with_options(&cfg.root_hints, options, provider)
            .map_err(|e| RecursiveError::Recursor(e.to_string()))?;
        Ok(Self {
            recursor,
            timeout: cfg.timeout,
        })
    }

    async fn query_inner(&self, req: &[u8]) -> Result<Vec<u8>, UpstreamError> {
        let other = |e: &dyn std::fmt::Display| UpstreamError::Other(format!("recursion: {e}"));
        let msg = Message::from_vec(req).map_err(|e| other(&e))?;
        let question = msg
            .queries
            .first()
            .cloned()
            .ok_or_else(|| other(&"a query without a question"))?;
        let mut query = question.clone();
        // Names from the wire are absolute; hickory insists on being told.
        query.name.set_fqdn(true);
        let name = query.name.to_ascii();
        let resolved = tokio::time::timeout(
            self.timeout,
            // Not DNSSEC-aware: DNSSEC records are neither asked for nor
            // passed on (validation is not implemented).
            self.recursor.resolve(query, Instant::now(), false),
        )
        .await
        .map_err(|_| other(&format!("{name}: no answer within {:?}", self.timeout)))?;

        let mut m = Message::new(msg.metadata.id, MessageType::Response, OpCode::Query);
        m.metadata.recursion_desired = msg.metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.metadata.checking_disabled = msg.metadata.checking_disabled;
        m.add_query(question);
        match resolved {
            Ok(resp) => {
                // NOERROR, or NXDOMAIN at the end of a CNAME chain.
                m.metadata.response_code = resp.metadata.response_code;
                m.add_answers(resp.answers);
                m.add_authorities(resp.authorities);
            }
            // Hickory returns the authoritative "no such name" and "no such
            // record" as errors: they are answers, with the zone's SOA (its
            // TTL and MINIMUM set how long the engine caches them).
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                m.metadata.response_code = if e.is_nx_domain() {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                if let Some(soa) = e.into_soa() {
                    m.add_authority((*soa).into_record_of_rdata());
                }
            }
            // Everything else (no server answered, SERVFAIL or REFUSED all
            // the way, lame delegations, limits hit) is a failure: the
            // engine counts it and serves stale or SERVFAIL, as for a
            // forwarder whose upstreams all failed.
            Err(e) => return Err(failure(&name, e)),
        }
        if msg.edns.is_some() {
            // RFC 6891 §6.1.1: a request with OPT gets one back (the engine
            // drops it again before caching).
            let mut edns = Edns::new();
            edns.set_max_payload(crate::wire::OUR_UDP_SIZE);
            m.set_edns(edns);
        }
        m.to_vec().map_err(|e| other(&e))
    }
}

fn failure(name: &str, e: RecursorError) -> UpstreamError {
    UpstreamError::Other(format!("recursion for {name}: {e}"))
}

impl Upstream for Recursive {
    fn query<'a>(&'a self, request: &'a [u8]) -> BoxFuture<'a, Result<Vec<u8>, UpstreamError>> {
        Box::pin(self.query_inner(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HINTS: &str = ";       This file holds the information on root name servers
;
.                        3600000      NS    A.ROOT-SERVERS.NET.
A.ROOT-SERVERS.NET.      3600000      A     198.41.0.4
A.ROOT-SERVERS.NET.      3600000      AAAA  2001:503:ba3e::2:30
$TTL 3600
.                        IN 3600000   NS    B.ROOT-SERVERS.NET.
B.ROOT-SERVERS.NET.      6w5d IN   A     170.247.170.2
                                      AAAA  2801:1b8:10::b
b.root-servers.net.                   a     170.247.170.2
; End of file";

    #[test]
    fn root_hints_parse() {
        let v = parse_root_hints(HINTS).expect("parses");
        let want: Vec<IpAddr> = [
            "198.41.0.4",
            "2001:503:ba3e::2:30",
            "170.247.170.2",
            "2801:1b8:10::b",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        assert_eq!(v, want, "A and AAAA in file order, each once");
    }

    #[test]
    fn root_hints_bad_input_names_the_line() {
        let cases = [
            ("A.ROOT. 3600 A 198.41.0.256\n", 1, "not an IPv4 address"),
            (
                ";c\n\nA.ROOT. 3600 AAAA 198.41.0.4\n",
                3,
                "not an IPv6 address",
            ),
            (". NS A.ROOT.\nA.ROOT. 3600 A\n", 2, "exactly one"),
            ("A.ROOT. 3600 A 1.2.3.4 5.6.7.8\n", 1, "exactly one"),
            ("A.ROOT. 3600 IN\n", 1, "no record type"),
            ("A.ROOT. 3600 TXT hello\n", 1, "unexpected record type"),
            ("   A 1.2.3.4\n", 1, "without an owner"),
            ("$INCLUDE other.zone\n", 1, "unsupported directive"),
            (". SOA a. b. (\n 1 2 3 4 5 )\n", 1, "multi-line"),
            ("A.ROOT. 1.2.3.4\n", 1, "unexpected record type"),
        ];
        for (text, line, reason) in cases {
            match parse_root_hints(text) {
                Err(RootHintsError::Line { line: l, reason: r }) => {
                    assert_eq!(l, line, "{text:?}: {r}");
                    assert!(r.contains(reason), "{text:?}: {r}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(
            parse_root_hints("; nothing\n. 3600 NS A.ROOT.\n"),
            Err(RootHintsError::Empty)
        ));
        let e = load_root_hints(Path::new("/nonexistent/named.root")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/named.root"), "{e}");
    }

    /// The built-in list is the one in the system's copy of named.root
    /// (Debian's dns-root-data), when there is one.
    #[test]
    fn iana_hints_match_the_system_named_root() {
        let path = Path::new("/usr/share/dns/root.hints");
        if !path.exists() {
            // Past libtest's capture, so that the skip shows in the normal
            // output of `cargo test`.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED iana_hints_match_the_system_named_root: {} is not installed (Debian's dns-root-data)",
                path.display()
            );
            return;
        }
        let mut file = load_root_hints(path).expect("the system's root hints parse");
        let mut ours = IANA_ROOT_HINTS.to_vec();
        file.sort();
        ours.sort();
        assert_eq!(file, ours);
    }

    #[test]
    fn empty_root_hints_are_refused() {
        let cfg = RecursiveConfig {
            root_hints: vec![],
            ..RecursiveConfig::default()
        };
        assert!(matches!(
            Recursive::new(&cfg),
            Err(RecursiveError::NoRootHints)
        ));
    }
}
