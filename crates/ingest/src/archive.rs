//! The event archive: Parquet files partitioned by org, date and OCSF class.
//!
//! ```text
//! archive/
//!   checkpoint                      WAL position every part file covers
//!   org=<org-id>/date=<YYYY-MM-DD>/class=<class>/part-<from>-<to>-<n>.parquet
//! ```
//!
//! Exactly-once: a flush writes its part files (each via a temporary name,
//! fsync, rename) and only then moves the checkpoint to the WAL position it
//! covers. On recovery, part files whose range ends past the checkpoint come
//! from an interrupted flush and are deleted; the WAL is replayed from the
//! checkpoint. So every acknowledged event lands in exactly one part file.

use arrow_array::builder::{Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use mimamori_event::{Event, EventBody, Normalized, OcsfClass};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CHECKPOINT: &str = "checkpoint";

/// The Parquet schema of archived events: the columns analysts filter on,
/// plus the complete normalized fields and original record as JSON text.
pub fn schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        s("id", false),
        s("org_id", false),
        Field::new("time", DataType::Int64, false),
        Field::new("received", DataType::Int64, false),
        s("class", false),
        s("source", false),
        s("src_ip", true),
        Field::new("src_port", DataType::Int32, true),
        s("dst_ip", true),
        Field::new("dst_port", DataType::Int32, true),
        s("hostname", true),
        s("user", true),
        s("dns_query", true),
        s("url", true),
        s("http_host", true),
        s("process_name", true),
        s("process_cmdline", true),
        s("api_operation", true),
        s("fields", false),
        s("raw", false),
    ]))
}

/// The `fields` and `raw` columns of a run of events as JSON text, made
/// where the events are made, so the archive thread (the one thread every
/// event passes through) copies text instead of serializing again: for
/// HTTP events it is the WAL record's own text ([`EventText::encode`]), for
/// parsed syslog it is written by the normalize thread ([`EventText::of`]).
#[derive(Debug, Default)]
pub struct EventText {
    text: Vec<u8>,
    /// Per event: `fields` start and end, `raw` start and end in `text`.
    spans: Vec<[usize; 4]>,
}

impl EventText {
    /// The columns' text of `events` alone.
    pub fn of(events: &[Event]) -> EventText {
        let mut t = EventText {
            text: Vec::with_capacity(events.len() * 256),
            spans: Vec::with_capacity(events.len()),
        };
        for e in events {
            t.push_parts(e, b"");
        }
        t
    }

    /// `events` as NDJSON, each line an [`Event`] as serde writes it (the
    /// WAL's record format, read back with `serde_json`), remembering
    /// where each event's `fields` and `raw` objects are.
    pub fn encode(events: &[Event]) -> EventText {
        let mut t = EventText {
            text: Vec::with_capacity(events.len() * 384),
            spans: Vec::with_capacity(events.len()),
        };
        for e in events {
            let out = &mut t.text;
            out.extend_from_slice(b"{\"id\":");
            write_json(out, &e.id);
            out.extend_from_slice(b",\"org_id\":");
            write_json(out, &e.org_id);
            out.extend_from_slice(b",\"received\":");
            write_json(out, &e.received);
            if let Some(time) = e.body.time {
                out.extend_from_slice(b",\"time\":");
                write_json(out, &time);
            }
            out.extend_from_slice(b",\"class\":");
            write_json(out, &e.body.class);
            out.extend_from_slice(b",\"source\":");
            write_json(out, &e.body.source);
            out.extend_from_slice(b",\"fields\":");
            t.push_parts(e, b",\"raw\":");
            t.text.extend_from_slice(b"}\n");
        }
        t
    }

    /// Writes `e`'s `fields` object, `between`, then its `raw` object, and
    /// records where the two objects are.
    fn push_parts(&mut self, e: &Event, between: &[u8]) {
        let a = self.text.len();
        write_json(&mut self.text, &e.body.fields);
        let b = self.text.len();
        self.text.extend_from_slice(between);
        let c = self.text.len();
        write_json(&mut self.text, &e.body.raw);
        self.spans.push([a, b, c, self.text.len()]);
    }

    /// The whole text (for [`EventText::encode`]: the WAL record).
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// Event `i`'s `fields` and `raw` text.
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let [a, b, c, d] = *self.spans.get(i)?;
        Some((&self.text[a..b], &self.text[c..d]))
    }
}

/// JSON text of our own plain data, which cannot fail to serialize.
///
/// Written with sonic-rs, not serde_json: serde_json escapes strings a byte
/// at a time, which was a fifth of an archived syslog event's CPU; sonic-rs
/// scans 16 bytes at a time (SIMD) and writes the same JSON (it is already
/// in the build, through `evtx`). Everything reads it back with serde_json.
fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    if let Err(e) = sonic_rs::to_writer(&mut *out, v) {
        // Unreachable for these types (string keys, no custom Serialize).
        tracing::error!(error = %e, "cannot serialize an event part");
        out.extend_from_slice(b"null");
    }
}

/// An event to archive, with its columns' JSON text when already made.
pub type Row<'a> = (&'a Event, Option<(&'a [u8], &'a [u8])>);

fn to_batch(rows: &[Row]) -> io::Result<RecordBatch> {
    let n = rows.len();
    let mut strings: Vec<StringBuilder> = (0..16)
        .map(|_| StringBuilder::with_capacity(n, n * 16))
        .collect();
    let mut time = Int64Builder::with_capacity(n);
    let mut received = Int64Builder::with_capacity(n);
    let mut src_port = Int32Builder::with_capacity(n);
    let mut dst_port = Int32Builder::with_capacity(n);
    let mut json = Vec::with_capacity(4096);
    for (e, text) in rows {
        let f = &e.body.fields;
        let cols: [Option<&str>; 16] = [
            Some(&e.id),
            Some(&e.org_id),
            Some(e.body.class.as_str()),
            Some(&e.body.source),
            f.src_ip.as_deref(),
            f.dst_ip.as_deref(),
            f.hostname.as_deref(),
            f.user.as_deref(),
            f.dns_query.as_deref(),
            f.url.as_deref(),
            f.http_host.as_deref(),
            f.process_name.as_deref(),
            f.process_cmdline.as_deref(),
            f.api_operation.as_deref(),
            None,
            None,
        ];
        for (b, v) in strings.iter_mut().zip(cols.iter()).take(14) {
            b.append_option(*v);
        }
        let (fields, raw) = match text {
            Some(parts) => *parts,
            None => {
                json.clear();
                write_json(&mut json, f);
                let mid = json.len();
                write_json(&mut json, &e.body.raw);
                json.split_at(mid)
            }
        };
        strings[14].append_value(std::str::from_utf8(fields).map_err(io::Error::other)?);
        strings[15].append_value(std::str::from_utf8(raw).map_err(io::Error::other)?);
        time.append_value(e.time());
        received.append_value(e.received);
        src_port.append_option(f.src_port.map(i32::from));
        dst_port.append_option(f.dst_port.map(i32::from));
    }
    // Column order follows `schema()`: strings 0-3, time, received, then
    // strings and ports interleaved as declared.
    let s: Vec<ArrayRef> = strings
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        s[0].clone(),
        s[1].clone(),
        Arc::new(time.finish()),
        Arc::new(received.finish()),
        s[2].clone(),
        s[3].clone(),
        s[4].clone(),
        Arc::new(src_port.finish()),
        s[5].clone(),
        Arc::new(dst_port.finish()),
        s[6].clone(),
        s[7].clone(),
        s[8].clone(),
        s[9].clone(),
        s[10].clone(),
        s[11].clone(),
        s[12].clone(),
        s[13].clone(),
        s[14].clone(),
        s[15].clone(),
    ];
    RecordBatch::try_new(schema(), columns).map_err(io::Error::other)
}

/// How part files are written. Columns whose values are (nearly) all
/// distinct get no dictionary and no per-page min/max: both would cost a
/// hash or comparison of every value (the JSON columns are most of the
/// bytes) and neither helps a query, which filters on org, time and the
/// short normalized columns.
fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for col in ["id", "fields", "raw", "url", "process_cmdline"] {
        let path = ColumnPath::from(col);
        b = b.set_column_dictionary_enabled(path.clone(), false);
        if col == "fields" || col == "raw" {
            b = b.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    b.build()
}

fn date_of(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => "invalid-date".into(),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// Opens the archive and cleans up after an interrupted flush; returns
    /// it with the checkpoint to replay the WAL from.
    pub fn recover(dir: &Path) -> io::Result<(Archive, u64)> {
        fs::create_dir_all(dir)?;
        let archive = Archive {
            dir: dir.to_path_buf(),
        };
        archive.remove_uncommitted()?;
        let checkpoint = archive.checkpoint()?;
        Ok((archive, checkpoint))
    }

    /// The archive in `dir` without recovery (to read its checkpoint).
    pub fn open_read_only(dir: &Path) -> Archive {
        Archive {
            dir: dir.to_path_buf(),
        }
    }

    /// Deletes temporary files and part files past the checkpoint (those of
    /// a flush that did not complete: their events are still in the WAL).
    pub fn remove_uncommitted(&self) -> io::Result<()> {
        let archive = self;
        let checkpoint = archive.checkpoint()?;
        for path in archive.part_files()? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.ends_with(".tmp") {
                fs::remove_file(&path)?;
                continue;
            }
            if let Some((_, to)) = part_range(&name) {
                if to > checkpoint {
                    tracing::warn!(file = %path.display(), "removing a part file of an interrupted flush; its events are replayed from the WAL");
                    fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The WAL position the archive holds everything up to.
    pub fn checkpoint(&self) -> io::Result<u64> {
        match fs::read_to_string(self.dir.join(CHECKPOINT)) {
            Ok(s) => s.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad archive checkpoint {s:?}"),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes `events` (covering WAL positions `from..to`) as part files,
    /// then moves the checkpoint to `to`.
    pub fn flush<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
        from: u64,
        to: u64,
    ) -> io::Result<usize> {
        self.flush_rows(events.into_iter().map(|e| (e, None)), from, to)
    }

    /// [`Archive::flush`] for events whose `fields` and `raw` JSON text is
    /// already made (see [`EventText`]).
    pub fn flush_rows<'a>(
        &self,
        rows: impl IntoIterator<Item = Row<'a>>,
        from: u64,
        to: u64,
    ) -> io::Result<usize> {
        // Grouped by org, UTC day and class; the day's name is made once
        // per group, not per event.
        const DAY_MS: i64 = 86_400_000;
        let mut groups: BTreeMap<(&str, i64, OcsfClass), Vec<Row>> = BTreeMap::new();
        for row in rows {
            let e = row.0;
            groups
                .entry((e.org_id.as_str(), e.time().div_euclid(DAY_MS), e.body.class))
                .or_default()
                .push(row);
        }
        let mut files = 0;
        for (i, ((org, day, class), evs)) in groups.iter().enumerate() {
            let date = date_of(day * DAY_MS);
            let dir = self
                .dir
                .join(format!("org={org}"))
                .join(format!("date={date}"))
                .join(format!("class={}", class.as_str()));
            fs::create_dir_all(&dir)?;
            let name = format!("part-{from:020}-{to:020}-{i}.parquet");
            let tmp = dir.join(format!("{name}.tmp"));
            let batch = to_batch(evs)?;
            let file = File::create(&tmp)?;
            let props = writer_properties();
            let mut writer =
                ArrowWriter::try_new(file, schema(), Some(props)).map_err(io::Error::other)?;
            writer.write(&batch).map_err(io::Error::other)?;
            let file = writer.into_inner().map_err(io::Error::other)?;
            file.sync_all()?;
            fs::rename(&tmp, dir.join(&name))?;
            sync_dir(&dir)?;
            files += 1;
        }
        let tmp = self.dir.join(format!("{CHECKPOINT}.tmp"));
        fs::write(&tmp, to.to_string())?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, self.dir.join(CHECKPOINT))?;
        sync_dir(&self.dir)?;
        Ok(files)
    }

    /// Every part file (recursively).
    pub fn part_files(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = vec![];
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d)? {
                let entry = entry?;
                let p = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(p);
                } else if p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
                {
                    out.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The part files of the given orgs (all orgs when `orgs` is `None`).
    pub fn part_files_of(&self, orgs: Option<&[String]>) -> io::Result<Vec<PathBuf>> {
        let all = self.part_files()?;
        Ok(match orgs {
            None => all,
            Some(orgs) => all
                .into_iter()
                .filter(|p| {
                    p.strip_prefix(&self.dir)
                        .ok()
                        .and_then(|r| r.components().next())
                        .map(|c| c.as_os_str().to_string_lossy().to_string())
                        .and_then(|c| c.strip_prefix("org=").map(str::to_string))
                        .is_some_and(|o| orgs.contains(&o))
                })
                .collect(),
        })
    }

    /// Reads every event of the given orgs back (all when `None`). For
    /// tests, retro-hunting and small exports; analysts query with SQL
    /// (`mimamori-query`).
    pub fn read_events(&self, orgs: Option<&[String]>) -> io::Result<Vec<Event>> {
        let mut out = vec![];
        for path in self.part_files_of(orgs)? {
            if path.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            read_part(&path, &mut out)?;
        }
        Ok(out)
    }
}

/// What [`Archive::apply_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// `(org id, date)` partitions removed.
    pub removed: Vec<(String, String)>,
    pub files: u64,
    pub bytes: u64,
}

impl Archive {
    /// Deletes the date partitions older than each org's retention:
    /// `retention_days(org_id)` gives the number of days to keep (`None`
    /// keeps everything). Partitions are by event time, so an old log
    /// ingested today is as old as its events say. `today` is
    /// `YYYY-MM-DD` (UTC); a partition is kept while `date > today - days`.
    pub fn apply_retention(
        &self,
        today_ms: i64,
        retention_days: impl Fn(&str) -> Option<u32>,
    ) -> io::Result<RetentionReport> {
        let mut report = RetentionReport::default();
        for org_entry in fs::read_dir(&self.dir)? {
            let org_entry = org_entry?;
            let name = org_entry.file_name().to_string_lossy().to_string();
            let Some(org) = name.strip_prefix("org=") else {
                continue;
            };
            let Some(days) = retention_days(org) else {
                continue;
            };
            let cutoff = date_of(today_ms - i64::from(days) * 86_400_000);
            for date_entry in fs::read_dir(org_entry.path())? {
                let date_entry = date_entry?;
                let dname = date_entry.file_name().to_string_lossy().to_string();
                let Some(date) = dname.strip_prefix("date=") else {
                    continue;
                };
                // ISO dates compare as strings; "invalid-date" sorts after
                // digits and is kept (its events had no usable time).
                if date >= cutoff.as_str() || !date.starts_with(|c: char| c.is_ascii_digit()) {
                    continue;
                }
                let (files, bytes) = dir_size(&date_entry.path())?;
                fs::remove_dir_all(date_entry.path())?;
                tracing::info!(
                    org,
                    date,
                    files,
                    bytes,
                    "retention: removed an archive partition"
                );
                report.removed.push((org.to_string(), date.to_string()));
                report.files += files;
                report.bytes += bytes;
            }
        }
        report.removed.sort();
        Ok(report)
    }
}

fn dir_size(dir: &Path) -> io::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += entry.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

fn part_range(name: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix("part-")?;
    let mut it = rest.split('-');
    let from = it.next()?.parse().ok()?;
    let to = it.next()?.parse().ok()?;
    Some((from, to))
}

/// What [`Archive::scan`] covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub files: u64,
    pub events: u64,
    pub bytes: u64,
}

impl Archive {
    /// The part files of `orgs` (all when `None`) in date partitions on or
    /// after `since_ms` (by event date), with their sizes: what a scan will
    /// read, for progress reporting.
    pub fn part_files_since(
        &self,
        orgs: Option<&[String]>,
        since_ms: i64,
    ) -> io::Result<Vec<(PathBuf, u64)>> {
        let since = date_of(since_ms);
        let mut out = vec![];
        for path in self.part_files_of(orgs)? {
            if path.extension().is_some_and(|e| e == "tmp") {
                continue;
            }
            let date = path
                .ancestors()
                .filter_map(|a| a.file_name())
                .find_map(|n| n.to_str().and_then(|n| n.strip_prefix("date=")))
                .unwrap_or("");
            if date >= since.as_str() {
                out.push((path.clone(), fs::metadata(&path)?.len()));
            }
        }
        Ok(out)
    }

    /// Streams every archived event of `orgs` in date partitions on or
    /// after `since_ms` to `f`, one part file at a time (memory holds one
    /// file's events, not the archive). `progress` is called after each
    /// file with the running totals. For retro-hunting.
    pub fn scan(
        &self,
        orgs: Option<&[String]>,
        since_ms: i64,
        mut f: impl FnMut(&Event),
        mut progress: impl FnMut(&ScanReport),
    ) -> io::Result<ScanReport> {
        let mut report = ScanReport::default();
        let mut buf = vec![];
        for (path, size) in self.part_files_since(orgs, since_ms)? {
            buf.clear();
            match read_part(&path, &mut buf) {
                Ok(()) => {}
                // Retention may delete a partition while we read it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            for e in &buf {
                if e.time() >= since_ms {
                    f(e);
                    report.events += 1;
                }
            }
            report.files += 1;
            report.bytes += size;
            progress(&report);
        }
        Ok(report)
    }
}

fn read_part(path: &Path, out: &mut Vec<Event>) -> io::Result<()> {
    let file = File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(io::Error::other)?
        .build()
        .map_err(io::Error::other)?;
    for batch in reader {
        let batch = batch.map_err(io::Error::other)?;
        let s = |name: &str| -> io::Result<&StringArray> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: no utf8 column {name}", path.display()),
                    )
                })
        };
        let i = |name: &str| -> io::Result<&Int64Array> {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: no int64 column {name}", path.display()),
                    )
                })
        };
        let (id, org, class, source, fields, raw) = (
            s("id")?,
            s("org_id")?,
            s("class")?,
            s("source")?,
            s("fields")?,
            s("raw")?,
        );
        let (time, received) = (i("time")?, i("received")?);
        for r in 0..batch.num_rows() {
            let fields: Normalized =
                serde_json::from_str(fields.value(r)).map_err(io::Error::other)?;
            let raw = match serde_json::from_str(raw.value(r)).map_err(io::Error::other)? {
                serde_json::Value::Object(m) => m,
                _ => Default::default(),
            };
            out.push(Event {
                id: id.value(r).to_string(),
                org_id: org.value(r).to_string(),
                received: received.value(r),
                body: EventBody {
                    time: Some(time.value(r)),
                    class: OcsfClass::parse(class.value(r)).unwrap_or(OcsfClass::BaseEvent),
                    source: source.value(r).to_string(),
                    fields,
                    raw,
                },
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimamori_event::Normalized;
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    fn event(i: usize, text: &str, n: f64) -> Event {
        let mut raw = Map::new();
        raw.insert("message".into(), Value::String(text.into()));
        raw.insert(
            text.into(),
            serde_json::json!([n, i, -(i as i64), null, true, {"k": text}]),
        );
        Event {
            id: format!("id-{i}"),
            org_id: "org".into(),
            received: 1_764_064_800_000,
            body: EventBody {
                time: i.is_multiple_of(2).then_some(1_764_064_800_123),
                class: OcsfClass::DnsActivity,
                source: text.into(),
                fields: Normalized {
                    dns_query: Some(text.into()),
                    src_port: Some(53),
                    file_hashes: vec![("sha256".into(), text.into())],
                    ..Default::default()
                },
                raw,
            },
        }
    }

    proptest! {
        /// The WAL record text reads back (with serde_json, as replay
        /// does) as the same events, and its `fields`/`raw` parts and
        /// those of `EventText::of` are the parts' JSON.
        #[test]
        fn event_text_reads_back_as_the_events(
            texts in proptest::collection::vec("\\PC*|[\\x00-\\x1f\"\\\\/]*", 1..8),
            // Halves are exact in binary, so the text round-trips whatever
            // the parser's rounding.
            n in (-1e12f64..1e12).prop_map(|x| x.trunc() + 0.5),
        ) {
            let events: Vec<Event> = texts.iter().enumerate().map(|(i, t)| event(i, t, n)).collect();
            let wal = EventText::encode(&events);
            let back: Vec<Event> = wal
                .as_bytes()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_slice(l).unwrap())
                .collect();
            prop_assert_eq!(&back, &events);
            let own = EventText::of(&events);
            for (i, e) in events.iter().enumerate() {
                for t in [&wal, &own] {
                    let (fields, raw) = t.get(i).unwrap();
                    prop_assert_eq!(&serde_json::from_slice::<Normalized>(fields).unwrap(), &e.body.fields);
                    prop_assert_eq!(&serde_json::from_slice::<Map<String, Value>>(raw).unwrap(), &e.body.raw);
                }
            }
            prop_assert!(own.get(events.len()).is_none());
        }
    }

    /// Part files written from ready-made text read back as the events.
    #[test]
    fn rows_with_text_are_archived_as_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _) = Archive::recover(dir.path()).unwrap();
        let events: Vec<Event> = ["a.example", "b\n\"c\"", "日本語"]
            .iter()
            .enumerate()
            .map(|(i, t)| event(i, t, 0.5))
            .collect();
        let text = EventText::of(&events);
        archive
            .flush_rows(
                events.iter().enumerate().map(|(i, e)| (e, text.get(i))),
                0,
                7,
            )
            .unwrap();
        let mut back = archive.read_events(None).unwrap();
        back.sort_by(|a, b| a.id.cmp(&b.id));
        // The archive stores the event time, falling back to the receive time.
        let expected: Vec<Event> = events
            .into_iter()
            .map(|mut e| {
                e.body.time = Some(e.time());
                e
            })
            .collect();
        assert_eq!(back, expected);
        assert_eq!(archive.checkpoint().unwrap(), 7);
    }
}
