//! A STIX 2.1 document (bundle or object) through
//! `mimamori_intel::import_stix` with the bundled schemas.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mimamori_intel::{import_stix, StixOptions, StixSchemas};

#[path = "intel_common.rs"]
mod common;

static SCHEMAS: OnceLock<StixSchemas> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let schemas = SCHEMAS.get_or_init(|| StixSchemas::bundled().expect("bundled schemas load"));
    let opts = StixOptions::new(common::provenance());
    if let Ok(batch) = import_stix(data, schemas, &opts) {
        common::check_batch(&batch);
    }
});
