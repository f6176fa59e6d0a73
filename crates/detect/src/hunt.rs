//! Offline hunt: run a rule set over log files and report what fires.
//!
//! Files (directories are read recursively) are parsed with
//! [`mimamori_parse::parse_file`], so every format it knows works: EVTX,
//! Windows event JSON, Zeek, CloudTrail, syslog, … Worker threads (one per
//! core) take whole files from a shared queue; detections are written in
//! input-file order, so the output is the same on every run whatever the
//! thread count.
//!
//! Correlation rules need events in time order across all files. Detection
//! runs first; the few events that fired a rule some correlation refers to
//! are kept, sorted by event time, and fed to the correlation engine at the
//! end. Correlation firings therefore come after all detections in the
//! output.

use crate::detector::{Detection, Detector, Level};
use mimamori_event::EventBody;
use mimamori_parse::{Format, ParseError};
use rsigma_eval::result::EvaluationResult;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How detections are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

/// Hunt settings.
#[derive(Debug, Clone, Default)]
pub struct HuntOptions {
    /// The input format of every file; `None` detects it per file.
    pub input_format: Option<Format>,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
}

/// One rule firing on one record of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub detection: Detection,
    /// The event's time, in Unix milliseconds, when it has one.
    pub timestamp: Option<i64>,
    /// The file, as given (a directory argument joined with the path below it).
    pub source: PathBuf,
    /// `EventRecordID` for Windows events, else the 1-based position of the
    /// record among the file's parsed records.
    pub record_id: u64,
}

/// Where the hunt is, after each file.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub file: &'a Path,
    pub files_done: usize,
    pub files_total: usize,
    pub records: u64,
    pub detections: u64,
}

/// A file, or part of it, that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub reason: String,
}

/// What a hunt did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Files parsed (at least in part).
    pub files: usize,
    /// Files skipped whole: unreadable, or of no format the parsers know.
    pub skipped: Vec<Problem>,
    pub records: u64,
    /// Records the parsers rejected (bad JSON, a truncated EVTX chunk, …).
    pub rejects: u64,
    /// The first few reject reasons, with their file.
    pub reject_samples: Vec<Problem>,
    /// Rule firings, correlations included.
    pub detections: u64,
    /// Of which correlation firings.
    pub correlations: u64,
    /// Firings per rule level; rules without a level are not counted here.
    pub by_level: BTreeMap<Level, u64>,
    pub elapsed: Duration,
}

/// How many reject reasons a summary keeps.
const REJECT_SAMPLES: usize = 20;

/// Every file under the given paths, in the order given (directories
/// sorted), keeping the path prefix the caller wrote.
pub fn input_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Problem>) {
    fn walk(p: &Path, out: &mut Vec<PathBuf>, bad: &mut Vec<Problem>) {
        match std::fs::read_dir(p) {
            Ok(rd) => {
                let mut entries: Vec<PathBuf> = Vec::new();
                for e in rd {
                    match e {
                        Ok(e) => entries.push(e.path()),
                        Err(e) => bad.push(Problem {
                            path: p.to_path_buf(),
                            reason: format!("cannot list directory: {e}"),
                        }),
                    }
                }
                entries.sort();
                for e in entries {
                    if e.is_dir() {
                        walk(&e, out, bad);
                    } else {
                        out.push(e);
                    }
                }
            }
            Err(e) => bad.push(Problem {
                path: p.to_path_buf(),
                reason: format!("cannot list directory: {e}"),
            }),
        }
    }
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, &mut out, &mut bad);
        } else {
            out.push(p.clone());
        }
    }
    (out, bad)
}

/// An event kept for the correlation pass.
struct Pending {
    ts: i64,
    file: usize,
    record_id: u64,
    event: EventBody,
    results: Vec<EvaluationResult>,
}

/// One file's outcome, sent from a worker.
struct FileDone {
    idx: usize,
    hits: Vec<Hit>,
    records: u64,
    rejects: Vec<String>,
    skipped: Option<String>,
    pending: Vec<Pending>,
}

fn record_id(ev: &EventBody, position: usize) -> u64 {
    match ev.raw.get("EventRecordID") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .unwrap_or(position as u64 + 1)
}

fn hunt_file(detector: &Detector, idx: usize, path: &Path, format: Option<Format>) -> FileDone {
    let mut done = FileDone {
        idx,
        hits: Vec::new(),
        records: 0,
        rejects: Vec::new(),
        skipped: None,
        pending: Vec::new(),
    };
    let parsed = match mimamori_parse::parse_file(path, format) {
        Ok(p) => p,
        Err(ParseError::UnknownFormat { .. }) => {
            done.skipped =
                Some("not a log format the parsers know (name it with --input-format)".into());
            return done;
        }
        Err(ParseError::Read { source, .. }) => {
            done.skipped = Some(format!("cannot read: {source}"));
            return done;
        }
    };
    done.records = parsed.events.len() as u64;
    done.rejects = parsed
        .rejects
        .into_iter()
        .map(|r| {
            if r.record == 0 {
                r.reason
            } else {
                format!("record {}: {}", r.record, r.reason)
            }
        })
        .collect();
    for (pos, ev) in parsed.events.into_iter().enumerate() {
        let results = detector.detect_raw(&ev);
        if results.is_empty() {
            continue;
        }
        let rid = record_id(&ev, pos);
        done.hits.extend(results.iter().map(|r| Hit {
            detection: Detection::from_result(r.clone()),
            timestamp: ev.time,
            source: path.to_path_buf(),
            record_id: rid,
        }));
        if detector.feeds_correlation(&results) {
            if let Some(ts) = ev.time {
                done.pending.push(Pending {
                    ts,
                    file: idx,
                    record_id: rid,
                    event: ev,
                    results,
                });
            }
        }
    }
    done
}

/// Hunt over `paths` with `detector`. Each hit goes to `sink` (in file order,
/// correlation firings last); `progress` is called after each file. Fails
/// only when `sink` fails; unreadable files are listed in the summary.
pub fn hunt(
    detector: &Detector,
    paths: &[PathBuf],
    opts: &HuntOptions,
    sink: &mut dyn FnMut(&Hit) -> io::Result<()>,
    progress: &mut dyn FnMut(&Progress<'_>),
) -> io::Result<Summary> {
    let start = Instant::now();
    let (files, listing_problems) = input_files(paths);
    let mut summary = Summary {
        skipped: listing_problems,
        ..Default::default()
    };
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
    }
    .clamp(1, files.len().max(1));
    let next = AtomicUsize::new(0);
    let mut pending: Vec<Pending> = Vec::new();
    let mut sink_err: Option<io::Error> = None;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<FileDone>(threads * 4);
        for _ in 0..threads {
            let tx = tx.clone();
            let (files, next) = (&files, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    // A panic on one file (in a parser or in RSigma, on
                    // input nobody foresaw) skips that file, not the hunt.
                    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        hunt_file(detector, i, path, opts.input_format)
                    }))
                    .unwrap_or_else(|_| FileDone {
                        idx: i,
                        hits: Vec::new(),
                        records: 0,
                        rejects: Vec::new(),
                        skipped: Some(
                            "the hunt crashed on this file (a bug: please report it)".into(),
                        ),
                        pending: Vec::new(),
                    });
                    if tx.send(done).is_err() {
                        // The writer stopped (its sink failed): stop too.
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Write in file order: hold results that finish early.
        let mut waiting: BTreeMap<usize, FileDone> = BTreeMap::new();
        let mut want = 0usize;
        for done in rx.iter() {
            waiting.insert(done.idx, done);
            while let Some(done) = waiting.remove(&want) {
                want += 1;
                let path = &files[done.idx];
                if let Some(reason) = done.skipped {
                    summary.skipped.push(Problem {
                        path: path.clone(),
                        reason,
                    });
                } else {
                    summary.files += 1;
                }
                summary.records += done.records;
                summary.rejects += done.rejects.len() as u64;
                for reason in done.rejects {
                    if summary.reject_samples.len() >= REJECT_SAMPLES {
                        break;
                    }
                    summary.reject_samples.push(Problem {
                        path: path.clone(),
                        reason,
                    });
                }
                for h in &done.hits {
                    count(&mut summary, &h.detection);
                    if sink_err.is_none() {
                        if let Err(e) = sink(h) {
                            sink_err = Some(e);
                        }
                    }
                }
                pending.extend(done.pending);
                progress(&Progress {
                    file: path,
                    files_done: want,
                    files_total: files.len(),
                    records: summary.records,
                    detections: summary.detections,
                });
            }
            if sink_err.is_some() {
                // Dropping the receiver makes the workers stop.
                break;
            }
        }
    });
    if let Some(e) = sink_err {
        return Err(e);
    }
    // Correlation pass, in event-time order (file order breaks ties).
    pending.sort_by_key(|p| (p.ts, p.file, p.record_id));
    for p in pending {
        let n = p.results.len();
        let out = detector.correlate_raw("", &p.event, p.results, p.ts);
        for r in out
            .into_iter()
            .skip(n)
            .filter(EvaluationResult::is_correlation)
        {
            let h = Hit {
                detection: Detection::from_result(r),
                timestamp: Some(p.ts),
                source: files[p.file].clone(),
                record_id: p.record_id,
            };
            count(&mut summary, &h.detection);
            summary.correlations += 1;
            sink(&h)?;
        }
    }
    summary.elapsed = start.elapsed();
    Ok(summary)
}

fn count(summary: &mut Summary, d: &Detection) {
    summary.detections += 1;
    if let Some(l) = d.level {
        *summary.by_level.entry(l).or_default() += 1;
    }
}

/// RFC 3339 (UTC, milliseconds) for Unix milliseconds.
pub fn rfc3339(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let t = t
        .replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000)
        .ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[derive(Serialize)]
struct JsonHit<'a> {
    timestamp: Option<String>,
    rule_id: &'a str,
    rule_title: &'a str,
    level: Option<&'static str>,
    source: std::borrow::Cow<'a, str>,
    record_id: u64,
    tags: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    matched: &'a [crate::MatchedField],
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation: Option<&'a crate::CorrelationMatch>,
}

/// Writes hits as JSON lines or CSV.
pub struct HitWriter<W: Write> {
    out: W,
    format: OutputFormat,
    header_done: bool,
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "timestamp,level,rule_id,rule_title,source,record_id,tags,correlation";

fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

impl<W: Write> HitWriter<W> {
    pub fn new(out: W, format: OutputFormat) -> Self {
        HitWriter {
            out,
            format,
            header_done: false,
        }
    }

    pub fn write(&mut self, h: &Hit) -> io::Result<()> {
        let d = &h.detection;
        let ts = h.timestamp.and_then(rfc3339);
        match self.format {
            OutputFormat::Jsonl => {
                let j = JsonHit {
                    timestamp: ts,
                    rule_id: &d.rule_id,
                    rule_title: &d.rule_title,
                    level: d.level.map(|l| l.as_str()),
                    source: h.source.to_string_lossy(),
                    record_id: h.record_id,
                    tags: &d.tags,
                    matched: &d.matched,
                    correlation: d.correlation.as_ref(),
                };
                serde_json::to_writer(&mut self.out, &j)?;
                self.out.write_all(b"\n")
            }
            OutputFormat::Csv => {
                if !self.header_done {
                    self.header_done = true;
                    writeln!(self.out, "{CSV_HEADER}")?;
                }
                let corr = d.correlation.as_ref().map(|c| c.kind).unwrap_or("");
                writeln!(
                    self.out,
                    "{},{},{},{},{},{},{},{}",
                    ts.unwrap_or_default(),
                    d.level.map(|l| l.as_str()).unwrap_or(""),
                    csv_field(&d.rule_id),
                    csv_field(&d.rule_title),
                    csv_field(&h.source.to_string_lossy()),
                    h.record_id,
                    csv_field(&d.tags.join(";")),
                    corr
                )
            }
        }
    }

    /// Write the CSV header even if there were no hits (no-op for JSONL).
    pub fn finish(mut self) -> io::Result<W> {
        if self.format == OutputFormat::Csv && !self.header_done {
            writeln!(self.out, "{CSV_HEADER}")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_600_880_261_372).as_deref(),
            Some("2020-09-23T16:57:41.372Z")
        );
    }

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
