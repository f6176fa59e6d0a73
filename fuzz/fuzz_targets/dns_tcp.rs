//! A DNS-over-TCP byte stream (RFC 7766: each message after a two-byte
//! length): split into frames as the TCP server does, each answered over
//! `Transport::Tcp`. A short final frame ends the stream, as a closed
//! connection does.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "dns_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while rest.len() >= 2 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let Some(frame) = rest.get(2..2 + len) else { break };
        common::answer(frame, mimamori_dns::Transport::Tcp, None);
        rest = &rest[2 + len..];
    }
});
