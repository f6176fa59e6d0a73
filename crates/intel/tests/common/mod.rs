//! Shared helpers for the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mimamori_intel::{Provenance, StixSchemas};
use time::OffsetDateTime;

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

/// The STIX 2.1 schemas built into the crate (what the product validates
/// with), loaded once per test binary.
pub fn schemas() -> &'static StixSchemas {
    static S: OnceLock<StixSchemas> = OnceLock::new();
    S.get_or_init(|| StixSchemas::bundled().expect("load the bundled STIX schemas"))
}

/// A fixed "now", so results do not depend on the clock.
pub fn now() -> OffsetDateTime {
    time::macros::datetime!(2026-01-15 12:00 UTC)
}

pub fn prov(source: &str) -> Provenance {
    Provenance::new(source, now())
}
