//! `mimamori wal check|salvage`: inspect and repair the write-ahead log.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use mimamori_ingest::wal;
use std::path::Path;

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Read every WAL segment and report, per segment, its records and
    /// damaged byte ranges, then each damaged or missing stretch after the
    /// checkpoint with the records and events it held (lost). Exit status 1
    /// when there is damage. Reads only; safe while the server runs.
    Check(CheckArgs),
    /// Rewrite each damaged segment keeping every intact record at its
    /// place; the original is kept aside as `<segment>.log.damaged`, and a
    /// filler record in the new file says what was lost. Stop the server
    /// first (it holds the data directory's lock).
    Salvage(SalvageArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// One JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SalvageArgs {}

pub fn run(data_dir: &Path, cmd: WalCommand) -> anyhow::Result<()> {
    let dir = mimamori_ingest::ingest_dir(data_dir);
    let wal_dir = dir.join("wal");
    if !wal_dir.is_dir() {
        bail!(
            "{} has no write-ahead log (is {} a data directory that ingested anything?)",
            wal_dir.display(),
            data_dir.display()
        );
    }
    match cmd {
        WalCommand::Check(args) => check(&dir, &wal_dir, args),
        WalCommand::Salvage(_) => salvage(&dir, &wal_dir),
    }
}

fn check(dir: &Path, wal_dir: &Path, args: CheckArgs) -> anyhow::Result<()> {
    let from = mimamori_ingest::replay_point(dir).context("cannot read the checkpoints")?;
    let rec = wal::scan(wal_dir, from, &mut |_, _| {})
        .with_context(|| format!("cannot read {}", wal_dir.display()))?;
    let damaged = !rec.damage.is_empty();
    if args.json {
        let segs: Vec<_> = rec
            .segments
            .iter()
            .map(|s| {
                serde_json::json!({
                    "segment": s.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                    "start": s.start, "bytes": s.len, "version": s.version,
                    "records": s.records,
                    "damaged": s.damaged.iter().map(|(a, b)| [a, b]).collect::<Vec<_>>(),
                    "salvaged": s.salvaged,
                })
            })
            .collect();
        let damage: Vec<_> = rec
            .damage
            .iter()
            .map(|d| {
                serde_json::json!({
                    "start": d.start, "end": d.end, "bytes": d.bytes(), "places": d.places,
                    "records_lost": d.records, "events_lost": d.events, "exact": d.exact,
                })
            })
            .collect();
        let out = serde_json::json!({
            "replay_from": from,
            "segments": segs,
            "damage": damage,
            "lost_bytes": rec.lost_bytes(),
            "lost_records": rec.lost_records(),
            "lost_events": rec.lost_events(),
            "torn_tail": rec.torn_tail.as_ref().map(|(p, off, n)| serde_json::json!({
                "segment": p.display().to_string(), "offset": off, "bytes": n})),
        });
        println!("{out}");
    } else {
        println!("replay starts at WAL position {from}");
        for s in &rec.segments {
            let name = s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ranges: Vec<String> = s.damaged.iter().map(|(a, b)| format!("{a}..{b}")).collect();
            println!(
                "{name}  v{}  {} bytes  {} records  damaged: {}",
                s.version,
                s.len,
                s.records,
                if ranges.is_empty() {
                    "none".to_string()
                } else {
                    ranges.join(", ")
                }
            );
            for note in &s.salvaged {
                println!("  salvaged earlier: {note}");
            }
        }
        for d in &rec.damage {
            println!("LOST: {}", d.describe());
        }
        if let Some((p, off, n)) = &rec.torn_tail {
            println!(
                "torn tail: {n} bytes at offset {off} of {} past the last durable mark (a write a crash interrupted, never acknowledged; the next start cuts it off)",
                p.display()
            );
        }
        println!(
            "{} segments; {} damaged stretches after the checkpoint: {} bytes, {} records, {} events lost",
            rec.segments.len(),
            rec.damage.len(),
            rec.lost_bytes(),
            rec.lost_records(),
            rec.lost_events()
        );
    }
    if damaged {
        bail!(
            "the WAL is damaged: {} acknowledged events in {} stretches could not be recovered (every intact record is still replayed; `mimamori wal salvage` rewrites the damaged segments)",
            rec.lost_events(),
            rec.damage.len()
        );
    }
    Ok(())
}

fn salvage(dir: &Path, wal_dir: &Path) -> anyhow::Result<()> {
    let _lock = mimamori_ingest::lock_dir(dir)?;
    let done =
        wal::salvage(wal_dir).with_context(|| format!("cannot salvage {}", wal_dir.display()))?;
    if done.is_empty() {
        println!("no damaged segment");
    }
    for (seg, aside) in &done {
        println!(
            "rewrote {} keeping every intact record; the original is {}",
            seg.display(),
            aside.display()
        );
    }
    Ok(())
}
