//! Plain, hosts and CSV indicator lists (with defanging) through
//! `mimamori_intel::import_list`; the first byte picks the format and
//! options. Also: `refang` reaches a fixed point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_intel::{import_list, refang, ListFormat, ListOptions};

#[path = "intel_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = match sel % 3 {
        0 => ListFormat::Plain,
        1 => ListFormat::Hosts,
        _ => ListFormat::Csv,
    };
    let mut opts = ListOptions::new(common::provenance());
    opts.provenance.subdomains = sel & 4 != 0;
    let batch = import_list(text, format, &opts);
    common::check_batch(&batch);
    let once = refang(text);
    assert_eq!(refang(&once), once, "refang is not idempotent");
});
