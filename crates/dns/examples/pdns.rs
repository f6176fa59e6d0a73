//! Standalone protective DNS resolver: what `mimamori pdns` will run.
//!
//! ```text
//! pdns --listen ADDR:PORT --upstream ADDR:PORT [--upstream ...]
//!      [--rpz FILE[=ORIGIN] ...] [--blocklist FILE ...] [--allowlist FILE ...]
//!      [--threads N] [--coalesce-us N] [--query-log FILE|-] [--no-query-log]
//! ```
//!
//! Zones are checked in the order given. The query log is drained by a
//! thread: written as tab-separated lines to FILE (`-`: stdout) or, without
//! `--query-log`, only counted.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimamori_dns::{query_log, Action, PdnsConfig, Policy, PolicyHandle, Zone};

enum Source {
    Rpz(PathBuf, String),
    List(PathBuf, Action),
}

struct Args {
    listen: SocketAddr,
    upstreams: Vec<SocketAddr>,
    sources: Vec<Source>,
    threads: usize,
    coalesce_us: Option<u64>,
    log: Option<String>,
    no_log: bool,
}

fn usage() -> String {
    "usage: pdns --listen ADDR:PORT --upstream ADDR:PORT [--rpz FILE[=ORIGIN]]... \
     [--blocklist FILE]... [--allowlist FILE]... [--threads N] [--coalesce-us N] [--query-log FILE|-] [--no-query-log]"
        .to_string()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut listen = None;
    let mut upstreams = Vec::new();
    let mut sources = Vec::new();
    let mut threads = 0;
    let mut coalesce_us = None;
    let mut log = None;
    let mut no_log = false;
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| format!("{a} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--listen" => listen = Some(val()?.parse().map_err(|e| format!("--listen: {e}"))?),
            "--upstream" => upstreams.push(val()?.parse().map_err(|e| format!("--upstream: {e}"))?),
            "--rpz" => {
                let v = val()?;
                let (file, origin) = match v.split_once('=') {
                    Some((f, o)) => (f.to_string(), o.to_string()),
                    None => (v, ".".to_string()),
                };
                sources.push(Source::Rpz(file.into(), origin));
            }
            "--blocklist" => sources.push(Source::List(val()?.into(), Action::NxDomain)),
            "--allowlist" => sources.push(Source::List(val()?.into(), Action::Passthru)),
            "--threads" => threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--coalesce-us" => {
                coalesce_us = Some(val()?.parse().map_err(|e| format!("--coalesce-us: {e}"))?)
            }
            "--query-log" => log = Some(val()?),
            "--no-query-log" => no_log = true,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    Ok(Args {
        listen: listen.ok_or_else(usage)?,
        upstreams,
        sources,
        threads,
        coalesce_us,
        log,
        no_log,
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let t0 = Instant::now();
    let mut zones = Vec::new();
    for s in &args.sources {
        let z = match s {
            Source::Rpz(p, origin) => Zone::load_rpz(p, origin),
            Source::List(p, action) => Zone::load_list(p, action),
        };
        match z {
            Ok(z) => {
                let st = z.stats();
                eprintln!(
                    "loaded {}: {} names, {} wildcards, {} client-ip, {} response-ip, {} NSDNAME+NSIP, {} skipped",
                    z.name(),
                    st.qname_triggers,
                    st.wildcard_triggers,
                    st.client_ip_triggers,
                    st.response_ip_triggers,
                    st.nsdname_triggers + st.nsip_triggers,
                    st.skipped
                );
                zones.push(Arc::new(z));
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    eprintln!("policy loaded in {:.3} s", t0.elapsed().as_secs_f64());
    let (log, mut rx) = query_log(16_384);
    let mut cfg = PdnsConfig::new(args.listen, args.upstreams);
    cfg.udp_threads = args.threads;
    if let Some(us) = args.coalesce_us {
        cfg.udp_coalesce = Duration::from_micros(us);
    }
    cfg.query_log = (!args.no_log).then_some(log);
    let handle = match mimamori_dns::start(cfg, PolicyHandle::new(Policy::new(zones))) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("pdns listening on udp+tcp {}", handle.udp_addr());
    let sink = args.log.clone();
    std::thread::spawn(move || {
        let mut out: Option<Box<dyn Write + Send>> = match sink.as_deref() {
            None => None,
            Some("-") => Some(Box::new(std::io::stdout())),
            Some(p) => match std::fs::File::create(p) {
                Ok(f) => Some(Box::new(std::io::BufWriter::new(f))),
                Err(e) => {
                    eprintln!("query log {p}: {e}");
                    None
                }
            },
        };
        // Drain in batches and sleep between them rather than block in
        // `recv`: a blocked receiver must be woken (a futex call) on every
        // record, which costs the answer threads more than the record.
        loop {
            let mut any = false;
            for e in rx.try_iter() {
                any = true;
                let Some(w) = out.as_mut() else { continue };
                let blocked = e
                    .blocked_by
                    .map(|b| format!("{}:{}:{}", b.zone, b.rule, b.action))
                    .unwrap_or_default();
                let _ = writeln!(
                    w,
                    "{}\t{}\t{}\t{}\t{:?}\t{}\t{}us\t{}",
                    e.client,
                    e.org.as_deref().unwrap_or("-"),
                    e.name,
                    e.qtype,
                    e.rcode,
                    e.answer,
                    e.latency.as_micros(),
                    blocked
                );
            }
            if !any {
                if let Some(w) = out.as_mut() {
                    let _ = w.flush();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });
    loop {
        std::thread::sleep(Duration::from_secs(60));
        let s = handle.stats();
        eprintln!(
            "queries {} blocked {} cache hits {} misses {} upstream failures {} stale {} log dropped {}",
            s.queries, s.blocked, s.cache_hits, s.cache_misses, s.upstream_failures, s.stale_served, s.log_dropped
        );
    }
}
