//! Shared helpers for the integration tests (the corpus locator is the one
//! `crates/parse/tests/common` uses).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared test corpora: `$MIMAMORI_CORPORA`, else `shared/corpora` beside
/// the repository (where the workplace and CI put it).
pub fn corpora() -> PathBuf {
    if let Some(p) = std::env::var_os("MIMAMORI_CORPORA") {
        return PathBuf::from(p);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    assert!(
        beside.is_dir(),
        "test corpora not found at {} (set MIMAMORI_CORPORA)",
        beside.display()
    );
    beside
}

/// Every file under `dir` whose name ends with `suffix`, sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, suffix, out);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, suffix, &mut out);
    out
}
