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
///
/// One pass over the object's keys with a `match`, not a map look-up per
/// field name: `serde_json::Map` is an `IndexMap` with SipHash here (the
/// `evtx` crate turns on `preserve_order`), and thirty hashed look-ups cost
/// more than parsing the line did.
fn fields_from(m: &Map<String, Value>) -> Normalized {
    let mut f = Normalized::default();
    for (k, v) in m {
        let v = Some(v);
        match k.as_str() {
            "src_ip" => f.src_ip = norm::ip_v(v),
            "src_port" => f.src_port = norm::port_v(v),
            "dst_ip" => f.dst_ip = norm::ip_v(v),
            "dst_port" => f.dst_port = norm::port_v(v),
            "protocol" => f.protocol = norm::text(v).map(|p| p.to_ascii_lowercase()),
            "hostname" => f.hostname = norm::text(v),
            "user" => f.user = norm::text(v),
            "dns_query" => f.dns_query = norm::text(v).and_then(|q| norm::dns_name(&q)),
            "dns_qtype" => f.dns_qtype = norm::text(v),
            "dns_rcode" => f.dns_rcode = norm::text(v),
            "dns_answers" => {
                f.dns_answers = match v {
                    Some(Value::Array(a)) => a.iter().filter_map(|x| norm::text(Some(x))).collect(),
                    other => norm::text(other).into_iter().collect(),
                }
            }
            "url" => f.url = norm::text(v),
            "http_host" => f.http_host = norm::text(v).and_then(|h| norm::dns_name(&h)),
            "http_method" => f.http_method = norm::text(v),
            "http_status" => f.http_status = norm::port_v(v),
            "user_agent" => f.user_agent = norm::text(v),
            "process_name" => f.process_name = norm::text(v),
            "process_cmdline" => f.process_cmdline = norm::text(v),
            "process_pid" => f.process_pid = norm::u32_v(v),
            "parent_process_name" => f.parent_process_name = norm::text(v),
            "file_name" => f.file_name = norm::text(v),
            "api_operation" => f.api_operation = norm::text(v),
            "api_service" => f.api_service = norm::text(v),
            "cloud_account" => f.cloud_account = norm::text(v),
            "cloud_region" => f.cloud_region = norm::text(v),
            "status" => f.status = norm::text(v),
            "message" => f.message = norm::text(v),
            "severity" => f.severity = norm::text(v),
            // `[["sha256", "ab…"], …]` or `{"sha256": "ab…"}`
            "file_hashes" => match v {
                Some(Value::Array(a)) => {
                    for pair in a {
                        if let Some([alg, h]) = pair.as_array().map(Vec::as_slice) {
                            if let (Some(alg), Some(h)) =
                                (alg.as_str(), h.as_str().and_then(norm::hash))
                            {
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
            },
            _ => {}
        }
    }
    f
}

/// The other keys [`from_value`] reads, found in the same kind of single
/// pass as [`fields_from`]'s (see there for why).
#[derive(Default)]
struct Known<'a> {
    class: Option<&'a Value>,
    class_uid: Option<&'a Value>,
    source: Option<&'a Value>,
    query: Option<&'a Value>,
    qname: Option<&'a Value>,
    src_endpoint: Option<&'a Value>,
    dst_endpoint: Option<&'a Value>,
    device: Option<&'a Value>,
    answers: Option<&'a Value>,
    /// In [`TIME_KEYS`] order: the first present one is the time.
    time: [Option<&'a Value>; TIME_KEYS.len()],
}

impl<'a> Known<'a> {
    fn of(m: &'a Map<String, Value>) -> Self {
        let mut k = Known::default();
        for (key, v) in m {
            let slot = match key.as_str() {
                "class" => &mut k.class,
                "class_uid" => &mut k.class_uid,
                "source" => &mut k.source,
                "query" => &mut k.query,
                "qname" => &mut k.qname,
                "src_endpoint" => &mut k.src_endpoint,
                "dst_endpoint" => &mut k.dst_endpoint,
                "device" => &mut k.device,
                "answers" => &mut k.answers,
                other => match TIME_KEYS.iter().position(|t| *t == other) {
                    Some(i) => &mut k.time[i],
                    None => continue,
                },
            };
            *slot = Some(v);
        }
        k
    }
}

/// A few OCSF attributes (as [`mimamori_event::Event::to_ocsf`] writes them).
fn ocsf_fields(k: &Known, f: &mut Normalized) {
    fn at<'v>(top: Option<&'v Value>, key: &str) -> Option<&'v Value> {
        top.and_then(|t| t.get(key))
    }
    f.src_ip = f
        .src_ip
        .take()
        .or_else(|| norm::ip_v(at(k.src_endpoint, "ip")));
    f.src_port = f
        .src_port
        .or_else(|| norm::port_v(at(k.src_endpoint, "port")));
    f.dst_ip = f
        .dst_ip
        .take()
        .or_else(|| norm::ip_v(at(k.dst_endpoint, "ip")));
    f.dst_port = f
        .dst_port
        .or_else(|| norm::port_v(at(k.dst_endpoint, "port")));
    f.hostname = f
        .hostname
        .take()
        .or_else(|| norm::text(at(k.device, "hostname")));
    f.dns_query = f
        .dns_query
        .take()
        .or_else(|| norm::text(at(k.query, "hostname")).and_then(|q| norm::dns_name(&q)));
    f.dns_qtype = f
        .dns_qtype
        .take()
        .or_else(|| norm::text(at(k.query, "type")));
    if f.dns_answers.is_empty() {
        if let Some(Value::Array(a)) = k.answers {
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
    let known = Known::of(&obj);
    let mut f = fields_from(&obj);
    ocsf_fields(&known, &mut f);
    if f.dns_query.is_none() {
        f.dns_query = norm::text(known.query)
            .or_else(|| norm::text(known.qname))
            .and_then(|q| norm::dns_name(&q));
    }
    let class = known
        .class
        .and_then(Value::as_str)
        .and_then(OcsfClass::parse)
        .or_else(|| {
            known
                .class_uid
                .and_then(Value::as_u64)
                .and_then(class_from_uid)
        })
        .unwrap_or(if f.dns_query.is_some() {
            OcsfClass::DnsActivity
        } else {
            OcsfClass::BaseEvent
        });
    let time = known
        .time
        .iter()
        .flatten()
        .find_map(|t| timefmt::from_value(t));
    let source = norm::text(known.source).unwrap_or_else(|| "ndjson".into());
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
