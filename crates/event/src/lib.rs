//! The event model every telemetry source is normalized into.
//!
//! An event keeps two views of one record:
//! - [`Normalized`] fields, named after OCSF attributes, for indicator
//!   matching and cross-source queries (`src_ip`, `dns_query`, `url`, …);
//! - the record's original fields in [`EventBody::raw`], untouched, so Sigma
//!   rules (which use the source's field names: `EventID`, `CommandLine`,
//!   `id.orig_h`, `eventName`) match what the source actually said.
//!
//! [`Event::ocsf`] renders the OCSF 1.3 shape (class, category, activity,
//! endpoints, per-class objects); the archive's Parquet columns and
//! [`Event::to_ocsf`] (JSON) both come from it. See [`ocsf`] for the
//! mapping per class.
//!
//! Architecture invariant: this crate knows no wire protocol, no storage and
//! no parser. It is plain data that every other crate can depend on.

pub mod ocsf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(o["activity_id"], 6);
        assert_eq!(o["type_uid"], 400306);
        assert_eq!(o["time"], 1000);
        assert_eq!(o["query"]["hostname"], "evil.example");
        assert_eq!(o["query"]["type"], "A");
        assert_eq!(o["src_endpoint"]["ip"], "10.0.0.5");
        assert_eq!(o["answers"][0]["rdata"], "192.0.2.1");
        assert_eq!(o["metadata"]["tenant_uid"], "o1");
        assert_eq!(o["metadata"]["product"]["name"], "zeek.dns");
        assert_eq!(o["metadata"]["version"], "1.3.0");
        assert_eq!(o["raw"]["id.orig_h"], "10.0.0.5");
        assert!(o.get("http_request").is_none());
        // The stored form round-trips.
        let s = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&s).unwrap(), e);
    }

    /// Every normalized field survives the OCSF rendering and back, in
    /// every class (process fields move between `process` and
    /// `actor.process` with the class).
    #[test]
    fn ocsf_round_trips_every_field() {
        let fields = Normalized {
            src_ip: Some("10.0.0.1".into()),
            src_port: Some(5353),
            dst_ip: Some("192.0.2.9".into()),
            dst_port: Some(443),
            protocol: Some("tcp".into()),
            hostname: Some("ws1".into()),
            user: Some("alice".into()),
            dns_query: Some("a.example".into()),
            dns_qtype: Some("AAAA".into()),
            dns_rcode: Some("NXDOMAIN".into()),
            dns_answers: vec!["x".into(), "y".into()],
            url: Some("https://a.example/p".into()),
            http_host: Some("a.example".into()),
            http_method: Some("POST".into()),
            http_status: Some(404),
            user_agent: Some("curl".into()),
            process_name: Some("cmd.exe".into()),
            process_cmdline: Some("cmd /c x".into()),
            process_pid: Some(4_000_000_000),
            parent_process_name: Some("explorer.exe".into()),
            file_name: Some("x.dll".into()),
            file_hashes: vec![("sha256".into(), "ab".into())],
            api_operation: Some("DeleteBucket".into()),
            api_service: Some("s3.amazonaws.com".into()),
            cloud_account: Some("123".into()),
            cloud_region: Some("ap-northeast-1".into()),
            status: Some("Denied".into()),
            message: Some("m".into()),
            severity: Some("warning".into()),
        };
        for class in OcsfClass::ALL {
            let e = Event {
                id: "e".into(),
                org_id: "o".into(),
                received: 5,
                body: EventBody {
                    time: Some(4),
                    class,
                    source: "s".into(),
                    fields: fields.clone(),
                    raw: json!({"EventID": 1}).as_object().cloned().unwrap(),
                },
            };
            let o = e.ocsf(|m| m.clone(), e.body.raw.clone());
            assert_eq!(o.class_uid, class.uid());
            assert_eq!(
                o.type_uid,
                u64::from(class.uid()) * 100 + u64::from(o.activity_id)
            );
            assert_eq!(o.severity_id, 3);
            let (u, r) = (o.unmapped.clone(), o.raw.clone());
            assert_eq!(o.into_event(u, r), e, "{class:?}");
        }
    }
}
