//! A STIX pattern through `mimamori_intel::stix::pattern::parse`. Error
//! positions must lie inside the pattern.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_intel::stix::pattern;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = pattern::parse(text) {
        assert!(e.at <= text.len(), "error position {} past the end ({})", e.at, text.len());
        assert!(!e.to_string().is_empty());
    }
});
