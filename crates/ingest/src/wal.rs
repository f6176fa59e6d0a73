//! The write-ahead log: append-only segment files of checksummed records.
//!
//! Written by hand because the job is small and exact: framed, CRC-checked
//! records in files named by their global start offset, fsync on demand
//! (the caller groups many appends into one sync: group commit). Existing
//! WAL crates either hide the fsync policy we must control or bring their
//! own storage engine.
//!
//! A position is a global byte offset: segment `wal-<start>.log` holds the
//! bytes from `start` on. Positions are never reused: a new segment starts
//! past every byte ever written (see [`Wal::open`]).
//!
//! ## Format (version 2)
//!
//! A segment starts with a header, then records:
//!
//! ```text
//! segment: "MMWAL\0\x02\n" [start u64][seq u64][events u64][crc32 of the 32 bytes before]
//! record:  [magic 9E 57 52 5A][len u32][pos u64][seq u64][events_before u64]
//!          [events u32][crc32(payload) u32][crc32 of the 40 header bytes before] [payload]
//! ```
//!
//! All integers little-endian. `pos` is the record's own global position,
//! `seq` counts records and `events_before` counts events (as the caller
//! tells them) since the log began; the segment header repeats both for the
//! segment's first record. A damaged region (bytes that fail their checks)
//! is skipped: replay searches for the next magic whose header checksum,
//! own position and payload checksum all hold, and resumes there. The
//! sequence numbers of the records on both sides of the region (or of the
//! next segment's header) tell exactly how many records and events it held.
//!
//! The end of the log is known from `wal.mark` (`pos seq events`, written
//! after an fsync when a segment rolls, at most every second, and at a
//! clean stop): bytes missing or damaged before the mark held acknowledged
//! records and are reported as lost; a torn tail past it is a write the
//! crash interrupted, never acknowledged, and is cut off.
//!
//! ## Version 1 (older releases)
//!
//! `[len u32][crc32(payload) u32][payload]`, no segment header. Such
//! segments are still replayed (a v1 record never starts with the v2 magic:
//! its length would exceed [`MAX_RECORD`]); after damage replay searches
//! for the next offset where a length and checksum hold. New records always
//! go to a new v2 segment, so a log upgrades itself as segments roll.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest record accepted on append and believed on replay.
pub const MAX_RECORD: usize = 256 * 1024 * 1024;

const SEG_MAGIC: &[u8; 8] = b"MMWAL\0\x02\n";
const SEG_HEADER: usize = 36;
const REC_MAGIC: [u8; 4] = [0x9E, 0x57, 0x52, 0x5A];
const REC_HEADER: usize = 44;
const V1_HEADER: usize = 8;
/// Payload prefix of the record `wal salvage` puts in place of a damaged
/// stretch (never replayed).
const FILLER: &[u8] = b"MMWAL-SALVAGED ";
const MARK_FILE: &str = "wal.mark";
const REPORTED_FILE: &str = "wal.damage-reported";
/// Longest the mark lags the durable end of the log.
const MARK_EVERY: Duration = Duration::from_secs(1);

pub struct Wal {
    dir: PathBuf,
    out: BufWriter<File>,
    seg_start: u64,
    seg_len: u64,
    segment_bytes: u64,
    /// The next record's sequence number and events before it.
    seq: u64,
    events: u64,
    marked: Instant,
    recovery: Recovery,
}

fn segment_name(start: u64) -> String {
    format!("wal-{start:020}.log")
}

/// The segments in `dir`, sorted by start offset.
pub fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = vec![];
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("wal-")
            .and_then(|s| s.strip_suffix(".log"))
        {
            if let Ok(start) = n.parse::<u64>() {
                out.push((start, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&d[at..at + 4]);
    u32::from_le_bytes(b)
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[at..at + 8]);
    u64::from_le_bytes(b)
}

fn segment_header(start: u64, seq: u64, events: u64) -> [u8; SEG_HEADER] {
    let mut h = [0u8; SEG_HEADER];
    h[..8].copy_from_slice(SEG_MAGIC);
    h[8..16].copy_from_slice(&start.to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&events.to_le_bytes());
    let crc = crc32fast::hash(&h[..32]);
    h[32..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// `(seq, events)` of a valid segment header for a segment at `start`.
fn parse_segment_header(d: &[u8], start: u64) -> Option<(u64, u64)> {
    if d.len() < SEG_HEADER
        || &d[..8] != SEG_MAGIC
        || crc32fast::hash(&d[..32]) != u32_at(d, 32)
        || u64_at(d, 8) != start
    {
        return None;
    }
    Some((u64_at(d, 16), u64_at(d, 24)))
}

struct RecHead {
    len: usize,
    seq: u64,
    events_before: u64,
    events: u32,
}

/// A valid v2 record at offset `off` of a segment starting at `start`.
fn parse_record(d: &[u8], off: usize, start: u64) -> Option<RecHead> {
    let h = d.get(off..off + REC_HEADER)?;
    if h[..4] != REC_MAGIC
        || crc32fast::hash(&h[..40]) != u32_at(h, 40)
        || u64_at(h, 8) != start + off as u64
    {
        return None;
    }
    let len = u32_at(h, 4) as usize;
    if len > MAX_RECORD {
        return None;
    }
    let payload = d.get(off + REC_HEADER..off + REC_HEADER + len)?;
    if crc32fast::hash(payload) != u32_at(h, 36) {
        return None;
    }
    Some(RecHead {
        len,
        seq: u64_at(h, 16),
        events_before: u64_at(h, 24),
        events: u32_at(h, 32),
    })
}

/// A valid v1 record's payload length at `off`.
fn parse_v1(d: &[u8], off: usize) -> Option<usize> {
    let h = d.get(off..off + V1_HEADER)?;
    let len = u32_at(h, 0) as usize;
    // Writers never stored an empty record (and eight zero bytes would
    // pass as one); payloads are NDJSON (`{`) or raw batches (0x01).
    if len == 0 || len > MAX_RECORD || !matches!(d.get(off + V1_HEADER), Some(b'{' | 1)) {
        return None;
    }
    let payload = d.get(off + V1_HEADER..off + V1_HEADER + len)?;
    (crc32fast::hash(payload) == u32_at(h, 4)).then_some(len)
}

/// What `wal.mark` says: the log was durable up to `pos`, where the next
/// record would have had sequence number `seq` and `events` events before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub pos: u64,
    pub seq: u64,
    pub events: u64,
}

fn read_mark(dir: &Path) -> Option<Mark> {
    let s = fs::read_to_string(dir.join(MARK_FILE)).ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some(Mark {
        pos: it.next()??,
        seq: it.next()??,
        events: it.next()??,
    })
}

fn write_mark(dir: &Path, m: Mark) -> io::Result<()> {
    let tmp = dir.join("wal.mark.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(format!("{} {} {}\n", m.pos, m.seq, m.events).as_bytes())?;
    f.sync_data()?;
    fs::rename(&tmp, dir.join(MARK_FILE))
}

/// One damaged or missing stretch of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Global positions `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// Where, for a person: segment files and byte ranges within them, or
    /// the bytes missing between two segments.
    pub places: Vec<String>,
    /// Records and events that were in it (`None`: the format cannot tell,
    /// as for v1 segments).
    pub records: Option<u64>,
    pub events: Option<u64>,
    /// False when the stretch begins before the replay point, so the counts
    /// are an upper bound (some of its records were already archived).
    pub exact: bool,
}

impl Damage {
    pub fn bytes(&self) -> u64 {
        self.end - self.start
    }

    pub fn describe(&self) -> String {
        let n = |v: Option<u64>| v.map_or("an unknown number of".to_string(), |v| v.to_string());
        format!(
            "{} bytes at WAL positions {}..{} ({}): {}{} records, {} events lost",
            self.bytes(),
            self.start,
            self.end,
            self.places.join("; "),
            if self.exact { "" } else { "at most " },
            n(self.records),
            n(self.events),
        )
    }
}

/// What one segment holds.
#[derive(Debug, Clone, Default)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub start: u64,
    pub len: u64,
    /// 1 or 2.
    pub version: u8,
    pub records: u64,
    /// Byte ranges within the file that failed their checks.
    pub damaged: Vec<(u64, u64)>,
    /// What `wal salvage` recorded for stretches it replaced.
    pub salvaged: Vec<String>,
}

/// What a scan of the whole log found.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    pub segments: Vec<SegmentInfo>,
    /// Damage after the replay point: acknowledged data lost.
    pub damage: Vec<Damage>,
    /// Of `damage`, those a previous start had reported already.
    pub known: Vec<Damage>,
    /// A torn tail past the mark (an interrupted write, never
    /// acknowledged): `(segment, offset, bytes)`.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// Where the next segment must start, and its counters.
    next: Mark,
}

impl Recovery {
    pub fn lost_bytes(&self) -> u64 {
        self.damage.iter().map(Damage::bytes).sum()
    }
    pub fn lost_records(&self) -> u64 {
        self.damage.iter().filter_map(|d| d.records).sum()
    }
    pub fn lost_events(&self) -> u64 {
        self.damage.iter().filter_map(|d| d.events).sum()
    }
    /// Damage not reported by an earlier start.
    pub fn new_damage(&self) -> impl Iterator<Item = &Damage> {
        self.damage.iter().filter(|d| !self.known.contains(d))
    }
}

/// An open damaged stretch during a scan.
struct Region {
    start: u64,
    places: Vec<String>,
    /// The counters expected at its start, if known.
    expect: Option<(u64, u64)>,
}

struct Scanner<'a> {
    from: u64,
    expect: Option<(u64, u64)>,
    region: Option<Region>,
    damage: Vec<Damage>,
    on_record: &'a mut dyn FnMut(u64, &[u8]),
}

impl Scanner<'_> {
    fn begin(&mut self, start: u64, place: String) {
        match &mut self.region {
            Some(r) => r.places.push(place),
            None => {
                self.region = Some(Region {
                    start,
                    places: vec![place],
                    expect: self.expect,
                })
            }
        }
    }

    /// A trustworthy point at `pos` with the counters there (`None` for v1).
    fn anchor(&mut self, pos: u64, counters: Option<(u64, u64)>) {
        if let Some(r) = self.region.take() {
            self.close(r, pos, counters);
        }
        self.expect = counters;
    }

    fn close(&mut self, r: Region, end: u64, counters: Option<(u64, u64)>) {
        if end <= self.from || end <= r.start {
            return; // archived already (or nothing)
        }
        let diff = match (r.expect, counters) {
            (Some((s0, e0)), Some((s1, e1))) => {
                (Some(s1.saturating_sub(s0)), Some(e1.saturating_sub(e0)))
            }
            _ => (None, None),
        };
        self.damage.push(Damage {
            start: r.start,
            end,
            places: r.places,
            records: diff.0,
            events: diff.1,
            exact: r.start >= self.from,
        });
    }

    fn record(&mut self, end: u64, payload: &[u8]) {
        if end > self.from {
            (self.on_record)(end, payload);
        }
    }

    /// Scans one segment; returns its summary.
    fn segment(&mut self, start: u64, path: &Path, d: &[u8]) -> SegmentInfo {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut info = SegmentInfo {
            path: path.to_path_buf(),
            start,
            len: d.len() as u64,
            ..Default::default()
        };
        let header = parse_segment_header(d, start);
        // A segment without a valid v2 header is v1 if it starts with a v1
        // record, or holds none of v2 and starts like one.
        let v1 = header.is_none()
            && !d.is_empty()
            && (parse_v1(d, 0).is_some()
                || (self.next_v2(d, 0, start) == d.len()
                    && d.len() >= 4
                    && u32_at(d, 0) as usize <= MAX_RECORD));
        info.version = if v1 { 1 } else { 2 };
        let mut off = 0usize;
        let mut bad_from: Option<usize> = None;
        if !v1 && !d.is_empty() {
            match header {
                Some(c) => {
                    self.anchor(start, Some(c));
                    off = SEG_HEADER;
                }
                None => bad_from = Some(0),
            }
        }
        let mark_bad = |s: &mut Self, info: &mut SegmentInfo, from: usize, to: usize| {
            info.damaged.push((from as u64, to as u64));
            s.begin(start + from as u64, format!("{name} bytes {from}..{to}"));
        };
        if let Some(b) = bad_from {
            // A damaged v2 header: resynchronise on the first record.
            let next = self.next_v2(d, 1, start);
            mark_bad(self, &mut info, b, next);
            off = next;
        }
        while off < d.len() {
            if v1 {
                if let Some(len) = parse_v1(d, off) {
                    let end = off + V1_HEADER + len;
                    self.anchor(start + off as u64, None);
                    self.record(start + end as u64, &d[off + V1_HEADER..end]);
                    info.records += 1;
                    off = end;
                    continue;
                }
                let next = (off + 1..d.len())
                    .find(|&o| parse_v1(d, o).is_some())
                    .unwrap_or(d.len());
                mark_bad(self, &mut info, off, next);
                off = next;
            } else {
                if let Some(h) = parse_record(d, off, start) {
                    let end = off + REC_HEADER + h.len;
                    self.anchor(start + off as u64, Some((h.seq, h.events_before)));
                    let payload = &d[off + REC_HEADER..end];
                    if let Some(note) = payload.strip_prefix(FILLER) {
                        // A stretch `wal salvage` replaced: known, reported.
                        info.salvaged
                            .push(String::from_utf8_lossy(note).trim_end().to_string());
                    } else {
                        self.record(start + end as u64, payload);
                    }
                    self.expect = Some((h.seq + 1, h.events_before + h.events as u64));
                    info.records += 1;
                    off = end;
                    continue;
                }
                let next = self.next_v2(d, off + 1, start);
                mark_bad(self, &mut info, off, next);
                off = next;
            }
        }
        info
    }

    /// The offset of the next valid v2 record at or after `from`, or the
    /// end.
    fn next_v2(&self, d: &[u8], from: usize, start: u64) -> usize {
        if from >= d.len() {
            return d.len();
        }
        memchr::memmem::find_iter(&d[from..], &REC_MAGIC)
            .map(|o| o + from)
            .find(|&o| parse_record(d, o, start).is_some())
            .unwrap_or(d.len())
    }
}

/// Scans every segment in `dir` in order, calling `on_record(end, payload)`
/// for each intact record that ends after `from`. Changes nothing on disk.
pub fn scan(dir: &Path, from: u64, on_record: &mut dyn FnMut(u64, &[u8])) -> io::Result<Recovery> {
    let mark = read_mark(dir);
    let segs = segments(dir)?;
    let mut s = Scanner {
        from,
        expect: None,
        region: None,
        damage: vec![],
        on_record,
    };
    let mut infos = vec![];
    let mut prev: Option<(u64, String)> = None;
    for (start, path) in &segs {
        let mut data = vec![];
        File::open(path)?.read_to_end(&mut data)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match &prev {
            Some((end, pname)) if end < start => {
                s.begin(
                    *end,
                    format!(
                        "{} bytes missing between {pname} and {name} (no {})",
                        start - end,
                        segment_name(*end)
                    ),
                );
            }
            None if *start > from => {
                s.begin(
                    from,
                    format!("{} bytes missing before {name}", start - from),
                );
            }
            _ => {}
        }
        let info = s.segment(*start, path, &data);
        prev = Some((start + info.len, name));
        infos.push(info);
    }
    let file_end = prev.as_ref().map_or(from, |(e, _)| *e);
    let mark = mark.unwrap_or_default();
    let mut torn_tail = None;
    let mut end = file_end;
    if let Some(r) = s.region.take() {
        // Damage reaching the end: lost up to the mark, torn past it.
        let torn_from = mark.pos.max(r.start);
        if mark.pos > r.start {
            s.close(r, mark.pos, Some((mark.seq, mark.events)));
        }
        if let Some(last) = infos
            .last()
            .filter(|i| torn_from >= i.start && torn_from < i.start + i.len)
        {
            let off = torn_from - last.start;
            torn_tail = Some((last.path.clone(), off, last.len - off));
            end = torn_from;
        }
    } else if mark.pos > file_end {
        let last = prev.map_or("the first segment".into(), |(_, n)| {
            format!("the end of {n}")
        });
        let r = Region {
            start: file_end,
            places: vec![format!(
                "{} bytes missing after {last}",
                mark.pos - file_end
            )],
            expect: s.expect,
        };
        s.close(r, mark.pos, Some((mark.seq, mark.events)));
    }
    let (seq, events) = s.expect.unwrap_or((0, 0));
    let next = Mark {
        pos: from.max(end).max(mark.pos),
        seq: seq.max(mark.seq),
        events: events.max(mark.events),
    };
    Ok(Recovery {
        segments: infos,
        damage: s.damage,
        known: vec![],
        torn_tail,
        next,
    })
}

fn read_reported(dir: &Path) -> Vec<(u64, u64)> {
    let Ok(s) = fs::read_to_string(dir.join(REPORTED_FILE)) else {
        return vec![];
    };
    s.lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        })
        .collect()
}

fn write_reported(dir: &Path, ranges: &[(u64, u64)]) -> io::Result<()> {
    let tmp = dir.join("wal.damage-reported.tmp");
    let text: String = ranges.iter().map(|(a, b)| format!("{a} {b}\n")).collect();
    fs::write(&tmp, text)?;
    File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, dir.join(REPORTED_FILE))
}

impl Wal {
    /// Opens the WAL in `dir`, replaying every intact record that ends
    /// after `from` through `on_record` (damaged stretches are skipped,
    /// every segment is read), cutting off a torn tail past the mark,
    /// deleting segments that end at or before `from`, and starting a fresh
    /// segment past every byte on disk for new appends. What could not be
    /// recovered is logged as an ERROR per stretch and left in
    /// [`Wal::recovery`].
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        from: u64,
        mut on_record: impl FnMut(u64, &[u8]),
    ) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let mut rec = scan(dir, from, &mut on_record)?;
        if let Some((path, off, bytes)) = &rec.torn_tail {
            tracing::warn!(
                segment = %path.display(),
                offset = off,
                bytes,
                "the WAL ends in a torn write past its last durable mark (a write the crash interrupted, never acknowledged); cutting it off"
            );
            OpenOptions::new().write(true).open(path)?.set_len(*off)?;
        }
        let reported = read_reported(dir);
        let overlaps = |d: &Damage| reported.iter().any(|(a, b)| d.start < *b && *a < d.end);
        rec.known = rec.damage.iter().filter(|d| overlaps(d)).cloned().collect();
        for d in &rec.damage {
            if rec.known.contains(d) {
                tracing::warn!(
                    "WAL damage found again (reported at an earlier start): {}",
                    d.describe()
                );
            } else {
                tracing::error!(
                    lost_records = d.records,
                    lost_events = d.events,
                    "WAL damage: acknowledged data could not be recovered: {}; every intact record around it was replayed (see `mimamori wal check`)",
                    d.describe()
                );
            }
        }
        if !rec.damage.is_empty() || !reported.is_empty() {
            let mut keep: Vec<(u64, u64)> =
                reported.into_iter().filter(|(_, b)| *b > from).collect();
            keep.extend(rec.damage.iter().map(|d| (d.start, d.end)));
            write_reported(dir, &keep)?;
        }
        // Segments whose records all end at or before `from` are in the
        // archive already; drop them.
        let segs = segments(dir)?;
        for (start, path) in &segs {
            if let Ok(m) = fs::metadata(path) {
                if start + m.len() <= from {
                    fs::remove_file(path)?;
                }
            }
        }
        let next = rec.next;
        let path = dir.join(segment_name(next.pos));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)?;
        // Only an empty file can be at `next.pos` (it lies past every byte).
        file.set_len(0)?;
        file.write_all(&segment_header(next.pos, next.seq, next.events))?;
        file.sync_data()?;
        sync_dir(dir)?;
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            seg_start: next.pos,
            seg_len: SEG_HEADER as u64,
            segment_bytes,
            seq: next.seq,
            events: next.events,
            marked: Instant::now(),
            recovery: rec,
        };
        wal.write_mark()?;
        Ok(wal)
    }

    /// What the scan at open found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The position after the last appended record.
    pub fn position(&self) -> u64 {
        self.seg_start + self.seg_len
    }

    /// Appends one record counting one event (buffered; durable only after
    /// [`Wal::sync`]). Returns the position after it.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        self.append_parts(&[payload], 1)
    }

    /// Appends one record whose payload is the concatenation of `parts`
    /// (so a header and a body need not be copied into one buffer first),
    /// holding `events` events (counted to report exactly what damage
    /// destroyed).
    pub fn append_parts(&mut self, parts: &[&[u8]], events: u32) -> io::Result<u64> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > MAX_RECORD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("WAL record of {len} bytes exceeds {MAX_RECORD}"),
            ));
        }
        let mut crc = crc32fast::Hasher::new();
        for p in parts {
            crc.update(p);
        }
        let mut h = [0u8; REC_HEADER];
        h[..4].copy_from_slice(&REC_MAGIC);
        h[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        h[8..16].copy_from_slice(&self.position().to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.events.to_le_bytes());
        h[32..36].copy_from_slice(&events.to_le_bytes());
        h[36..40].copy_from_slice(&crc.finalize().to_le_bytes());
        let hc = crc32fast::hash(&h[..40]);
        h[40..].copy_from_slice(&hc.to_le_bytes());
        self.out.write_all(&h)?;
        for p in parts {
            self.out.write_all(p)?;
        }
        self.seg_len += (REC_HEADER + len) as u64;
        self.seq += 1;
        self.events += events as u64;
        Ok(self.position())
    }

    fn write_mark(&mut self) -> io::Result<()> {
        self.marked = Instant::now();
        write_mark(
            &self.dir,
            Mark {
                pos: self.position(),
                seq: self.seq,
                events: self.events,
            },
        )
    }

    /// Makes every appended record durable (one fsync for all of them), then
    /// starts a new segment if this one is full.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        if self.seg_len >= self.segment_bytes {
            let start = self.position();
            let path = self.dir.join(segment_name(start));
            let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
            file.write_all(&segment_header(start, self.seq, self.events))?;
            file.sync_data()?;
            sync_dir(&self.dir)?;
            self.out = BufWriter::with_capacity(1 << 20, file);
            self.seg_start = start;
            self.seg_len = SEG_HEADER as u64;
            self.write_mark()?;
        } else if self.marked.elapsed() >= MARK_EVERY {
            self.write_mark()?;
        }
        Ok(())
    }

    /// Makes everything durable and records the end of the log (a clean
    /// stop).
    pub fn close(mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        self.write_mark()
    }

    /// Deletes the segments whose records all end at or before `pos` (they
    /// are in the archive), never the one being written.
    pub fn release_before(&mut self, pos: u64) -> io::Result<()> {
        let segs = segments(&self.dir)?;
        for w in segs.windows(2) {
            let (start, path) = &w[0];
            let next_start = w[1].0;
            if next_start <= pos && *start != self.seg_start {
                fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

/// After a clean stop: deletes every segment whose bytes all lie at or
/// before `pos` (the lowest checkpoint), the last one too. (A segment that
/// holds only its header, just begun, stays: its header is past `pos`, and
/// without it the next start would see those bytes missing.)
pub fn release_covered(dir: &Path, pos: u64) -> io::Result<u64> {
    let mut freed = 0;
    for (start, path) in segments(dir)? {
        let len = fs::metadata(&path)?.len();
        if start + len <= pos {
            fs::remove_file(&path)?;
            freed += len;
        }
    }
    Ok(freed)
}

/// Rewrites each damaged segment keeping every intact record at its
/// position, after moving the original aside to `<segment>.damaged`. In a
/// v2 segment each damaged stretch between records becomes one filler
/// record that says what was lost (replay skips it; `wal check` shows it);
/// a damaged tail is cut off; in a v1 segment the stretch is overwritten
/// with 0xFF (still reported). Returns `(segment, original kept aside)`
/// per segment rewritten. The WAL must not be open.
pub fn salvage(dir: &Path) -> io::Result<Vec<(PathBuf, PathBuf)>> {
    let rec = scan(dir, 0, &mut |_, _| {})?;
    let mut done = vec![];
    for seg in rec.segments.iter().filter(|s| !s.damaged.is_empty()) {
        let data = fs::read(&seg.path)?;
        let aside = seg.path.with_extension("log.damaged");
        let mut out: Vec<u8> = Vec::with_capacity(data.len());
        let mut last = 0usize;
        for &(a, b) in &seg.damaged {
            let (a, b) = (a as usize, b as usize);
            out.extend_from_slice(&data[last..a]);
            last = b;
            if b >= data.len() {
                break; // a damaged tail: cut off
            }
            let next = parse_record(&data, b, seg.start);
            let mut a = a;
            if seg.version == 2 && a == 0 {
                // A damaged segment header: rebuilt from the next record.
                let (seq, ev) = next.as_ref().map_or((0, 0), |h| (h.seq, h.events_before));
                out.extend_from_slice(&segment_header(seg.start, seq, ev));
                a = SEG_HEADER;
            }
            // Short: the filler is only as long as the stretch it replaces.
            let n = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
            let note = rec
                .damage
                .iter()
                .find(|d| d.start <= seg.start + a as u64 && seg.start + (b as u64) <= d.end)
                .map_or_else(
                    || format!("damaged {} bytes", b - a),
                    |d| {
                        format!(
                            "lost {} records {} events{} in {} bytes",
                            n(d.records),
                            n(d.events),
                            if d.exact { "" } else { " at most" },
                            d.bytes()
                        )
                    },
                );
            let note = format!(
                "{note}; original {}",
                aside
                    .file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            );
            match next.filter(|_| seg.version == 2) {
                Some(h) if b - a > REC_HEADER + FILLER.len() => {
                    let len = b - a - REC_HEADER;
                    let mut payload = FILLER.to_vec();
                    payload.extend_from_slice(note.as_bytes());
                    payload.resize(len, b' ');
                    payload.truncate(len);
                    let mut h2 = [0u8; REC_HEADER];
                    h2[..4].copy_from_slice(&REC_MAGIC);
                    h2[4..8].copy_from_slice(&(len as u32).to_le_bytes());
                    h2[8..16].copy_from_slice(&(seg.start + a as u64).to_le_bytes());
                    // Counters such that the record after it follows on.
                    h2[16..24].copy_from_slice(&h.seq.saturating_sub(1).to_le_bytes());
                    h2[24..32].copy_from_slice(&h.events_before.to_le_bytes());
                    h2[36..40].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
                    let hc = crc32fast::hash(&h2[..40]);
                    h2[40..].copy_from_slice(&hc.to_le_bytes());
                    out.extend_from_slice(&h2);
                    out.extend_from_slice(&payload);
                }
                _ => out.extend(std::iter::repeat_n(0xFFu8, b - a)),
            }
        }
        if last < data.len() {
            out.extend_from_slice(&data[last..]);
        }
        fs::rename(&seg.path, &aside)?;
        let tmp = seg.path.with_extension("log.salvage");
        fs::write(&tmp, &out)?;
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &seg.path)?;
        sync_dir(dir)?;
        done.push((seg.path.clone(), aside));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(dir: &Path, from: u64) -> (Wal, Vec<(u64, Vec<u8>)>) {
        let mut got = vec![];
        let wal = Wal::open(dir, 64, from, |end, p| got.push((end, p.to_vec()))).unwrap();
        (wal, got)
    }

    fn payloads(got: &[(u64, Vec<u8>)]) -> Vec<Vec<u8>> {
        got.iter().map(|(_, p)| p.clone()).collect()
    }

    #[test]
    fn append_sync_replay_and_roll() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, got) = replay(dir.path(), 0);
        assert!(got.is_empty());
        let mut ends = vec![];
        for i in 0..20u8 {
            ends.push(wal.append(&[i; 10]).unwrap());
            wal.sync().unwrap();
        }
        assert!(
            segments(dir.path()).unwrap().len() > 2,
            "segments roll at 64 bytes"
        );
        drop(wal);
        let (_wal, got) = replay(dir.path(), 0);
        assert_eq!(got.len(), 20);
        assert_eq!(got.iter().map(|(e, _)| *e).collect::<Vec<_>>(), ends);
        // From a checkpoint, only later records come back.
        let (mut wal, got) = replay(dir.path(), ends[9]);
        assert_eq!(got.len(), 10);
        assert_eq!(got[0].1, vec![10u8; 10]);
        assert!(
            wal.recovery().damage.is_empty(),
            "{:?}",
            wal.recovery().damage
        );
        wal.release_before(ends[15]).unwrap();
        drop(wal);
        let (wal, got) = replay(dir.path(), ends[15]);
        assert_eq!(got.len(), 4);
        assert!(
            wal.recovery().damage.is_empty(),
            "{:?}",
            wal.recovery().damage
        );
    }

    #[test]
    fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay(dir.path(), 0);
        wal.append(b"one").unwrap();
        wal.append(b"two").unwrap();
        wal.sync().unwrap();
        wal.close().unwrap();
        let seg = segments(dir.path()).unwrap().last().unwrap().1.clone();
        // A crash mid-write: half a record, then garbage.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&REC_MAGIC).unwrap();
        f.write_all(b"xx").unwrap();
        drop(f);
        let (mut wal, got) = replay(dir.path(), 0);
        assert_eq!(payloads(&got), vec![b"one".to_vec(), b"two".to_vec()]);
        assert!(wal.recovery().damage.is_empty());
        assert!(wal.recovery().torn_tail.is_some());
        wal.append(b"three").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (wal, got) = replay(dir.path(), 0);
        assert_eq!(got.len(), 3);
        assert!(
            wal.recovery().damage.is_empty(),
            "{:?}",
            wal.recovery().damage
        );
    }

    /// Ten records of `events` 10 each in one segment; returns the ends.
    fn ten(dir: &Path) -> Vec<u64> {
        let mut wal = Wal::open(dir, 1 << 20, 0, |_, _| {}).unwrap();
        let ends = (0..10u8)
            .map(|i| wal.append_parts(&[&[i; 100]], 10).unwrap())
            .collect();
        wal.sync().unwrap();
        wal.close().unwrap();
        ends
    }

    #[test]
    fn flipped_bytes_mid_segment_skip_exactly_the_damaged_record() {
        let dir = tempfile::tempdir().unwrap();
        let ends = ten(dir.path());
        let (_, seg) = segments(dir.path()).unwrap()[0].clone();
        let mut data = fs::read(&seg).unwrap();
        // Flip a byte inside record 4's payload.
        let at = (ends[3] + 60) as usize;
        data[at] ^= 0x55;
        fs::write(&seg, &data).unwrap();
        let mut got = vec![];
        let rec = scan(dir.path(), 0, &mut |e, p| got.push((e, p.to_vec()))).unwrap();
        let want: Vec<Vec<u8>> = (0..10u8)
            .filter(|i| *i != 4)
            .map(|i| vec![i; 100])
            .collect();
        assert_eq!(payloads(&got), want);
        assert_eq!(rec.damage.len(), 1, "{:?}", rec.damage);
        let d = &rec.damage[0];
        assert_eq!((d.start, d.end), (ends[3], ends[4]));
        assert_eq!((d.records, d.events, d.exact), (Some(1), Some(10), true));
        assert_eq!(rec.segments[0].damaged, vec![(ends[3], ends[4])]);
    }

    #[test]
    fn truncated_and_missing_segments_are_counted_and_later_ones_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 300, 0, |_, _| {}).unwrap();
        for i in 0..12u8 {
            wal.append_parts(&[&[i; 100]], 3).unwrap();
            wal.sync().unwrap();
        }
        wal.close().unwrap();
        let segs = segments(dir.path()).unwrap();
        assert!(segs.len() >= 4, "{segs:?}");
        // Cut segment 0 mid-record and delete segment 1.
        let len0 = fs::metadata(&segs[0].1).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&segs[0].1)
            .unwrap()
            .set_len(len0 - 13)
            .unwrap();
        fs::remove_file(&segs[1].1).unwrap();
        let mut got = vec![];
        let mut wal = Wal::open(dir.path(), 300, 0, |e, p| got.push((e, p.to_vec()))).unwrap();
        let rec = wal.recovery().clone();
        assert_eq!(rec.damage.len(), 1, "{:?}", rec.damage);
        let d = &rec.damage[0];
        // Segment 0 held 2 records (1 left), segment 1 held 2.
        assert_eq!((d.records, d.events), (Some(3), Some(9)), "{d:?}");
        assert_eq!(d.end, segs[2].0);
        let kept: Vec<u8> = got.iter().map(|(_, p)| p[0]).collect();
        assert_eq!(kept, vec![0, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(
            segments(dir.path()).unwrap().len(),
            segs.len(),
            "nothing renamed"
        );
        // Reported once: the next start knows it.
        wal.append(b"more").unwrap();
        wal.sync().unwrap();
        wal.close().unwrap();
        let wal = Wal::open(dir.path(), 300, 0, |_, _| {}).unwrap();
        assert_eq!(wal.recovery().damage.len(), 1);
        assert_eq!(wal.recovery().new_damage().count(), 0);
    }

    #[test]
    fn a_truncated_last_segment_is_counted_from_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let ends = ten(dir.path());
        let (_, seg) = segments(dir.path()).unwrap()[0].clone();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(ends[6] + 13)
            .unwrap();
        let mut n = 0;
        let wal = Wal::open(dir.path(), 1 << 20, 0, |_, _| n += 1).unwrap();
        assert_eq!(n, 7);
        let d = &wal.recovery().damage;
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].start, d[0].end), (ends[6], ends[9]));
        assert_eq!((d[0].records, d[0].events), (Some(3), Some(30)));
        // New records go after the lost ones: positions are never reused.
        assert!(wal.position() > ends[9]);
    }

    #[test]
    fn version_1_segments_still_replay_and_resynchronise() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = vec![];
        let mut ends = vec![];
        for i in 0..6u8 {
            let p = vec![b'{'; 50 + i as usize];
            v1.extend_from_slice(&(p.len() as u32).to_le_bytes());
            v1.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
            v1.extend_from_slice(&p);
            ends.push(v1.len());
        }
        v1[ends[1] + 20] ^= 1; // damage record 2
        fs::write(dir.path().join(segment_name(0)), &v1).unwrap();
        let mut got = vec![];
        let mut wal = Wal::open(dir.path(), 1 << 20, 0, |e, p| got.push((e, p.len()))).unwrap();
        let lens: Vec<usize> = got.iter().map(|(_, l)| *l).collect();
        assert_eq!(lens, vec![50, 51, 53, 54, 55]);
        let d = &wal.recovery().damage;
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].start, d[0].end), (ends[1] as u64, ends[2] as u64));
        assert_eq!(d[0].records, None);
        // New appends go to a v2 segment after it; both replay.
        wal.append(b"new").unwrap();
        wal.sync().unwrap();
        wal.close().unwrap();
        let mut n = 0;
        let _ = Wal::open(dir.path(), 1 << 20, 0, |_, _| n += 1).unwrap();
        assert_eq!(n, 6);
    }

    #[test]
    fn salvage_keeps_every_intact_record_and_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let ends = ten(dir.path());
        let (_, seg) = segments(dir.path()).unwrap()[0].clone();
        let mut data = fs::read(&seg).unwrap();
        data[(ends[2] + 50) as usize] ^= 0xFF;
        data[(ends[7] + 3) as usize] ^= 0xFF;
        fs::write(&seg, &data).unwrap();
        let done = salvage(dir.path()).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(fs::read(&done[0].1).unwrap(), data, "original kept aside");
        let mut got = vec![];
        let rec = scan(dir.path(), 0, &mut |_, p| got.push(p[0])).unwrap();
        assert_eq!(got, vec![0, 1, 2, 4, 5, 6, 7, 9]);
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        let notes = &rec.segments[0].salvaged;
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("lost 1 records 10 events"),
            "{notes:?}"
        );
    }

    proptest::proptest! {
        // Whatever bytes a segment holds, opening never panics and only
        // checksummed records come back.
        #[test]
        fn arbitrary_segment_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join(segment_name(0)), &bytes).unwrap();
            let mut n = 0;
            let wal = Wal::open(dir.path(), 1 << 20, 0, |_, _| n += 1).unwrap();
            proptest::prop_assert!(wal.position() >= bytes.len() as u64 || wal.recovery().torn_tail.is_some());
        }

        // Random damage to a real segment (flipped bytes, a cut, a zeroed
        // stretch): replay never panics, returns only records that were
        // written (each at its own position, in order), and every record
        // outside the damaged bytes comes back.
        #[test]
        fn random_corruption_of_a_segment(
            flips in proptest::collection::vec((0usize..4000, 1u8..=255), 0..6),
            zero in proptest::option::of((0usize..4000, 0usize..300)),
            cut in proptest::option::of(0usize..4000),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path(), 1 << 20, 0, |_, _| {}).unwrap();
            let mut written = std::collections::BTreeMap::new();
            let mut start = wal.position();
            for i in 0..40u32 {
                let p = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat((i as usize * 7) % 60));
                let end = wal.append_parts(&[p.as_bytes()], i % 5 + 1).unwrap();
                written.insert(end, (start, p.into_bytes()));
                start = end;
            }
            wal.sync().unwrap();
            wal.close().unwrap();
            let (_, seg) = segments(dir.path()).unwrap()[0].clone();
            let mut data = fs::read(&seg).unwrap();
            let mut touched: Vec<usize> = vec![];
            for (at, x) in flips {
                if at < data.len() { data[at] ^= x; touched.push(at); }
            }
            if let Some((at, n)) = zero {
                for b in data.iter_mut().skip(at).take(n) { *b = 0; }
                touched.extend((at..at + n).filter(|a| *a < data.len()));
            }
            if let Some(c) = cut {
                if c < data.len() { touched.extend(c..data.len()); data.truncate(c); }
            }
            fs::write(&seg, &data).unwrap();
            let mut got = vec![];
            let rec = scan(dir.path(), 0, &mut |e, p| got.push((e, p.to_vec()))).unwrap();
            let mut last = 0;
            for (end, p) in &got {
                let w = written.get(end);
                proptest::prop_assert!(w.is_some_and(|(_, wp)| wp == p), "record at {end} was never written");
                proptest::prop_assert!(*end > last);
                last = *end;
            }
            for (end, (start, _)) in &written {
                let hit = touched.iter().any(|t| (*t as u64) >= *start && (*t as u64) < *end);
                if !hit {
                    proptest::prop_assert!(got.iter().any(|(e, _)| e == end), "intact record at {end} lost");
                }
            }
            // The loss is counted exactly: records written minus records
            // replayed (all damage is before the mark), unless the
            // segment's own header is damaged: with nothing before it, the
            // count of a stretch at its start is unknown, and said so.
            let lost = written.len() as u64 - got.len() as u64;
            if rec.damage.iter().all(|d| d.records.is_some()) {
                proptest::prop_assert_eq!(rec.lost_records(), lost, "{:?}", rec.damage);
            } else {
                proptest::prop_assert!(touched.iter().any(|t| *t < SEG_HEADER));
                proptest::prop_assert!(rec.damage.iter().all(|d| d.records.is_some() || d.start == 0));
                proptest::prop_assert!(rec.lost_records() <= lost);
            }
        }
    }
}
