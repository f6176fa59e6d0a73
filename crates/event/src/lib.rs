//! The event model every telemetry source is normalized into.
//!
//! An event keeps two views of one record:
//! - [`Normalized`] fields, named after OCSF attributes, for indicator
//!   matching and cross-source queries (`src_ip`, `dns_query`, `url`, …);
//! - the record's original fields in [`EventBody::raw`], untouched, so Sigma
//!   rules (which use the source's field names: `EventID`, `CommandLine`,
//!   `id.orig_h`, `eventName`) match what the source actually said.
//!
//! [`Event::to_ocsf`] renders the OCSF JSON shape (class, category,
//! endpoints, `unmapped` original fields) for export.
//!
//! Architecture invariant: this crate knows no wire protocol, no storage and
//! no parser. It is plain data that every other crate can depend on.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Milliseconds since the Unix epoch.
pub type UnixMillis = i64;

/// The OCSF event classes mimamori normalizes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OcsfClass {
    /// 1001 File System Activity.
    FileActivity,
    /// 1007 Process Activity.
    ProcessActivity,
    /// 3002 Authentication.
    Authentication,
    /// 4001 Network Activity.
    NetworkActivity,
    /// 4002 HTTP Activity.
    HttpActivity,
    /// 4003 DNS Activity.
    DnsActivity,
    /// 6003 API Activity (cloud control-plane calls).
    ApiActivity,
    /// 0 Base Event: anything without a more specific class.
    BaseEvent,
}

impl OcsfClass {
    pub const ALL: [OcsfClass; 8] = [
        OcsfClass::FileActivity,
        OcsfClass::ProcessActivity,
        OcsfClass::Authentication,
        OcsfClass::NetworkActivity,
        OcsfClass::HttpActivity,
        OcsfClass::DnsActivity,
        OcsfClass::ApiActivity,
        OcsfClass::BaseEvent,
    ];

    /// The OCSF `class_uid`.
    pub fn uid(self) -> u32 {
        match self {
            OcsfClass::FileActivity => 1001,
            OcsfClass::ProcessActivity => 1007,
            OcsfClass::Authentication => 3002,
            OcsfClass::NetworkActivity => 4001,
            OcsfClass::HttpActivity => 4002,
            OcsfClass::DnsActivity => 4003,
            OcsfClass::ApiActivity => 6003,
            OcsfClass::BaseEvent => 0,
        }
    }

    /// The OCSF `category_uid` (class_uid / 1000).
    pub fn category_uid(self) -> u32 {
        self.uid() / 1000
    }

    /// Short stable name used in partition paths and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            OcsfClass::FileActivity => "file_activity",
            OcsfClass::ProcessActivity => "process_activity",
            OcsfClass::Authentication => "authentication",
            OcsfClass::NetworkActivity => "network_activity",
            OcsfClass::HttpActivity => "http_activity",
            OcsfClass::DnsActivity => "dns_activity",
            OcsfClass::ApiActivity => "api_activity",
            OcsfClass::BaseEvent => "base_event",
        }
    }

    pub fn parse(s: &str) -> Option<OcsfClass> {
        OcsfClass::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Normalized fields, named after the OCSF attributes they map to. All are
/// optional: a source fills what it knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Normalized {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    /// Transport protocol name (`tcp`, `udp`, `icmp`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Host name of the device that logged the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,

    /// DNS question name, lower-case, no trailing dot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_query: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_qtype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_rcode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_answers: Vec<String>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Server host name of an HTTP/TLS connection (Host header, SNI).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,

    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_cmdline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_process_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// File hashes as `algorithm → lower-case hex` (`md5`, `sha1`, `sha256`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub file_hashes: Vec<(String, String)>,

    /// Cloud API operation (CloudTrail `eventName`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_operation: Option<String>,
    /// Cloud API service (CloudTrail `eventSource`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_region: Option<String>,

    /// Outcome: `success`, `failure` or the source's own word.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Free-text message (syslog MSG, CEF name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Source severity, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
}

/// What a parser produces from one record: everything but the identity and
/// tenancy that ingestion assigns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBody {
    /// When the event happened (ms). `None` when the record has no usable
    /// time; ingestion then uses the receive time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<UnixMillis>,
    pub class: OcsfClass,
    /// Source type, dotted: `zeek.dns`, `windows.security`, `cloudtrail`,
    /// `syslog`, `squid`, `cef`, `bind.query`, `ndjson`.
    pub source: String,
    #[serde(default)]
    pub fields: Normalized,
    /// The record's original fields (an object).
    pub raw: Map<String, Value>,
}

/// A stored event: a body with its id, org and receive time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// UUIDv7 assigned when the event entered the write-ahead log; stable
    /// across replays, so storage can be idempotent on it.
    pub id: String,
    /// The org the event belongs to (from the sensor's token or the
    /// sender's declared network), never from the payload.
    pub org_id: String,
    /// When mimamori received it (ms).
    pub received: UnixMillis,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// The event time, falling back to the receive time.
    pub fn time(&self) -> UnixMillis {
        self.body.time.unwrap_or(self.received)
    }

    /// The OCSF JSON rendering of this event.
    pub fn to_ocsf(&self) -> Value {
        let f = &self.body.fields;
        let class = self.body.class;
        let mut o = Map::new();
        o.insert("class_uid".into(), json!(class.uid()));
        o.insert("category_uid".into(), json!(class.category_uid()));
        o.insert("time".into(), json!(self.time()));
        o.insert(
            "metadata".into(),
            json!({
                "uid": self.id,
                "version": "1.3.0",
                "logged_time": self.received,
                "product": {"name": self.body.source, "vendor_name": "mimamori"},
                "tenant_uid": self.org_id,
            }),
        );
        let endpoint = |ip: &Option<String>, port: &Option<u16>, host: Option<&String>| {
            let mut e = Map::new();
            if let Some(ip) = ip {
                e.insert("ip".into(), json!(ip));
            }
            if let Some(p) = port {
                e.insert("port".into(), json!(p));
            }
            if let Some(h) = host {
                e.insert("hostname".into(), json!(h));
            }
            (!e.is_empty()).then_some(Value::Object(e))
        };
        if let Some(e) = endpoint(&f.src_ip, &f.src_port, None) {
            o.insert("src_endpoint".into(), e);
        }
        if let Some(e) = endpoint(&f.dst_ip, &f.dst_port, f.http_host.as_ref()) {
            o.insert("dst_endpoint".into(), e);
        }
        if let Some(h) = &f.hostname {
            o.insert("device".into(), json!({"hostname": h}));
        }
        if let Some(p) = &f.protocol {
            o.insert("connection_info".into(), json!({"protocol_name": p}));
        }
        if let Some(q) = &f.dns_query {
            let mut query = json!({"hostname": q});
            if let Some(t) = &f.dns_qtype {
                query["type"] = json!(t);
            }
            o.insert("query".into(), query);
        }
        if let Some(r) = &f.dns_rcode {
            o.insert("rcode".into(), json!(r));
        }
        if !f.dns_answers.is_empty() {
            let answers: Vec<Value> = f.dns_answers.iter().map(|a| json!({"rdata": a})).collect();
            o.insert("answers".into(), Value::Array(answers));
        }
        if f.url.is_some() || f.http_method.is_some() {
            o.insert(
                "http_request".into(),
                json!({"url": {"url_string": f.url, "hostname": f.http_host}, "http_method": f.http_method, "user_agent": f.user_agent}),
            );
        }
        if let Some(s) = f.http_status {
            o.insert("http_response".into(), json!({"code": s}));
        }
        let mut actor = Map::new();
        if let Some(u) = &f.user {
            actor.insert("user".into(), json!({"name": u}));
        }
        if f.process_name.is_some() || f.process_cmdline.is_some() {
            actor.insert(
                "process".into(),
                json!({"name": f.process_name, "cmd_line": f.process_cmdline, "pid": f.process_pid,
                       "parent_process": f.parent_process_name.as_ref().map(|n| json!({"name": n}))}),
            );
        }
        if !actor.is_empty() {
            o.insert("actor".into(), Value::Object(actor));
        }
        if f.file_name.is_some() || !f.file_hashes.is_empty() {
            let hashes: Vec<Value> = f
                .file_hashes
                .iter()
                .map(|(alg, v)| json!({"algorithm": alg, "value": v}))
                .collect();
            o.insert(
                "file".into(),
                json!({"name": f.file_name, "hashes": hashes}),
            );
        }
        if f.api_operation.is_some() {
            o.insert(
                "api".into(),
                json!({"operation": f.api_operation, "service": {"name": f.api_service}}),
            );
        }
        if f.cloud_account.is_some() || f.cloud_region.is_some() {
            o.insert(
                "cloud".into(),
                json!({"account": {"uid": f.cloud_account}, "region": f.cloud_region}),
            );
        }
        if let Some(s) = &f.status {
            o.insert("status".into(), json!(s));
        }
        if let Some(m) = &f.message {
            o.insert("message".into(), json!(m));
        }
        if let Some(s) = &f.severity {
            o.insert("severity".into(), json!(s));
        }
        o.insert("unmapped".into(), Value::Object(self.body.raw.clone()));
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for c in OcsfClass::ALL {
            assert_eq!(OcsfClass::parse(c.as_str()), Some(c));
            let j = serde_json::to_string(&c).unwrap();
            assert_eq!(j, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn ocsf_rendering_of_a_dns_event() {
        let mut raw = Map::new();
        raw.insert("id.orig_h".into(), json!("10.0.0.5"));
        let e = Event {
            id: "e1".into(),
            org_id: "o1".into(),
            received: 2000,
            body: EventBody {
                time: Some(1000),
                class: OcsfClass::DnsActivity,
                source: "zeek.dns".into(),
                fields: Normalized {
                    src_ip: Some("10.0.0.5".into()),
                    dns_query: Some("evil.example".into()),
                    dns_qtype: Some("A".into()),
                    dns_answers: vec!["192.0.2.1".into()],
                    ..Default::default()
                },
                raw,
            },
        };
        let o = e.to_ocsf();
        assert_eq!(o["class_uid"], 4003);
        assert_eq!(o["category_uid"], 4);
        assert_eq!(o["time"], 1000);
        assert_eq!(o["query"]["hostname"], "evil.example");
        assert_eq!(o["src_endpoint"]["ip"], "10.0.0.5");
        assert_eq!(o["answers"][0]["rdata"], "192.0.2.1");
        assert_eq!(o["metadata"]["tenant_uid"], "o1");
        assert_eq!(o["unmapped"]["id.orig_h"], "10.0.0.5");
        // The stored form round-trips.
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&s).unwrap(), e);
    }
}
