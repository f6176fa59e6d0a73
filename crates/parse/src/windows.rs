//! Windows events: `{"Event": {"System": …, "EventData": …}}` JSON (the shape
//! the `evtx` crate renders, also used by Sigma's regression data), already
//! flat objects with `EventID`, and EVTX files.
//!
//! `raw` is the flattened form Sigma rules are written against: EventData
//! (and UserData's inner object) children at the top level with spaces
//! removed from their names, plus `EventID`, `Channel`, `Provider_Name`,
//! `Computer`, `EventRecordID` and `TimeCreated` from `System`.

use crate::{norm, timefmt, Parsed, Reject};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{Map, Value};

/// One Windows event from a JSON value.
pub(crate) fn from_value(v: Value) -> Result<EventBody, String> {
    let Value::Object(mut obj) = v else {
        return Err(format!("expected a JSON object, found {}", kind(&v)));
    };
    let raw = if let Some(Value::Object(ev)) = obj.remove("Event") {
        flatten_event(ev)
    } else if obj.contains_key("System") {
        flatten_event(obj)
    } else if obj.contains_key("EventID") {
        obj
    } else {
        return Err("not a Windows event: no Event, System or EventID key".into());
    };
    Ok(normalize(raw))
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `{"#text": x, "#attributes": …}` → x; anything else unchanged.
fn unwrap_text(v: Value) -> Value {
    match v {
        Value::Object(mut o) if o.contains_key("#text") => o.remove("#text").unwrap_or(Value::Null),
        other => other,
    }
}

/// An attribute of an element: `X.#attributes.name`, or `X_attributes.name`
/// (the evtx crate's `separate_json_attributes` shape).
fn attr<'a>(parent: &'a Map<String, Value>, elem: &str, name: &str) -> Option<&'a Value> {
    parent
        .get(elem)
        .and_then(|e| e.get("#attributes"))
        .and_then(|a| a.get(name))
        .or_else(|| {
            parent
                .get(&format!("{elem}_attributes"))
                .and_then(|a| a.get(name))
        })
        .or_else(|| parent.get(elem).and_then(|e| e.get(name)))
}

/// Insert a data field; a name already taken by a System field is kept
/// under `<section>_<name>` so nothing is lost.
fn put(raw: &mut Map<String, Value>, section: &str, k: &str, v: Value) {
    let k = norm::key(k);
    if raw.contains_key(&k) {
        raw.insert(format!("{section}_{k}"), v);
    } else {
        raw.insert(k, v);
    }
}

/// EventData's `Data` elements: `[{"#attributes": {"Name": n}, "#text": t}]`
/// become `n: t`; unnamed ones stay together under `Data`.
fn put_data_elems(raw: &mut Map<String, Value>, section: &str, v: Value) {
    let named = |o: &Map<String, Value>| {
        o.get("#attributes")
            .and_then(|a| a.get("Name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    match v {
        Value::Array(items) => {
            let mut unnamed = Vec::new();
            for it in items {
                match it {
                    Value::Object(mut o) => match named(&o) {
                        Some(n) => {
                            let t = o.remove("#text").unwrap_or(Value::Null);
                            put(raw, section, &n, t);
                        }
                        None => unnamed.push(unwrap_text(Value::Object(o))),
                    },
                    other => unnamed.push(other),
                }
            }
            if !unnamed.is_empty() {
                put(raw, section, "Data", Value::Array(unnamed));
            }
        }
        Value::Object(mut o) => match named(&o) {
            Some(n) => {
                let t = o.remove("#text").unwrap_or(Value::Null);
                put(raw, section, &n, t);
            }
            None => put(raw, section, "Data", unwrap_text(Value::Object(o))),
        },
        other => put(raw, section, "Data", other),
    }
}

fn put_section(raw: &mut Map<String, Value>, section: &str, v: Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match k.as_str() {
                    "#attributes" => {}
                    "Data" => put_data_elems(raw, section, val),
                    "#text" => put(raw, section, "Data", val),
                    _ => put(raw, section, &k, unwrap_text(val)),
                }
            }
        }
        Value::Null => {}
        other => put(raw, section, section, other),
    }
}

fn flatten_event(mut ev: Map<String, Value>) -> Map<String, Value> {
    let mut raw = Map::new();
    let sys = match ev.remove("System") {
        Some(Value::Object(s)) => s,
        _ => Map::new(),
    };
    // The System fields Sigma rules use; these win over data fields.
    if let Some(id) = sys.get("EventID") {
        let id = unwrap_text(id.clone());
        let id = match &id {
            Value::String(s) => s.trim().parse::<u64>().map(Value::from).unwrap_or(id),
            _ => id,
        };
        raw.insert("EventID".into(), id);
    }
    for k in ["Channel", "Computer"] {
        if let Some(v) = sys.get(k) {
            raw.insert(k.into(), unwrap_text(v.clone()));
        }
    }
    if let Some(v) = attr(&sys, "Provider", "Name") {
        raw.insert("Provider_Name".into(), v.clone());
    }
    if let Some(v) = sys.get("EventRecordID") {
        raw.insert("EventRecordID".into(), unwrap_text(v.clone()));
    }
    if let Some(v) = attr(&sys, "TimeCreated", "SystemTime") {
        raw.insert("TimeCreated".into(), v.clone());
    }
    if let Some(v) = ev.remove("EventData") {
        put_section(&mut raw, "EventData", v);
    }
    if let Some(v) = ev.remove("UserData") {
        match v {
            Value::Object(m) => {
                for (k, inner) in m {
                    match (k.as_str(), inner) {
                        ("#attributes", _) => {}
                        (_, inner @ Value::Object(_)) => put_section(&mut raw, "UserData", inner),
                        (_, other) => put(&mut raw, "UserData", &k, other),
                    }
                }
            }
            Value::Null => {}
            other => put(&mut raw, "UserData", "UserData", other),
        }
    }
    // Less used System fields, where the data did not take the name.
    for k in ["Version", "Level", "Task", "Opcode", "Keywords"] {
        if let Some(v) = sys.get(k) {
            if !raw.contains_key(k) {
                raw.insert(k.into(), unwrap_text(v.clone()));
            }
        }
    }
    raw
}

fn s<'a>(raw: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    raw.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && *s != "-")
}

fn first(raw: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| s(raw, k)).map(str::to_string)
}

/// The source suffix for a channel.
fn channel_kind(channel: &str, provider: &str) -> &'static str {
    let c = channel.to_ascii_lowercase();
    if c.contains("sysmon") || provider.eq_ignore_ascii_case("Microsoft-Windows-Sysmon") {
        "sysmon"
    } else if c == "security" {
        "security"
    } else if c.contains("powershell") {
        "powershell"
    } else if c == "system" {
        "system"
    } else {
        "other"
    }
}

/// Fill the normalized fields from a flattened Windows event.
pub(crate) fn normalize(raw: Map<String, Value>) -> EventBody {
    let event_id = match raw.get("EventID") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(t)) => t.trim().parse().ok(),
        Some(Value::Object(o)) => o.get("#text").and_then(|t| {
            t.as_u64()
                .or_else(|| t.as_str().and_then(|x| x.trim().parse().ok()))
        }),
        _ => None,
    };
    let channel = s(&raw, "Channel").unwrap_or("");
    let provider = s(&raw, "Provider_Name").unwrap_or("");
    let kind = channel_kind(channel, provider);
    let time = raw
        .get("TimeCreated")
        .and_then(|t| {
            timefmt::from_value(t).or_else(|| t.get("SystemTime").and_then(timefmt::from_value))
        })
        .or_else(|| raw.get("@timestamp").and_then(timefmt::from_value));
    let mut f = Normalized {
        hostname: first(&raw, &["Computer"]),
        ..Default::default()
    };
    let class = match (kind, event_id) {
        ("sysmon", Some(1)) | ("security", Some(4688)) => {
            f.process_name =
                first(&raw, &["Image", "NewProcessName"]).and_then(|p| norm::basename(&p));
            f.process_cmdline = first(&raw, &["CommandLine"]);
            f.parent_process_name =
                first(&raw, &["ParentImage", "ParentProcessName"]).and_then(|p| norm::basename(&p));
            f.process_pid = norm::u32_v(raw.get("ProcessId").or_else(|| raw.get("NewProcessId")));
            f.user = first(&raw, &["User", "SubjectUserName"]);
            f.file_hashes = s(&raw, "Hashes")
                .map(norm::sysmon_hashes)
                .unwrap_or_default();
            OcsfClass::ProcessActivity
        }
        ("sysmon", Some(3)) => {
            f.src_ip = norm::ip_v(raw.get("SourceIp"));
            f.src_port = norm::port_v(raw.get("SourcePort"));
            f.dst_ip = norm::ip_v(raw.get("DestinationIp"));
            f.dst_port = norm::port_v(raw.get("DestinationPort"));
            f.protocol = first(&raw, &["Protocol"]).map(|p| p.to_ascii_lowercase());
            f.process_name = first(&raw, &["Image"]).and_then(|p| norm::basename(&p));
            f.process_pid = norm::u32_v(raw.get("ProcessId"));
            f.user = first(&raw, &["User"]);
            OcsfClass::NetworkActivity
        }
        ("sysmon", Some(22)) => {
            f.dns_query = s(&raw, "QueryName").and_then(norm::dns_name);
            f.dns_answers = s(&raw, "QueryResults")
                .map(|r| {
                    r.split(';')
                        .filter_map(|a| norm::ip(a.trim().trim_start_matches("::ffff:")))
                        .collect()
                })
                .unwrap_or_default();
            f.process_name = first(&raw, &["Image"]).and_then(|p| norm::basename(&p));
            f.process_pid = norm::u32_v(raw.get("ProcessId"));
            f.user = first(&raw, &["User"]);
            OcsfClass::DnsActivity
        }
        ("security", Some(id @ (4624 | 4625 | 4634 | 4648 | 4776))) => {
            f.user = first(&raw, &["TargetUserName", "SubjectUserName"]);
            f.src_ip = norm::ip_v(raw.get("IpAddress"));
            f.src_port = norm::port_v(raw.get("IpPort")).filter(|p| *p != 0);
            f.status = Some(
                match id {
                    4625 => "failure",
                    4776 => match s(&raw, "Status") {
                        Some(st) if st != "0x0" && st != "0" => "failure",
                        _ => "success",
                    },
                    _ => "success",
                }
                .to_string(),
            );
            OcsfClass::Authentication
        }
        ("sysmon", Some(11 | 23)) => {
            f.file_name = first(&raw, &["TargetFilename"]);
            f.process_name = first(&raw, &["Image"]).and_then(|p| norm::basename(&p));
            f.process_pid = norm::u32_v(raw.get("ProcessId"));
            f.user = first(&raw, &["User"]);
            f.file_hashes = s(&raw, "Hashes")
                .map(norm::sysmon_hashes)
                .unwrap_or_default();
            OcsfClass::FileActivity
        }
        _ => {
            f.user = first(&raw, &["User", "SubjectUserName"]);
            OcsfClass::BaseEvent
        }
    };
    EventBody {
        time,
        class,
        source: format!("windows.{kind}"),
        fields: f,
        raw,
    }
}

/// Parse an EVTX file. A file whose header cannot be read gives one reject
/// with record number 0 (the file); a record that cannot be read gives a
/// reject with its 1-based position among the records.
pub(crate) fn parse_evtx(buf: Vec<u8>) -> Parsed {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    const HEADER: usize = 4096;
    const CHUNK: usize = 65536;
    let len = buf.len();
    let mut out = Parsed::default();
    // The evtx crate parses untrusted binary data; a panic inside it must not
    // take the caller down, so it is caught and reported as a reject.
    let run = catch_unwind(AssertUnwindSafe(|| {
        let mut parser = match evtx::EvtxParser::from_buffer(buf) {
            Ok(p) => p.with_configuration(evtx::ParserSettings::new().indent(false)),
            Err(e) => {
                out.rejects.push(Reject {
                    record: 0,
                    reason: format!("not a readable EVTX file: {e}"),
                });
                return;
            }
        };
        // The evtx crate skips a chunk cut short at the end of the file
        // without a word: say so, since its records are lost.
        let declared = usize::from(parser.header().chunk_count);
        let whole_chunks = len.saturating_sub(HEADER) / CHUNK;
        let tail = len.saturating_sub(HEADER) % CHUNK;
        if tail != 0 || declared > whole_chunks {
            out.rejects.push(Reject {
                record: 0,
                reason: format!(
                    "EVTX file is truncated: {len} bytes hold {whole_chunks} whole 64 KiB chunks{} \
                     (the header declares {declared}); any records in the missing part are lost",
                    if tail != 0 {
                        format!(" and {tail} bytes of an incomplete one")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        for (i, r) in parser.records_json_value().enumerate() {
            let n = i as u64 + 1;
            match r {
                Ok(rec) => match from_value(rec.data) {
                    Ok(ev) => out.events.push(ev),
                    Err(e) => out.rejects.push(Reject {
                        record: n,
                        reason: format!("EVTX record {}: {e}", rec.event_record_id),
                    }),
                },
                Err(e) => out.rejects.push(Reject {
                    record: n,
                    reason: format!("unreadable EVTX record: {e}"),
                }),
            }
        }
    }));
    if let Err(p) = run {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        out.rejects.push(Reject {
            record: 0,
            reason: format!("the EVTX parser failed on this file: {msg}"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_evtx_json() {
        let v = json!({"Event": {
            "#attributes": {"xmlns": "x"},
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{g}"}},
                "EventID": {"#attributes": {"Qualifiers": 0}, "#text": "4688"},
                "TimeCreated": {"#attributes": {"SystemTime": "2020-09-23T16:57:41.3726306Z"}},
                "EventRecordID": 12, "Channel": "Security", "Computer": "pc1", "Level": 0
            },
            "EventData": {"Data": [
                {"#attributes": {"Name": "NewProcessName"}, "#text": "C:\\Windows\\cmd.exe"},
                {"#attributes": {"Name": "Command Line"}, "#text": "cmd /c whoami"},
                {"#attributes": {"Name": "SubjectUserName"}, "#text": "bob"},
                {"#attributes": {"Name": "NewProcessId"}, "#text": "0x1a4"},
                {"#attributes": {"Name": "Channel"}, "#text": "clash"}
            ]}
        }});
        let e = from_value(v).unwrap();
        assert_eq!(e.source, "windows.security");
        assert_eq!(e.class, OcsfClass::ProcessActivity);
        assert_eq!(e.raw["EventID"], json!(4688));
        assert_eq!(
            e.raw["Provider_Name"],
            "Microsoft-Windows-Security-Auditing"
        );
        assert_eq!(e.raw["CommandLine"], "cmd /c whoami");
        assert_eq!(e.raw["Channel"], "Security");
        assert_eq!(e.raw["EventData_Channel"], "clash");
        assert_eq!(e.raw["Level"], 0);
        assert_eq!(e.time, Some(1_600_880_261_372));
        assert_eq!(e.fields.process_name.as_deref(), Some("cmd.exe"));
        assert_eq!(e.fields.process_pid, Some(420));
        assert_eq!(e.fields.user.as_deref(), Some("bob"));
        assert_eq!(e.fields.hostname.as_deref(), Some("pc1"));
    }

    #[test]
    fn unnamed_data_and_userdata() {
        let v = json!({"Event": {"System": {"EventID": 15457, "Channel": "Application"},
            "EventData": {"Data": {"#text": ["xp_cmdshell", "0", "1"]}, "Binary": "00"}}});
        let e = from_value(v).unwrap();
        assert_eq!(e.raw["Data"], json!(["xp_cmdshell", "0", "1"]));
        assert_eq!(e.source, "windows.other");
        let v = json!({"Event": {"System": {"EventID": 1102, "Channel": "Security"},
            "UserData": {"LogFileCleared": {"#attributes": {"xmlns": "x"}, "SubjectUserName": "admin"}}}});
        let e = from_value(v).unwrap();
        assert_eq!(e.raw["SubjectUserName"], "admin");
        assert!(!e.raw.contains_key("#attributes"));
        assert_eq!(e.fields.user.as_deref(), Some("admin"));
    }

    #[test]
    fn sysmon_classes() {
        let sys = |id: u64| json!({"EventID": id, "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": "h"});
        let mut v = json!({"System": sys(3), "EventData": {"SourceIp": "10.0.0.1", "SourcePort": "5000",
            "DestinationIp": "not-an-ip", "DestinationPort": 443, "Protocol": "TCP"}});
        let e = from_value(v.take()).unwrap();
        assert_eq!(e.class, OcsfClass::NetworkActivity);
        assert_eq!(e.fields.src_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(e.fields.src_port, Some(5000));
        assert_eq!(e.fields.dst_ip, None);
        assert_eq!(e.fields.dst_port, Some(443));
        assert_eq!(e.fields.protocol.as_deref(), Some("tcp"));
        let e = from_value(
            json!({"System": sys(22), "EventData": {"QueryName": "Evil.Example.",
            "QueryResults": "type:  5 x.example;::ffff:192.0.2.7;"}}),
        )
        .unwrap();
        assert_eq!(e.class, OcsfClass::DnsActivity);
        assert_eq!(e.fields.dns_query.as_deref(), Some("evil.example"));
        assert_eq!(e.fields.dns_answers, vec!["192.0.2.7".to_string()]);
        let e =
            from_value(json!({"System": sys(11), "EventData": {"TargetFilename": "C:\\x.txt"}}))
                .unwrap();
        assert_eq!(e.class, OcsfClass::FileActivity);
        let e = from_value(
            json!({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Image": "C:\\a\\b.exe", "Hashes": "MD5=AA,SHA256=BB"}),
        )
        .unwrap();
        assert_eq!(e.class, OcsfClass::ProcessActivity);
        assert_eq!(
            e.fields.file_hashes,
            vec![("md5".into(), "aa".into()), ("sha256".into(), "bb".into())]
        );
        assert!(from_value(json!({"foo": 1})).is_err());
        assert!(from_value(json!([1])).is_err());
    }

    #[test]
    fn authentication() {
        let e = from_value(
            json!({"Event": {"System": {"EventID": 4625, "Channel": "Security"},
            "EventData": {"TargetUserName": "alice", "IpAddress": "192.0.2.9", "IpPort": "0"}}}),
        )
        .unwrap();
        assert_eq!(e.class, OcsfClass::Authentication);
        assert_eq!(e.fields.status.as_deref(), Some("failure"));
        assert_eq!(e.fields.src_ip.as_deref(), Some("192.0.2.9"));
        assert_eq!(e.fields.src_port, None);
        assert_eq!(e.fields.user.as_deref(), Some("alice"));
    }
}
