//! Shared checks for the intel import targets.
#![allow(dead_code)]

use mimamori_intel::model::ImportBatch;
use mimamori_intel::normalize::{hint_for, normalize};
use mimamori_intel::Provenance;

pub fn provenance() -> Provenance {
    Provenance::new("fuzz", time::OffsetDateTime::UNIX_EPOCH)
}

/// Every imported indicator is in normal form: normalizing its value again
/// under its own kind gives the same kind and value (so re-importing an
/// export cannot change or duplicate it).
pub fn check_batch(batch: &ImportBatch) {
    for ind in &batch.indicators {
        match normalize(Some(hint_for(ind.kind)), &ind.value) {
            Ok((kind, value)) => {
                assert_eq!((kind, value.as_str()), (ind.kind, ind.value.as_str()), "not in normal form");
            }
            Err(e) => panic!("imported {:?} {:?} does not normalize again: {e}", ind.kind, ind.value),
        }
    }
    for r in batch.rejects.iter().chain(&batch.unsupported) {
        assert!(!r.reason.is_empty(), "reject without a reason: {r:?}");
    }
}
