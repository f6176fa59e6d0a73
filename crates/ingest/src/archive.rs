//! The event archive: Parquet files partitioned by org, date and OCSF class.
//!
//! ```text
//! archive/
//!   checkpoint                      WAL position every flush file covers
//!   readers.lock                    shared by readers, exclusive while files are swapped
//!   org=<org-id>/date=<YYYY-MM-DD>/class=<class>/
//!     part-<from>-<to>-<n>-r<recv-min>-<recv-max>.parquet    a flush (level 0)
//!     c<level>-r<recv-min>-<recv-max>-<uuid>.parquet         a compaction's output
//!     COMPACTION                    a committed compaction not yet tidied up
//! ```
//!
//! `recv-min`/`recv-max` are the earliest and latest receive times (Unix ms)
//! of the file's events: retention counts from them, not from event time.
//!
//! Exactly-once: a flush writes its part files (each via a temporary name,
//! fsync, rename) and only then moves the checkpoint to the WAL position it
//! covers. On recovery, part files whose range ends past the checkpoint come
//! from an interrupted flush and are deleted; the WAL is replayed from the
//! checkpoint. So every acknowledged event lands in exactly one part file.
//!
//! Compaction ([`Archive::compact`]) merges a partition's files into fewer,
//! larger ones, only ever taking files the checkpoint covers. Its commit
//! point is the `COMPACTION` journal (inputs and outputs): outputs are
//! written and fsync'd under temporary names first; with the journal
//! durable, the outputs are renamed into place and the inputs deleted, and
//! the journal goes last. Recovery rolls a journal forward; without one,
//! temporary outputs are deleted. So a crash anywhere loses nothing and
//! duplicates nothing. Readers ([`Archive::snapshot`]) hold `readers.lock`
//! shared while they read; the swap (journal, renames, deletes) holds it
//! exclusively, so a reader never sees inputs and outputs together, nor a
//! file vanish under it.

#[cfg(test)]
use arrow_array::builder::{Int32Builder, Int64Builder, StringBuilder};
#[cfg(test)]
use arrow_array::ArrayRef;
use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
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

/// The Parquet schema of archived events: OCSF 1.3 attributes as nested
/// columns (see [`mimamori_event::ocsf`] for the mapping per class), plus
/// mimamori's `org_id`, `id`, `received` and `raw` (the original record as
/// JSON text). `unmapped` is JSON text too.
pub fn schema() -> SchemaRef {
    use DataType::{Int32, Int64, Utf8};
    let f = |n: &str, t: DataType| Field::new(n, t, true);
    let st = |n: &str, fields: Vec<Field>| f(n, DataType::Struct(fields.into()));
    let list = |n: &str, fields: Vec<Field>| {
        f(
            n,
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(fields.into()),
                true,
            ))),
        )
    };
    let endpoint = |n: &str| {
        st(
            n,
            vec![f("ip", Utf8), f("port", Int32), f("hostname", Utf8)],
        )
    };
    let named = |n: &str| st(n, vec![f("name", Utf8)]);
    let process = |n: &str| {
        st(
            n,
            vec![
                f("name", Utf8),
                f("cmd_line", Utf8),
                f("pid", Int64),
                named("parent_process"),
            ],
        )
    };
    Arc::new(Schema::new(vec![
        Field::new("class_uid", Int32, false),
        f("class_name", Utf8),
        Field::new("category_uid", Int32, false),
        f("category_name", Utf8),
        Field::new("activity_id", Int32, false),
        Field::new("type_uid", Int64, false),
        Field::new("severity_id", Int32, false),
        Field::new("time", Int64, false),
        st(
            "metadata",
            vec![
                f("uid", Utf8),
                f("version", Utf8),
                st("product", vec![f("name", Utf8), f("vendor_name", Utf8)]),
                f("logged_time", Int64),
                f("tenant_uid", Utf8),
            ],
        ),
        f("status_id", Int32),
        f("status", Utf8),
        f("message", Utf8),
        endpoint("src_endpoint"),
        endpoint("dst_endpoint"),
        st("device", vec![f("hostname", Utf8)]),
        st("connection_info", vec![f("protocol_name", Utf8)]),
        st("query", vec![f("hostname", Utf8), f("type", Utf8)]),
        f("rcode", Utf8),
        list("answers", vec![f("rdata", Utf8)]),
        st(
            "http_request",
            vec![
                st("url", vec![f("url_string", Utf8), f("hostname", Utf8)]),
                f("http_method", Utf8),
                f("user_agent", Utf8),
            ],
        ),
        st("http_response", vec![f("code", Int32)]),
        st("actor", vec![named("user"), process("process")]),
        process("process"),
        st(
            "file",
            vec![
                f("name", Utf8),
                list("hashes", vec![f("algorithm", Utf8), f("value", Utf8)]),
            ],
        ),
        st("api", vec![f("operation", Utf8), named("service")]),
        st(
            "cloud",
            vec![st("account", vec![f("uid", Utf8)]), f("region", Utf8)],
        ),
        f("unmapped", Utf8),
        Field::new("org_id", Utf8, false),
        Field::new("id", Utf8, false),
        Field::new("received", Int64, false),
        Field::new("raw", Utf8, false),
    ]))
}

/// An archived row: the event's OCSF rendering with `unmapped` and `raw`
/// as JSON text.
pub type OcsfRow = mimamori_event::ocsf::Ocsf<Option<String>>;

/// The flat schema archives had before OCSF (read, and migrated, at start).
#[cfg(test)]
fn legacy_schema() -> SchemaRef {
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
    let mut json = Vec::with_capacity(4096);
    let mut ocsf: Vec<OcsfRow> = Vec::with_capacity(rows.len());
    for (e, text) in rows {
        let raw = match text {
            Some((_, raw)) => std::str::from_utf8(raw)
                .map_err(io::Error::other)?
                .to_string(),
            None => {
                json.clear();
                write_json(&mut json, &e.body.raw);
                String::from_utf8(json.clone()).map_err(io::Error::other)?
            }
        };
        ocsf.push(e.ocsf(
            |m| {
                (!m.is_empty()).then(|| {
                    let mut t = Vec::new();
                    write_json(&mut t, m);
                    String::from_utf8_lossy(&t).into_owned()
                })
            },
            Some(raw),
        ));
    }
    ocsf_batch(&ocsf)
}

/// Arrow columns of OCSF rows (arrow-json's serde decoder fills the nested
/// structs from the rows' serde shape).
fn ocsf_batch(rows: &[OcsfRow]) -> io::Result<RecordBatch> {
    let mut decoder = arrow_json::ReaderBuilder::new(schema())
        .with_batch_size(rows.len().max(1))
        .build_decoder()
        .map_err(io::Error::other)?;
    decoder.serialize(rows).map_err(io::Error::other)?;
    match decoder.flush().map_err(io::Error::other)? {
        Some(b) => Ok(b),
        None => Ok(RecordBatch::new_empty(schema())),
    }
}

#[cfg(test)]
fn legacy_to_batch(rows: &[Row]) -> io::Result<RecordBatch> {
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
    RecordBatch::try_new(legacy_schema(), columns).map_err(io::Error::other)
}

/// How part files are written. Columns whose values are (nearly) all
/// distinct get no dictionary and no per-page min/max: both would cost a
/// hash or comparison of every value (the JSON columns are most of the
/// bytes) and neither helps a query, which filters on org, time and the
/// short normalized columns.
fn writer_properties() -> WriterProperties {
    let mut b = WriterProperties::builder().set_compression(Compression::SNAPPY);
    let distinct: [&[&str]; 7] = [
        &["id"],
        &["raw"],
        &["unmapped"],
        &["metadata", "uid"],
        &["http_request", "url", "url_string"],
        &["process", "cmd_line"],
        &["actor", "process", "cmd_line"],
    ];
    for col in distinct {
        let path = ColumnPath::new(col.iter().map(|c| c.to_string()).collect());
        b = b.set_column_dictionary_enabled(path.clone(), false);
        if col == ["raw"] || col == ["unmapped"] {
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

const READERS_LOCK: &str = "readers.lock";
/// Names the archive's schema once every file has it.
const FORMAT: &str = "FORMAT";
const FORMAT_OCSF: &str = "ocsf-1.3";
const JOURNAL: &str = "COMPACTION";
const DAY_MS: i64 = 86_400_000;

/// What a data file's name says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileName {
    /// 0 for a flush's part file, the compaction level otherwise.
    level: u32,
    /// The WAL range of a flush's part file.
    wal: Option<(u64, u64)>,
    /// Earliest and latest receive time of its events, when the name says
    /// (part files written before receive times were in names do not).
    received: Option<(i64, i64)>,
}

fn parse_name(name: &str) -> Option<FileName> {
    let stem = name.strip_suffix(".parquet")?;
    let received = |r: &str| -> Option<(i64, i64)> {
        let mut it = r.strip_prefix('r')?.split('-');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    if let Some(rest) = stem.strip_prefix("part-") {
        // part-<from>-<to>-<n>[-r<min>-<max>]
        let mut it = rest.splitn(4, '-');
        let from = it.next()?.parse().ok()?;
        let to = it.next()?.parse().ok()?;
        let _n: u64 = it.next()?.parse().ok()?;
        let received = match it.next() {
            Some(r) => Some(received(r)?),
            None => None,
        };
        return Some(FileName {
            level: 0,
            wal: Some((from, to)),
            received,
        });
    }
    // c<level>-r<min>-<max>-<uuid>
    let rest = stem.strip_prefix('c')?;
    let (level, rest) = rest.split_once('-')?;
    let mut it = rest.splitn(3, '-');
    let (min, max) = (it.next()?, it.next()?);
    it.next()?;
    Some(FileName {
        level: level.parse().ok()?,
        wal: None,
        received: Some(received(&format!("{min}-{max}"))?),
    })
}

/// The earliest and latest `received` of a Parquet file, from its footer's
/// column statistics (for part files whose name does not say).
fn received_from_footer(path: &Path) -> io::Result<(i64, i64)> {
    use parquet::file::reader::FileReader;
    use parquet::file::statistics::Statistics;
    let reader = parquet::file::reader::SerializedFileReader::new(File::open(path)?)
        .map_err(io::Error::other)?;
    let meta = reader.metadata();
    let col = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == "received")
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: no received column", path.display()),
            )
        })?;
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for rg in meta.row_groups() {
        match rg.column(col).statistics() {
            Some(Statistics::Int64(s)) => {
                if let (Some(a), Some(b)) = (s.min_opt(), s.max_opt()) {
                    lo = lo.min(*a);
                    hi = hi.max(*b);
                }
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: no statistics for received", path.display()),
                ))
            }
        }
    }
    if lo > hi {
        // An empty file: as good as received now (kept one retention).
        let now = now_ms();
        return Ok((now, now));
    }
    Ok((lo, hi))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A committed compaction's journal: the files it replaces and the files
/// that replace them (final names; each exists as `<name>.tmp` until
/// renamed).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Journal {
    inputs: Vec<String>,
    outputs: Vec<String>,
}

fn read_journal(dir: &Path) -> io::Result<Option<Journal>> {
    match fs::read(dir.join(JOURNAL)) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", dir.join(JOURNAL).display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!("{name}.tmp"));
    fs::write(&tmp, bytes)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Finishes a committed compaction in `dir`: renames its outputs into
/// place, deletes its inputs, then the journal. Idempotent.
fn roll_forward(dir: &Path, journal: &Journal) -> io::Result<()> {
    for out in &journal.outputs {
        let tmp = dir.join(format!("{out}.tmp"));
        match fs::rename(&tmp, dir.join(out)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir.join(out).exists() => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(dir)?;
    for input in &journal.inputs {
        match fs::remove_file(dir.join(input)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(dir)?;
    fs::remove_file(dir.join(JOURNAL))?;
    sync_dir(dir)
}

/// The data files of one partition directory as readers must see them: a
/// journal left by an interrupted compaction counts as done (its inputs
/// are gone, its outputs there, under their temporary names if need be).
fn live_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = vec![];
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".parquet") && entry.file_type()?.is_file() {
            out.push(entry.path());
        }
    }
    if let Some(j) = read_journal(dir)? {
        out.retain(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().to_string());
            !n.is_some_and(|n| j.inputs.contains(&n) || j.outputs.contains(&n))
        });
        for o in &j.outputs {
            let fin = dir.join(o);
            out.push(if fin.exists() {
                fin
            } else {
                dir.join(format!("{o}.tmp"))
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Every directory under `root` (itself included) that holds files.
fn partition_dirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            // Retention may remove a directory while we walk.
            Err(e) if e.kind() == io::ErrorKind::NotFound && d != root => continue,
            Err(e) => return Err(e),
        };
        let mut has_files = false;
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                has_files = true;
            }
        }
        if has_files && d != root {
            out.push(d);
        }
    }
    out.sort();
    Ok(out)
}

/// A shared hold on `readers.lock`: while it lives, no compaction or
/// retention swaps or deletes files.
#[derive(Debug)]
pub struct ReadGuard {
    _file: Option<File>,
}

/// Takes `readers.lock` in `dir` shared (waiting for a swap in progress).
/// An archive that cannot be locked (a read-only copy) is read unlocked.
pub fn read_lock(dir: &Path) -> ReadGuard {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(READERS_LOCK));
    match file {
        Ok(f) => match f.lock_shared() {
            Ok(()) => ReadGuard { _file: Some(f) },
            Err(e) => {
                tracing::warn!(error = %e, "cannot lock the archive for reading; reading unlocked");
                ReadGuard { _file: None }
            }
        },
        Err(e) => {
            if dir.exists() {
                tracing::warn!(error = %e, "cannot open the archive's reader lock; reading unlocked");
            }
            ReadGuard { _file: None }
        }
    }
}

/// The files of a consistent view of the archive, kept in place while the
/// snapshot lives.
#[derive(Debug)]
pub struct Snapshot {
    pub files: Vec<PathBuf>,
    _guard: ReadGuard,
}

/// A consistent view of the data files of `orgs` (all when `None`) in the
/// archive at `dir`, for readers in this or another process (the SQL
/// query). Needs no [`Archive::recover`].
pub fn snapshot(dir: &Path, orgs: Option<&[String]>) -> io::Result<Snapshot> {
    let guard = read_lock(dir);
    if !dir.exists() {
        return Ok(Snapshot {
            files: vec![],
            _guard: guard,
        });
    }
    let mut files = vec![];
    for d in partition_dirs(dir)? {
        let org = d
            .strip_prefix(dir)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .and_then(|c| c.strip_prefix("org=").map(str::to_string));
        let Some(org) = org else { continue };
        if orgs.is_some_and(|o| !o.contains(&org)) {
            continue;
        }
        files.extend(live_files(&d)?);
    }
    Ok(Snapshot {
        files,
        _guard: guard,
    })
}

/// How compaction merges files (see [`Archive::compact`]).
#[derive(Debug, Clone)]
pub struct CompactionPolicy {
    /// Files of one level in a partition that are merged into one of the
    /// next level.
    pub fan_in: usize,
    /// Size a compacted file grows to before the next is started.
    pub target_bytes: u64,
    /// Rows per row group in compacted files.
    pub row_group_rows: usize,
    /// How long after its receive day ends a partition's files are merged
    /// into files of `target_bytes` (late flushes of the day's events come
    /// within seconds).
    pub close_after_ms: i64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            fan_in: 10,
            target_bytes: 128 * 1024 * 1024,
            row_group_rows: 128 * 1024,
            close_after_ms: 10 * 60 * 1000,
        }
    }
}

/// The level of the files a closed day is merged into.
const CLOSED_LEVEL: u32 = 9;

/// What [`Archive::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Merges done.
    pub jobs: u64,
    /// Files merged away and written.
    pub inputs: u64,
    pub outputs: u64,
    pub rows: u64,
}

/// Where a compaction can be stopped short, to test that a crash there
/// loses and duplicates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionStep {
    /// An output is partly written (under its temporary name).
    OutputPartlyWritten,
    /// Every output is written and fsync'd, the journal not yet.
    OutputsWritten,
    /// The journal is durable: the compaction is committed.
    JournalWritten,
    /// The first output is renamed into place.
    OutputRenamed,
    /// The first input is deleted.
    InputDeleted,
}

/// A data file with what compaction needs to know about it.
#[derive(Debug, Clone)]
struct DataFile {
    path: PathBuf,
    name: String,
    level: u32,
    received: (i64, i64),
    bytes: u64,
}

/// The archive directory.
#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// Opens the archive and cleans up after an interrupted flush or
    /// compaction; returns it with the checkpoint to replay the WAL from.
    pub fn recover(dir: &Path) -> io::Result<(Archive, u64)> {
        fs::create_dir_all(dir)?;
        let archive = Archive {
            dir: dir.to_path_buf(),
        };
        for d in partition_dirs(dir)? {
            if let Some(j) = read_journal(&d)? {
                tracing::info!(dir = %d.display(), "finishing an interrupted compaction");
                // Readers in other processes may hold the temporary names.
                let _lock = archive.swap_lock(std::time::Duration::from_secs(60))?;
                roll_forward(&d, &j)?;
            }
            // Outputs of a compaction that did not commit.
            for entry in fs::read_dir(&d)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with('c') && name.ends_with(".tmp") {
                    fs::remove_file(entry.path())?;
                }
            }
        }
        archive.remove_uncommitted()?;
        archive.migrate()?;
        let checkpoint = archive.checkpoint()?;
        Ok((archive, checkpoint))
    }

    /// The archive in `dir` without recovery (to read its checkpoint).
    pub fn open_read_only(dir: &Path) -> Archive {
        Archive {
            dir: dir.to_path_buf(),
        }
    }

    /// Rewrites files of the flat pre-OCSF schema in OCSF columns, once
    /// (`FORMAT` records that it is done), as compactions: crash-safe, and
    /// an interrupted migration resumes at the next start. A user who
    /// upgrades keeps every archived event.
    fn migrate(&self) -> io::Result<()> {
        let marker = self.dir.join(FORMAT);
        if fs::read_to_string(&marker).is_ok_and(|s| s.trim() == FORMAT_OCSF) {
            return Ok(());
        }
        let checkpoint = self.checkpoint()?;
        let (mut files, mut rows) = (0u64, 0u64);
        for dir in partition_dirs(&self.dir)? {
            let mut by_day: BTreeMap<i64, Vec<DataFile>> = BTreeMap::new();
            for f in self.compactable(&dir, checkpoint)? {
                if is_legacy(&f.path)? {
                    by_day
                        .entry(f.received.0.div_euclid(DAY_MS))
                        .or_default()
                        .push(f);
                }
            }
            for (_, inputs) in by_day {
                let n = inputs.len() as u64;
                let policy = CompactionPolicy::default();
                match self.merge(&dir, &inputs, 1, &policy, &mut |_| Ok(()))? {
                    Some((_, r)) => {
                        files += n;
                        rows += r;
                    }
                    None => {
                        return Err(io::Error::other(
                            "cannot migrate the archive to OCSF: readers hold it; stop them and start again",
                        ))
                    }
                }
            }
        }
        if files > 0 {
            tracing::info!(
                files,
                events = rows,
                "archive migrated to the OCSF 1.3 schema"
            );
        }
        write_durably(&marker, FORMAT_OCSF.as_bytes())
    }

    /// Deletes flush temporary files and part files past the checkpoint
    /// (those of a flush that did not complete: their events are still in
    /// the WAL).
    pub fn remove_uncommitted(&self) -> io::Result<()> {
        let archive = self;
        let checkpoint = archive.checkpoint()?;
        for d in partition_dirs(&self.dir)? {
            for entry in fs::read_dir(&d)? {
                let entry = entry?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().to_string();
                if !name.starts_with("part-") {
                    continue;
                }
                if name.ends_with(".tmp") {
                    fs::remove_file(&path)?;
                    continue;
                }
                if let Some((_, to)) = parse_name(&name).and_then(|n| n.wal) {
                    if to > checkpoint {
                        tracing::warn!(file = %path.display(), "removing a part file of an interrupted flush; its events are replayed from the WAL");
                        fs::remove_file(&path)?;
                    }
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
        // Grouped by org, UTC day, class and UTC receive day (so each
        // file's receive times fall in one day, which compaction and
        // retention go by); the day's name is made once per group.
        let mut groups: BTreeMap<(&str, i64, OcsfClass, i64), Vec<Row>> = BTreeMap::new();
        for row in rows {
            let e = row.0;
            groups
                .entry((
                    e.org_id.as_str(),
                    e.time().div_euclid(DAY_MS),
                    e.body.class,
                    e.received.div_euclid(DAY_MS),
                ))
                .or_default()
                .push(row);
        }
        let mut files = 0;
        for (i, ((org, day, class, _), evs)) in groups.iter().enumerate() {
            let date = date_of(day * DAY_MS);
            let dir = self
                .dir
                .join(format!("org={org}"))
                .join(format!("date={date}"))
                .join(format!("class={}", class.as_str()));
            fs::create_dir_all(&dir)?;
            let (lo, hi) = evs.iter().fold((i64::MAX, i64::MIN), |(lo, hi), (e, _)| {
                (lo.min(e.received), hi.max(e.received))
            });
            let name = format!("part-{from:020}-{to:020}-{i}-r{lo}-{hi}.parquet");
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
        write_durably(&self.dir.join(CHECKPOINT), to.to_string().as_bytes())?;
        Ok(files)
    }

    /// Every data file (recursively), as readers see them.
    pub fn part_files(&self) -> io::Result<Vec<PathBuf>> {
        let mut out = vec![];
        for d in partition_dirs(&self.dir)? {
            out.extend(live_files(&d)?);
        }
        Ok(out)
    }

    /// The data files of the given orgs (all orgs when `orgs` is `None`).
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
        let _guard = read_lock(&self.dir);
        let mut out = vec![];
        for path in self.part_files_of(orgs)? {
            read_part(&path, &mut out)?;
        }
        Ok(out)
    }

    /// Takes `readers.lock` exclusively, waiting at most `patience` for
    /// readers to finish; `None` when they did not.
    fn swap_lock(&self, patience: std::time::Duration) -> io::Result<Option<File>> {
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(READERS_LOCK))?;
        let start = std::time::Instant::now();
        loop {
            match f.try_lock() {
                Ok(()) => return Ok(Some(f)),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
            if start.elapsed() >= patience {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The data files of `dir` that compaction may take: every compacted
    /// file, and the part files the checkpoint covers (a part file past it
    /// may belong to a flush still in progress, or one a crash cut short).
    fn compactable(&self, dir: &Path, checkpoint: u64) -> io::Result<Vec<DataFile>> {
        let mut out = vec![];
        for path in live_files(dir)? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let Some(parsed) = parse_name(&name) else {
                continue;
            };
            if parsed.wal.is_some_and(|(_, to)| to > checkpoint) {
                continue;
            }
            let received = match parsed.received {
                Some(r) => r,
                None => received_from_footer(&path)?,
            };
            let bytes = fs::metadata(&path)?.len();
            out.push(DataFile {
                path,
                name,
                level: parsed.level,
                received,
                bytes,
            });
        }
        Ok(out)
    }

    /// Merges small files (see the module documentation for how this is
    /// made atomic and crash-safe). Within each partition directory, files
    /// are grouped by receive day. A day still open is merged by levels:
    /// `fan_in` files of one level become one of the next, so each event
    /// is rewritten a few times at most and a partition holds a few dozen
    /// files. A day closed `close_after_ms` ago is merged into files of
    /// about `target_bytes`. `now_ms` decides which days are closed.
    pub fn compact(&self, now_ms: i64, policy: &CompactionPolicy) -> io::Result<CompactionReport> {
        self.compact_with(now_ms, policy, &mut |_| Ok(()))
    }

    /// [`Archive::compact`] calling `hook` at each [`CompactionStep`]; an
    /// error from it stops the compaction there, as a crash would (nothing
    /// is cleaned up). For crash tests.
    #[doc(hidden)]
    pub fn compact_with(
        &self,
        now_ms: i64,
        policy: &CompactionPolicy,
        hook: &mut dyn FnMut(CompactionStep) -> io::Result<()>,
    ) -> io::Result<CompactionReport> {
        let mut report = CompactionReport::default();
        let checkpoint = self.checkpoint()?;
        let today = now_ms.div_euclid(DAY_MS);
        let fan_in = policy.fan_in.max(2);
        for dir in partition_dirs(&self.dir)? {
            let files = match self.compactable(&dir, checkpoint) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut by_day: BTreeMap<i64, Vec<DataFile>> = BTreeMap::new();
            for f in files {
                by_day
                    .entry(f.received.0.div_euclid(DAY_MS))
                    .or_default()
                    .push(f);
            }
            for (day, files) in by_day {
                let closed = day < today && now_ms >= (day + 1) * DAY_MS + policy.close_after_ms;
                let jobs: Vec<(Vec<DataFile>, u32)> = if closed {
                    let small: Vec<DataFile> = files
                        .into_iter()
                        .filter(|f| f.bytes < policy.target_bytes / 2)
                        .collect();
                    if small.len() >= 2 || small.iter().any(|f| f.level < CLOSED_LEVEL) {
                        vec![(small, CLOSED_LEVEL)]
                    } else {
                        vec![]
                    }
                } else {
                    let mut levels: BTreeMap<u32, Vec<DataFile>> = BTreeMap::new();
                    for f in files {
                        levels.entry(f.level).or_default().push(f);
                    }
                    levels
                        .into_iter()
                        .filter(|(level, fs)| *level < CLOSED_LEVEL && fs.len() >= fan_in)
                        .map(|(level, fs)| (fs, level + 1))
                        .collect()
                };
                for (inputs, level) in jobs {
                    if inputs.is_empty() {
                        continue;
                    }
                    match self.merge(&dir, &inputs, level, policy, hook)? {
                        Some((outputs, rows)) => {
                            report.jobs += 1;
                            report.inputs += inputs.len() as u64;
                            report.outputs += outputs;
                            report.rows += rows;
                        }
                        None => return Ok(report),
                    }
                }
            }
        }
        Ok(report)
    }

    /// Merges `inputs` (files of `dir`) into files of `level`; the number
    /// of outputs and rows, or `None` when readers held the archive too
    /// long (nothing changed then).
    fn merge(
        &self,
        dir: &Path,
        inputs: &[DataFile],
        level: u32,
        policy: &CompactionPolicy,
        hook: &mut dyn FnMut(CompactionStep) -> io::Result<()>,
    ) -> io::Result<Option<(u64, u64)>> {
        let lo = inputs.iter().map(|f| f.received.0).min().unwrap_or(0);
        let hi = inputs.iter().map(|f| f.received.1).max().unwrap_or(0);
        let mut outputs: Vec<String> = vec![];
        let new_name = || {
            format!(
                "c{level}-r{lo}-{hi}-{}.parquet",
                uuid::Uuid::now_v7().simple()
            )
        };
        let props = || {
            let mut p = writer_properties().into_builder();
            p = p.set_max_row_group_row_count(Some(policy.row_group_rows.max(1024)));
            p.build()
        };
        let mut rows = 0u64;
        // A hook's error is a simulated crash: nothing is cleaned up.
        let mut crashed = false;
        let result = (|| -> io::Result<()> {
            let mut writer: Option<ArrowWriter<File>> = None;
            let finish = |w: ArrowWriter<File>| -> io::Result<()> {
                let file = w.into_inner().map_err(io::Error::other)?;
                file.sync_all()
            };
            for input in inputs {
                // Files of the flat pre-OCSF schema are read as events and
                // written in OCSF columns (the migration at start).
                let batches: Box<dyn Iterator<Item = io::Result<RecordBatch>>> =
                    if is_legacy(&input.path)? {
                        let mut events = vec![];
                        read_legacy_part(&input.path, &mut events)?;
                        let batches: Vec<io::Result<RecordBatch>> = events
                            .chunks(8192)
                            .map(|c| {
                                let rows: Vec<Row> = c.iter().map(|e| (e, None)).collect();
                                to_batch(&rows)
                            })
                            .collect();
                        Box::new(batches.into_iter())
                    } else {
                        let file = File::open(&input.path)?;
                        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                            .map_err(io::Error::other)?
                            .with_batch_size(8192)
                            .build()
                            .map_err(io::Error::other)?;
                        Box::new(reader.map(|b| b.map_err(io::Error::other)))
                    };
                for batch in batches {
                    let batch = batch?;
                    let batch = RecordBatch::try_new(schema(), batch.columns().to_vec())
                        .map_err(io::Error::other)?;
                    if writer.is_none() {
                        let name = new_name();
                        let f = File::create(dir.join(format!("{name}.tmp")))?;
                        outputs.push(name);
                        writer = Some(
                            ArrowWriter::try_new(f, schema(), Some(props()))
                                .map_err(io::Error::other)?,
                        );
                    }
                    if let Some(w) = writer.as_mut() {
                        w.write(&batch).map_err(io::Error::other)?;
                        rows += batch.num_rows() as u64;
                        // Bounds memory: a row group is buffered whole.
                        if w.in_progress_size() > 64 * 1024 * 1024 {
                            w.flush().map_err(io::Error::other)?;
                        }
                        if w.bytes_written() as u64 + w.in_progress_size() as u64
                            >= policy.target_bytes
                        {
                            if let Some(w) = writer.take() {
                                finish(w)?;
                            }
                        }
                    }
                }
                if outputs.len() == 1 && writer.is_some() {
                    hook(CompactionStep::OutputPartlyWritten).inspect_err(|_| crashed = true)?;
                }
            }
            if let Some(w) = writer.take() {
                finish(w)?;
            }
            Ok(())
        })();
        let cleanup = |outputs: &[String]| {
            for o in outputs {
                let _ = fs::remove_file(dir.join(format!("{o}.tmp")));
            }
        };
        if let Err(e) = result {
            if !crashed {
                cleanup(&outputs);
            }
            return Err(e);
        }
        hook(CompactionStep::OutputsWritten)?;
        sync_dir(dir)?;
        let Some(_lock) = self.swap_lock(std::time::Duration::from_secs(30))? else {
            tracing::info!(dir = %dir.display(), "compaction postponed: readers hold the archive");
            cleanup(&outputs);
            return Ok(None);
        };
        let journal = Journal {
            inputs: inputs.iter().map(|f| f.name.clone()).collect(),
            outputs: outputs.clone(),
        };
        let text = serde_json::to_vec(&journal).map_err(io::Error::other)?;
        write_durably(&dir.join(JOURNAL), &text)?;
        hook(CompactionStep::JournalWritten)?;
        // Committed: from here on a failure is finished by recovery.
        if let Some(first) = outputs.first() {
            fs::rename(dir.join(format!("{first}.tmp")), dir.join(first))?;
            hook(CompactionStep::OutputRenamed)?;
        }
        if let Some(first) = inputs.first() {
            fs::remove_file(&first.path)?;
            hook(CompactionStep::InputDeleted)?;
        }
        roll_forward(dir, &journal)?;
        tracing::debug!(dir = %dir.display(), inputs = inputs.len(), outputs = outputs.len(), rows, "compacted");
        Ok(Some((outputs.len() as u64, rows)))
    }
}

/// What [`Archive::apply_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// `(org id, date)` partitions files were removed from.
    pub removed: Vec<(String, String)>,
    pub files: u64,
    pub bytes: u64,
}

impl Archive {
    /// Deletes the files whose events were all received longer ago than
    /// their org's retention: `retention_ms(org_id)` gives how long to
    /// keep events after they were received (`None` keeps everything).
    /// Retention counts from the receive time, never the event time: a
    /// 2019 log ingested today is kept for the whole retention from today.
    pub fn apply_retention(
        &self,
        now_ms: i64,
        retention_ms: impl Fn(&str) -> Option<i64>,
    ) -> io::Result<RetentionReport> {
        let mut report = RetentionReport::default();
        let mut expired: Vec<(String, String, DataFile)> = vec![];
        let checkpoint = self.checkpoint()?;
        for dir in partition_dirs(&self.dir)? {
            let rel: Vec<String> = dir
                .strip_prefix(&self.dir)
                .map(|r| {
                    r.components()
                        .map(|c| c.as_os_str().to_string_lossy().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let Some(org) = rel.first().and_then(|c| c.strip_prefix("org=")) else {
                continue;
            };
            let Some(keep) = retention_ms(org) else {
                continue;
            };
            let date = rel
                .get(1)
                .and_then(|c| c.strip_prefix("date="))
                .unwrap_or("")
                .to_string();
            for f in self.compactable(&dir, checkpoint)? {
                if f.received.1 < now_ms - keep {
                    expired.push((org.to_string(), date.clone(), f));
                }
            }
        }
        if expired.is_empty() {
            return Ok(report);
        }
        let Some(_lock) = self.swap_lock(std::time::Duration::from_secs(60))? else {
            tracing::info!("retention postponed: readers hold the archive");
            return Ok(report);
        };
        for (org, date, f) in expired {
            match fs::remove_file(&f.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            tracing::info!(org, date, file = %f.name, bytes = f.bytes, "retention: removed an archive file");
            report.files += 1;
            report.bytes += f.bytes;
            if !report.removed.contains(&(org.clone(), date.clone())) {
                report.removed.push((org, date));
            }
            if let Some(parent) = f.path.parent() {
                remove_empty_dirs(parent, &self.dir);
            }
        }
        report.removed.sort();
        Ok(report)
    }
}

/// Removes `dir` and its parents up to (not including) `root` while empty.
fn remove_empty_dirs(dir: &Path, root: &Path) {
    let mut d = dir.to_path_buf();
    while d != root && d.starts_with(root) {
        if fs::remove_dir(&d).is_err() {
            break;
        }
        match d.parent() {
            Some(p) => d = p.to_path_buf(),
            None => break,
        }
    }
}

/// What [`Archive::scan`] covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    pub files: u64,
    pub events: u64,
    pub bytes: u64,
}

impl Archive {
    /// The data files of `orgs` (all when `None`) in date partitions on or
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
            let date = path
                .ancestors()
                .filter_map(|a| a.file_name())
                .find_map(|n| n.to_str().and_then(|n| n.strip_prefix("date=")))
                .unwrap_or("");
            if date >= since.as_str() {
                match fs::metadata(&path) {
                    Ok(m) => out.push((path.clone(), m.len())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// Streams every archived event of `orgs` in date partitions on or
    /// after `since_ms` to `f`, one file at a time (memory holds one
    /// file's events, not the archive). `progress` is called after each
    /// file with the running totals. For retro-hunting. Holds the archive
    /// for reading throughout, so compaction cannot move events from a
    /// file not yet read into one already read.
    pub fn scan(
        &self,
        orgs: Option<&[String]>,
        since_ms: i64,
        mut f: impl FnMut(&Event),
        mut progress: impl FnMut(&ScanReport),
    ) -> io::Result<ScanReport> {
        let _guard = read_lock(&self.dir);
        let mut report = ScanReport::default();
        let mut buf = vec![];
        for (path, size) in self.part_files_since(orgs, since_ms)? {
            buf.clear();
            read_part(&path, &mut buf)?;
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

/// Whether a Parquet file has the flat schema archives had before OCSF.
fn is_legacy(path: &Path) -> io::Result<bool> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path)?).map_err(io::Error::other)?;
    let schema = builder.schema();
    Ok(schema.field_with_name("class_uid").is_err() && schema.field_with_name("fields").is_ok())
}

fn read_part(path: &Path, out: &mut Vec<Event>) -> io::Result<()> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(File::open(path)?).map_err(io::Error::other)?;
    if builder.schema().field_with_name("class_uid").is_err() {
        return read_legacy_part(path, out);
    }
    let reader = builder.build().map_err(io::Error::other)?;
    let mut buf = Vec::new();
    for batch in reader {
        let batch = batch.map_err(io::Error::other)?;
        buf.clear();
        let mut writer = arrow_json::ArrayWriter::new(&mut buf);
        writer.write(&batch).map_err(io::Error::other)?;
        writer.finish().map_err(io::Error::other)?;
        drop(writer);
        if batch.num_rows() == 0 {
            continue;
        }
        let rows: Vec<OcsfRow> = serde_json::from_slice(&buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        let object = |t: Option<&str>| -> io::Result<serde_json::Map<String, serde_json::Value>> {
            match t {
                None => Ok(Default::default()),
                Some(t) => match serde_json::from_str(t).map_err(io::Error::other)? {
                    serde_json::Value::Object(m) => Ok(m),
                    _ => Ok(Default::default()),
                },
            }
        };
        for mut row in rows {
            let unmapped = object(row.unmapped.take().as_deref())?;
            let raw = object(row.raw.take().as_deref())?;
            out.push(row.into_event(unmapped, raw));
        }
    }
    Ok(())
}

/// Reads a part file of the flat pre-OCSF schema.
fn read_legacy_part(path: &Path, out: &mut Vec<Event>) -> io::Result<()> {
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

    #[test]
    fn file_names_parse() {
        assert_eq!(
            parse_name("part-00000000000000000010-00000000000000000020-3-r5-7.parquet"),
            Some(FileName {
                level: 0,
                wal: Some((10, 20)),
                received: Some((5, 7))
            })
        );
        assert_eq!(
            parse_name("part-00000000000000000010-00000000000000000020-3.parquet"),
            Some(FileName {
                level: 0,
                wal: Some((10, 20)),
                received: None
            })
        );
        assert_eq!(
            parse_name("c9-r1764064800000-1764064800001-01a24ff0bbef70c99e8c2c6a9e700588.parquet"),
            Some(FileName {
                level: 9,
                wal: None,
                received: Some((1764064800000, 1764064800001))
            })
        );
        assert_eq!(parse_name("c1-r1-2-x.parquet.tmp"), None);
        assert_eq!(parse_name("checkpoint"), None);
    }

    fn ids(archive: &Archive) -> Vec<String> {
        let mut ids: Vec<String> = archive
            .read_events(None)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        ids.sort();
        ids
    }

    /// `n` flushes of three events each, as the archive thread makes them.
    fn flushes(archive: &Archive, start: usize, n: usize) -> Vec<String> {
        let mut want = vec![];
        for f in start..start + n {
            let events: Vec<Event> = (0..3)
                .map(|i| {
                    let mut e = event(f * 3 + i, "x.example", 0.5);
                    e.id = format!("id-{f:03}-{i}");
                    e
                })
                .collect();
            want.extend(events.iter().map(|e| e.id.clone()));
            archive
                .flush(&events, f as u64 * 10, (f as u64 + 1) * 10)
                .unwrap();
        }
        want.sort();
        want
    }

    fn data_files(archive: &Archive) -> usize {
        archive.part_files().unwrap().len()
    }

    const RECEIVED: i64 = 1_764_064_800_000; // 2025-11-25T10:00:00Z

    #[test]
    fn compaction_merges_by_level_then_closes_the_day() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _) = Archive::recover(dir.path()).unwrap();
        let want = flushes(&archive, 0, 23);
        // A part file named before names carried receive times: read from
        // its footer.
        let legacy = archive.part_files().unwrap()[0].clone();
        let name = legacy.file_name().unwrap().to_string_lossy().to_string();
        let (stem, _) = name.split_once("-r").unwrap();
        fs::rename(&legacy, legacy.with_file_name(format!("{stem}.parquet"))).unwrap();
        assert_eq!(data_files(&archive), 23);
        let policy = CompactionPolicy {
            fan_in: 5,
            ..CompactionPolicy::default()
        };
        // The same day: 23 ≥ 5 level-0 files become one of level 1.
        let r = archive.compact(RECEIVED + 3_600_000, &policy).unwrap();
        assert_eq!(r.jobs, 1);
        assert_eq!(r.inputs, 23);
        assert_eq!(data_files(&archive), 1, "23 ≥ 5 level-0 files become one");
        let mut want = want;
        want.extend(flushes(&archive, 23, 4));
        want.sort();
        assert_eq!(ids(&archive), want);
        // A second pass with 4 new level-0 files: below the fan-in.
        let r = archive.compact(RECEIVED + 3_600_000, &policy).unwrap();
        assert_eq!(r.jobs, 0);
        assert_eq!(data_files(&archive), 5);
        // The day closed (ten minutes after midnight): one file.
        let next_day = (RECEIVED / DAY_MS + 1) * DAY_MS;
        let r = archive.compact(next_day + 5 * 60_000, &policy).unwrap();
        assert_eq!(r.jobs, 0, "not yet: late flushes may still come");
        let r = archive.compact(next_day + 11 * 60_000, &policy).unwrap();
        assert_eq!(r.jobs, 1);
        assert_eq!(data_files(&archive), 1, "{:?}", archive.part_files());
        let names: Vec<String> = archive
            .part_files()
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        assert!(
            names[0].starts_with(&format!("c9-r{RECEIVED}-{RECEIVED}-")),
            "{names:?}"
        );
        // Nothing more to do for a closed day in one file.
        let r = archive.compact(next_day + DAY_MS, &policy).unwrap();
        assert_eq!(r.jobs, 0);
        // Every event once.
        assert_eq!(ids(&archive), want);
        let back = archive.read_events(None).unwrap();
        assert!(back
            .iter()
            .all(|e| e.received == RECEIVED
                && e.body.fields.dns_query.as_deref() == Some("x.example")));
        // Retention by receive time removes the compacted file as a whole.
        let r = archive
            .apply_retention(RECEIVED + 2 * DAY_MS, |_| Some(DAY_MS))
            .unwrap();
        assert_eq!(r.files, 1);
        assert!(ids(&archive).is_empty());
    }

    #[test]
    fn a_crash_at_any_compaction_step_loses_and_duplicates_nothing() {
        let steps = [
            CompactionStep::OutputPartlyWritten,
            CompactionStep::OutputsWritten,
            CompactionStep::JournalWritten,
            CompactionStep::OutputRenamed,
            CompactionStep::InputDeleted,
        ];
        let policy = CompactionPolicy {
            fan_in: 4,
            ..CompactionPolicy::default()
        };
        for step in steps {
            let dir = tempfile::tempdir().unwrap();
            let (archive, _) = Archive::recover(dir.path()).unwrap();
            let want = flushes(&archive, 0, 6);
            let mut hit = false;
            let err = archive
                .compact_with(RECEIVED, &policy, &mut |s| {
                    if s == step {
                        hit = true;
                        Err(io::Error::other("injected crash"))
                    } else {
                        Ok(())
                    }
                })
                .unwrap_err();
            assert!(hit, "{step:?} was never reached");
            assert_eq!(err.to_string(), "injected crash");
            // Before recovery, a reader already sees every event once.
            assert_eq!(ids(&archive), want, "reader after a crash at {step:?}");
            // Recovery, then compaction again: still every event once.
            let (archive, _) = Archive::recover(dir.path()).unwrap();
            assert_eq!(ids(&archive), want, "after recovery from {step:?}");
            let leftovers: Vec<PathBuf> = partition_dirs(dir.path())
                .unwrap()
                .iter()
                .flat_map(|d| fs::read_dir(d).unwrap())
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let n = p.file_name().unwrap().to_string_lossy();
                    n.ends_with(".tmp") || n == JOURNAL
                })
                .collect();
            assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
            archive.compact(RECEIVED, &policy).unwrap();
            assert_eq!(ids(&archive), want, "compacted after {step:?}");
            assert!(data_files(&archive) <= 2, "{step:?}");
        }
    }

    /// A reader holding a snapshot keeps its files: compaction waits for it
    /// (and gives up after its patience, changing nothing).
    #[test]
    fn compaction_waits_for_readers() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _) = Archive::recover(dir.path()).unwrap();
        let want = flushes(&archive, 0, 4);
        let snap = snapshot(dir.path(), None).unwrap();
        assert_eq!(snap.files.len(), 4);
        let policy = CompactionPolicy {
            fan_in: 4,
            ..CompactionPolicy::default()
        };
        let a = archive.clone();
        let t = std::thread::spawn(move || a.compact(RECEIVED, &policy).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!t.is_finished(), "compaction swapped files under a reader");
        for f in &snap.files {
            assert!(f.exists());
        }
        drop(snap);
        let r = t.join().unwrap();
        assert_eq!(r.jobs, 1);
        assert_eq!(snapshot(dir.path(), None).unwrap().files.len(), 1);
        assert_eq!(ids(&archive), want);
    }

    /// An archive written before OCSF (flat columns, `fields` JSON) is
    /// migrated at start: every event is still there, now in OCSF columns.
    #[test]
    fn a_pre_ocsf_archive_is_migrated_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..50).map(|i| event(i, "old.example", 1.5)).collect();
        let part = dir
            .path()
            .join("org=org/date=2025-11-25/class=dns_activity");
        fs::create_dir_all(&part).unwrap();
        for (n, chunk) in events.chunks(10).enumerate() {
            let rows: Vec<Row> = chunk.iter().map(|e| (e, None)).collect();
            let batch = legacy_to_batch(&rows).unwrap();
            let name = format!("part-{:020}-{:020}-0.parquet", n * 10, n * 10 + 10);
            let mut w = ArrowWriter::try_new(
                File::create(part.join(name)).unwrap(),
                legacy_schema(),
                None,
            )
            .unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        fs::write(dir.path().join(CHECKPOINT), "50").unwrap();
        let (archive, _) = Archive::recover(dir.path()).unwrap();
        let files = archive.part_files().unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(!is_legacy(&files[0]).unwrap());
        let mut back = archive.read_events(None).unwrap();
        back.sort_by(|a, b| a.id.cmp(&b.id));
        let mut want: Vec<Event> = events
            .into_iter()
            .map(|mut e| {
                e.body.time = Some(e.time());
                e
            })
            .collect();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(back, want);
        assert_eq!(
            fs::read_to_string(dir.path().join(FORMAT)).unwrap(),
            FORMAT_OCSF
        );
    }
}
