//! Generic NDJSON: one JSON object per line.
//!
//! Keys named like [`Normalized`]'s fields (`src_ip`, `dns_query`, …) fill
//! those fields directly (validated: IPs must be IPs, ports `u16`), which is
//! how mimamori's own generators (and later its protective DNS resolver)
//! send events. `source` and `class` keys set the source and class; an object in
//! the [`EventBody`] shape (`fields` and `raw` objects) is taken as such.

use crate::{norm, timefmt, windows::kind};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{Map, Value};

const TIME_KEYS: [&str; 5] = ["time", "timestamp", "@timestamp", "ts", "eventTime"];

fn text(m: &Map<String, Value>, k: &str) -> Option<String> {
    norm::text(m.get(k))
}

/// Fill normalized fields from keys named like them.
fn fields_from(m: &Map<String, Value>) -> Normalized {
    let mut f = Normalized {
        src_ip: norm::ip_v(m.get("src_ip")),
        src_port: norm::port_v(m.get("src_port")),
        dst_ip: norm::ip_v(m.get("dst_ip")),
        dst_port: norm::port_v(m.get("dst_port")),
        protocol: text(m, "protocol").map(|p| p.to_ascii_lowercase()),
        hostname: text(m, "hostname"),
        user: text(m, "user"),
        dns_query: text(m, "dns_query").and_then(|q| norm::dns_name(&q)),
        dns_qtype: text(m, "dns_qtype"),
        dns_rcode: text(m, "dns_rcode"),
        dns_answers: match m.get("dns_answers") {
            Some(Value::Array(a)) => a.iter().filter_map(|x| norm::text(Some(x))).collect(),
            other => norm::text(other).into_iter().collect(),
        },
        url: text(m, "url"),
        http_host: text(m, "http_host").and_then(|h| norm::dns_name(&h)),
        http_method: text(m, "http_method"),
        http_status: norm::port_v(m.get("http_status")),
        user_agent: text(m, "user_agent"),
        process_name: text(m, "process_name"),
        process_cmdline: text(m, "process_cmdline"),
        process_pid: norm::u32_v(m.get("process_pid")),
        parent_process_name: text(m, "parent_process_name"),
        file_name: text(m, "file_name"),
        file_hashes: Vec::new(),
        api_operation: text(m, "api_operation"),
        api_service: text(m, "api_service"),
        cloud_account: text(m, "cloud_account"),
        cloud_region: text(m, "cloud_region"),
        status: text(m, "status"),
        message: text(m, "message"),
        severity: text(m, "severity"),
    };
    // `[["sha256", "ab…"], …]` or `{"sha256": "ab…"}`
    match m.get("file_hashes") {
        Some(Value::Array(a)) => {
            for pair in a {
                if let Some([alg, h]) = pair.as_array().map(Vec::as_slice) {
                    if let (Some(alg), Some(h)) = (alg.as_str(), h.as_str().and_then(norm::hash)) {
                        f.file_hashes.push((alg.to_ascii_lowercase(), h));
                    }
                }
            }
        }
        Some(Value::Object(o)) => {
            for (alg, h) in o {
                if let Some(h) = h.as_str().and_then(norm::hash) {
                    f.file_hashes.push((alg.to_ascii_lowercase(), h));
                }
            }
        }
        _ => {}
    }
    f
}

/// A few OCSF attributes (as [`mimamori_event::Event::to_ocsf`] writes them).
fn ocsf_fields(m: &Map<String, Value>, f: &mut Normalized) {
    let at = |path: &[&str]| -> Option<&Value> {
        let mut cur = m.get(path[0])?;
        for p in &path[1..] {
            cur = cur.get(*p)?;
        }
        Some(cur)
    };
    f.src_ip = f
        .src_ip
        .take()
        .or_else(|| norm::ip_v(at(&["src_endpoint", "ip"])));
    f.src_port = f
        .src_port
        .or_else(|| norm::port_v(at(&["src_endpoint", "port"])));
    f.dst_ip = f
        .dst_ip
        .take()
        .or_else(|| norm::ip_v(at(&["dst_endpoint", "ip"])));
    f.dst_port = f
        .dst_port
        .or_else(|| norm::port_v(at(&["dst_endpoint", "port"])));
    f.hostname = f
        .hostname
        .take()
        .or_else(|| norm::text(at(&["device", "hostname"])));
    f.dns_query = f
        .dns_query
        .take()
        .or_else(|| norm::text(at(&["query", "hostname"])).and_then(|q| norm::dns_name(&q)));
    f.dns_qtype = f
        .dns_qtype
        .take()
        .or_else(|| norm::text(at(&["query", "type"])));
    if f.dns_answers.is_empty() {
        if let Some(Value::Array(a)) = m.get("answers") {
            f.dns_answers = a
                .iter()
                .filter_map(|x| norm::text(x.get("rdata")))
                .collect();
        }
    }
}

fn class_from_uid(uid: u64) -> Option<OcsfClass> {
    OcsfClass::ALL
        .into_iter()
        .find(|c| u64::from(c.uid()) == uid)
}

pub(crate) fn from_value(v: Value) -> Result<EventBody, String> {
    let Value::Object(mut obj) = v else {
        return Err(format!("expected a JSON object, found {}", kind(&v)));
    };
    // The EventBody shape: {"time", "class", "source", "fields": {…}, "raw": {…}}.
    if matches!(obj.get("fields"), Some(Value::Object(_)))
        && matches!(obj.get("raw"), Some(Value::Object(_)))
    {
        let fields = match obj.remove("fields") {
            Some(Value::Object(m)) => fields_from(&m),
            _ => Normalized::default(),
        };
        let raw = match obj.remove("raw") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let class = obj
            .get("class")
            .and_then(Value::as_str)
            .and_then(OcsfClass::parse)
            .unwrap_or(OcsfClass::BaseEvent);
        return Ok(EventBody {
            // EventBody's `time` is milliseconds, whatever its size.
            time: obj
                .get("time")
                .and_then(|t| t.as_i64().or_else(|| timefmt::from_value(t))),
            class,
            source: text(&obj, "source").unwrap_or_else(|| "ndjson".into()),
            fields,
            raw,
        });
    }
    let mut f = fields_from(&obj);
    ocsf_fields(&obj, &mut f);
    if f.dns_query.is_none() {
        f.dns_query = text(&obj, "query")
            .or_else(|| text(&obj, "qname"))
            .and_then(|q| norm::dns_name(&q));
    }
    let class = obj
        .get("class")
        .and_then(Value::as_str)
        .and_then(OcsfClass::parse)
        .or_else(|| {
            obj.get("class_uid")
                .and_then(Value::as_u64)
                .and_then(class_from_uid)
        })
        .unwrap_or(if f.dns_query.is_some() {
            OcsfClass::DnsActivity
        } else {
            OcsfClass::BaseEvent
        });
    let time = TIME_KEYS
        .iter()
        .find_map(|k| obj.get(*k).and_then(timefmt::from_value));
    let source = text(&obj, "source").unwrap_or_else(|| "ndjson".into());
    Ok(EventBody {
        time,
        class,
        source,
        fields: f,
        raw: obj,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalized_names() {
        let e = from_value(json!({"time": 1795600800000i64, "source": "pdns", "class": "dns_activity",
            "src_ip": "192.0.2.5", "src_port": 70000, "dst_ip": "nope", "dns_query": "Evil.Example.",
            "dns_answers": ["192.0.2.1"], "file_hashes": {"SHA256": "ABCD"}}))
        .unwrap();
        assert_eq!(e.time, Some(1_795_600_800_000));
        assert_eq!(e.source, "pdns");
        assert_eq!(e.class, OcsfClass::DnsActivity);
        assert_eq!(e.fields.src_ip.as_deref(), Some("192.0.2.5"));
        assert_eq!(e.fields.src_port, None);
        assert_eq!(e.fields.dst_ip, None);
        assert_eq!(e.fields.dns_query.as_deref(), Some("evil.example"));
        assert_eq!(e.fields.file_hashes, vec![("sha256".into(), "abcd".into())]);
        assert_eq!(e.raw["src_port"], 70000);
    }

    #[test]
    fn heuristics_and_shapes() {
        let e = from_value(json!({"@timestamp": "2026-11-25T10:00:00Z", "qname": "a.example"}))
            .unwrap();
        assert_eq!(e.class, OcsfClass::DnsActivity);
        assert_eq!(e.source, "ndjson");
        assert_eq!(e.time, Some(1_795_600_800_000));
        let e =
            from_value(json!({"class_uid": 4001, "src_endpoint": {"ip": "10.0.0.1", "port": 5}}))
                .unwrap();
        assert_eq!(e.class, OcsfClass::NetworkActivity);
        assert_eq!(e.fields.src_port, Some(5));
        let e = from_value(json!({"msg": "x"})).unwrap();
        assert_eq!(e.class, OcsfClass::BaseEvent);
        let body = EventBody {
            time: Some(5),
            class: OcsfClass::HttpActivity,
            source: "gen".into(),
            fields: Normalized {
                url: Some("http://x/".into()),
                ..Default::default()
            },
            raw: Map::new(),
        };
        let e = from_value(serde_json::to_value(&body).unwrap()).unwrap();
        assert_eq!(e, body);
        assert!(from_value(json!("x")).is_err());
    }
}
