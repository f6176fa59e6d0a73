//! Telemetry parsers: raw bytes in, [`EventBody`] values out.
//!
//! Formats: Windows event JSON and EVTX, Zeek (JSON and TSV), AWS
//! CloudTrail, CEF, Squid `access.log`, BIND and Unbound query logs, syslog
//! (RFC 5424 and RFC 3164) and generic NDJSON. Each record keeps its
//! original fields in [`EventBody::raw`] (for Windows events, in the
//! flattened form Sigma rules use) and fills the [`Normalized`] fields it
//! knows.
//!
//! **Invariant: a parser returns (records, rejects) and never fails a whole
//! batch.** A record that cannot be parsed becomes a [`Reject`] with its
//! position and the reason; the good records around it are kept. No input
//! makes a parser panic, and no record longer than [`MAX_RECORD_BYTES`] is
//! buffered: it is rejected with a reason. Only [`parse_file`] returns an
//! error, and only when the file cannot be opened or its format cannot be
//! told.
//!
//! Entry points: [`detect`] guesses a [`Format`]; [`parse_bytes`] parses a
//! buffer; [`LineParser`] parses line by line (for streams); [`parse_file`]
//! reads a file (gzip or not), detecting its format if not given.
//!
//! [`Normalized`]: mimamori_event::Normalized

use mimamori_event::EventBody;
use serde_json::Value;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

mod cef;
mod cloudtrail;
mod dnslog;
mod ndjson;
mod norm;
mod squid;
mod syslog;
mod timefmt;
mod windows;
mod zeek;

/// The longest record (line, JSON document, …) a parser accepts, in bytes.
/// A longer line is rejected with a reason and never buffered whole.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One JSON object per line; keys named like the normalized fields fill them.
    Ndjson,
    /// Windows events as JSON: `{"Event": {"System": …, "EventData": …}}`
    /// (one per line or pretty-printed back to back) or flat objects with `EventID`.
    WindowsJson,
    /// Windows XML Event Log files.
    Evtx,
    /// Zeek JSON logs (`_path` and `id.orig_h`, or `@stream` and `id_orig_h`).
    ZeekJson,
    /// Zeek's default tab-separated logs with `#fields` headers.
    ZeekTsv,
    /// AWS CloudTrail records: `{"Records": […]}`, one per line, or `{"log": …}`.
    CloudTrail,
    /// ArcSight CEF, optionally after a syslog header.
    Cef,
    /// Squid native `access.log`.
    Squid,
    /// BIND query log.
    BindQuery,
    /// Unbound query / reply / local-action log.
    UnboundQuery,
    /// Syslog, RFC 5424 or RFC 3164.
    Syslog,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::Ndjson,
        Format::WindowsJson,
        Format::Evtx,
        Format::ZeekJson,
        Format::ZeekTsv,
        Format::CloudTrail,
        Format::Cef,
        Format::Squid,
        Format::BindQuery,
        Format::UnboundQuery,
        Format::Syslog,
    ];

    /// The stable name (`--format` value).
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::WindowsJson => "windows-json",
            Format::Evtx => "evtx",
            Format::ZeekJson => "zeek-json",
            Format::ZeekTsv => "zeek-tsv",
            Format::CloudTrail => "cloudtrail",
            Format::Cef => "cef",
            Format::Squid => "squid",
            Format::BindQuery => "bind-query",
            Format::UnboundQuery => "unbound-query",
            Format::Syslog => "syslog",
        }
    }

    /// The format named `s` (case-insensitive; `_` may stand for `-`).
    pub fn parse(s: &str) -> Option<Format> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }

    /// Every format name, comma-separated (for error messages and help).
    pub fn names() -> String {
        Format::ALL.map(|f| f.as_str()).join(", ")
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected record: where it was and why. Never fails a whole batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based line number where the record starts (text and JSON input), or
    /// 1-based record position (EVTX). 0 means the input as a whole (an EVTX
    /// file whose header cannot be read).
    pub record: u64,
    pub reason: String,
}

/// The outcome of parsing a batch: the good records and the rejected ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub events: Vec<EventBody>,
    pub rejects: Vec<Reject>,
}

/// Why [`parse_file`] could not parse a file at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot tell the format of {}; pass it with --format <FORMAT>, one of: {}",
        path.display(),
        Format::names()
    )]
    UnknownFormat { path: PathBuf },
}

fn too_long(len: usize) -> String {
    format!("record is {len} bytes, over the {MAX_RECORD_BYTES}-byte limit (MAX_RECORD_BYTES)")
}

fn utf8(line: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(line).map_err(|e| format!("record is not valid UTF-8: {e}"))
}

fn json(line: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(line).map_err(|e| format!("invalid JSON: {e}"))
}

/// Parses one line at a time; keeps the state a format needs (the Zeek TSV
/// header). For Windows JSON and CloudTrail each line must hold whole
/// documents; pretty-printed documents spread over lines need
/// [`parse_bytes`] or [`parse_file`]. EVTX is not a line format: every line
/// is rejected.
#[derive(Debug, Clone)]
pub struct LineParser {
    format: Format,
    zeek: zeek::TsvHeader,
    first: bool,
}

impl LineParser {
    pub fn new(format: Format) -> Self {
        LineParser {
            format,
            zeek: zeek::TsvHeader::default(),
            first: true,
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Parse one line (with or without its line ending). `None` for header,
    /// comment and blank lines; otherwise the event or why the line was
    /// rejected. A line holding several records (a CloudTrail
    /// `{"Records": […]}` document, a JSON array of Windows events) is
    /// rejected here: use [`LineParser::push_line_each`], [`parse_bytes`] or
    /// [`parse_file`] for those.
    pub fn push_line(&mut self, line: &[u8]) -> Option<Result<EventBody, String>> {
        let mut out = None;
        self.push_line_dyn(line, &mut |r| {
            out = Some(match out.take() {
                None => r,
                Some(_) => Err("line holds several records; use parse_bytes".to_string()),
            });
        });
        out
    }

    /// Like [`LineParser::push_line`] but hands every record of the line to
    /// `emit`: a CloudTrail `{"Records": […]}` line or a JSON array of
    /// Windows events gives many, a header or blank line none.
    pub fn push_line_each(&mut self, line: &[u8], mut emit: impl FnMut(Result<EventBody, String>)) {
        self.push_line_dyn(line, &mut emit)
    }

    fn push_line_dyn(&mut self, line: &[u8], emit: &mut dyn FnMut(Result<EventBody, String>)) {
        let mut line = line.strip_suffix(b"\n").unwrap_or(line);
        line = line.strip_suffix(b"\r").unwrap_or(line);
        if std::mem::take(&mut self.first) {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.len() > MAX_RECORD_BYTES {
            return emit(Err(too_long(line.len())));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let r = match self.format {
            Format::Evtx => {
                Err("EVTX is a binary format, not lines: use parse_bytes or parse_file".into())
            }
            Format::Ndjson => json(line).and_then(ndjson::from_value),
            Format::WindowsJson => match json(line) {
                Ok(Value::Array(items)) => {
                    for it in items {
                        emit(windows::from_value(it));
                    }
                    return;
                }
                other => other.and_then(windows::from_value),
            },
            Format::ZeekJson => json(line).and_then(zeek::from_value),
            Format::CloudTrail => match json(line) {
                Ok(v) => {
                    for r in cloudtrail::records(v) {
                        emit(r);
                    }
                    return;
                }
                Err(e) => Err(e),
            },
            Format::ZeekTsv => {
                if line.first() == Some(&b'#') {
                    match utf8(line) {
                        Ok(l) => self.zeek.header(l),
                        Err(e) => emit(Err(e)),
                    }
                    return;
                }
                utf8(line).and_then(|l| {
                    let raw = self.zeek.record(l)?;
                    Ok(zeek::normalize(raw, self.zeek.path()))
                })
            }
            Format::Cef | Format::Squid | Format::BindQuery | Format::UnboundQuery
                if line.first() == Some(&b'#') =>
            {
                return
            }
            Format::Cef => utf8(line).and_then(cef::from_line),
            Format::Squid => utf8(line).and_then(squid::from_line),
            Format::BindQuery => utf8(line).and_then(dnslog::bind),
            Format::UnboundQuery => utf8(line).and_then(dnslog::unbound),
            Format::Syslog => utf8(line).and_then(syslog::from_line),
        };
        emit(r)
    }
}

fn push(out: &mut Parsed, record: u64, r: Result<EventBody, String>) {
    match r {
        Ok(e) => out.events.push(e),
        Err(reason) => out.rejects.push(Reject { record, reason }),
    }
}

/// Parse a whole buffer (already decompressed) of the given format. Never
/// panics, never fails as a whole: bad records become rejects, good ones are
/// kept.
pub fn parse_bytes(format: Format, bytes: &[u8]) -> Parsed {
    match format {
        Format::Evtx => windows::parse_evtx(bytes.to_vec()),
        Format::WindowsJson | Format::CloudTrail if !first_line_is_json(bytes) => {
            json_stream(format, bytes)
        }
        _ => {
            let mut out = Parsed::default();
            let mut p = LineParser::new(format);
            for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
                let n = i as u64 + 1;
                p.push_line_each(line, |r| push(&mut out, n, r));
            }
            out
        }
    }
}

/// Whether the first non-blank line is a JSON value by itself (so the input
/// is one record per line, not pretty-printed documents).
fn first_line_is_json(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .is_some_and(|l| l.len() <= MAX_RECORD_BYTES && serde_json::from_slice::<Value>(l).is_ok())
}

/// JSON values back to back (pretty-printed documents). After a value that
/// does not parse, parsing resumes at the next line that starts with `{` or
/// `[`.
fn json_stream(format: Format, bytes: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let mut pos = if bytes.starts_with(b"\xEF\xBB\xBF") {
        3
    } else {
        0
    };
    let mut line = 1u64;
    let mut counted = 0; // bytes[..counted] have had their newlines counted
    while pos < bytes.len() {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos >= bytes.len() {
            break;
        }
        line += bytes[counted..pos].iter().filter(|&&b| b == b'\n').count() as u64;
        counted = pos;
        let mut it = serde_json::Deserializer::from_slice(&bytes[pos..]).into_iter::<Value>();
        match it.next() {
            None => break,
            Some(Ok(v)) => {
                let len = it.byte_offset();
                if len > MAX_RECORD_BYTES {
                    out.rejects.push(Reject {
                        record: line,
                        reason: too_long(len),
                    });
                } else {
                    match format {
                        Format::CloudTrail => {
                            for r in cloudtrail::records(v) {
                                push(&mut out, line, r);
                            }
                        }
                        Format::WindowsJson => match v {
                            Value::Array(items) => {
                                for it in items {
                                    push(&mut out, line, windows::from_value(it));
                                }
                            }
                            v => push(&mut out, line, windows::from_value(v)),
                        },
                        _ => push(&mut out, line, ndjson::from_value(v)),
                    }
                }
                pos += len.max(1);
            }
            Some(Err(e)) => {
                out.rejects.push(Reject {
                    record: line,
                    reason: format!("invalid JSON: {e}"),
                });
                // Resume at the next line that opens a document.
                let next = bytes[pos + 1..]
                    .windows(2)
                    .position(|w| w[0] == b'\n' && (w[1] == b'{' || w[1] == b'['));
                match next {
                    Some(i) => pos = pos + 1 + i + 1,
                    None => break,
                }
            }
        }
    }
    out
}

fn is_json_start(b: &[u8]) -> bool {
    matches!(b.first(), Some(b'{' | b'['))
}

fn first_lines(text: &[u8], n: usize) -> impl Iterator<Item = &[u8]> {
    text.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(n)
}

/// Which format a JSON object's keys suggest.
fn json_kind(o: &serde_json::Map<String, Value>) -> Format {
    let has = |k: &str| o.contains_key(k);
    if has("Event") || (has("System") && (has("EventData") || has("UserData"))) || has("EventID") {
        Format::WindowsJson
    } else if has("_path") || has("@stream") || has("id.orig_h") || has("id_orig_h") {
        Format::ZeekJson
    } else if matches!(o.get("Records"), Some(Value::Array(_)))
        || (has("eventSource") && has("eventName"))
        || has("eventVersion")
        || o.get("log").and_then(Value::as_object).is_some_and(|l| {
            l.keys().any(|k| {
                let k = k.to_ascii_lowercase();
                k == "eventname" || k == "eventsource" || k == "eventversion"
            })
        })
    {
        Format::CloudTrail
    } else {
        Format::Ndjson
    }
}

/// Which text format a line looks like.
fn line_kind(l: &str) -> Option<Format> {
    let l = l.trim_start_matches('\u{feff}');
    if l.starts_with("CEF:") || l.contains("CEF:0|") || l.contains("CEF:1|") {
        return Some(Format::Cef);
    }
    if l.contains(" unbound[") || l.contains(" unbound: [") {
        return Some(Format::UnboundQuery);
    }
    if l.contains("client ") && l.contains(" query: ") {
        return Some(Format::BindQuery);
    }
    let t: Vec<&str> = l.split_whitespace().take(4).collect();
    if t.len() == 4
        && timefmt::epoch(t[0]).is_some()
        && t[0].contains('.')
        && t[1].bytes().all(|b| b.is_ascii_digit())
        && t[3].contains('/')
    {
        return Some(Format::Squid);
    }
    if syslog::parse(l).is_ok() {
        return Some(Format::Syslog);
    }
    None
}

/// Guess the format from a file name (may end in `.gz`) and the first bytes
/// of the content (already decompressed).
pub fn detect(name: &str, head: &[u8]) -> Option<Format> {
    let lname = name.to_ascii_lowercase();
    let lname = lname.strip_suffix(".gz").unwrap_or(&lname);
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if head.starts_with(b"ElfFile\0") || lname.ends_with(".evtx") {
        return Some(Format::Evtx);
    }
    let trimmed = head.trim_ascii_start();
    if trimmed.starts_with(b"#separator") || trimmed.starts_with(b"#fields") {
        return Some(Format::ZeekTsv);
    }
    if is_json_start(trimmed) {
        if let Some(first) = first_lines(trimmed, 1).next() {
            match serde_json::from_slice::<Value>(first) {
                Ok(Value::Object(o)) => return Some(json_kind(&o)),
                Ok(Value::Array(a)) => {
                    return Some(match a.first() {
                        Some(Value::Object(o)) => json_kind(o),
                        _ => Format::Ndjson,
                    })
                }
                _ => {}
            }
        }
        // Pretty-printed: the first document, or its visible start.
        match serde_json::Deserializer::from_slice(trimmed)
            .into_iter::<Value>()
            .next()
        {
            Some(Ok(Value::Object(o))) => return Some(json_kind(&o)),
            Some(Ok(Value::Array(a))) if a.first().is_some_and(Value::is_object) => {
                return a.first().and_then(Value::as_object).map(json_kind)
            }
            _ => {}
        }
        let text = String::from_utf8_lossy(&trimmed[..trimmed.len().min(64 * 1024)]);
        if text.contains("\"Event\"") && text.contains("\"System\"") {
            return Some(Format::WindowsJson);
        }
        if text.contains("\"Records\"") || text.contains("\"eventSource\"") {
            return Some(Format::CloudTrail);
        }
        if trimmed.first() == Some(&b'{') {
            return None;
        }
        // `[…` that is not JSON: a line format (`[1732530000] unbound[…]`).
    }
    for l in first_lines(trimmed, 5) {
        if l.first() == Some(&b'#') {
            continue;
        }
        if let Some(f) = std::str::from_utf8(l).ok().and_then(line_kind) {
            return Some(f);
        }
    }
    // Nothing in the content: fall back to the name.
    let base = lname.rsplit(['/', '\\']).next().unwrap_or(lname);
    if base.contains("access.log") || base.contains("squid") {
        Some(Format::Squid)
    } else if base.contains("unbound") {
        Some(Format::UnboundQuery)
    } else if base.contains("quer") && base.ends_with(".log") {
        Some(Format::BindQuery)
    } else if base.ends_with(".ndjson") || base.ends_with(".jsonl") {
        Some(Format::Ndjson)
    } else {
        None
    }
}

/// Read a line of at most `MAX_RECORD_BYTES + 1` bytes into `buf`, skipping
/// (not buffering) the rest of a longer one. Returns the line's full length,
/// or `None` at the end of the input.
fn read_bounded_line(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    buf.clear();
    let mut total = 0usize;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(any.then_some(total));
        }
        any = true;
        let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
            Some(i) => (&avail[..i], i + 1, true),
            None => (avail, avail.len(), false),
        };
        let room = (MAX_RECORD_BYTES + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        total += chunk.len();
        r.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

/// Read a file (transparently gunzipping `.gz` files or gzip content), detect
/// the format or use the given one, and parse it. Line formats are streamed
/// line by line; EVTX and pretty-printed JSON documents are read whole.
/// Errors only when the file cannot be opened or read at all, or its format
/// cannot be told; a read error part way through (a truncated `.gz`) becomes
/// a reject after the records read so far.
pub fn parse_file(path: &Path, format: Option<Format>) -> Result<Parsed, ParseError> {
    let read_err = |source| ParseError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut file = BufReader::new(file);
    let gz = file
        .fill_buf()
        .map_err(read_err)?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    // The head: enough to detect the format and to tell lines from documents.
    let mut head = Vec::with_capacity(64 * 1024);
    // A read error (a truncated `.gz`) after some bytes is reported as a
    // reject after the records before it.
    let mut late_err = None;
    if let Err(e) = (&mut reader).take(64 * 1024).read_to_end(&mut head) {
        if head.is_empty() {
            return Err(read_err(e));
        }
        late_err = Some(e);
        reader = Box::new(io::empty());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let format = match format.or_else(|| detect(&name, &head)) {
        Some(f) => f,
        None => {
            return Err(ParseError::UnknownFormat {
                path: path.to_path_buf(),
            })
        }
    };
    let mut whole = matches!(format, Format::Evtx)
        || (matches!(format, Format::WindowsJson | Format::CloudTrail)
            && !first_line_is_json(&head));
    if matches!(format, Format::WindowsJson | Format::CloudTrail)
        && !whole
        && !head.contains(&b'\n')
        && head.len() == 64 * 1024
    {
        // One long first line: could be a single big document.
        whole = true;
    }
    let mut reader = io::Cursor::new(head).chain(reader);
    if whole {
        let mut buf = Vec::new();
        if let Err(e) = reader.read_to_end(&mut buf) {
            late_err = Some(e);
        }
        let mut out = match format {
            Format::Evtx => windows::parse_evtx(buf),
            _ => parse_bytes(format, &buf),
        };
        if let Some(e) = late_err {
            out.rejects.push(Reject {
                record: 0,
                reason: format!("read error, input cut short: {e}"),
            });
        }
        return Ok(out);
    }
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut out = Parsed::default();
    let mut p = LineParser::new(format);
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        match read_bounded_line(&mut reader, &mut buf) {
            Ok(None) => break,
            Ok(Some(len)) => {
                n += 1;
                if len > MAX_RECORD_BYTES {
                    out.rejects.push(Reject {
                        record: n,
                        reason: too_long(len),
                    });
                    continue;
                }
                p.push_line_each(&buf, |r| push(&mut out, n, r));
            }
            Err(e) => {
                late_err = Some(e);
                break;
            }
        }
    }
    if let Some(e) = late_err {
        out.rejects.push(Reject {
            record: n + 1,
            reason: format!("read error, input cut short: {e}"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
        }
        assert_eq!(Format::parse("Zeek_TSV"), Some(Format::ZeekTsv));
        assert_eq!(Format::parse("nope"), None);
    }

    #[test]
    fn bounded_lines() {
        let long = vec![b'a'; MAX_RECORD_BYTES + 10];
        let mut input = b"x\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\ny");
        let mut r = BufReader::with_capacity(1000, &input[..]);
        let mut buf = Vec::new();
        assert_eq!(read_bounded_line(&mut r, &mut buf).unwrap(), Some(1));
        assert_eq!(
            read_bounded_line(&mut r, &mut buf).unwrap(),
            Some(MAX_RECORD_BYTES + 10)
        );
        assert_eq!(buf.len(), MAX_RECORD_BYTES + 1);
        assert_eq!(read_bounded_line(&mut r, &mut buf).unwrap(), Some(1));
        assert_eq!(buf, b"y");
        assert_eq!(read_bounded_line(&mut r, &mut buf).unwrap(), None);
    }

    #[test]
    fn json_stream_resyncs() {
        let input = b"{\n  \"Event\": {\"System\": {\"EventID\": 1}}\n}\n{\n  \"Event\": broken\n}\n{\"EventID\": 2}\n";
        let p = parse_bytes(Format::WindowsJson, input);
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].record, 4);
    }
}
