//! A syslog TCP receiver on the ingest pipeline alone (WAL with fsync,
//! normalization, Parquet archive; no API, no detection), for profiling the
//! syslog path without building the whole server:
//!
//! ```sh
//! cargo run --release -p mimamori-ingest --example syslog_sink -- 127.0.0.1:5516 /tmp/sink
//! loggen -P -r 10000000 -s 300 -I 10 -S --active-connections=4 127.0.0.1 5516
//! ```
//!
//! Every sender is attributed to org `bench`. Prints the pipeline's
//! counters every second; stops (draining into the archive) on Ctrl-C.

use mimamori_ingest::syslog::{self, OrgResolver, SyslogContext};
use mimamori_ingest::{Ingest, IngestConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5516".into());
    let dir = args
        .next()
        .unwrap_or_else(|| "/tmp/mimamori-syslog-sink".into());
    let (ingest, threads) = Ingest::start(IngestConfig::new(dir))?;
    let ctx = SyslogContext {
        ingest: ingest.clone(),
        orgs: Arc::new(OrgResolver::new(vec![
            ("0.0.0.0/0".parse()?, "bench".into()),
            ("::/0".parse()?, "bench".into()),
        ])),
        stats: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("syslog tcp listening on {}", listener.local_addr()?);
    let server = tokio::spawn(syslog::serve_tcp(listener, None, ctx.clone(), 1000));
    let stats = ingest.stats().clone();
    let report = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            eprintln!(
                "acked {} archived {} fsyncs {} raw_rejected {}",
                stats.events_acked.load(Ordering::Relaxed),
                stats.events_archived.load(Ordering::Relaxed),
                stats.fsyncs.load(Ordering::Relaxed),
                stats.raw_rejected.load(Ordering::Relaxed),
            );
        }
    });
    tokio::signal::ctrl_c().await?;
    server.abort();
    report.abort();
    ingest.shutdown();
    drop(ctx);
    drop(ingest);
    tokio::task::spawn_blocking(move || threads.join()).await?;
    Ok(())
}
