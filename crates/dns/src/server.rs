//! Listeners: UDP (a `SO_REUSEPORT` socket and an OS thread per core,
//! batched `recvmmsg`/`sendmmsg`), TCP and DoT (tokio), and the `start`
//! entry point that wires them to an [`Engine`].

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::conns::{Conn, Conns, TcpLimits, TcpStats};
use crate::engine::{Engine, EngineConfig, Fast, Scratch, StatsSnapshot};
use crate::log::{QueryLog, Transport};
use crate::policy::PolicyHandle;
use crate::upstream::{Forwarder, Upstream};

/// Everything the resolver needs to run.
#[derive(Clone)]
pub struct PdnsConfig {
    /// UDP and TCP listen address (port 0 picks one; TCP gets the same).
    pub listen: SocketAddr,
    /// DNS over TLS (RFC 7858) listener and its server config.
    pub tls_listen: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
    /// DNS over HTTPS (RFC 8484) listener: with a TLS config it serves
    /// HTTPS, without one plain HTTP (for a TLS-terminating proxy in front).
    pub doh_listen: Option<(SocketAddr, Option<Arc<rustls::ServerConfig>>)>,
    /// The block page a sinkhole answer leads browsers to (see
    /// [`crate::blockpage`]); it shares the TCP connection limit's size.
    pub block_page: Option<crate::blockpage::BlockPageConfig>,
    /// Upstream resolvers, tried in order.
    pub upstreams: Vec<SocketAddr>,
    /// Upstreams of any kind (plain, DoT, DoH), tried in order; when not
    /// empty they replace `upstreams`.
    pub upstream_specs: Vec<crate::secure::UpstreamSpec>,
    /// CA certificates (PEM) that DoT and DoH upstreams' certificates must
    /// chain to; the system's bundle when `None`.
    pub ca_file: Option<std::path::PathBuf>,
    /// Resolve misses by recursion from these root servers instead of
    /// forwarding; when set, `upstreams`, `upstream_specs`, `ca_file` and
    /// `upstream_timeout` are not used.
    pub recursion: Option<crate::recursor::RecursiveConfig>,
    /// Per-upstream timeout.
    pub upstream_timeout: Duration,
    /// UDP receive threads (0: one per available core).
    pub udp_threads: usize,
    /// Software interrupt coalescing on the UDP threads: when datagrams
    /// arrive densely (the last receive returned within 1 ms of the one
    /// before) but too few to fill half a batch, a thread waits this long
    /// before receiving again, so one wake-up answers several queries.
    /// Under load this trades up to this much latency for about a fifth
    /// less CPU per query (the wake-ups around a blocking receive were a
    /// quarter of the resolver's CPU); at light load nothing waits.
    /// Zero turns it off.
    pub udp_coalesce: Duration,
    /// Worker threads of the async runtime (misses, TCP, DoT).
    pub async_threads: usize,
    /// Concurrent DoH and block page connections (each listener); more
    /// wait in the accept queue.
    pub max_tcp_connections: usize,
    /// A DoH or block page connection idle this long is closed; the
    /// longest a TLS handshake there may take.
    pub tcp_idle: Duration,
    /// TCP and DoT connections: the per-client and global limits and the
    /// initial and idle timeouts (see [`crate::conns`]).
    pub tcp: TcpLimits,
    pub engine: EngineConfig,
    pub query_log: Option<QueryLog>,
}

impl PdnsConfig {
    pub fn new(listen: SocketAddr, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            tls_listen: None,
            doh_listen: None,
            block_page: None,
            upstreams,
            upstream_specs: vec![],
            ca_file: None,
            recursion: None,
            upstream_timeout: Duration::from_millis(1500),
            udp_threads: 0,
            udp_coalesce: DEFAULT_UDP_COALESCE,
            async_threads: 1,
            max_tcp_connections: 256,
            tcp_idle: Duration::from_secs(10),
            tcp: TcpLimits::default(),
            engine: EngineConfig::default(),
            query_log: None,
        }
    }
}

/// Why the resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum PdnsError {
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("runtime: {0}")]
    Runtime(io::Error),
    #[error(transparent)]
    Upstream(#[from] crate::secure::SpecError),
    #[error(transparent)]
    Recursion(#[from] crate::recursor::RecursiveError),
}

/// A running resolver. Dropping it (or [`Handle::shutdown`]) stops it.
pub struct Handle {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    doh_addr: Option<SocketAddr>,
    block_page_addr: Option<SocketAddr>,
    engine: Arc<Engine>,
    conns: Arc<Conns>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Handle {
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }
    pub fn doh_addr(&self) -> Option<SocketAddr> {
        self.doh_addr
    }
    pub fn block_page_addr(&self) -> Option<SocketAddr> {
        self.block_page_addr
    }
    /// The live policy: `handle.policy().set(new)` swaps it.
    pub fn policy(&self) -> &PolicyHandle {
        self.engine.policy()
    }
    pub fn stats(&self) -> StatsSnapshot {
        self.engine.stats()
    }
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
    /// The TCP and DoT listeners' counters (connections open, evicted,
    /// refused, timed out).
    pub fn tcp_stats(&self) -> TcpStats {
        self.conns.stats()
    }
    /// A reader of the same counters that outlives no-one's borrow.
    pub fn tcp_counters(&self) -> crate::conns::TcpCounters {
        crate::conns::TcpCounters(self.conns.clone())
    }
    /// Stops every listener and waits for the UDP threads.
    pub fn shutdown(mut self) {
        self.stop_all();
    }
    fn stop_all(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(rt) = self.runtime.take() {
            // Dropped by async code (`mimamori pdns` on a signal, `serve`
            // on shutdown), a blocking shutdown would panic; the tasks have
            // been told to stop and finish in the background instead.
            if tokio::runtime::Handle::try_current().is_ok() {
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Binds the UDP sockets (one per thread) and the TCP listener on one
/// port. With port 0 the kernel picks a UDP port that may be taken for TCP
/// (tests running side by side hit this); then another port is tried.
fn bind_udp_and_tcp(
    listen: SocketAddr,
    n: usize,
) -> Result<(Vec<UdpSocket>, std::net::TcpListener, SocketAddr), PdnsError> {
    let bind_err = |addr| move |source| PdnsError::Bind { addr, source };
    let mut attempts = 0;
    loop {
        let first = bind_udp(listen).map_err(bind_err(listen))?;
        let udp_addr = first.local_addr().map_err(bind_err(listen))?;
        let mut sockets = vec![first];
        for _ in 1..n {
            sockets.push(bind_udp(udp_addr).map_err(bind_err(udp_addr))?);
        }
        match std::net::TcpListener::bind(udp_addr) {
            Ok(tcp) => return Ok((sockets, tcp, udp_addr)),
            Err(e)
                if listen.port() == 0 && e.kind() == io::ErrorKind::AddrInUse && attempts < 8 =>
            {
                attempts += 1;
            }
            Err(source) => {
                return Err(PdnsError::Bind {
                    addr: udp_addr,
                    source,
                })
            }
        }
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // One socket per thread on the same port: the kernel spreads clients
    // over them by flow hash.
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    // Wake up periodically to notice shutdown.
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// [`PdnsConfig::udp_coalesce`]'s default: measured with `bench/pdns.sh`
/// (BENCHMARKS.md), 300 µs cut the CPU per query by 18-20 % and added
/// about 0.2 ms to the average latency at 145-160k queries/s.
pub const DEFAULT_UDP_COALESCE: Duration = Duration::from_micros(300);

/// Starts the resolver: recursive when `cfg.recursion` is set, else a
/// forwarder to `cfg.upstream_specs` (or `cfg.upstreams`).
pub fn start(cfg: PdnsConfig, policy: PolicyHandle) -> Result<Handle, PdnsError> {
    let upstream: Arc<dyn Upstream> = if let Some(r) = &cfg.recursion {
        Arc::new(crate::recursor::Recursive::new(r)?)
    } else if cfg.upstream_specs.is_empty() {
        Arc::new(Forwarder::new(cfg.upstreams.clone(), cfg.upstream_timeout))
    } else {
        Arc::new(crate::secure::Chain::from_specs(
            &cfg.upstream_specs,
            cfg.ca_file.as_deref(),
            cfg.upstream_timeout,
        )?)
    };
    start_with_upstream(cfg, policy, upstream)
}

/// Starts the resolver with any [`Upstream`].
pub fn start_with_upstream(
    cfg: PdnsConfig,
    policy: PolicyHandle,
    upstream: Arc<dyn Upstream>,
) -> Result<Handle, PdnsError> {
    let bind_err = |addr| move |source| PdnsError::Bind { addr, source };
    // The DoT, DoH and block page ports are bound before anything starts:
    // one in use (or privileged) is then an error with nothing to undo.
    // Later it would leave the UDP threads running and drop the runtime,
    // which panics when the caller is async (`serve`).
    let tcp_bind = |addr: SocketAddr| {
        let l = std::net::TcpListener::bind(addr).map_err(bind_err(addr))?;
        l.set_nonblocking(true).map_err(bind_err(addr))?;
        Ok::<_, PdnsError>((l, addr))
    };
    let tls_l = cfg
        .tls_listen
        .as_ref()
        .map(|(a, _)| tcp_bind(*a))
        .transpose()?;
    let doh_l = cfg
        .doh_listen
        .as_ref()
        .map(|(a, _)| tcp_bind(*a))
        .transpose()?;
    let page_l = cfg
        .block_page
        .as_ref()
        .map(|b| tcp_bind(b.listen))
        .transpose()?;
    let engine = Arc::new(Engine::new(
        policy,
        upstream,
        cfg.engine.clone(),
        cfg.query_log.clone(),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.async_threads.max(1))
        .thread_name("pdns-async")
        .enable_all()
        .build()
        .map_err(PdnsError::Runtime)?;
    if cfg.engine.prefetch.is_some() {
        runtime.spawn(engine.clone().run_prefetch());
    }
    let n = if cfg.udp_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.udp_threads
    };
    let (sockets, std_tcp, udp_addr) = match bind_udp_and_tcp(cfg.listen, n) {
        Ok(bound) => bound,
        Err(e) => {
            // Dropping a runtime inside an async caller panics.
            runtime.shutdown_background();
            return Err(e);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let coalesce = cfg.udp_coalesce;
    let mut threads = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let (engine, stop, rt) = (engine.clone(), stop.clone(), runtime.handle().clone());
        let t = std::thread::Builder::new()
            .name(format!("pdns-udp-{i}"))
            .spawn(move || udp_loop(Arc::new(sock), engine, rt, stop, coalesce))
            .map_err(PdnsError::Runtime)?;
        threads.push(t);
    }
    // TCP and DoT share one connection table and its limits.
    let conns = Conns::new(cfg.tcp);
    runtime.spawn(conns.clone().run_reaper(stop.clone()));
    let tcp = {
        let _g = runtime.enter();
        std_tcp.set_nonblocking(true).map_err(bind_err(udp_addr))?;
        TcpListener::from_std(std_tcp).map_err(bind_err(udp_addr))?
    };
    let tcp_addr = tcp.local_addr().map_err(bind_err(udp_addr))?;
    runtime.spawn(accept_loop(
        tcp,
        None,
        engine.clone(),
        conns.clone(),
        stop.clone(),
    ));
    let mut tls_addr = None;
    let tokio_listener = |(std_l, addr): (std::net::TcpListener, SocketAddr)| {
        let _g = runtime.enter();
        TcpListener::from_std(std_l).map_err(bind_err(addr))
    };
    if let (Some((_, tls)), Some(std_l)) = (cfg.tls_listen.clone(), tls_l) {
        let addr = std_l.1;
        let l = tokio_listener(std_l)?;
        tls_addr = Some(l.local_addr().map_err(bind_err(addr))?);
        // RFC 7858 clients offer no ALPN or "dot" (its registered id).
        let mut tls = (*tls).clone();
        tls.alpn_protocols = vec![b"dot".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        runtime.spawn(accept_loop(
            l,
            Some(acceptor),
            engine.clone(),
            conns.clone(),
            stop.clone(),
        ));
    }
    let mut doh_addr = None;
    if let (Some((_, tls)), Some(std_l)) = (cfg.doh_listen.clone(), doh_l) {
        let addr = std_l.1;
        let l = tokio_listener(std_l)?;
        doh_addr = Some(l.local_addr().map_err(bind_err(addr))?);
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let limit = Arc::new(Semaphore::new(cfg.max_tcp_connections.max(1)));
        runtime.spawn(crate::http::serve(
            l,
            crate::doh::router(engine.clone()),
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new()),
            crate::http::Conns {
                tls: acceptor,
                limit,
                idle: cfg.tcp_idle,
                lifetime: None,
                stop: stop.clone(),
            },
            "DoH",
        ));
    }
    let mut block_page_addr = None;
    if let (Some(bp), Some(std_l)) = (cfg.block_page.clone(), page_l) {
        let addr = std_l.1;
        let l = tokio_listener(std_l)?;
        let bound = l.local_addr().map_err(bind_err(addr))?;
        block_page_addr = Some(bound);
        runtime.spawn(crate::http::serve(
            l,
            crate::blockpage::router(engine.clone(), bp.contact),
            crate::blockpage::builder(cfg.tcp_idle),
            crate::http::Conns {
                tls: bp.tls.map(tokio_rustls::TlsAcceptor::from),
                limit: Arc::new(Semaphore::new(cfg.max_tcp_connections.max(1))),
                idle: cfg.tcp_idle,
                lifetime: crate::blockpage::lifetime(),
                stop: stop.clone(),
            },
            "block page",
        ));
        tracing::info!(addr = %bound, "block page listening");
    }
    tracing::info!(
        %udp_addr,
        threads = n,
        recursive = cfg.recursion.is_some(),
        "protective DNS listening"
    );
    Ok(Handle {
        udp_addr,
        tcp_addr,
        tls_addr,
        doh_addr,
        block_page_addr,
        engine,
        conns,
        stop,
        threads,
        runtime: Some(runtime),
    })
}

const BATCH: usize = 32;
const BUF: usize = 4096;

/// Buffers of one `recvmmsg`/`sendmmsg` batch. Boxed so the raw pointers
/// the kernel structures hold stay valid while the struct is used.
struct Batch {
    bufs: Box<[[u8; BUF]; BATCH]>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    iov: Box<[libc::iovec; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
}

impl Batch {
    fn new() -> Batch {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zero_addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let zero_iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let zero_hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        Batch {
            bufs: Box::new([[0u8; BUF]; BATCH]),
            addrs: Box::new(zero_addrs),
            iov: Box::new(zero_iov),
            hdrs: Box::new(zero_hdrs),
        }
    }

    /// Points every header at its buffer and address slot for receiving.
    fn arm(&mut self) {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
    }
}

/// The send side of a batch: each answer is written straight into its own
/// buffer (no copy), then one `sendmmsg` sends them all.
struct TxBatch {
    outs: Vec<Vec<u8>>,
    addrs: Box<[libc::sockaddr_storage; BATCH]>,
    iov: Box<[libc::iovec; BATCH]>,
    hdrs: Box<[libc::mmsghdr; BATCH]>,
}

impl TxBatch {
    fn new() -> TxBatch {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zero_addrs: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
        let zero_iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let zero_hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        TxBatch {
            outs: (0..BATCH).map(|_| Vec::with_capacity(BUF)).collect(),
            addrs: Box::new(zero_addrs),
            iov: Box::new(zero_iov),
            hdrs: Box::new(zero_hdrs),
        }
    }
}

fn sockaddr_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    // SAFETY: `ss` is a sockaddr_storage the kernel filled with `len` bytes;
    // SockAddr only reads it as the family it says it is.
    let sa = unsafe {
        socket2::SockAddr::try_init(|storage, l| {
            std::ptr::copy_nonoverlapping(
                ss as *const _ as *const u8,
                storage as *mut u8,
                len as usize,
            );
            *l = len;
            Ok(())
        })
    }
    .ok()?
    .1;
    sa.as_socket()
}

/// Receives a batch, answers what the fast path can, sends the answers in one
/// `sendmmsg`, and hands the rest to the async runtime.
fn udp_loop(
    sock: Arc<UdpSocket>,
    engine: Arc<Engine>,
    rt: tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
    coalesce: Duration,
) {
    let fd = sock.as_raw_fd();
    let mut rx = Batch::new();
    let mut tx = TxBatch::new();
    let mut scratch = Scratch::batching_log();
    let mut last_wake = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        rx.arm();
        // SAFETY: the headers point into `rx`, which outlives the call; the
        // kernel writes at most BUF bytes per buffer and the address sizes
        // given. MSG_WAITFORONE: block for the first packet only.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                rx.hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
            ) {
                tracing::warn!(error = %e, "recvmmsg failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        // Dense traffic: this receive returned within 1 ms of the last.
        let woke = std::time::Instant::now();
        let dense = woke.duration_since(last_wake) < Duration::from_millis(1);
        last_wake = woke;
        let mut nsend = 0usize;
        for i in 0..n as usize {
            let len = (rx.hdrs[i].msg_len as usize).min(BUF);
            let alen = rx.hdrs[i].msg_hdr.msg_namelen;
            let Some(client) = sockaddr_to_std(&rx.addrs[i], alen) else {
                continue;
            };
            let pkt = &rx.bufs[i][..len];
            let out = &mut tx.outs[nsend];
            match engine.answer_fast(pkt, client, Transport::Udp, out, &mut scratch) {
                Fast::Reply => {
                    tx.addrs[nsend] = rx.addrs[i];
                    tx.iov[nsend] = libc::iovec {
                        iov_base: out.as_mut_ptr().cast(),
                        iov_len: out.len(),
                    };
                    let h = &mut tx.hdrs[nsend].msg_hdr;
                    h.msg_name = (&mut tx.addrs[nsend] as *mut libc::sockaddr_storage).cast();
                    h.msg_namelen = alen;
                    h.msg_iov = &mut tx.iov[nsend];
                    h.msg_iovlen = 1;
                    h.msg_control = std::ptr::null_mut();
                    h.msg_controllen = 0;
                    h.msg_flags = 0;
                    nsend += 1;
                }
                Fast::Drop => {}
                Fast::Defer => {
                    if engine.begin_miss().is_none() {
                        // Too many misses in flight (an upstream outage
                        // under load): say so at once rather than queue.
                        if let Some(r) = crate::wire::error_reply(pkt, crate::wire::RCODE_SERVFAIL)
                        {
                            let _ = sock.send_to(&r, client);
                        }
                        continue;
                    }
                    let pkt = pkt.to_vec();
                    let (engine, sock) = (engine.clone(), sock.clone());
                    rt.spawn(async move {
                        let Some(_slot) = engine.begin_miss() else {
                            return;
                        };
                        if let Some(resp) = engine.resolve(&pkt, client, Transport::Udp).await {
                            // The socket is shared with the receive thread;
                            // a datagram send does not block for long.
                            if let Err(e) = sock.send_to(&resp, client) {
                                tracing::debug!(error = %e, %client, "send failed");
                            }
                        }
                    });
                }
            }
        }
        // Before the answers leave: whoever has an answer finds its record
        // queued.
        engine.flush_log(&mut scratch);
        let mut sent = 0usize;
        while sent < nsend {
            // SAFETY: headers [sent..nsend) point into `tx` (its buffers are
            // not touched until the next batch), alive for the call.
            let r = unsafe {
                libc::sendmmsg(fd, tx.hdrs[sent..].as_mut_ptr(), (nsend - sent) as u32, 0)
            };
            if r <= 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Skip the datagram that failed (e.g. unreachable client).
                tracing::debug!(error = %e, "sendmmsg failed");
                sent += 1;
            } else {
                sent += r as usize;
            }
        }
        // See `PdnsConfig::udp_coalesce`.
        if !coalesce.is_zero() && dense && (n as usize) < BATCH / 2 {
            std::thread::sleep(coalesce);
        }
    }
}

/// Accepts TCP or DoT connections into `conns` (which may close an idle
/// one to make room, or refuse this one) and serves each in its own task.
/// Accepting never waits for a free slot: a client is never left in the
/// kernel's backlog behind idle connections.
async fn accept_loop(
    l: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    engine: Arc<Engine>,
    conns: Arc<Conns>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match l.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Say, out of descriptors: the reaper frees some.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(conn) = conns.admit(peer) else {
            tracing::debug!(%peer, "TCP connection refused: every connection is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let engine = engine.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_stream(stream, peer, engine, Transport::Tcp, conn).await,
                Some(acc) => match conn.peer(acc.accept(stream)).await {
                    Some(Ok(s)) => serve_stream(s, peer, engine, Transport::Tls, conn).await,
                    Some(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                    None => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
}

/// Length-prefixed DNS messages (RFC 1035 §4.2.2), answered in order.
/// Every wait on the peer (a query, the taking of an answer) ends when
/// `conn` is closed for its timeout or to make room.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    peer: SocketAddr,
    engine: Arc<Engine>,
    transport: Transport,
    conn: Conn,
) {
    let mut out = Vec::with_capacity(512);
    let mut scratch = Scratch::default();
    loop {
        let len = match conn.peer(s.read_u16()).await {
            Some(Ok(l)) => l as usize,
            _ => return,
        };
        let mut pkt = vec![0u8; len];
        match conn.peer(s.read_exact(&mut pkt)).await {
            Some(Ok(_)) => {}
            _ => return,
        }
        if !conn.working() {
            return;
        }
        let resp = match engine.answer_fast(&pkt, peer, transport, &mut out, &mut scratch) {
            Fast::Reply => Some(std::mem::take(&mut out)),
            Fast::Drop => None,
            Fast::Defer => engine.resolve(&pkt, peer, transport).await,
        };
        let Some(resp) = resp else {
            // RPZ DROP over TCP: close the connection, as Unbound does.
            return;
        };
        let Ok(l) = u16::try_from(resp.len()) else {
            return;
        };
        let mut msg = Vec::with_capacity(resp.len() + 2);
        msg.extend_from_slice(&l.to_be_bytes());
        msg.extend_from_slice(&resp);
        if !conn.answered() {
            return;
        }
        let sent = conn
            .peer(async {
                s.write_all(&msg).await?;
                s.flush().await
            })
            .await;
        if !matches!(sent, Some(Ok(()))) {
            return;
        }
    }
}
