//! Protective DNS in the binary: `mimamori pdns` (standalone, from files)
//! and the resolver `serve` runs with the intel hub as its policy.
//!
//! Inside `serve`:
//! - **policy** = the configured RPZ zones and lists, then the intel hub's
//!   active domain indicators: the central SOC's (and every CLEAR/GREEN
//!   one) for everyone; a member's or supervisor's own for its sub-tree; an
//!   AMBER one also for the orgs it is shared with. Plus each org's own
//!   allow and block lists from the store (`/api/v1/dns/policy`), applied
//!   down the tree as `crate::dns_policy::assemble` describes. Clients are mapped to
//!   orgs by the orgs' declared networks, else by a DoH path token
//!   (`/dns-query/<dns-client token>`), else to no org: refused, or
//!   answered with the root's policy but credited to nobody
//!   (`[pdns] unattributed`, [`crate::dns_policy::Unattributed`]). The
//!   intel zones come from the detection matcher's views (the indicators
//!   are loaded and indexed once, for both); a watcher patches the policy
//!   when the matcher installs a new view (at once) and assembles it again
//!   when the org tree, the lists or the DNS client tokens change (polled
//!   every 500 ms), see [`crate::dns_policy`], and swaps it in without
//!   stopping the resolver.
//! - **query log**: every answered query becomes a DNS Activity event of
//!   the client's org in the ingest pipeline (an unattributed client's go
//!   to `serve`'s log instead, in no org's events), so detection and retro-hunting see
//!   it. Submission never blocks answering: the resolver's log channel is
//!   bounded and counts drops, and a full ingest queue drops the batch
//!   (counted) instead of waiting.
//! - **block answers**: NXDOMAIN, or with `sinkhole_v4`/`sinkhole_v6` the
//!   block page's address for what the intel, the orgs' lists and the
//!   blocklists block (RPZ zones answer as they say). The block page
//!   (`block_page_listen`) shows the org's contacts (its own, else its
//!   nearest ancestor's) and `block_page_contact`.

use crate::dns_policy::{PolicyState, Refresh, Version};
use crate::zone_files::{self, FileZone};
use anyhow::{anyhow, Context};
use clap::Args;
use mimamori_dns::{
    query_log, Action, PdnsConfig, Policy, PolicyHandle, RecursiveConfig, Secondary, XfrConfig,
    Zone,
};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use mimamori_store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `mimamori pdns`: a filtering resolver from files, without the rest of
/// mimamori (for orgs that only want the resolver). It forwards to
/// `--upstream`s or recurses (`--recursive`): exactly one of the two.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("resolution")
        .args(["upstreams", "recursive"])
        .required(true)
        .multiple(false)
))]
pub struct PdnsArgs {
    /// Address to answer on (UDP and TCP), e.g. 0.0.0.0:53.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Upstream resolver to forward to, tried in order; repeat for
    /// several: ADDR:PORT (plain DNS), tls://ADDR[:PORT]#SERVER-NAME (DNS
    /// over TLS) or https://HOST[:PORT]/PATH (DNS over HTTPS).
    #[arg(long = "upstream")]
    pub upstreams: Vec<mimamori_dns::UpstreamSpec>,
    /// Resolve by recursion from the root servers instead of forwarding.
    #[arg(long)]
    pub recursive: bool,
    /// Root hints for --recursive: a file in named.root format, whose A and
    /// AAAA records are the root servers (default: the IANA root servers'
    /// addresses, built in).
    // Not `requires = "recursive"`: a flag's implicit default (false)
    // satisfies that. Without --upstream the group above asks for
    // --recursive.
    #[arg(long, value_name = "FILE", conflicts_with = "upstreams")]
    pub root_hints: Option<PathBuf>,
    /// For --recursive: name servers in this network may be asked although
    /// it is private or special-purpose (say, an internal zone's servers
    /// in 10.0.0.0/8); repeat. Without it referrals to such addresses are
    /// ignored, so a public name cannot steer the resolver at internal
    /// hosts.
    #[arg(
        long = "recursion-allow",
        value_name = "NET",
        conflicts_with = "upstreams"
    )]
    pub recursion_allow: Vec<ipnet::IpNet>,
    /// CA certificates (PEM) for DoT and DoH upstreams (default: the
    /// system's bundle).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// RPZ zone file, optionally with its origin: FILE[=ORIGIN]; repeat,
    /// checked in order.
    #[arg(long)]
    pub rpz: Vec<String>,
    /// RPZ zone transferred from its primary: ZONE@ADDR[:PORT] (AXFR, then
    /// IXFR on the SOA refresh timer and when the primary sends a NOTIFY
    /// to --listen); repeat. Checked after the --rpz files.
    #[arg(long = "rpz-primary", value_name = "ZONE@ADDR:PORT")]
    pub rpz_primary: Vec<String>,
    /// Domains to block (one per line, `*.` for sub-domains); repeat.
    #[arg(long)]
    pub blocklist: Vec<PathBuf>,
    /// Domains never blocked; repeat.
    #[arg(long)]
    pub allowlist: Vec<PathBuf>,
    /// UDP threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Under dense UDP traffic, wait up to this many microseconds for more
    /// queries before receiving again (less CPU per query, that much more
    /// latency at load; 0: off).
    #[arg(long, default_value_t = mimamori_dns::DEFAULT_UDP_COALESCE.as_micros() as u64)]
    pub coalesce_us: u64,
    /// Write the query log as tab-separated lines to FILE (`-`: stdout).
    #[arg(long)]
    pub query_log: Option<String>,
    /// Answer the names the --blocklist files block with this IPv4 address
    /// (the block page's, as clients reach it) instead of NXDOMAIN.
    #[arg(long)]
    pub sinkhole_v4: Option<Ipv4Addr>,
    /// The same for AAAA queries.
    #[arg(long)]
    pub sinkhole_v6: Option<Ipv6Addr>,
    /// Serve the block page (why a name is blocked, whom to ask) on
    /// ADDR:PORT, for browsers a sinkhole answer leads there.
    #[arg(long, value_name = "ADDR:PORT")]
    pub block_page: Option<SocketAddr>,
    /// Whom users ask about a block, shown on the block page.
    #[arg(long, value_name = "TEXT")]
    pub block_contact: Option<String>,
    /// Serve the block page over HTTPS with this certificate (PEM; with
    /// --block-page-tls-key). Browsers warn unless they trust it for the
    /// blocked name.
    #[arg(long, requires = "block_page_tls_key")]
    pub block_page_tls_cert: Option<PathBuf>,
    #[arg(long, requires = "block_page_tls_cert")]
    pub block_page_tls_key: Option<PathBuf>,
    /// Answer DNS over TLS (RFC 7858, ALPN "dot") on ADDR[:PORT] (port
    /// 853 by default), with --dot-tls-cert and --dot-tls-key.
    #[arg(long, value_name = "ADDR[:PORT]", value_parser = dot_addr, requires_all = ["dot_tls_cert", "dot_tls_key"])]
    pub dot_listen: Option<SocketAddr>,
    /// The DoT certificate chain (PEM), valid for the name clients ask
    /// for (their authentication domain name).
    #[arg(long, value_name = "FILE", requires = "dot_listen")]
    pub dot_tls_cert: Option<PathBuf>,
    /// The DoT certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "dot_listen")]
    pub dot_tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub tcp: TcpArgs,
}

/// DNS over TLS's port (RFC 7858).
pub const DOT_PORT: u16 = 853;

/// A DoT listen address: ADDR:PORT, or ADDR alone for port 853.
fn dot_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DOT_PORT))
        .map_err(|_| format!("{s:?} is not ADDR or ADDR:PORT (e.g. 0.0.0.0 or 0.0.0.0:853)"))
}

/// The DoT listener's TLS: the certificate and key from PEM files (the
/// resolver sets ALPN "dot").
fn dot_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let acceptor = mimamori_api::tls::acceptor_from_pem_files(cert, key)?;
    Ok(acceptor.config().clone())
}

/// The limits of the TCP and DoT listeners (the slowloris defence): past
/// either connection limit a new connection closes the oldest idle one;
/// past half the global limit the timeouts shrink, down to 200 ms when
/// full.
#[derive(Debug, Clone, Args)]
pub struct TcpArgs {
    /// TCP + DoT connections open at once.
    #[arg(long, default_value_t = mimamori_dns::TcpLimits::default().max_connections)]
    pub tcp_max_connections: usize,
    /// Connections open at once from one client (IPv4 address, IPv6 /64).
    #[arg(long, default_value_t = mimamori_dns::TcpLimits::default().max_per_client)]
    pub tcp_max_per_client: usize,
    /// Milliseconds a new connection has for its TLS handshake and first
    /// query.
    #[arg(long, default_value_t = mimamori_dns::TcpLimits::default().initial_timeout.as_millis() as u64)]
    pub tcp_initial_timeout_ms: u64,
    /// Milliseconds a connection may stay idle between queries.
    #[arg(long, default_value_t = mimamori_dns::TcpLimits::default().idle_timeout.as_millis() as u64)]
    pub tcp_idle_timeout_ms: u64,
}

impl TcpArgs {
    fn limits(&self) -> anyhow::Result<mimamori_dns::TcpLimits> {
        tcp_limits(
            Some(self.tcp_max_connections),
            Some(self.tcp_max_per_client),
            Some(self.tcp_initial_timeout_ms),
            Some(self.tcp_idle_timeout_ms),
        )
    }
}

/// The TCP limits from their settings (defaults where `None`); zero is
/// refused.
fn tcp_limits(
    max: Option<usize>,
    per_client: Option<usize>,
    initial_ms: Option<u64>,
    idle_ms: Option<u64>,
) -> anyhow::Result<mimamori_dns::TcpLimits> {
    let d = mimamori_dns::TcpLimits::default();
    for (name, v) in [
        ("tcp_max_connections", max.map(|v| v as u64)),
        ("tcp_max_per_client", per_client.map(|v| v as u64)),
        ("tcp_initial_timeout_ms", initial_ms),
        ("tcp_idle_timeout_ms", idle_ms),
    ] {
        if v == Some(0) {
            anyhow::bail!("{name} must be at least 1");
        }
    }
    Ok(mimamori_dns::TcpLimits {
        max_connections: max.unwrap_or(d.max_connections),
        max_per_client: per_client.unwrap_or(d.max_per_client),
        initial_timeout: initial_ms.map_or(d.initial_timeout, Duration::from_millis),
        idle_timeout: idle_ms.map_or(d.idle_timeout, Duration::from_millis),
    })
}

/// `[pdns]`: the resolver `serve` runs (off unless `listen` is set).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdnsSection {
    /// UDP and TCP address, e.g. "0.0.0.0:53".
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Upstream resolvers to forward to, tried in order: "ADDR:PORT",
    /// "tls://ADDR[:PORT]#SERVER-NAME" or "https://HOST[:PORT]/PATH".
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// CA certificates (PEM) that DoT and DoH upstreams must chain to
    /// (default: the system's bundle).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Resolve by recursion from the root servers instead of forwarding
    /// (then `upstreams` must be empty).
    #[serde(default)]
    pub recursive: bool,
    /// Root hints for `recursive`: a file in named.root format (default:
    /// the IANA root servers' addresses, built in).
    #[serde(default)]
    pub root_hints: Option<PathBuf>,
    /// For `recursive`: networks whose name servers may be asked although
    /// private or special-purpose (an internal zone's servers), e.g.
    /// ["10.0.0.0/8"]. Referrals to other such addresses are ignored.
    #[serde(default)]
    pub recursion_allow_servers: Vec<ipnet::IpNet>,
    /// RPZ zone files (FILE or FILE=ORIGIN), checked before the intel.
    #[serde(default)]
    pub rpz: Vec<String>,
    /// RPZ zones transferred from their primaries ("ZONE@ADDR:PORT"),
    /// checked after the files: AXFR, then IXFR on the SOA refresh timer
    /// and on NOTIFY.
    #[serde(default)]
    pub rpz_primaries: Vec<String>,
    #[serde(default)]
    pub blocklists: Vec<PathBuf>,
    #[serde(default)]
    pub allowlists: Vec<PathBuf>,
    /// DNS over HTTPS (RFC 8484) address: HTTPS with the API's certificate
    /// when the API uses TLS, plain HTTP (HTTP/1.1 or h2c) otherwise, for a
    /// TLS-terminating proxy in front. `/dns-query/<token>` selects the
    /// org of a DNS client token.
    #[serde(default)]
    pub doh_listen: Option<SocketAddr>,
    /// DNS over TLS (RFC 7858) address, "ADDR" (port 853) or "ADDR:PORT";
    /// with `dot_tls_cert` and `dot_tls_key`, else the API's certificate
    /// when the API uses TLS.
    #[serde(default)]
    pub dot_listen: Option<String>,
    /// The DoT certificate chain (PEM), valid for the name clients
    /// authenticate the resolver by.
    #[serde(default)]
    pub dot_tls_cert: Option<PathBuf>,
    /// The DoT certificate's private key (PEM).
    #[serde(default)]
    pub dot_tls_key: Option<PathBuf>,
    /// Under dense UDP traffic, how long (µs) a receive thread waits for
    /// more queries before receiving again: less CPU per query for that
    /// much more latency at load (default 300; 0: off).
    #[serde(default)]
    pub udp_coalesce_us: Option<u64>,
    /// Answer what the intel, the orgs' block lists and `blocklists` block
    /// with this IPv4 address instead of NXDOMAIN: the block page's
    /// address as clients reach it. RPZ zones answer as they say.
    #[serde(default)]
    pub sinkhole_v4: Option<Ipv4Addr>,
    /// The same for AAAA queries (without it they get no addresses).
    #[serde(default)]
    pub sinkhole_v6: Option<Ipv6Addr>,
    /// The block page's address: why a name is blocked and whom to ask,
    /// for browsers a sinkhole answer leads there (port 80 for HTTP).
    #[serde(default)]
    pub block_page_listen: Option<SocketAddr>,
    /// The SOC's contact on every block page, under the org's own (its
    /// contacts, else its nearest ancestor's).
    #[serde(default)]
    pub block_page_contact: Option<String>,
    /// Serve the block page over HTTPS with this certificate and key
    /// (PEM). Browsers warn unless they trust the certificate for the
    /// blocked name.
    #[serde(default)]
    pub block_page_tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub block_page_tls_key: Option<PathBuf>,
    /// Clients whose address is in no org's declared network and that
    /// present no DoH token: "refuse" (the default) answers them REFUSED;
    /// "log" answers them with the root's policy and logs their queries as
    /// unattributed (serve's log), credited to no org, so no org's events
    /// or alerts. An org's clients are attributed by its declared
    /// `networks` or its DoH client tokens.
    #[serde(default)]
    pub unattributed: crate::dns_policy::Unattributed,
    /// TCP + DoT connections open at once (default 256). At the limit a
    /// new connection closes the oldest idle one instead of waiting.
    #[serde(default)]
    pub tcp_max_connections: Option<usize>,
    /// Connections open at once from one client address, an IPv4 address
    /// or an IPv6 /64 (default 32); past it the client's own oldest idle
    /// connection is closed.
    #[serde(default)]
    pub tcp_max_per_client: Option<usize>,
    /// How long (ms) a new TCP or DoT connection has for its handshake and
    /// first query (default 2000).
    #[serde(default)]
    pub tcp_initial_timeout_ms: Option<u64>,
    /// How long (ms) a connection may stay idle between queries (default
    /// 10000). Past half `tcp_max_connections` both timeouts shrink, down
    /// to 200 ms when full.
    #[serde(default)]
    pub tcp_idle_timeout_ms: Option<u64>,
}

/// The action for blocks when a sinkhole address is configured.
fn sinkhole(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) -> Option<Action> {
    (v4.is_some() || v6.is_some())
        .then(|| Action::sinkhole(v4, v6, mimamori_dns::EngineConfig::default().block_ttl))
}

/// The block page listener, if configured; its TLS from the PEM files.
fn block_page(
    listen: Option<SocketAddr>,
    contact: Option<String>,
    tls: (Option<&PathBuf>, Option<&PathBuf>),
) -> anyhow::Result<Option<mimamori_dns::BlockPageConfig>> {
    let Some(listen) = listen else {
        return Ok(None);
    };
    let tls = match tls {
        (Some(cert), Some(key)) => Some(
            mimamori_api::tls::acceptor_from_pem_files(cert, key)
                .context("block page TLS")?
                .config()
                .clone(),
        ),
        (None, None) => None,
        _ => anyhow::bail!("the block page's TLS needs both a certificate and a key"),
    };
    Ok(Some(mimamori_dns::BlockPageConfig {
        listen,
        tls,
        contact,
    }))
}

/// The configured policy zones: from files, and transferred from primaries.
/// In force in the order allowlists, RPZ files, transferred RPZ zones,
/// blocklists (an allowed name is never blocked by what follows). The
/// files are read again when they change (see [`crate::zone_files`]).
#[derive(Clone)]
struct ZoneSources {
    /// Allowlists and RPZ files.
    head: Vec<Arc<FileZone>>,
    transferred: Vec<Arc<Secondary>>,
    /// Blocklists.
    tail: Vec<Arc<FileZone>>,
}

impl ZoneSources {
    /// `sinkhole`: the blocklists' answer instead of NXDOMAIN. A
    /// blocklist holds only NXDOMAIN triggers, so `sinkhole` replaces them
    /// as the zone's override: one action for the whole list, not one per
    /// name.
    fn load(
        rpz: &[String],
        primaries: &[String],
        blocklists: &[PathBuf],
        allowlists: &[PathBuf],
        sinkhole: Option<&Action>,
    ) -> anyhow::Result<Self> {
        let mut head = vec![];
        for p in allowlists {
            head.push(Arc::new(FileZone::open(p, zone_files::Kind::Allow)?));
        }
        for spec in rpz {
            let (file, origin) = spec.split_once('=').unwrap_or((spec.as_str(), "."));
            let kind = zone_files::Kind::Rpz {
                origin: origin.to_string(),
            };
            head.push(Arc::new(FileZone::open(std::path::Path::new(file), kind)?));
        }
        let mut tail = vec![];
        for p in blocklists {
            let kind = zone_files::Kind::Block {
                sinkhole: sinkhole.cloned(),
            };
            tail.push(Arc::new(FileZone::open(p, kind)?));
        }
        let transferred = primaries
            .iter()
            .map(|spec| XfrConfig::parse(spec).map(Secondary::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            head,
            transferred,
            tail,
        })
    }

    /// The zones in force now (a transferred zone not loaded yet is left
    /// out).
    fn zones(&self) -> Vec<Arc<Zone>> {
        let mut v: Vec<Arc<Zone>> = self.head.iter().map(|f| f.current()).collect();
        v.extend(self.transferred.iter().filter_map(|s| s.zone()));
        v.extend(self.tail.iter().map(|f| f.current()));
        v
    }

    /// The zones read from files.
    fn files(&self) -> Vec<Arc<FileZone>> {
        self.head.iter().chain(&self.tail).cloned().collect()
    }

    /// The first transfer of each zone, before answering: a zone whose
    /// primary cannot be reached is left out (logged) and retried by the
    /// refresh loop.
    async fn first_transfers(&self) {
        for s in &self.transferred {
            if let Err(e) = s.refresh().await {
                tracing::error!(zone = %s.config().zone, primary = %s.config().primary, error = %e,
                    "RPZ zone: first transfer failed; running without it until a retry succeeds");
            }
        }
    }

    /// Keeps the transferred zones current (`on_change` after each load)
    /// and routes NOTIFY from their primaries to them.
    fn follow(
        &self,
        engine: &mimamori_dns::Engine,
        on_change: Arc<dyn Fn() + Send + Sync>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        if self.transferred.is_empty() {
            return vec![];
        }
        engine.on_notify(mimamori_dns::notify_router(self.transferred.clone()));
        self.transferred
            .iter()
            .map(|s| {
                let s = s.clone();
                let on_change = on_change.clone();
                tokio::spawn(async move {
                    // The first refresh already ran in `first_transfers`.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    s.run(on_change).await
                })
            })
            .collect()
    }

    /// Counters of the transfers, summed over the zones.
    fn xfr_stats(&self) -> (u64, u64) {
        self.transferred.iter().fold((0, 0), |(ok, failed), s| {
            let st = s.stats();
            (ok + st.axfr + st.ixfr, failed + st.failures)
        })
    }
}

/// Runs the standalone resolver until Ctrl-C.
pub async fn run_standalone(args: PdnsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let bulk = crate::allocator::bulk_load();
    let sources = ZoneSources::load(
        &args.rpz,
        &args.rpz_primary,
        &args.blocklist,
        &args.allowlist,
        sinkhole(args.sinkhole_v4, args.sinkhole_v6).as_ref(),
    )?;
    sources.first_transfers().await;
    let zones = sources.zones();
    drop(bulk);
    eprintln!(
        "policy: {} zone(s) loaded in {:.2} s",
        zones.len(),
        started.elapsed().as_secs_f64()
    );
    let (log, mut rx) = query_log(16_384);
    let mut cfg = PdnsConfig::new(args.listen, vec![]);
    cfg.upstream_specs = args.upstreams;
    cfg.ca_file = args.ca_file;
    if args.recursive {
        cfg.recursion = Some(recursion(args.root_hints.as_deref(), args.recursion_allow)?);
    }
    cfg.udp_threads = args.threads;
    cfg.tcp = args.tcp.limits()?;
    if let (Some(addr), Some(cert), Some(key)) =
        (args.dot_listen, &args.dot_tls_cert, &args.dot_tls_key)
    {
        cfg.tls_listen = Some((addr, dot_tls(cert, key).context("DoT TLS")?));
    }
    cfg.udp_coalesce = std::time::Duration::from_micros(args.coalesce_us);
    cfg.query_log = args.query_log.is_some().then_some(log);
    cfg.block_page = block_page(
        args.block_page,
        args.block_contact,
        (
            args.block_page_tls_cert.as_ref(),
            args.block_page_tls_key.as_ref(),
        ),
    )?;
    let policy = PolicyHandle::new(Policy::new(zones));
    let roots = cfg.recursion.as_ref().map(|r| r.root_hints.len());
    let handle = mimamori_dns::start(cfg, policy.clone())
        .map_err(|e| anyhow!("cannot start the resolver: {e}"))?;
    // A changed zone (transferred, or a file edited) means a new policy,
    // built aside and swapped in whole.
    let rebuild: Arc<dyn Fn() + Send + Sync> = {
        let sources = sources.clone();
        Arc::new(move || policy.set(Policy::new(sources.zones())))
    };
    let _followers = sources.follow(handle.engine(), rebuild.clone());
    let _files = zone_files::watch(sources.files(), rebuild);
    if let Some(n) = roots {
        eprintln!("resolution: recursive, from {n} root server address(es)");
    }
    println!("pdns listening on udp+tcp {}", handle.udp_addr());
    if let Some(addr) = handle.tls_addr() {
        println!("pdns DNS over TLS listening on {addr}");
    }
    if let Some(addr) = handle.block_page_addr() {
        let scheme = if args.block_page_tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        println!("block page listening on {scheme}://{addr}");
    }
    if let Some(sink) = args.query_log {
        std::thread::spawn(move || {
            use std::io::Write;
            let mut out: Box<dyn Write + Send> = if sink == "-" {
                Box::new(std::io::stdout())
            } else {
                match std::fs::File::create(&sink) {
                    Ok(f) => Box::new(std::io::BufWriter::new(f)),
                    Err(e) => {
                        eprintln!("query log {sink}: {e}");
                        return;
                    }
                }
            };
            while let Ok(e) = rx.recv() {
                let blocked = e
                    .blocked_by
                    .as_ref()
                    .map(|b| format!("{} {}", b.zone, b.rule))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    e.client,
                    e.name,
                    e.qtype,
                    e.rcode.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                    e.answer,
                    blocked
                );
            }
        });
    }
    crate::server::shutdown_signal().await;
    handle.shutdown();
    Ok(())
}

/// How often the policy was patched and rebuilt (for `/metrics`).
#[derive(Debug, Default)]
struct Refreshes {
    patches: AtomicU64,
    reassemblies: AtomicU64,
    rebuilds: AtomicU64,
}

/// The resolver `serve` runs; dropping it stops the resolver.
pub struct Running {
    pub handle: mimamori_dns::Handle,
    pub dropped_events: Arc<AtomicU64>,
    refreshes: Arc<Refreshes>,
    watcher: tokio::task::JoinHandle<()>,
    /// The refresh loops of transferred RPZ zones and the files' watcher.
    followers: Vec<tokio::task::JoinHandle<()>>,
    sources: ZoneSources,
    /// Reads the policy files again (for the API).
    pub reload: Arc<mimamori_api::DnsReloader>,
}

impl Running {
    /// The resolver's counters for `/metrics`.
    pub fn metrics(&self) -> Arc<mimamori_api::MetricsSource> {
        let engine = self.handle.engine().clone();
        let dropped = self.dropped_events.clone();
        let sources = self.sources.clone();
        let refreshes = self.refreshes.clone();
        let tcp = self.handle.tcp_counters();
        Arc::new(move || {
            let s = engine.stats();
            let t = tcp.get();
            let (xfr_ok, xfr_failed) = sources.xfr_stats();
            vec![
                (
                    "pdns_policy_patches",
                    "Intel changes applied to the DNS policy as an overlay",
                    refreshes.patches.load(Ordering::Relaxed),
                ),
                (
                    "pdns_policy_reassemblies",
                    "DNS policies assembled again around the intel zones in force (org tree, lists, client tokens or zones changed)",
                    refreshes.reassemblies.load(Ordering::Relaxed),
                ),
                (
                    "pdns_policy_rebuilds",
                    "Rebuilds of the DNS policy's intel zones from the detection matcher's view",
                    refreshes.rebuilds.load(Ordering::Relaxed),
                ),
                (
                    "pdns_rpz_transfers",
                    "RPZ zone transfers (AXFR or IXFR) loaded",
                    xfr_ok,
                ),
                (
                    "pdns_rpz_transfer_failures",
                    "RPZ zone transfers that failed (the zone in force was kept)",
                    xfr_failed,
                ),
                (
                    "pdns_ns_lookups",
                    "NS lookups for NSDNAME/NSIP triggers",
                    s.ns_lookups,
                ),
                ("pdns_queries", "DNS queries answered or dropped", s.queries),
                (
                    "pdns_tcp_connections",
                    "TCP and DoT connections open now",
                    t.open,
                ),
                (
                    "pdns_tcp_evicted",
                    "Idle TCP/DoT connections closed to make room for a new one (per-client or global limit)",
                    t.evicted_client + t.evicted_global,
                ),
                (
                    "pdns_tcp_refused",
                    "TCP/DoT connections refused because every connection was busy",
                    t.refused,
                ),
                (
                    "pdns_tcp_timed_out",
                    "TCP/DoT connections closed by the initial or idle timeout",
                    t.timed_out,
                ),
                ("pdns_blocked", "DNS queries blocked by policy", s.blocked),
                (
                    "pdns_cache_hits",
                    "DNS answers from the cache",
                    s.cache_hits,
                ),
                (
                    "pdns_cache_misses",
                    "DNS queries sent upstream",
                    s.cache_misses,
                ),
                (
                    "pdns_upstream_failures",
                    "Upstream queries that failed",
                    s.upstream_failures,
                ),
                (
                    "pdns_prefetches",
                    "Popular answers refreshed before they expired",
                    s.prefetches,
                ),
                (
                    "pdns_prefetch_skipped",
                    "Prefetches skipped because the prefetch queue was full",
                    s.prefetch_skipped,
                ),
                (
                    "pdns_block_pages",
                    "Block pages served for names blocked for the client",
                    s.block_pages,
                ),
                (
                    "pdns_block_pages_unblocked",
                    "Block page requests for names not blocked for the client",
                    s.block_pages_unblocked,
                ),
                (
                    "pdns_stale_served",
                    "Stale answers served while upstreams failed",
                    s.stale_served,
                ),
                ("pdns_servfail", "SERVFAIL answers", s.servfail),
                ("pdns_malformed", "Malformed DNS packets", s.malformed),
                (
                    "pdns_rate_limited",
                    "Queries over a client's rate limit",
                    s.rate_limited,
                ),
                (
                    "pdns_log_dropped",
                    "Query-log entries dropped because the log channel was full",
                    s.log_dropped,
                ),
                (
                    "pdns_log_events_dropped",
                    "Query-log events dropped because ingestion was busy",
                    dropped.load(Ordering::Relaxed),
                ),
            ]
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The handle stops the resolver when it is dropped, right after.
        self.watcher.abort();
        for f in &self.followers {
            f.abort();
        }
    }
}

/// Recursion from the root servers in `root_hints` (a named.root file),
/// else from the IANA root servers; name servers in `allow` asked although
/// their addresses are private or special-purpose.
fn recursion(
    root_hints: Option<&std::path::Path>,
    allow: Vec<ipnet::IpNet>,
) -> anyhow::Result<RecursiveConfig> {
    let mut r = RecursiveConfig {
        allow_servers: allow,
        ..RecursiveConfig::default()
    };
    if let Some(path) = root_hints {
        r.root_hints = mimamori_dns::load_root_hints(path)
            .with_context(|| format!("root hints {}", path.display()))?;
    }
    Ok(r)
}

/// How `[pdns]` resolves: the upstreams to forward to, or recursion;
/// exactly one of them.
fn resolution(
    section: &PdnsSection,
) -> anyhow::Result<(Vec<mimamori_dns::UpstreamSpec>, Option<RecursiveConfig>)> {
    if section.recursive {
        if !section.upstreams.is_empty() {
            anyhow::bail!(
                "[pdns] recursive = true and upstreams are both set: recursion replaces forwarding, keep one"
            );
        }
        let r = recursion(
            section.root_hints.as_deref(),
            section.recursion_allow_servers.clone(),
        )?;
        return Ok((vec![], Some(r)));
    }
    if section.root_hints.is_some() {
        anyhow::bail!("[pdns] root_hints is set without recursive = true");
    }
    if !section.recursion_allow_servers.is_empty() {
        anyhow::bail!("[pdns] recursion_allow_servers is set without recursive = true");
    }
    if section.upstreams.is_empty() {
        anyhow::bail!(
            "[pdns] listen is set but there is no way to resolve: add upstreams = [\"ADDR:53\"] or recursive = true"
        );
    }
    let specs = section
        .upstreams
        .iter()
        .map(|u| {
            u.parse::<mimamori_dns::UpstreamSpec>()
                .with_context(|| format!("[pdns] upstreams: {u:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((specs, None))
}

/// The DoT listener of `[pdns]`: its own certificate, else the API's.
fn dot_in_serve(
    section: &PdnsSection,
    api_tls: Option<&Arc<rustls::ServerConfig>>,
) -> anyhow::Result<Option<(SocketAddr, Arc<rustls::ServerConfig>)>> {
    let Some(listen) = &section.dot_listen else {
        if section.dot_tls_cert.is_some() || section.dot_tls_key.is_some() {
            anyhow::bail!("[pdns] dot_tls_cert and dot_tls_key are set without dot_listen");
        }
        return Ok(None);
    };
    let addr = dot_addr(listen).map_err(|e| anyhow!("[pdns] dot_listen: {e}"))?;
    let tls = match (&section.dot_tls_cert, &section.dot_tls_key, api_tls) {
        (Some(cert), Some(key), _) => {
            dot_tls(cert, key).context("[pdns] dot_tls_cert and dot_tls_key")?
        }
        (None, None, Some(api)) => api.clone(),
        (None, None, None) => anyhow::bail!(
            "[pdns] dot_listen needs a certificate: set dot_tls_cert and dot_tls_key (or give the API one)"
        ),
        _ => anyhow::bail!("[pdns] DoT needs both dot_tls_cert and dot_tls_key"),
    };
    Ok(Some((addr, tls)))
}

/// Starts the resolver of `[pdns]`, if configured.
pub async fn start_in_serve(
    section: &PdnsSection,
    store: &Store,
    matcher: &mimamori_pipeline::intel::IntelMatcher,
    ingest: Option<mimamori_ingest::Ingest>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<Option<Running>> {
    let Some(listen) = section.listen else {
        return Ok(None);
    };
    let (upstream_specs, recursion) = resolution(section)?;
    let sinkhole = sinkhole(section.sinkhole_v4, section.sinkhole_v6);
    let bulk = crate::allocator::bulk_load();
    let sources = ZoneSources::load(
        &section.rpz,
        &section.rpz_primaries,
        &section.blocklists,
        &section.allowlists,
        sinkhole.as_ref(),
    )?;
    sources.first_transfers().await;
    let started = Instant::now();
    let state = PolicyState::load(
        store,
        &sources.zones(),
        matcher.view(),
        sinkhole,
        section.unattributed,
    )
    .await?;
    drop(bulk);
    let policy = PolicyHandle::new(state.policy());
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "DNS policy loaded"
    );
    let (log, rx) = query_log(65_536);
    let mut cfg = PdnsConfig::new(listen, vec![]);
    cfg.upstream_specs = upstream_specs;
    cfg.recursion = recursion;
    cfg.ca_file = section.ca_file.clone();
    if let Some(us) = section.udp_coalesce_us {
        cfg.udp_coalesce = std::time::Duration::from_micros(us);
    }
    cfg.query_log = ingest.is_some().then_some(log);
    cfg.tcp = tcp_limits(
        section.tcp_max_connections,
        section.tcp_max_per_client,
        section.tcp_initial_timeout_ms,
        section.tcp_idle_timeout_ms,
    )
    .context("[pdns]")?;
    cfg.tls_listen = dot_in_serve(section, tls.as_ref())?;
    cfg.doh_listen = section.doh_listen.map(|a| (a, tls));
    cfg.block_page = block_page(
        section.block_page_listen,
        section.block_page_contact.clone(),
        (
            section.block_page_tls_cert.as_ref(),
            section.block_page_tls_key.as_ref(),
        ),
    )
    .context("[pdns] block_page_tls_cert and block_page_tls_key")?;
    let handle = mimamori_dns::start(cfg, policy.clone())
        .map_err(|e| anyhow!("cannot start the DNS resolver on {listen}: {e}"))?;
    // A zone that changed (transferred, or a file edited) marks the policy
    // for a rebuild and wakes the watcher below to do it now.
    let zones_changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    let changed: Arc<dyn Fn() + Send + Sync> = {
        let (zones_changed, wake) = (zones_changed.clone(), wake.clone());
        Arc::new(move || {
            zones_changed.store(true, Ordering::SeqCst);
            wake.notify_one();
        })
    };
    let mut followers = sources.follow(handle.engine(), changed.clone());
    followers.push(zone_files::watch(sources.files(), changed.clone()));
    let reload: Arc<mimamori_api::DnsReloader> = {
        let sources = sources.clone();
        Arc::new(move || {
            let (files, changed) = (sources.files(), changed.clone());
            let fut: ReloadFuture = Box::pin(async move {
                let r = zone_files::reload_all(files, true).await;
                if zone_files::any_reloaded(&r) {
                    changed();
                }
                r.into_iter().map(api_reload).collect()
            });
            fut
        })
    };
    let dropped = Arc::new(AtomicU64::new(0));
    let refreshes = Arc::new(Refreshes::default());
    if let Some(ingest) = ingest {
        let dropped = dropped.clone();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("mimamori-pdns-log".into())
            .spawn(move || drain_log(rx, ingest, runtime, dropped))?;
    }
    let watcher = {
        let store = store.clone();
        let sources = sources.clone();
        let refreshes = refreshes.clone();
        let matcher = matcher.clone();
        // Intel changes arrive as the matcher's new views, at once; the
        // org tree, lists and tokens are polled.
        let mut views = matcher.subscribe();
        tokio::spawn(async move {
            let mut state = state;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = wake.notified() => {}
                    // Never closed: this task holds the matcher, and with
                    // it the sender.
                    _ = views.changed() => {}
                }
                if store.is_closed() {
                    break;
                }
                let now = match Version::of(&store).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(error = %e, "DNS policy: cannot check the intel for changes");
                        continue;
                    }
                };
                let zones_dirty = zones_changed.swap(false, Ordering::SeqCst);
                let started = Instant::now();
                match state
                    .refresh(&store, &sources.zones(), matcher.view(), now, zones_dirty)
                    .await
                {
                    Ok((Refresh::Unchanged, _)) => {}
                    Ok((how, Some(p))) => {
                        // Counted before it is served: whoever sees the
                        // new policy answer sees it counted.
                        let counter = match how {
                            Refresh::Patched(_) => &refreshes.patches,
                            Refresh::Reassembled => &refreshes.reassemblies,
                            _ => &refreshes.rebuilds,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        policy.set(p);
                        let elapsed_ms = started.elapsed().as_millis() as u64;
                        match how {
                            Refresh::Patched(names) => {
                                tracing::debug!(
                                    overlay_names = names,
                                    elapsed_ms,
                                    "DNS policy patched (indicators changed)"
                                );
                            }
                            Refresh::Reassembled => {
                                tracing::debug!(
                                    elapsed_ms,
                                    "DNS policy reassembled (org tree, lists, client tokens or zones changed)"
                                );
                            }
                            _ => {
                                tracing::info!(
                                    elapsed_ms,
                                    "DNS policy rebuilt (a new intel base, changed shares, a bulk intel change, or an indicator expired)"
                                );
                            }
                        }
                    }
                    Ok((_, None)) => {}
                    Err(e) => {
                        if zones_dirty {
                            zones_changed.store(true, Ordering::SeqCst);
                        }
                        tracing::error!(error = %e, "DNS policy: reload failed; keeping the current one")
                    }
                }
            }
        })
    };
    Ok(Some(Running {
        handle,
        dropped_events: dropped,
        refreshes,
        watcher,
        followers,
        sources,
        reload,
    }))
}

/// Queries of clients credited to no org, summed per client address
/// between two flushes of the query log (bounded: the batch is).
#[derive(Default)]
struct UnattributedLog {
    by_client: HashMap<std::net::IpAddr, UnattributedClient>,
}

#[derive(Default)]
struct UnattributedClient {
    queries: u64,
    blocked: u64,
    /// The first few names asked, as a sample.
    names: Vec<String>,
}

impl UnattributedLog {
    fn add(&mut self, e: &mimamori_dns::QueryLogEntry) {
        let c = self.by_client.entry(e.client.ip()).or_default();
        c.queries += 1;
        if e.blocked_by.is_some() {
            c.blocked += 1;
        }
        if c.names.len() < 5 {
            let name = e.name.to_string();
            if !c.names.contains(&name) {
                c.names.push(name);
            }
        }
    }

    fn flush(&mut self) {
        for (client, c) in self.by_client.drain() {
            tracing::info!(
                target: "mimamori::pdns::unattributed",
                %client,
                queries = c.queries,
                blocked = c.blocked,
                names = %c.names.join(" "),
                "DNS queries from a client in no org's network (unattributed: credited to no org)"
            );
        }
    }
}

type ReloadFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Vec<mimamori_api::routes::dns::ZoneReload>> + Send>,
>;

/// A file's reload as the API reports it.
fn api_reload(r: zone_files::Reload) -> mimamori_api::routes::dns::ZoneReload {
    let (status, names, wildcards, error) = match r.outcome {
        zone_files::Outcome::Unchanged => ("unchanged", None, None, None),
        zone_files::Outcome::Reloaded { names, wildcards } => {
            ("reloaded", Some(names as u64), Some(wildcards as u64), None)
        }
        zone_files::Outcome::Failed(e) => ("failed", None, None, Some(e)),
    };
    mimamori_api::routes::dns::ZoneReload {
        file: r.file.display().to_string(),
        zone: r.zone,
        status: status.into(),
        names,
        wildcards,
        error,
    }
}

fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        64 => "SVCB".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => format!("TYPE{other}"),
    }
}

fn rcode_name(r: Option<u8>) -> String {
    match r {
        None => "DROPPED".into(),
        Some(0) => "NOERROR".into(),
        Some(1) => "FORMERR".into(),
        Some(2) => "SERVFAIL".into(),
        Some(3) => "NXDOMAIN".into(),
        Some(5) => "REFUSED".into(),
        Some(o) => format!("RCODE{o}"),
    }
}

/// One log entry as a DNS Activity event.
pub fn to_event(e: &mimamori_dns::QueryLogEntry) -> EventBody {
    let name = e.name.to_string();
    let name = name.trim_end_matches('.').to_string();
    let time = e
        .time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .ok();
    let answers: Vec<String> = e
        .answer
        .split(", ")
        .filter_map(|a| a.split_once(' ').map(|(_, v)| v.to_string()))
        .collect();
    let mut raw = serde_json::Map::new();
    raw.insert("client".into(), e.client.to_string().into());
    raw.insert("query".into(), name.clone().into());
    raw.insert("qtype".into(), qtype_name(e.qtype).into());
    raw.insert("rcode".into(), rcode_name(e.rcode).into());
    raw.insert("answer".into(), e.answer.to_string().into());
    raw.insert("latency_us".into(), (e.latency.as_micros() as u64).into());
    raw.insert("transport".into(), e.transport.as_str().into());
    raw.insert("cache_hit".into(), e.cache_hit.into());
    raw.insert("stale".into(), e.stale.into());
    if let Some(b) = &e.blocked_by {
        raw.insert(
            "blocked_by".into(),
            serde_json::json!({"zone": b.zone.to_string(), "rule": b.rule, "action": b.action}),
        );
    }
    EventBody {
        time,
        class: OcsfClass::DnsActivity,
        source: "mimamori.pdns".into(),
        fields: Normalized {
            src_ip: Some(e.client.ip().to_string()),
            src_port: Some(e.client.port()),
            dns_query: Some(name),
            dns_qtype: Some(qtype_name(e.qtype)),
            dns_rcode: Some(rcode_name(e.rcode)),
            dns_answers: answers,
            status: Some(
                if e.blocked_by.is_some() {
                    "blocked"
                } else {
                    "allowed"
                }
                .into(),
            ),
            ..Default::default()
        },
        raw,
    }
}

/// How long the query-log drain sleeps when it has taken everything queued.
/// It polls rather than blocks on the channel so that the resolver's
/// threads never have to wake it: a blocked receiver costs every sender a
/// futex wake and the drain a context switch per batch (at 230k queries/s
/// through `serve`, a batch per `recvmmsg`, about a sixth of the resolver's
/// CPU went to that). 20 ms of queries fit the log's bound many times over.
const LOG_POLL: Duration = Duration::from_millis(20);

/// Moves query-log entries into the ingest pipeline in batches (per org,
/// at most every 500 ms or 2,000 entries). Never waits for queue space.
/// Entries credited to no org (`[pdns] unattributed = "log"`) go to no
/// org's events: they are logged, one line per client and batch, as
/// unattributed telemetry.
fn drain_log(
    mut rx: mimamori_dns::QueryLogReceiver,
    ingest: mimamori_ingest::Ingest,
    runtime: tokio::runtime::Handle,
    dropped: Arc<AtomicU64>,
) {
    let mut batch: HashMap<String, Vec<EventBody>> = HashMap::new();
    let mut unattributed = UnattributedLog::default();
    let mut n = 0usize;
    let mut since = Instant::now();
    loop {
        let mut closed = false;
        while n < 2000 {
            match rx.try_recv() {
                Ok(e) => {
                    match e.org.as_deref() {
                        Some(org) => batch.entry(org.to_string()).or_default().push(to_event(&e)),
                        None => unattributed.add(&e),
                    }
                    n += 1;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if n > 0 && (n >= 2000 || since.elapsed() >= Duration::from_millis(500) || closed) {
            unattributed.flush();
            for (org, bodies) in batch.drain() {
                let count = bodies.len() as u64;
                match ingest.try_submit(&org, bodies) {
                    Ok(ack) => {
                        if let Err(e) = runtime.block_on(ack) {
                            dropped.fetch_add(count, Ordering::Relaxed);
                            tracing::warn!(error = %e, "DNS query log not stored");
                        }
                    }
                    Err(e) => {
                        dropped.fetch_add(count, Ordering::Relaxed);
                        tracing::warn!(error = %e, events = count, "DNS query log dropped: ingestion is busy");
                    }
                }
            }
            n = 0;
            since = Instant::now();
            // Look again before sleeping: a full batch (or a flush after
            // 500 ms) may have left records queued.
            continue;
        }
        if closed {
            return;
        }
        std::thread::sleep(LOG_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> PdnsSection {
        toml::from_str(toml_text).expect("a [pdns] section")
    }

    #[test]
    fn resolution_is_forwarding_or_recursion() {
        let (specs, rec) = resolution(&section("upstreams = [\"192.0.2.53:53\"]")).unwrap();
        assert_eq!(specs.len(), 1);
        assert!(rec.is_none());

        let (specs, rec) = resolution(&section("recursive = true")).unwrap();
        assert!(specs.is_empty());
        let rec = rec.expect("recursion");
        assert_eq!(rec.root_hints, mimamori_dns::IANA_ROOT_HINTS.to_vec());
        assert!(rec.allow_servers.is_empty());
        let s = section("recursive = true\nrecursion_allow_servers = [\"10.0.0.0/8\"]");
        let (_, rec) = resolution(&s).unwrap();
        assert_eq!(
            rec.expect("recursion").allow_servers,
            vec!["10.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
        );

        let dir = tempfile::tempdir().unwrap();
        let hints = dir.path().join("named.root");
        std::fs::write(
            &hints,
            ". 3600000 NS A.ROOT.\nA.ROOT. 3600000 A 192.0.2.1\n",
        )
        .unwrap();
        let s = section(&format!(
            "recursive = true\nroot_hints = {:?}",
            hints.display().to_string()
        ));
        let (_, rec) = resolution(&s).unwrap();
        assert_eq!(
            rec.unwrap().root_hints,
            vec!["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );

        std::fs::write(&hints, "A.ROOT. 3600000 A 192.0.2.300\n").unwrap();
        let err = format!("{:#}", resolution(&s).unwrap_err());
        assert!(
            err.contains("named.root") && err.contains("line 1"),
            "{err}"
        );

        for (text, want) in [
            (
                "recursive = true\nupstreams = [\"192.0.2.53:53\"]",
                "both set",
            ),
            (
                "root_hints = \"/x\"\nupstreams = [\"192.0.2.53:53\"]",
                "without recursive",
            ),
            ("", "no way to resolve"),
            (
                "recursion_allow_servers = [\"10.0.0.0/8\"]\nupstreams = [\"192.0.2.53:53\"]",
                "without recursive",
            ),
        ] {
            let err = resolution(&section(text)).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
