//! The text formats on hand-written fixtures, format detection, and the
//! per-record reject rules (bad lines rejected, good lines kept).

mod common;

use common::fixture;
use mimamori_event::OcsfClass;
use mimamori_parse::{
    detect, parse_bytes, parse_file, Format, LineParser, ParseError, MAX_RECORD_BYTES,
};
use std::io::Write;

fn parse_fixture(name: &str, want: Format) -> mimamori_parse::Parsed {
    let p = fixture(name);
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(detect(name, &bytes), Some(want), "{name}");
    let parsed = parse_file(&p, None).unwrap();
    // parse_file streams lines; parse_bytes on the buffer gives the same.
    assert_eq!(parsed, parse_bytes(want, &bytes), "{name}");
    parsed
}

#[test]
fn cef_fixture() {
    let p = parse_fixture("cef.log", Format::Cef);
    assert_eq!(p.events.len(), 6);
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 7);
    assert!(
        p.rejects[0].reason.contains("6 of 7"),
        "{}",
        p.rejects[0].reason
    );
    assert!(p.events.iter().all(|e| e.source == "cef"));
    let e = &p.events[0];
    assert_eq!(e.class, OcsfClass::NetworkActivity);
    assert_eq!(e.raw["deviceVendor"], "Security");
    assert_eq!(e.fields.dst_ip.as_deref(), Some("2.1.2.2"));
    let e = &p.events[1];
    assert_eq!(e.class, OcsfClass::BaseEvent);
    assert_eq!(e.raw["filePath"], "C:\\Users\\trend\\Desktop\\eicar.exe");
    assert_eq!(e.raw["cn1Label"], "Host ID");
    assert_eq!(e.fields.hostname.as_deref(), Some("hostname"));
    assert_eq!(e.fields.file_name.as_deref(), Some("eicar.exe"));
    let e = &p.events[2];
    assert_eq!(e.class, OcsfClass::HttpActivity);
    assert_eq!(e.time, Some(1_795_600_800_123));
    assert_eq!(e.fields.user.as_deref(), Some("CORP\\alice"));
    assert_eq!(
        e.fields.url.as_deref(),
        Some("http://malware.example/payload.bin?x=1")
    );
    assert_eq!(e.fields.http_host.as_deref(), Some("malware.example"));
    assert_eq!(
        e.fields.user_agent.as_deref(),
        Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    );
    assert_eq!(e.fields.src_port, Some(51234));
    assert_eq!(e.fields.dst_port, Some(80));
    assert_eq!(e.fields.hostname.as_deref(), Some("proxy01"));
    assert_eq!(e.fields.status.as_deref(), Some("allowed"));
    let e = &p.events[3];
    assert_eq!(e.time, Some(1_795_600_801_500));
    assert_eq!(e.fields.protocol.as_deref(), Some("tcp"));
    assert_eq!(e.raw["cs1"], "Block RDP from internet");
    assert_eq!(e.raw["syslog_appname"], "firewall");
    let e = &p.events[4];
    assert_eq!(e.raw["deviceVendor"], "Vendor|With|Pipes");
    assert_eq!(e.raw["name"], "Name with \\ backslash");
    assert_eq!(e.raw["msg"], "equals=inside and a \\ backslash");
    assert_eq!(e.fields.severity.as_deref(), Some("Low"));
    let e = &p.events[5];
    assert_eq!(e.raw["cefVersion"], "1");
    assert_eq!(e.fields.message.as_deref(), Some("User login"));
}

#[test]
fn squid_fixture() {
    let p = parse_fixture("squid_access.log", Format::Squid);
    assert_eq!(p.events.len(), 6);
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 7);
    assert!(p
        .events
        .iter()
        .all(|e| e.class == OcsfClass::HttpActivity && e.source == "squid"));
    let e = &p.events[2];
    assert_eq!(e.fields.http_method.as_deref(), Some("CONNECT"));
    assert_eq!(e.fields.http_host.as_deref(), Some("login.example.com"));
    assert_eq!(e.fields.user.as_deref(), Some("alice"));
    assert_eq!(e.fields.dst_ip.as_deref(), Some("203.0.113.80"));
    assert_eq!(e.time, Some(1_795_600_800_001));
    let e = &p.events[3];
    assert_eq!(e.fields.http_status, Some(403));
    assert_eq!(e.fields.status.as_deref(), Some("TCP_DENIED"));
    assert_eq!(e.fields.dst_ip, None);
    assert_eq!(p.events[4].fields.src_ip.as_deref(), Some("2001:db8::42"));
}

#[test]
fn bind_fixture() {
    let p = parse_fixture("bind_query.log", Format::BindQuery);
    assert_eq!(p.events.len(), 5);
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 6);
    assert!(p
        .events
        .iter()
        .all(|e| e.class == OcsfClass::DnsActivity && e.source == "bind.query"));
    let q: Vec<_> = p
        .events
        .iter()
        .map(|e| e.fields.dns_query.clone().unwrap())
        .collect();
    assert_eq!(
        q,
        [
            "example.com",
            "malware.example",
            "_ldap._tcp.corp.example",
            "old-format.example",
            "mx.example"
        ]
    );
    assert_eq!(p.events[1].raw["query"], "Malware.Example");
    assert_eq!(p.events[2].fields.src_ip.as_deref(), Some("2001:db8::10"));
    assert_eq!(p.events[2].fields.dns_qtype.as_deref(), Some("SRV"));
    assert_eq!(p.events[3].fields.src_port, Some(1053));
    assert_eq!(p.events[4].fields.hostname.as_deref(), Some("ns1"));
}

#[test]
fn unbound_fixture() {
    let p = parse_fixture("unbound.log", Format::UnboundQuery);
    assert_eq!(p.events.len(), 6);
    assert_eq!(
        p.rejects.iter().map(|r| r.record).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(p
        .events
        .iter()
        .all(|e| e.class == OcsfClass::DnsActivity && e.source == "unbound.query"));
    assert_eq!(p.events[0].time, Some(1_795_600_801_000));
    assert_eq!(p.events[1].fields.dns_rcode.as_deref(), Some("NOERROR"));
    assert_eq!(
        p.events[2].fields.dns_query.as_deref(),
        Some("malware.example")
    );
    assert_eq!(p.events[2].fields.dns_rcode.as_deref(), Some("NXDOMAIN"));
    assert_eq!(p.events[3].fields.status.as_deref(), Some("rpz-nxdomain"));
    assert_eq!(
        p.events[4].fields.status.as_deref(),
        Some("always_nxdomain")
    );
    assert_eq!(p.events[5].fields.hostname.as_deref(), Some("resolver1"));
    assert_eq!(p.events[5].fields.src_ip.as_deref(), Some("2001:db8::42"));
}

#[test]
fn syslog_fixture() {
    let p = parse_fixture("syslog.log", Format::Syslog);
    assert_eq!(p.events.len(), 8);
    assert_eq!(
        p.rejects.iter().map(|r| r.record).collect::<Vec<_>>(),
        [9, 10]
    );
    let e = &p.events[0];
    assert_eq!(e.source, "syslog");
    assert_eq!(e.class, OcsfClass::BaseEvent);
    assert_eq!(e.fields.hostname.as_deref(), Some("mymachine.example.com"));
    assert_eq!(e.fields.severity.as_deref(), Some("crit"));
    assert_eq!(
        e.raw["structured_data"]["exampleSDID@32473"]["eventSource"],
        "Application"
    );
    assert_eq!(e.raw["msgid"], "ID47");
    let e = &p.events[1];
    assert_eq!(e.time, Some(1_795_568_401_000));
    assert_eq!(
        e.fields.message.as_deref(),
        Some("An application event log entry")
    );
    assert_eq!(e.raw["facility"], 20);
    assert_eq!(p.events[2].time, None);
    let e = &p.events[3];
    assert_eq!(e.raw["appname"], "sshd");
    assert_eq!(e.raw["procid"], "2211");
    assert_eq!(e.fields.hostname.as_deref(), Some("host3"));
    assert!(e.time.is_some());
    assert_eq!(p.events[5].fields.severity, None);
    assert_eq!(p.events[6].time, Some(1_795_600_805_123));
    let e = &p.events[7];
    assert_eq!(e.source, "cef");
    assert_eq!(e.class, OcsfClass::HttpActivity);
    assert_eq!(e.fields.hostname.as_deref(), Some("proxy01"));
}

#[test]
fn detect_by_content_and_name() {
    assert_eq!(detect("x.evtx", b""), Some(Format::Evtx));
    assert_eq!(detect("noext", b"ElfFile\0\0\0"), Some(Format::Evtx));
    assert_eq!(
        detect("conn.log", b"#separator \\x09\n#set_separator\t,\n"),
        Some(Format::ZeekTsv)
    );
    assert_eq!(
        detect("a.json", br#"{"_path":"conn","ts":1}"#),
        Some(Format::ZeekJson)
    );
    assert_eq!(
        detect("a.json", br#"{"EventID":4624,"Channel":"Security"}"#),
        Some(Format::WindowsJson)
    );
    assert_eq!(
        detect("a.json", b"{\n  \"Event\": {\n    \"System\": {"),
        Some(Format::WindowsJson)
    );
    assert_eq!(
        detect("a.json", br#"{"Records":[{"eventName":"x"}]}"#),
        Some(Format::CloudTrail)
    );
    assert_eq!(
        detect("a.json", br#"{"time":1,"src_ip":"10.0.0.1"}"#),
        Some(Format::Ndjson)
    );
    assert_eq!(
        detect("x.log", b"<13>Nov 25 10:00:00 h a: m\n"),
        Some(Format::Syslog)
    );
    assert_eq!(
        detect("x.log", b"Nov 25 10:00:00 h a: m\n"),
        Some(Format::Syslog)
    );
    assert_eq!(detect("access.log", b""), Some(Format::Squid));
    assert_eq!(detect("x.bin", b"\x00\x01\x02garbage"), None);
    assert_eq!(detect("x.json", b"{\n  \"something\": "), None);
}

#[test]
fn undetectable_file_names_the_formats() {
    let dir = std::env::temp_dir().join(format!("mimamori-parse-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("mystery.bin");
    std::fs::write(&p, b"\x00\x01\x02 not a log").unwrap();
    let err = parse_file(&p, None).unwrap_err();
    assert!(matches!(err, ParseError::UnknownFormat { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("--format") && msg.contains("zeek-tsv") && msg.contains("windows-json"),
        "{msg}"
    );
    // A given format needs no detection.
    let parsed = parse_file(&p, Some(Format::Syslog)).unwrap();
    assert_eq!(parsed.events.len(), 0);
    assert_eq!(parsed.rejects.len(), 1);
    let missing = parse_file(&dir.join("nope.log"), None).unwrap_err();
    assert!(matches!(missing, ParseError::Read { .. }), "{missing}");

    // gzip is detected by content, whatever the name.
    let gz = dir.join("events.dat");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b"{\"qname\":\"a.example\"}\n{\"qname\":\"b.example\"}\n")
        .unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let parsed = parse_file(&gz, Some(Format::Ndjson)).unwrap();
    assert_eq!(parsed.events.len(), 2);
    // A truncated gzip keeps the records before the cut and reports the rest.
    let full = std::fs::read(&gz).unwrap();
    std::fs::write(&gz, &full[..full.len() - 10]).unwrap();
    let parsed = parse_file(&gz, Some(Format::Ndjson)).unwrap();
    assert!(
        parsed
            .rejects
            .iter()
            .any(|r| r.reason.contains("read error")),
        "{parsed:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_lines_are_rejected_good_lines_kept() {
    // NDJSON with broken JSON, invalid UTF-8 and a non-object among good lines.
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"dns_query\":\"a.example\"}\n");
    input.extend_from_slice(b"{\"dns_query\": \"broken\"\n");
    input.extend_from_slice(b"{\"dns_query\":\"b\xff\xfe.example\"}\n");
    input.extend_from_slice(b"\n   \n");
    input.extend_from_slice(b"[1,2]\n");
    input.extend_from_slice(b"{\"dns_query\":\"c.example\"}");
    for format in [
        Format::Ndjson,
        Format::ZeekJson,
        Format::CloudTrail,
        Format::WindowsJson,
    ] {
        let p = parse_bytes(format, &input);
        let records: Vec<u64> = p.rejects.iter().map(|r| r.record).collect();
        let events = p.events.len();
        match format {
            Format::Ndjson | Format::ZeekJson => {
                assert_eq!((events, &records[..]), (2, &[2, 3, 6][..]), "{format}");
                assert!(
                    p.rejects[1].reason.contains("invalid JSON"),
                    "{:?}",
                    p.rejects
                );
            }
            // Not CloudTrail or Windows records: each rejected on its own
            // (the array on line 6 twice, once per element).
            _ => assert_eq!(
                (events, &records[..]),
                (0, &[1, 2, 3, 6, 6, 7][..]),
                "{format}"
            ),
        }
    }
    // Text formats: invalid UTF-8 is rejected, the lines around it are kept.
    let mut input = b"<13>Nov 25 10:00:00 h a: one\n".to_vec();
    input.extend_from_slice(b"<13>Nov 25 10:00:00 h a: \xc3\x28 two\n");
    input.extend_from_slice(b"<13>Nov 25 10:00:00 h a: three\n");
    let p = parse_bytes(Format::Syslog, &input);
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 2);
    assert!(p.rejects[0].reason.contains("UTF-8"));
}

#[test]
fn windows_json_streams_pretty_printed_objects() {
    let good = "{\n  \"Event\": {\n    \"System\": {\"EventID\": 4624, \"Channel\": \"Security\"},\n    \"EventData\": {\"TargetUserName\": \"bob\"}\n  }\n}\n";
    let mut input = String::new();
    input.push_str(good);
    input.push_str("{\n  \"Event\": {\n    \"System\": {\"EventID\": 4625, \n");
    input.push_str(good);
    input.push('[');
    input.push_str(good.trim_end());
    input.push_str(",\n");
    input.push_str(good.trim_end());
    input.push_str("]\n");
    let p = parse_bytes(Format::WindowsJson, input.as_bytes());
    assert_eq!(p.events.len(), 4, "{:?}", p.rejects);
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 7);
    assert!(p
        .events
        .iter()
        .all(|e| e.class == OcsfClass::Authentication));
}

#[test]
fn over_long_lines_are_rejected_with_the_limit() {
    let mut input = b"{\"qname\":\"a.example\"}\n{\"message\":\"".to_vec();
    input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES));
    input.extend_from_slice(b"\"}\n{\"qname\":\"b.example\"}\n");
    let p = parse_bytes(Format::Ndjson, &input);
    assert_eq!(p.events.len(), 2);
    assert_eq!(p.rejects.len(), 1);
    assert_eq!(p.rejects[0].record, 2);
    assert!(
        p.rejects[0].reason.contains("MAX_RECORD_BYTES"),
        "{}",
        p.rejects[0].reason
    );
    assert!(p.rejects[0].reason.contains(&MAX_RECORD_BYTES.to_string()));
    let mut lp = LineParser::new(Format::Syslog);
    let long = vec![b'a'; MAX_RECORD_BYTES + 1];
    let r = lp.push_line(&long).unwrap().unwrap_err();
    assert!(r.contains("limit"), "{r}");
    // The same through parse_file, which never buffers the long line whole.
    let dir = std::env::temp_dir().join(format!("mimamori-parse-long-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("long.ndjson");
    std::fs::write(&f, &input).unwrap();
    let pf = parse_file(&f, None).unwrap();
    assert_eq!(pf, p);
    // One pretty-printed document over the limit.
    let big = format!(
        "{{\n \"EventID\": 1, \"x\": \"{}\"\n}}\n{}",
        "y".repeat(MAX_RECORD_BYTES),
        "{\"EventID\": 2}\n"
    );
    let p = parse_bytes(Format::WindowsJson, big.as_bytes());
    assert_eq!(p.events.len(), 1);
    assert!(p.rejects[0].reason.contains("MAX_RECORD_BYTES"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn line_parser_keeps_the_zeek_header() {
    let mut lp = LineParser::new(Format::ZeekTsv);
    assert!(
        lp.push_line(b"1.0\tx").unwrap().is_err(),
        "data before #fields"
    );
    for h in [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#fields\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state",
        "#types\ttime\taddr\tport\taddr\tport\tenum\tstring",
    ] {
        assert!(lp.push_line(h.as_bytes()).is_none());
    }
    let e = lp
        .push_line(b"1795600800.5\t10.0.0.1\t5555\t192.0.2.1\t443\ttcp\tSF\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(e.source, "zeek.conn");
    assert_eq!(e.class, OcsfClass::NetworkActivity);
    assert_eq!(e.time, Some(1_795_600_800_500));
    assert_eq!(e.fields.protocol.as_deref(), Some("tcp"));
    assert_eq!(e.fields.dst_port, Some(443));
    assert!(lp.push_line(b"#close\t2026-11-25-10-00-00").is_none());
    assert!(lp.push_line(b"").is_none());
    assert!(lp.push_line(b"1\t2").unwrap().is_err());
    let mut lp = LineParser::new(Format::Evtx);
    assert!(lp.push_line(b"x").unwrap().is_err());
}
