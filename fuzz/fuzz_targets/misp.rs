//! One MISP event document through `mimamori_intel::import_misp_event`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_intel::misp::{import_misp_event, MispOptions};

#[path = "intel_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let opts = MispOptions::new(common::provenance());
    if let Ok(batch) = import_misp_event(data, &opts) {
        common::check_batch(&batch);
    }
});
