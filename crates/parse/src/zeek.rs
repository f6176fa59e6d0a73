//! Zeek logs: JSON (dotted `id.orig_h` names with `_path`, or underscore
//! `id_orig_h` names with `@stream`) and the default tab-separated format.
//!
//! TSV records are turned into the same JSON object Zeek's JSON writer would
//! give (dotted names, typed values, unset fields left out, `_path` from the
//! `#path` header), so both forms normalize identically.

use crate::{norm, timefmt};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{Map, Number, Value};

/// A Zeek field by its dotted name, also trying the underscore spelling
/// (`id_orig_h`) and the nested form (`{"id": {"orig_h": …}}`).
fn get<'a>(raw: &'a Map<String, Value>, dotted: &str) -> Option<&'a Value> {
    if let Some(v) = raw.get(dotted) {
        return Some(v);
    }
    if !dotted.contains('.') {
        return None;
    }
    raw.get(&dotted.replace('.', "_")).or_else(|| {
        let mut parts = dotted.split('.');
        let mut cur = raw.get(parts.next()?)?;
        for p in parts {
            cur = cur.get(p)?;
        }
        Some(cur)
    })
}

fn text(raw: &Map<String, Value>, k: &str) -> Option<String> {
    norm::text(get(raw, k))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(|x| norm::text(Some(x))).collect(),
        Some(other) => norm::text(Some(other)).into_iter().collect(),
        None => Vec::new(),
    }
}

/// One Zeek record from a JSON value.
pub(crate) fn from_value(v: Value) -> Result<EventBody, String> {
    match v {
        Value::Object(m) => Ok(normalize(m, None)),
        other => Err(format!(
            "expected a JSON object, found {}",
            crate::windows::kind(&other)
        )),
    }
}

/// Normalize a Zeek record; `path` is the log name when the record does not
/// carry `_path` or `@stream` itself.
pub(crate) fn normalize(raw: Map<String, Value>, path: Option<&str>) -> EventBody {
    let path = raw
        .get("_path")
        .or_else(|| raw.get("@stream"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| path.map(str::to_string))
        .unwrap_or_else(|| guess_path(&raw).to_string());
    let mut f = Normalized {
        src_ip: norm::ip_v(get(&raw, "id.orig_h")),
        src_port: norm::port_v(get(&raw, "id.orig_p")),
        dst_ip: norm::ip_v(get(&raw, "id.resp_h")),
        dst_port: norm::port_v(get(&raw, "id.resp_p")),
        protocol: text(&raw, "proto").map(|p| p.to_ascii_lowercase()),
        hostname: text(&raw, "@system"),
        ..Default::default()
    };
    let class = match path.as_str() {
        "dns" => {
            f.dns_query = text(&raw, "query").and_then(|q| norm::dns_name(&q));
            f.dns_qtype = text(&raw, "qtype_name");
            f.dns_rcode = text(&raw, "rcode_name");
            f.dns_answers = strings(get(&raw, "answers"));
            OcsfClass::DnsActivity
        }
        "http" => {
            let host = text(&raw, "host");
            let uri = text(&raw, "uri");
            let authority = host.clone().or_else(|| f.dst_ip.clone());
            f.url = match (&authority, &uri) {
                (Some(h), Some(u)) => Some(format!("http://{h}{u}")),
                (Some(h), None) => Some(format!("http://{h}/")),
                _ => None,
            };
            f.http_host = host.and_then(|h| norm::url_host(&h));
            f.http_method = text(&raw, "method");
            f.http_status = norm::port_v(get(&raw, "status_code"));
            f.user_agent = text(&raw, "user_agent");
            f.user = text(&raw, "username");
            OcsfClass::HttpActivity
        }
        "ssl" => {
            f.http_host = text(&raw, "server_name").and_then(|h| norm::dns_name(&h));
            OcsfClass::NetworkActivity
        }
        "conn" => {
            f.status = text(&raw, "conn_state");
            OcsfClass::NetworkActivity
        }
        "files" => {
            f.file_name = text(&raw, "filename");
            for alg in ["md5", "sha1", "sha256"] {
                if let Some(h) = text(&raw, alg).and_then(|h| norm::hash(&h)) {
                    f.file_hashes.push((alg.to_string(), h));
                }
            }
            if f.src_ip.is_none() {
                f.src_ip = strings(get(&raw, "tx_hosts"))
                    .first()
                    .and_then(|h| norm::ip(h));
            }
            if f.dst_ip.is_none() {
                f.dst_ip = strings(get(&raw, "rx_hosts"))
                    .first()
                    .and_then(|h| norm::ip(h));
            }
            OcsfClass::FileActivity
        }
        "kerberos" | "ntlm" => {
            f.user = text(&raw, "client").or_else(|| text(&raw, "username"));
            f.status = match get(&raw, "success") {
                Some(Value::Bool(true)) => Some("success".into()),
                Some(Value::Bool(false)) => Some("failure".into()),
                _ => None,
            };
            OcsfClass::Authentication
        }
        "notice" => {
            f.message = text(&raw, "msg");
            if f.src_ip.is_none() {
                f.src_ip = norm::ip_v(get(&raw, "src"));
            }
            if f.dst_ip.is_none() {
                f.dst_ip = norm::ip_v(get(&raw, "dst"));
            }
            OcsfClass::BaseEvent
        }
        _ => OcsfClass::BaseEvent,
    };
    EventBody {
        time: get(&raw, "ts").and_then(timefmt::from_value),
        class,
        source: if path.is_empty() {
            "zeek".into()
        } else {
            format!("zeek.{path}")
        },
        fields: f,
        raw,
    }
}

/// A log name for a record without `_path` or `@stream`, from tell-tale
/// fields; empty when nothing fits.
fn guess_path(raw: &Map<String, Value>) -> &'static str {
    let has = |k: &str| get(raw, k).is_some();
    if has("qtype_name") || (has("query") && has("trans_id")) {
        "dns"
    } else if has("method") && has("uri") {
        "http"
    } else if has("server_name") || has("cipher") {
        "ssl"
    } else if has("conn_state") {
        "conn"
    } else {
        ""
    }
}

/// Zeek TSV header state (`#separator`, `#fields`, …).
#[derive(Debug, Clone)]
pub(crate) struct TsvHeader {
    sep: String,
    set_sep: String,
    empty: String,
    unset: String,
    path: Option<String>,
    fields: Option<Vec<String>>,
    types: Vec<String>,
}

impl Default for TsvHeader {
    fn default() -> Self {
        TsvHeader {
            sep: "\t".into(),
            set_sep: ",".into(),
            empty: "(empty)".into(),
            unset: "-".into(),
            path: None,
            fields: None,
            types: Vec::new(),
        }
    }
}

/// `\x09` escapes in header values.
fn unescape_hex(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(h) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(h);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TsvHeader {
    /// Take a `#` header line.
    pub(crate) fn header(&mut self, line: &str) {
        if let Some(v) = line.strip_prefix("#separator") {
            let v = unescape_hex(v.trim_start_matches(' '));
            if !v.is_empty() {
                self.sep = v;
            }
            return;
        }
        let body = &line[1..];
        let (name, value) = match body.split_once(self.sep.as_str()) {
            Some((n, v)) => (n, v),
            None => (body, ""),
        };
        match name {
            "set_separator" => self.set_sep = unescape_hex(value),
            "empty_field" => self.empty = unescape_hex(value),
            "unset_field" => self.unset = unescape_hex(value),
            "path" => self.path = Some(value.to_string()),
            "fields" => {
                self.fields = Some(value.split(self.sep.as_str()).map(str::to_string).collect());
                self.types.clear();
            }
            "types" => self.types = value.split(self.sep.as_str()).map(str::to_string).collect(),
            _ => {}
        }
    }

    fn scalar(&self, ty: &str, v: &str) -> Value {
        match ty {
            "bool" => match v {
                "T" => Value::Bool(true),
                "F" => Value::Bool(false),
                _ => Value::String(v.to_string()),
            },
            "count" | "port" => v
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.to_string())),
            "int" => v
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(v.to_string())),
            "double" | "interval" | "time" => v
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(v.to_string())),
            _ => Value::String(v.to_string()),
        }
    }

    /// One data line to a JSON object, or why not.
    pub(crate) fn record(&self, line: &str) -> Result<Map<String, Value>, String> {
        let Some(fields) = &self.fields else {
            return Err("Zeek TSV data line before the #fields header".into());
        };
        let values: Vec<&str> = line.split(self.sep.as_str()).collect();
        if values.len() != fields.len() {
            return Err(format!(
                "Zeek TSV line has {} values for {} fields",
                values.len(),
                fields.len()
            ));
        }
        let mut raw = Map::new();
        if let Some(p) = &self.path {
            raw.insert("_path".into(), Value::String(p.clone()));
        }
        for (i, (name, v)) in fields.iter().zip(values).enumerate() {
            if v == self.unset {
                continue;
            }
            let ty = self.types.get(i).map(String::as_str).unwrap_or("string");
            let inner = ty
                .strip_prefix("set[")
                .or_else(|| ty.strip_prefix("vector["))
                .and_then(|t| t.strip_suffix(']'));
            let value = match inner {
                Some(inner_ty) => {
                    if v == self.empty {
                        Value::Array(Vec::new())
                    } else {
                        Value::Array(
                            v.split(self.set_sep.as_str())
                                .map(|e| {
                                    if e == self.unset {
                                        Value::Null
                                    } else {
                                        self.scalar(inner_ty, e)
                                    }
                                })
                                .collect(),
                        )
                    }
                }
                None if v == self.empty => Value::String(String::new()),
                None => self.scalar(ty, v),
            };
            raw.insert(name.clone(), value);
        }
        Ok(raw)
    }

    pub(crate) fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_and_underscore_names_agree() {
        let a = json!({"_path": "dns", "ts": "2018-03-24T17:15:20.865716Z", "id.orig_h": "10.0.0.1",
            "id.orig_p": 5353, "id.resp_h": "10.0.0.2", "id.resp_p": 53, "proto": "udp",
            "query": "Example.COM", "qtype_name": "A", "rcode_name": "NOERROR", "answers": ["192.0.2.1"]});
        let b = json!({"@stream": "dns", "ts": 1521911720.865716, "id_orig_h": "10.0.0.1",
            "id_orig_p": 5353, "id_resp_h": "10.0.0.2", "id_resp_p": 53, "proto": "udp",
            "query": "example.com", "qtype_name": "A", "rcode_name": "NOERROR", "answers": ["192.0.2.1"]});
        let (a, b) = (from_value(a).unwrap(), from_value(b).unwrap());
        assert_eq!(a.fields, b.fields);
        assert_eq!(a.time, b.time);
        assert_eq!(a.source, "zeek.dns");
        assert_eq!(a.class, OcsfClass::DnsActivity);
        assert_eq!(a.fields.dns_query.as_deref(), Some("example.com"));
    }

    #[test]
    fn http_url() {
        let e = from_value(json!({"@stream": "http", "ts": 1.0, "id_resp_h": "192.168.0.4",
            "method": "GET", "host": "Example.com", "uri": "/a?b", "status_code": 404, "user_agent": "curl"}))
        .unwrap();
        assert_eq!(e.class, OcsfClass::HttpActivity);
        assert_eq!(e.fields.url.as_deref(), Some("http://Example.com/a?b"));
        assert_eq!(e.fields.http_host.as_deref(), Some("example.com"));
        assert_eq!(e.fields.http_status, Some(404));
    }

    #[test]
    fn tsv_types() {
        let mut h = TsvHeader::default();
        h.header("#separator \\x09");
        h.header("#set_separator\t,");
        h.header("#path\tdns");
        h.header("#fields\tts\tid.orig_p\tquery\tanswers\tTTLs\tAA\tqtype_name\trtt");
        h.header(
            "#types\ttime\tport\tstring\tvector[string]\tvector[interval]\tbool\tstring\tinterval",
        );
        let r = h
            .record("1521911720.865716\t53\tx.example\ta,b\t(empty)\tT\t-\t0.5")
            .unwrap();
        assert_eq!(
            Value::Object(r),
            json!({"_path": "dns", "ts": 1521911720.865716, "id.orig_p": 53, "query": "x.example",
                   "answers": ["a", "b"], "TTLs": [], "AA": true, "rtt": 0.5})
        );
        assert!(h.record("1\t2").is_err());
    }
}
