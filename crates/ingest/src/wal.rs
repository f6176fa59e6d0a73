//! The write-ahead log: append-only segment files of checksummed records.
//!
//! Written by hand because the job is small and exact: length-prefixed,
//! CRC-checked records in files named by their global start offset, fsync
//! on demand (the caller groups many appends into one sync: group commit),
//! torn tails cut off on open. Existing WAL crates either hide the fsync
//! policy we must control or bring their own storage engine.
//!
//! A position is a global byte offset: segment `wal-<start>.log` holds the
//! bytes from `start` on. A record is
//! `[len: u32 LE][crc32(payload): u32 LE][payload]`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

const HEADER: u64 = 8;
/// Largest record accepted on append and believed on replay.
pub const MAX_RECORD: usize = 256 * 1024 * 1024;

pub struct Wal {
    dir: PathBuf,
    out: BufWriter<File>,
    seg_start: u64,
    seg_len: u64,
    segment_bytes: u64,
}

fn segment_name(start: u64) -> String {
    format!("wal-{start:020}.log")
}

/// The segments in `dir`, sorted by start offset.
fn segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
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

/// Reads the records of one segment, calling `on_record(end_position,
/// payload)` for each one that ends after `from`. Returns the length of the
/// valid prefix (a torn or corrupt tail is not part of it).
fn read_segment(
    path: &Path,
    start: u64,
    from: u64,
    on_record: &mut dyn FnMut(u64, &[u8]),
) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let total = f.metadata()?.len();
    let mut data = Vec::with_capacity(total as usize);
    f.read_to_end(&mut data)?;
    let mut off = 0usize;
    while off + HEADER as usize <= data.len() {
        let len =
            u32::from_le_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        let crc = u32::from_le_bytes([data[off + 4], data[off + 5], data[off + 6], data[off + 7]]);
        let body = off + HEADER as usize;
        if len > MAX_RECORD || body + len > data.len() {
            break;
        }
        let payload = &data[body..body + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let end = start + (body + len) as u64;
        if end > from {
            on_record(end, payload);
        }
        off = body + len;
    }
    Ok(off as u64)
}

impl Wal {
    /// Opens the WAL in `dir`, replaying every record that ends after
    /// `from` through `on_record`, cutting off a torn tail, deleting
    /// segments that end at or before `from`, and starting a fresh segment
    /// for new appends.
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        from: u64,
        mut on_record: impl FnMut(u64, &[u8]),
    ) -> io::Result<Wal> {
        fs::create_dir_all(dir)?;
        let segs = segments(dir)?;
        let mut end = from;
        for (i, (start, path)) in segs.iter().enumerate() {
            let valid = read_segment(path, *start, from, &mut on_record)?;
            let len = fs::metadata(path)?.len();
            if valid < len {
                tracing::warn!(
                    segment = %path.display(),
                    valid,
                    len,
                    "WAL segment has a torn or corrupt tail (unacknowledged writes of a crash); cutting it off"
                );
                OpenOptions::new().write(true).open(path)?.set_len(valid)?;
                if i + 1 < segs.len() {
                    tracing::error!(
                        "corruption inside the WAL, not at its end: later segments are ignored"
                    );
                    for (_, later) in &segs[i + 1..] {
                        fs::rename(later, later.with_extension("corrupt"))?;
                    }
                    end = end.max(start + valid);
                    break;
                }
            }
            end = end.max(start + valid);
        }
        // Segments whose records all end at or before `from` are in the
        // archive already; drop them.
        for (start, path) in &segs {
            if let Ok(m) = fs::metadata(path) {
                if start + m.len() <= from {
                    fs::remove_file(path)?;
                }
            }
        }
        let seg_start = end;
        let path = dir.join(segment_name(seg_start));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let seg_len = file.metadata()?.len();
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, file),
            seg_start,
            seg_len,
            segment_bytes,
        })
    }

    /// The position after the last appended record.
    pub fn position(&self) -> u64 {
        self.seg_start + self.seg_len
    }

    /// Appends one record (buffered; durable only after [`Wal::sync`]).
    /// Returns the position after it.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        self.append_parts(&[payload])
    }

    /// Appends one record whose payload is the concatenation of `parts`
    /// (so a header and a body need not be copied into one buffer first).
    pub fn append_parts(&mut self, parts: &[&[u8]]) -> io::Result<u64> {
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
        self.out.write_all(&(len as u32).to_le_bytes())?;
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        for p in parts {
            self.out.write_all(p)?;
        }
        self.seg_len += HEADER + len as u64;
        Ok(self.position())
    }

    /// Makes every appended record durable (one fsync for all of them), then
    /// starts a new segment if this one is full.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        if self.seg_len >= self.segment_bytes {
            let start = self.position();
            let path = self.dir.join(segment_name(start));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            sync_dir(&self.dir)?;
            self.out = BufWriter::with_capacity(1 << 20, file);
            self.seg_start = start;
            self.seg_len = 0;
        }
        Ok(())
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

/// Reads back every record position in a WAL directory (for tests/tools).
pub fn read_all(dir: &Path) -> io::Result<Vec<(u64, Vec<u8>)>> {
    let mut out = vec![];
    for (start, path) in segments(dir)? {
        read_segment(&path, start, 0, &mut |end, p| out.push((end, p.to_vec())))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(dir: &Path, from: u64) -> (Wal, Vec<(u64, Vec<u8>)>) {
        let mut got = vec![];
        let wal = Wal::open(dir, 64, from, |end, p| got.push((end, p.to_vec()))).unwrap();
        (wal, got)
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
        wal.release_before(ends[15]).unwrap();
        drop(wal);
        let (_, got) = replay(dir.path(), ends[15]);
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = replay(dir.path(), 0);
        wal.append(b"one").unwrap();
        wal.append(b"two").unwrap();
        wal.sync().unwrap();
        let seg = segments(dir.path()).unwrap().last().unwrap().1.clone();
        drop(wal);
        // A crash mid-write: half a record, then garbage.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&100u32.to_le_bytes()).unwrap();
        f.write_all(b"xx").unwrap();
        drop(f);
        let (mut wal, got) = replay(dir.path(), 0);
        assert_eq!(
            got.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
            vec![b"one".to_vec(), b"two".to_vec()]
        );
        wal.append(b"three").unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, got) = replay(dir.path(), 0);
        assert_eq!(got.len(), 3);
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
            proptest::prop_assert!(wal.position() <= bytes.len() as u64);
        }
    }
}
