//! `Format::Evtx` through `mimamori_parse::parse_bytes`, as the file, HEC
//! and syslog ingest paths call it.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::check_lines(mimamori_parse::Format::Evtx, data, false);
});
