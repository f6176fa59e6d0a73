//! An RPZ zone file (RFC-style master file) through `Zone::parse_rpz`, as
//! `[[pdns.zones]]` files and zone transfers' text are loaded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_dns::Zone;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(zone) = Zone::parse_rpz("rpz.example.", text) {
        // A zone that loads answers queries for any name without panicking.
        let _ = zone.check_qname(b"\x04evil\x07example\x00");
        let _ = zone.soa_record();
    }
    let _ = Zone::blocklist("bl", text);
});
