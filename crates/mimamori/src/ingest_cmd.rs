//! `mimamori ingest`: load telemetry files into an org's archive.

use crate::admin::{find_org, open_store, root_scope};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use mimamori_parse::Format;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Slug or id of the org the telemetry belongs to.
    #[arg(long)]
    pub org: String,
    /// Record format; detected per file when omitted. One of: ndjson,
    /// windows-json, evtx, zeek-json, zeek-tsv, cloudtrail, cef, squid,
    /// bind-query, unbound-query, syslog.
    #[arg(long)]
    pub format: Option<String>,
    /// Files or directories (read recursively); `.gz` files are unpacked.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// No progress bar (for scripts and logs).
    #[arg(long)]
    pub quiet: bool,
}

fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&d)
                    .with_context(|| format!("cannot list {}", d.display()))?
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .collect();
                entries.sort();
                for e in entries {
                    if e.is_dir() {
                        stack.push(e);
                    } else {
                        out.push(e);
                    }
                }
            }
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// Events handed to the pipeline at once (memory per file stays bounded by
/// the parser's output plus this).
const CHUNK: usize = 10_000;

pub async fn run(data_dir: &Path, args: IngestArgs) -> anyhow::Result<()> {
    let format = match &args.format {
        Some(f) => Some(Format::parse(f).ok_or_else(|| {
            anyhow!(
                "unknown --format {f:?}; expected one of: {}",
                Format::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?),
        None => None,
    };
    let (cfg, store) = open_store(data_dir).await?;
    let (_, scope) = root_scope(&store).await?;
    let org = find_org(&store, &scope, &args.org).await?;
    let files = expand(&args.paths)?;
    if files.is_empty() {
        bail!("no files found under the given paths");
    }
    // Detection runs here as in `serve`: what is loaded from files is
    // matched against the intel and rules like live telemetry.
    let mut consumers: Vec<Box<dyn mimamori_ingest::Consumer>> = vec![];
    let mut detection = None;
    if cfg.detection.enabled {
        let matcher = crate::detection::matcher(&store).await?;
        let consumer = crate::detection::consumer(&cfg, &store, &matcher).await?;
        detection = Some(consumer.stats());
        consumers.push(Box::new(consumer));
    }
    let icfg = cfg.ingest.to_config(data_dir);
    let (ingest, threads) =
        tokio::task::spawn_blocking(move || mimamori_ingest::Ingest::start_with(icfg, consumers))
            .await?
            .context("cannot start ingestion")?;
    crate::server::alert_wal_damage(&store, ingest.wal_damage()).await;

    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(files.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let started = Instant::now();
    let (mut accepted, mut rejected, mut failed_files) = (0u64, 0u64, 0u64);
    let mut shown_rejects = 0;
    for file in &files {
        let path = file.clone();
        let parsed =
            tokio::task::spawn_blocking(move || mimamori_parse::parse_file(&path, format)).await?;
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                bar.suspend(|| eprintln!("skipped {}: {e}", file.display()));
                failed_files += 1;
                bar.inc(1);
                continue;
            }
        };
        rejected += parsed.rejects.len() as u64;
        for r in parsed.rejects.iter().take(3) {
            if shown_rejects < 20 {
                bar.suspend(|| eprintln!("{}: record {}: {}", file.display(), r.record, r.reason));
                shown_rejects += 1;
            }
        }
        let mut events = parsed.events;
        while !events.is_empty() {
            let rest = events.split_off(events.len().min(CHUNK));
            let n = events.len() as u64;
            ingest
                .submit(org.id.as_str(), events)
                .await
                .with_context(|| format!("while storing events of {}", file.display()))?;
            accepted += n;
            events = rest;
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{accepted} events ({:.0}/s), {rejected} rejected",
                accepted as f64 / secs
            ));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    drop(ingest);
    tokio::task::spawn_blocking(move || threads.join()).await?;
    store.close().await;
    let secs = started.elapsed().as_secs_f64();
    let alerts = match &detection {
        Some(d) => format!(
            "; detection: {} alert(s) opened, {} grouped",
            d.alerts_opened.load(std::sync::atomic::Ordering::Relaxed),
            d.alerts_grouped.load(std::sync::atomic::Ordering::Relaxed)
        ),
        None => String::new(),
    };
    println!(
        "ingested {accepted} events from {} file(s) into {} in {secs:.1} s ({:.0} events/s); {rejected} record(s) rejected{}{alerts}",
        files.len() - failed_files as usize,
        org.slug,
        accepted as f64 / secs.max(1e-3),
        if failed_files > 0 { format!(", {failed_files} file(s) skipped") } else { String::new() }
    );
    if accepted == 0 && (rejected > 0 || failed_files > 0) {
        bail!("nothing was ingested");
    }
    println!("{}", retention_note(&cfg, &org.slug));
    Ok(())
}

/// What retention will do with what was just ingested: it counts from now
/// (the receive time), whatever the events' own timestamps say.
fn retention_note(cfg: &crate::config::Config, slug: &str) -> String {
    let days = cfg
        .ingest
        .retention_by_org
        .get(slug)
        .copied()
        .unwrap_or(cfg.ingest.retention_days);
    if days == 0 {
        "retention: kept until deleted (retention_days = 0)".into()
    } else {
        format!(
            "retention: kept for {days} days from now (retention counts from when events are ingested, not from their own timestamps)"
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_retention_note_names_the_org_override() {
        let mut cfg = crate::config::Config::default();
        cfg.ingest.retention_by_org.insert("mof".into(), 365);
        assert!(super::retention_note(&cfg, "mof").contains("kept for 365 days from now"));
        assert!(super::retention_note(&cfg, "mhlw").contains("kept for 90 days from now"));
        cfg.ingest.retention_days = 0;
        assert!(super::retention_note(&cfg, "x").contains("kept until deleted"));
    }
}
