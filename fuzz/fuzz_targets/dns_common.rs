//! The resolver engine the DNS targets answer with: one RPZ zone with
//! every kind of action, and an upstream that is never reached (the
//! targets run only the synchronous path, as the UDP/TCP/DoH servers do
//! before they defer to recursion).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::Message;
use mimamori_dns::{wire, Engine, EngineConfig, Fast, Forwarder, Policy, PolicyHandle, Scratch, Transport, Zone};

const RPZ: &str = "$TTL 60
@ SOA ns.rpz. admin.rpz. ( 1 3600 600 86400 60 )
  NS ns.rpz.
evil.example CNAME .
*.evil.example CNAME .
drop.example CNAME rpz-drop.
pass.example CNAME rpz-passthru.
tcp.example CNAME rpz-tcp-only.
sink.example A 10.9.9.9
sink.example AAAA 2001:db8::9
txt.example TXT \"blocked by policy\"
walled.example CNAME walled.garden.net.
nodata.example CNAME *.
32.1.0.0.127.rpz-client-ip CNAME rpz-passthru.
24.0.2.0.192.rpz-ip CNAME .
ns.bad.example.rpz-nsdname CNAME .
";

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let zone = Zone::parse_rpz("rpz.", RPZ).expect("the fuzz policy zone parses");
        let up = Arc::new(Forwarder::new(vec![], std::time::Duration::from_millis(10)));
        Engine::new(PolicyHandle::new(Policy::new(vec![Arc::new(zone)])), up, EngineConfig::default(), None)
    })
}

pub fn client() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 5353))
}

/// Answers `pkt` on the synchronous path and checks the reply: a
/// well-formed DNS message (hickory decodes it) with the query's id, marked
/// as a response, and within the client's UDP size over UDP.
pub fn answer(pkt: &[u8], transport: Transport, token: Option<&[u8; 32]>) {
    let e = engine();
    let mut out = Vec::new();
    let mut scratch = Scratch::default();
    let fast = e.answer_fast_for(pkt, client(), token, transport, &mut out, &mut scratch);
    if let Fast::Reply = fast {
        let q = wire::parse_query(pkt).expect("a packet answered on the fast path parses");
        check_reply(&out, q.id);
        if transport == Transport::Udp {
            assert!(out.len() <= q.udp_limit(), "UDP reply of {} bytes > limit {}", out.len(), q.udp_limit());
        }
    }
    if let Some(err) = wire::error_reply(pkt, wire::RCODE_FORMERR) {
        check_reply(&err, u16::from_be_bytes([pkt[0], pkt[1]]));
    }
    // What the cache makes of the same bytes as an upstream response.
    let _ = mimamori_dns::cache::Entry::from_response(pkt, 3600, 3600);
    let _ = wire::walk_records(pkt, |_| {});
}

pub fn check_reply(out: &[u8], id: u16) {
    assert!(out.len() >= 12, "reply shorter than a header");
    assert_eq!(u16::from_be_bytes([out[0], out[1]]), id, "reply id differs from the query's");
    assert!(out[2] & 0x80 != 0, "reply without the QR bit");
    if let Err(e) = Message::from_vec(out) {
        panic!("reply does not decode ({e}): {out:02x?}");
    }
}
