//! A DNS message as it arrives over UDP, through the engine's fast path
//! (`wire::parse_query`, policy lookup, `wire::synth`), `error_reply` and
//! the cache's response reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "dns_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    common::answer(data, mimamori_dns::Transport::Udp, None);
});
