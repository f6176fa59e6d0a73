//! Property tests: the hand-written parsers never panic on any input, and
//! the query parser agrees with hickory-proto on well-formed queries.

use std::sync::Arc;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use mimamori_dns::cache::Entry;
use mimamori_dns::{
    wire, Engine, EngineConfig, Forwarder, Policy, PolicyHandle, Scratch, Transport, Zone,
};
use proptest::prelude::*;

fn engine() -> Engine {
    let z = Zone::blocklist("bl", "evil.example\n").expect("list");
    let up = Arc::new(Forwarder::new(vec![], std::time::Duration::from_millis(10)));
    Engine::new(
        PolicyHandle::new(Policy::new(vec![Arc::new(z)])),
        up,
        EngineConfig::default(),
        None,
    )
}

fn label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9]([a-zA-Z0-9-]{0,18}[a-zA-Z0-9])?"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn packet_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = wire::parse_query(&bytes);
        let _ = wire::error_reply(&bytes, wire::RCODE_FORMERR);
        let _ = wire::walk_records(&bytes, |_| {});
        let mut name = Vec::new();
        let _ = wire::read_name(&bytes, 12, &mut name);
        let _ = Entry::from_response(&bytes, 3600, 3600);
        let e = engine();
        let mut out = Vec::new();
        let mut s = Scratch::default();
        let _ = e.answer_fast(&bytes, "127.0.0.1:1".parse().expect("addr"), Transport::Udp, &mut out, &mut s);
    }

    #[test]
    fn mutated_queries_never_panic(labels in proptest::collection::vec(label(), 1..6), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let name = Name::from_ascii(labels.join(".") + ".").expect("name");
        let mut m = Message::query();
        m.add_query(Query::query(name, RecordType::A));
        let mut bytes = m.to_vec().expect("encodes");
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = wire::parse_query(&bytes);
        let e = engine();
        let mut out = Vec::new();
        let _ = e.answer_fast(&bytes, "127.0.0.1:1".parse().expect("addr"), Transport::Udp, &mut out, &mut Scratch::default());
        let _ = Entry::from_response(&bytes, 3600, 3600);
    }

    #[test]
    fn query_parser_agrees_with_hickory(labels in proptest::collection::vec(label(), 1..8), qtype in 1u16..300) {
        let text = labels.join(".") + ".";
        let name = Name::from_ascii(&text).expect("name");
        let mut m = Message::query();
        m.metadata.id = 77;
        m.add_query(Query::query(name, RecordType::from(qtype)));
        let bytes = m.to_vec().expect("encodes");
        let q = wire::parse_query(&bytes).expect("parses");
        prop_assert_eq!(q.id, 77);
        prop_assert_eq!(q.qtype, qtype);
        prop_assert_eq!(wire::name_to_string(q.name()) + ".", text.to_ascii_lowercase());
    }

    #[test]
    fn zone_parser_never_panics(text in "\\PC{0,400}") {
        let _ = Zone::parse_rpz("rpz.example.", &text);
        let _ = Zone::blocklist("bl", &text);
    }

    #[test]
    fn zone_parser_never_panics_on_zone_like_lines(lines in proptest::collection::vec(
        prop_oneof![
            Just("$ORIGIN rpz.example.".to_string()),
            Just("$TTL 1h".to_string()),
            Just("@ SOA a. b. ( 1 2 3 4 5 )".to_string()),
            Just("\tNS ns.example.".to_string()),
            "[a-z*0-9.]{0,30} (CNAME|A|AAAA|TXT|MX) [a-z0-9.*:\" -]{0,30}",
            "[0-9]{1,3}(\\.[0-9a-z]{1,4}){1,9}\\.rpz-(ip|client-ip|nsip|nsdname) CNAME [.*a-z-]{0,15}",
            "[()\";\\\\ a-z]{0,20}",
        ], 0..20)) {
        let _ = Zone::parse_rpz(".", &lines.join("\n"));
    }
}

/// Inputs the cargo-fuzz targets (fuzz/) once failed on, kept in
/// tests/fuzz_regressions/: every packet is answered on the fast path and
/// by `error_reply`, and every reply is a DNS message hickory decodes, with
/// the query's id.
#[test]
fn fuzz_regressions_answer_with_well_formed_replies() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("regression dir") {
        let path = entry.expect("entry").path();
        let pkt = std::fs::read(&path).expect("read regression input");
        n += 1;
        let check = |out: &[u8]| {
            assert_eq!(out[..2], pkt[..2], "{}: reply id", path.display());
            Message::from_vec(out)
                .unwrap_or_else(|e| panic!("{}: reply does not decode: {e}", path.display()));
        };
        if let Some(err) = wire::error_reply(&pkt, wire::RCODE_FORMERR) {
            check(&err);
        }
        let e = engine();
        let mut out = Vec::new();
        let client = "127.0.0.1:1".parse().expect("addr");
        if let mimamori_dns::Fast::Reply = e.answer_fast(
            &pkt,
            client,
            Transport::Udp,
            &mut out,
            &mut Scratch::default(),
        ) {
            check(&out);
        }
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
