//! The rule cache: a loaded rule set's lowered rules (RSigma's IR) on disk,
//! so that the next load of the same files skips YAML parsing and lowering
//! (~60 % of a load of the SigmaHQ rules) and only compiles.
//!
//! One file per rule set, `rules-<key>.jsonl` in the cache directory. The key
//! is a SHA-256 over this crate's and RSigma's IR versions and, for each rule
//! file in load order, its path, size and modification time: an edited,
//! added, removed or renamed file gives another key, and so a fresh parse.
//! Contents are not hashed, which would mean reading every file (as long as
//! parsing the cache); like `make` and Cargo, a change that keeps a file's
//! size and its nanosecond mtime is not seen (`--no-rule-cache` skips the
//! cache). The first line is a header (format, versions, file count); each
//! further line is one rule file's outcome, so lines decode in parallel.
//! JSON rather than RSigma's CBOR blob: serde_json decodes the same rules in
//! about two thirds of the time.
//!
//! Only rule sets without correlations or filters are cached (both need the
//! parsed Sigma rules, which the IR does not keep), and only when every file
//! was read. A cache that cannot be read or decoded is ignored with a
//! warning and rewritten; one that cannot be written costs nothing but the
//! next load's time. At most [`KEEP`] rule sets are kept.

use crate::rules::{FileOutcome, LoadedRule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Cache files kept in the directory; older ones are removed on write.
const KEEP: usize = 8;

const FORMAT: &str = "mimamori-rule-cache";
const VERSION: u32 = 1;

/// Where the cache lives unless told: `$MIMAMORI_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/mimamori`, else `$HOME/.cache/mimamori`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = var("MIMAMORI_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("mimamori"));
    }
    var("HOME").map(|h| PathBuf::from(h).join(".cache").join("mimamori"))
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Header {
    format: String,
    version: u32,
    detect: String,
    hir_schema: u32,
    files: usize,
}

impl Header {
    fn current(files: usize) -> Header {
        Header {
            format: FORMAT.into(),
            version: VERSION,
            detect: env!("CARGO_PKG_VERSION").into(),
            hir_schema: rsigma_ir::HIR_SCHEMA_VERSION,
            files,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CachedRule {
    title: String,
    id: Option<String>,
    name: Option<String>,
    ir: Result<rsigma_ir::IrRule, String>,
}

#[derive(Serialize, Deserialize)]
struct CachedFile {
    bytes: usize,
    errors: Vec<String>,
    rules: Vec<CachedRule>,
}

/// The cache key of these rule files, or `None` when one cannot be
/// examined (the load then parses, and reports what it cannot read).
pub(crate) fn key(files: &[PathBuf]) -> Option<String> {
    let mut h = Sha256::new();
    h.update(FORMAT.as_bytes());
    h.update(VERSION.to_le_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(rsigma_ir::HIR_SCHEMA_VERSION.to_le_bytes());
    for f in files {
        let meta = std::fs::metadata(f).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        let path = f.as_os_str().as_encoded_bytes();
        h.update((path.len() as u64).to_le_bytes());
        h.update(path);
        h.update(meta.len().to_le_bytes());
        h.update(mtime.as_secs().to_le_bytes());
        h.update(mtime.subsec_nanos().to_le_bytes());
    }
    let digest = h.finalize();
    Some(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn path_of(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("rules-{key}.jsonl"))
}

/// Why a cache file was not used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("no cache for these files")]
    Absent,
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Bad { path: PathBuf, what: String },
}

/// The outcomes of `files` rule files from the cache under `key`, decoded
/// and compiled on `threads` threads.
pub(crate) fn read(
    dir: &Path,
    key: &str,
    files: usize,
    threads: usize,
) -> Result<Vec<FileOutcome>, ReadError> {
    let path = path_of(dir, key);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Absent),
        Err(source) => return Err(ReadError::Io { path, source }),
    };
    let bad = |what: String| ReadError::Bad {
        path: path.clone(),
        what,
    };
    let mut lines = text.split('\n').filter(|l| !l.is_empty());
    let header: Header = serde_json::from_str(lines.next().unwrap_or(""))
        .map_err(|e| bad(format!("header: {e}")))?;
    if header != Header::current(files) {
        return Err(bad(format!(
            "written for another build or file set: {header:?}"
        )));
    }
    let lines: Vec<&str> = lines.collect();
    if lines.len() != files {
        return Err(bad(format!("{} entries for {files} files", lines.len())));
    }
    let decoded = crate::par::map_on_threads(&lines, threads, "rule-cache decoding", |i, line| {
        serde_json::from_str::<CachedFile>(line)
            .map(outcome)
            .map_err(|e| format!("entry {}: {e}", i + 1))
    });
    decoded
        .into_iter()
        .map(|d| d.unwrap_or_else(|| Err("a decoding thread panicked".into())))
        .collect::<Result<Vec<FileOutcome>, String>>()
        .map_err(bad)
}

fn outcome(f: CachedFile) -> FileOutcome {
    let rules = f
        .rules
        .into_iter()
        .map(|r| LoadedRule {
            compiled: r
                .ir
                .and_then(|ir| rsigma_eval::compile_to_compiled(&ir).map_err(|e| e.to_string())),
            title: r.title,
            id: r.id,
            name: r.name,
            ast: None,
        })
        .collect();
    FileOutcome {
        rules,
        bytes: f.bytes,
        errors: f.errors,
        ..Default::default()
    }
}

/// Whether these outcomes can be cached (see the module docs).
pub(crate) fn cacheable(outcomes: &[Option<FileOutcome>]) -> bool {
    outcomes.iter().all(|o| {
        o.as_ref().is_some_and(|o| {
            o.read_error.is_none()
                && o.correlations.is_empty()
                && o.filters.is_empty()
                && o.ir.len() == o.rules.len()
        })
    })
}

/// Write the cache of `outcomes` (which [`cacheable`] accepted) under `key`,
/// atomically (a temporary file renamed), and remove all but the newest
/// [`KEEP`] cache files.
pub(crate) fn write(
    dir: &Path,
    key: &str,
    outcomes: &[Option<FileOutcome>],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".rules-{key}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        serde_json::to_writer(&mut w, &Header::current(outcomes.len()))?;
        w.write_all(b"\n")?;
        for o in outcomes.iter().flatten() {
            let entry = CachedFile {
                bytes: o.bytes,
                errors: o.errors.clone(),
                rules: o
                    .rules
                    .iter()
                    .zip(&o.ir)
                    .map(|(r, ir)| CachedRule {
                        title: r.title.clone(),
                        id: r.id.clone(),
                        name: r.name.clone(),
                        ir: ir.clone(),
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut w, &entry)?;
            w.write_all(b"\n")?;
        }
        // No fsync: a cache cut short by a crash fails its decoding (a line
        // that is not JSON, or too few lines) and is parsed past.
        w.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path_of(dir, key))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    prune(dir);
    Ok(())
}

/// Remove all but the newest [`KEEP`] cache files (best effort).
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut caches: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("rules-") && n.ends_with(".jsonl")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    caches.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, p) in caches.into_iter().skip(KEEP) {
        let _ = std::fs::remove_file(p);
    }
}
