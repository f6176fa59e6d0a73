//! Fuzz-style properties: no input makes a parser panic, and damage stays
//! within the records it touches.

mod common;

use common::corpora;
use mimamori_parse::{parse_bytes, Format, LineParser, MAX_RECORD_BYTES};
use proptest::prelude::*;
use std::sync::OnceLock;

/// A realistic line of every line format, to mutate.
const SAMPLES: [(Format, &str); 10] = [
    (Format::Ndjson, r#"{"time":"2026-11-25T10:00:00Z","src_ip":"10.0.0.1","dns_query":"a.example","file_hashes":[["md5","AB"]]}"#),
    (Format::WindowsJson, r##"{"Event":{"System":{"EventID":{"#text":4688},"Channel":"Security","Provider":{"#attributes":{"Name":"P"}},"TimeCreated":{"#attributes":{"SystemTime":"2020-01-01T00:00:00Z"}}},"EventData":{"Data":[{"#attributes":{"Name":"NewProcessName"},"#text":"C:\\x.exe"}]}}}"##),
    (Format::ZeekJson, r#"{"_path":"http","ts":"2018-03-24T17:15:20.865716Z","id.orig_h":"10.0.0.1","id.orig_p":1,"id.resp_h":"10.0.0.2","id.resp_p":80,"host":"a","uri":"/","status_code":200}"#),
    (Format::CloudTrail, r#"{"Records":[{"eventTime":"2020-01-01T00:00:00Z","eventName":"GetObject","userIdentity":{"arn":"a"},"sourceIPAddress":"1.2.3.4","errorCode":"x"}]}"#),
    (Format::Cef, r"<134>Nov 25 10:00:00 fw CEF:0|A\|B|P|1|s|N|5|rt=1795600800000 src=10.0.0.1 request=http://x/?a\=b msg=a\\b c=d e"),
    (Format::Squid, "1286536309.586    921 192.168.0.68 TCP_MISS/200 507 GET http://www.google.com/ - DIRECT/74.125.39.103 text/html"),
    (Format::BindQuery, "25-Nov-2026 10:00:00.123 queries: info: client @0x7f 192.0.2.5#53124 (example.com): view v: query: example.com IN A +E(0)K (192.0.2.1)"),
    (Format::UnboundQuery, "[1732530000] unbound[1234:0] info: rpz: applied [z.] e.example. rpz-nxdomain 192.0.2.5@53124 e.example. A IN"),
    (Format::Syslog, r#"<34>1 2026-11-25T10:00:00.003Z host app 1234 ID47 [sd@1 a="b\"c\]"] msg"#),
    (Format::Syslog, "<34>Nov 25 10:00:00 host app[1234]: msg"),
];

const ZEEK_TSV: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#fields\tts\tid.orig_h\tquery\tanswers\tAA\n#types\ttime\taddr\tstring\tvector[string]\tbool\n1521911720.865716\t10.0.0.1\ta.example\tx,y\tT\n#close\t2024\n";

fn mutate(base: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(at, byte, op) in edits {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let i = at % v.len();
        match op % 4 {
            0 => v[i] = byte,
            1 => v.insert(i, byte),
            2 => {
                v.remove(i);
            }
            _ => v.truncate(i),
        }
    }
    v
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..12)
}

fn small_evtx() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        std::fs::read(
            corpora().join(
                "evtx/attack-samples/AutomatedTestingTools/Malware/rundll32_cmd_schtask.evtx",
            ),
        )
        .unwrap()
    })
}

fn small_evtx_records() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        let p = parse_bytes(Format::Evtx, small_evtx());
        assert!(p.rejects.is_empty());
        p.events.len()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        for f in Format::ALL {
            let p = parse_bytes(f, &bytes);
            // Every record is accounted for: an event or a reject, never more
            // records than lines (Records arrays aside, which random bytes
            // do not make).
            let lines = bytes.split(|&b| b == b'\n').count();
            if f != Format::Evtx && f != Format::CloudTrail && f != Format::WindowsJson {
                prop_assert!(p.events.len() + p.rejects.len() <= lines);
            }
            let mut lp = LineParser::new(f);
            for line in bytes.split(|&b| b == b'\n') {
                let _ = lp.push_line(line);
            }
        }
    }

    #[test]
    fn mutated_records_never_panic(which in 0..SAMPLES.len(), e in edits(), copies in 1..4usize) {
        let (f, line) = SAMPLES[which];
        let m = mutate(line.as_bytes(), &e);
        let mut buf = Vec::new();
        for _ in 0..copies {
            buf.extend_from_slice(&m);
            buf.push(b'\n');
        }
        let p = parse_bytes(f, &buf);
        let mut lp = LineParser::new(f);
        let _ = lp.push_line(&m);
        // The unmutated line is always good, whatever damage sits next to it.
        buf.extend_from_slice(line.as_bytes());
        let q = parse_bytes(f, &buf);
        prop_assert!(q.events.len() > p.events.len(), "{f}: {:?}", q.rejects);
    }

    #[test]
    fn bad_lines_cost_only_themselves(
        kinds in prop::collection::vec(prop_oneof![30 => 0u8..4, 1 => Just(4u8)], 0..40),
        crlf in any::<bool>(),
    ) {
        // 0 good, 1 broken JSON, 2 invalid UTF-8, 3 blank, 4 over the limit
        for format in [Format::Ndjson, Format::Syslog] {
            let mut buf = Vec::new();
            let mut want_events = 0;
            let mut want_rejects = Vec::new();
            for (i, k) in kinds.iter().enumerate() {
                let line: Vec<u8> = match (k, format) {
                    (0, Format::Ndjson) => format!("{{\"dns_query\":\"q{i}.example\"}}").into_bytes(),
                    (0, _) => format!("<13>Nov 25 10:00:00 host app: line {i}").into_bytes(),
                    (1, Format::Ndjson) => b"{\"dns_query\": \"unterminated".to_vec(),
                    (1, _) => b"<999>not a priority".to_vec(),
                    (2, Format::Ndjson) => b"{\"dns_query\":\"\xff\xfe\"}".to_vec(),
                    (2, _) => b"<13>Nov 25 10:00:00 host app: \xc3\x28".to_vec(),
                    (3, _) => b"   ".to_vec(),
                    _ => vec![b'{'; MAX_RECORD_BYTES + 1],
                };
                match k {
                    0 => want_events += 1,
                    3 => {}
                    _ => want_rejects.push(i as u64 + 1),
                }
                buf.extend_from_slice(&line);
                buf.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
            let p = parse_bytes(format, &buf);
            prop_assert_eq!(p.events.len(), want_events, "{}", format);
            let got: Vec<u64> = p.rejects.iter().map(|r| r.record).collect();
            prop_assert_eq!(got, want_rejects.clone(), "{}", format);
        }
    }

    #[test]
    fn mutated_zeek_tsv_never_panics(e in edits()) {
        let m = mutate(ZEEK_TSV.as_bytes(), &e);
        let p = parse_bytes(Format::ZeekTsv, &m);
        prop_assert!(p.events.len() <= 1);
    }

    #[test]
    fn mutated_json_documents_never_panic(e in edits()) {
        let doc = format!("{{\n  \"Event\": {{\n    \"System\": {{\"EventID\": 1, \"Channel\": \"Security\"}}\n  }}\n}}\n{}", SAMPLES[1].1);
        let m = mutate(doc.as_bytes(), &e);
        let _ = parse_bytes(Format::WindowsJson, &m);
        let _ = parse_bytes(Format::CloudTrail, &m);
    }

    #[test]
    fn truncated_evtx_gives_rejects_not_panics(cut in 0usize..69632) {
        let full = small_evtx();
        let p = parse_bytes(Format::Evtx, &full[..cut]);
        // What was cut off is lost; nothing is invented.
        prop_assert!(p.events.len() <= small_evtx_records());
        prop_assert!(p.events.len() < small_evtx_records() || cut >= full.len());
        // The loss is reported (the evtx crate itself skips a cut chunk silently).
        prop_assert!(!p.rejects.is_empty(), "cut at {cut} but no reject");
        prop_assert!(p.rejects.iter().all(|r| r.record == 0));
    }

    #[test]
    fn corrupted_evtx_never_panics(flips in prop::collection::vec((0usize..69632, any::<u8>()), 1..24), cut in 4096usize..=69632) {
        let mut buf = small_evtx().to_vec();
        for (at, b) in flips {
            buf[at] ^= b | 1;
        }
        buf.truncate(cut);
        let p = parse_bytes(Format::Evtx, &buf);
        prop_assert!(p.events.len() <= small_evtx_records());
        for r in &p.rejects {
            prop_assert!(!r.reason.is_empty());
        }
    }
}

#[test]
fn truncated_multi_chunk_evtx_keeps_whole_chunks() {
    let full =
        std::fs::read(corpora().join(
            "evtx/attack-samples/AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx",
        ))
        .unwrap();
    let all = parse_bytes(Format::Evtx, &full);
    assert!(all.rejects.is_empty());
    let mut last = 0;
    for chunks in 1..=(full.len() - 4096) / 65536 {
        let cut = 4096 + chunks * 65536 - 1000;
        let p = parse_bytes(Format::Evtx, &full[..cut]);
        assert_eq!(p.rejects.len(), 1, "{cut}: {:?}", p.rejects);
        assert!(p.rejects[0].reason.contains("truncated"));
        // The records of the whole chunks before the cut are kept, in order.
        // (The last chunk of this file holds no records.)
        assert!(p.events.len() >= last && p.events.len() <= all.events.len());
        assert_eq!(p.events[..], all.events[..p.events.len()]);
        last = p.events.len();
    }
    assert_eq!(last, all.events.len());
}

#[test]
fn evtx_cut_inside_the_header_is_one_reject() {
    let p = parse_bytes(Format::Evtx, &small_evtx()[..100]);
    assert!(p.events.is_empty());
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 0);
    let p = parse_bytes(Format::Evtx, b"");
    assert_eq!(p.rejects.len(), 1);
}

#[test]
fn max_record_bytes_is_one_mebibyte() {
    assert_eq!(MAX_RECORD_BYTES, 1 << 20);
}
