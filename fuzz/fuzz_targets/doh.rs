//! A DNS-over-HTTPS request (RFC 8484): the first byte picks GET (the rest
//! is the `dns` parameter, decoded by `doh::decode_dns_param`) or POST (the
//! rest is the body); the message is answered over `Transport::Https` as
//! the DoH handlers do.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_dns::{doh, Transport};

#[path = "dns_common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let pkt = if sel & 1 == 0 {
        let Ok(param) = std::str::from_utf8(rest) else { return };
        let Some(pkt) = doh::decode_dns_param(param) else { return };
        assert!(pkt.len() <= param.len(), "decoding grew the parameter");
        pkt
    } else {
        rest.to_vec()
    };
    if pkt.len() > 65535 {
        return;
    }
    common::answer(&pkt, Transport::Https, None);
});
