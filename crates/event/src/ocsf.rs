//! The OCSF 1.3 rendering of an [`Event`]: one mapping, used by the
//! archive (its Parquet columns) and by [`Event::to_ocsf`] (JSON).
//!
//! Per class (`class_uid`): which [`Normalized`] field lands where.
//!
//! | OCSF attribute | from | classes |
//! |---|---|---|
//! | `class_uid`, `category_uid`, `type_uid` (`class_uid * 100 + activity_id`) | [`OcsfClass`] | all |
//! | `activity_id` | see [`activity_id`] | all |
//! | `severity_id` | `severity` (the source's word, kept in `unmapped.severity`) | all |
//! | `status_id`, `status` | `status` (`success`/`failure`; other words kept in `unmapped.status`) | all |
//! | `time`, `metadata.logged_time` | event time, receive time (Unix ms) | all |
//! | `metadata.uid`, `metadata.tenant_uid`, `metadata.product.name` | id, org, source | all |
//! | `src_endpoint.ip/port`, `dst_endpoint.ip/port/hostname` | `src_ip`, `src_port`, `dst_ip`, `dst_port`, `http_host` | all |
//! | `device.hostname`, `connection_info.protocol_name`, `message` | `hostname`, `protocol`, `message` | all |
//! | `query.hostname`, `query.type`, `rcode`, `answers[].rdata` | `dns_query`, `dns_qtype`, `dns_rcode`, `dns_answers` | 4003 DNS Activity |
//! | `http_request.url.url_string/hostname`, `http_request.http_method/user_agent`, `http_response.code` | `url`, `http_host`, `http_method`, `user_agent`, `http_status` | 4002 HTTP Activity |
//! | `process.name/cmd_line/pid/parent_process.name` | `process_*`, `parent_process_name` | 1007 Process Activity |
//! | `actor.process.…` (same fields) | the same, for the process that acted | other classes |
//! | `actor.user.name` | `user` | all |
//! | `api.operation`, `api.service.name`, `cloud.account.uid`, `cloud.region` | `api_*`, `cloud_*` | 6003 API Activity |
//! | `file.name`, `file.hashes[].algorithm/value` | `file_name`, `file_hashes` | 1001 File System Activity |
//! | `unmapped` | what no attribute holds as given (`severity`, a `status` word) | all |
//!
//! A field is written wherever the event has it, whatever the class (an
//! endpoint's `http_host` on a network event, say): no data is dropped.

use crate::{Event, EventBody, Normalized, OcsfClass};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The OCSF version the rendering follows.
pub const OCSF_VERSION: &str = "1.3.0";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Product {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub product: Product,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logged_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_uid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Device {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsAnswer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdata: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Url {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Named {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Process {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd_line: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_process: Option<Named>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Actor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Named>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hash {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct File {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Api {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Named>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cloud {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One event in OCSF 1.3 shape, plus mimamori's own attributes (`id`,
/// `org_id`, `received`, `raw`). `U` is how `unmapped` and `raw` are
/// carried: JSON text in the archive's Parquet columns, objects in JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Ocsf<U> {
    pub class_uid: u32,
    pub class_name: String,
    pub category_uid: u32,
    pub category_name: String,
    pub activity_id: u32,
    pub type_uid: u64,
    pub severity_id: u32,
    pub time: i64,
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_endpoint: Option<Endpoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<ConnectionInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<DnsQuery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rcode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<DnsAnswer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_request: Option<HttpRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_response: Option<HttpResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<Api>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// What no attribute above holds as the source gave it.
    pub unmapped: U,
    pub org_id: String,
    pub id: String,
    pub received: i64,
    /// The original record.
    pub raw: U,
}

/// OCSF `category_name` of a category uid.
fn category_name(uid: u32) -> &'static str {
    match uid {
        1 => "System Activity",
        3 => "Identity & Access Management",
        4 => "Network Activity",
        6 => "Application Activity",
        _ => "Other",
    }
}

/// OCSF `class_name`.
pub fn class_name(class: OcsfClass) -> &'static str {
    match class {
        OcsfClass::FileActivity => "File System Activity",
        OcsfClass::ProcessActivity => "Process Activity",
        OcsfClass::Authentication => "Authentication",
        OcsfClass::NetworkActivity => "Network Activity",
        OcsfClass::HttpActivity => "HTTP Activity",
        OcsfClass::DnsActivity => "DNS Activity",
        OcsfClass::ApiActivity => "API Activity",
        OcsfClass::BaseEvent => "Base Event",
    }
}

/// The class whose `class_uid` is `uid`.
pub fn class_of_uid(uid: u32) -> Option<OcsfClass> {
    OcsfClass::ALL.into_iter().find(|c| c.uid() == uid)
}

fn raw_str(raw: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match raw.get(*k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// The OCSF `activity_id` of an event, from what its source says: the
/// Windows event id for process, authentication and file events; the HTTP
/// method; the verb of a cloud API call; query or traffic for DNS. 0
/// (Unknown) when nothing says.
pub fn activity_id(class: OcsfClass, f: &Normalized, raw: &Map<String, Value>) -> u32 {
    let event_id = || raw_str(raw, &["EventID", "event_id", "EventId"]);
    match class {
        OcsfClass::ProcessActivity => match event_id().as_deref() {
            Some("1" | "4688") => 1, // Launch
            Some("5" | "4689") => 2, // Terminate
            Some("10") => 3,         // Open
            Some("8") => 4,          // Inject
            _ if f.process_cmdline.is_some() => 1,
            _ => 0,
        },
        OcsfClass::Authentication => match event_id().as_deref() {
            Some("4624" | "4625" | "4648" | "4768" | "4769" | "4776") => 1, // Logon
            Some("4634" | "4647") => 2,                                     // Logoff
            _ if f.api_operation.as_deref() == Some("ConsoleLogin") => 1,
            _ => 0,
        },
        OcsfClass::FileActivity => match event_id().as_deref() {
            Some("11") => 1,        // Create
            Some("23" | "26") => 4, // Delete
            _ => 0,
        },
        OcsfClass::HttpActivity => {
            match f
                .http_method
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                Some("CONNECT") => 1,
                Some("DELETE") => 2,
                Some("GET") => 3,
                Some("HEAD") => 4,
                Some("OPTIONS") => 5,
                Some("POST") => 6,
                Some("PUT") => 7,
                Some("TRACE") => 8,
                Some("PATCH") => 9,
                Some(_) => 99,
                None => 0,
            }
        }
        OcsfClass::DnsActivity => {
            if f.dns_rcode.is_some() || !f.dns_answers.is_empty() {
                6 // Traffic: a query and its response
            } else if f.dns_query.is_some() {
                1 // Query
            } else {
                0
            }
        }
        OcsfClass::ApiActivity => {
            let op = f.api_operation.as_deref().unwrap_or("");
            let starts = |ps: &[&str]| ps.iter().any(|p| op.starts_with(p));
            if op.is_empty() {
                0
            } else if starts(&["Create", "Put", "Run", "Add", "Register", "Import", "Start"]) {
                1
            } else if starts(&[
                "Get", "List", "Describe", "Lookup", "Head", "Search", "Scan",
            ]) {
                2
            } else if starts(&[
                "Update",
                "Modify",
                "Set",
                "Attach",
                "Associate",
                "Enable",
                "Disable",
                "Change",
                "Reset",
                "Tag",
                "Untag",
            ]) {
                3
            } else if starts(&[
                "Delete",
                "Remove",
                "Detach",
                "Disassociate",
                "Terminate",
                "Stop",
                "Deregister",
            ]) {
                4
            } else {
                99
            }
        }
        OcsfClass::NetworkActivity => {
            if f.src_ip.is_some() || f.dst_ip.is_some() {
                6 // Traffic
            } else {
                0
            }
        }
        OcsfClass::BaseEvent => 0,
    }
}

/// OCSF `severity_id` of a source's severity word or number (syslog
/// levels, CEF 0-10, Windows levels).
pub fn severity_id(s: Option<&str>) -> u32 {
    let Some(s) = s else { return 0 };
    let s = s.trim().to_ascii_lowercase();
    if let Ok(n) = s.parse::<u32>() {
        // CEF severity 0-10.
        return match n {
            0..=3 => 2,
            4..=6 => 3,
            7..=8 => 4,
            9..=10 => 5,
            _ => 99,
        };
    }
    match s.as_str() {
        "info" | "informational" | "information" | "notice" | "debug" | "verbose" => 1,
        "low" => 2,
        "medium" | "warning" | "warn" => 3,
        "high" | "error" | "err" => 4,
        "critical" | "crit" | "alert" => 5,
        "emergency" | "emerg" | "fatal" => 6,
        "unknown" | "" => 0,
        _ => 99,
    }
}

fn some_if<T: Default + PartialEq>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

impl Event {
    /// The event's OCSF rendering: the one mapping the archive's columns
    /// and [`Event::to_ocsf`] share. `unmapped` is the object of what no
    /// attribute holds (the source's severity and status words); `text`
    /// turns it and the original record into the carrier `U`.
    pub fn ocsf<U>(&self, text: impl Fn(&Map<String, Value>) -> U, raw: U) -> Ocsf<U> {
        let f = &self.body.fields;
        let class = self.body.class;
        let activity = activity_id(class, f, &self.body.raw);
        let mut unmapped = Map::new();
        if let Some(s) = &f.severity {
            unmapped.insert("severity".into(), Value::String(s.clone()));
        }
        let (status_id, status) = match f.status.as_deref() {
            None => (None, None),
            Some(s) => {
                // Only the exact words round-trip through `status_id`;
                // any other spelling is kept as given.
                if s != "success" && s != "failure" {
                    unmapped.insert("status".into(), Value::String(s.to_string()));
                }
                if s.eq_ignore_ascii_case("success") {
                    (Some(1), Some("Success".to_string()))
                } else if s.eq_ignore_ascii_case("failure") {
                    (Some(2), Some("Failure".to_string()))
                } else {
                    (Some(99), Some("Other".to_string()))
                }
            }
        };
        let process = some_if(Process {
            name: f.process_name.clone(),
            cmd_line: f.process_cmdline.clone(),
            pid: f.process_pid,
            parent_process: f
                .parent_process_name
                .clone()
                .map(|n| Named { name: Some(n) }),
        });
        let (process, actor_process) = if class == OcsfClass::ProcessActivity {
            (process, None)
        } else {
            (None, process)
        };
        Ocsf {
            class_uid: class.uid(),
            class_name: class_name(class).into(),
            category_uid: class.category_uid(),
            category_name: category_name(class.category_uid()).into(),
            activity_id: activity,
            type_uid: u64::from(class.uid()) * 100 + u64::from(activity),
            severity_id: severity_id(f.severity.as_deref()),
            time: self.time(),
            metadata: Metadata {
                uid: Some(self.id.clone()),
                version: Some(OCSF_VERSION.into()),
                product: Product {
                    name: Some(self.body.source.clone()),
                    vendor_name: Some("mimamori".into()),
                },
                logged_time: Some(self.received),
                tenant_uid: Some(self.org_id.clone()),
            },
            status_id,
            status,
            message: f.message.clone(),
            src_endpoint: some_if(Endpoint {
                ip: f.src_ip.clone(),
                port: f.src_port,
                hostname: None,
            }),
            dst_endpoint: some_if(Endpoint {
                ip: f.dst_ip.clone(),
                port: f.dst_port,
                hostname: f.http_host.clone(),
            }),
            device: some_if(Device {
                hostname: f.hostname.clone(),
            }),
            connection_info: some_if(ConnectionInfo {
                protocol_name: f.protocol.clone(),
            }),
            query: some_if(DnsQuery {
                hostname: f.dns_query.clone(),
                qtype: f.dns_qtype.clone(),
            }),
            rcode: f.dns_rcode.clone(),
            answers: f
                .dns_answers
                .iter()
                .map(|a| DnsAnswer {
                    rdata: Some(a.clone()),
                })
                .collect(),
            http_request: some_if(HttpRequest {
                url: some_if(Url {
                    url_string: f.url.clone(),
                    hostname: f.http_host.clone(),
                }),
                http_method: f.http_method.clone(),
                user_agent: f.user_agent.clone(),
            }),
            http_response: f.http_status.map(|c| HttpResponse { code: Some(c) }),
            actor: some_if(Actor {
                user: f.user.clone().map(|n| Named { name: Some(n) }),
                process: actor_process,
            }),
            process,
            file: some_if(File {
                name: f.file_name.clone(),
                hashes: f
                    .file_hashes
                    .iter()
                    .map(|(a, v)| Hash {
                        algorithm: Some(a.clone()),
                        value: Some(v.clone()),
                    })
                    .collect(),
            }),
            api: some_if(Api {
                operation: f.api_operation.clone(),
                service: f.api_service.clone().map(|n| Named { name: Some(n) }),
            }),
            cloud: some_if(Cloud {
                account: f.cloud_account.clone().map(|u| Account { uid: Some(u) }),
                region: f.cloud_region.clone(),
            }),
            unmapped: text(&unmapped),
            org_id: self.org_id.clone(),
            id: self.id.clone(),
            received: self.received,
            raw,
        }
    }

    /// The OCSF JSON rendering of this event ([`Event::ocsf`] with
    /// `unmapped` and `raw` as objects).
    pub fn to_ocsf(&self) -> Value {
        let o = self.ocsf(
            |m| Value::Object(m.clone()),
            Value::Object(self.body.raw.clone()),
        );
        serde_json::to_value(o).unwrap_or(Value::Null)
    }
}

impl<U> Ocsf<U> {
    /// The event back from its OCSF rendering (the inverse of
    /// [`Event::ocsf`]); `unmapped` and `raw` given as objects.
    pub fn into_event(self, unmapped: Map<String, Value>, raw: Map<String, Value>) -> Event {
        let word = |k: &str| match unmapped.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let process = self
            .process
            .or_else(|| self.actor.as_ref().and_then(|a| a.process.clone()))
            .unwrap_or_default();
        let src = self.src_endpoint.unwrap_or_default();
        let dst = self.dst_endpoint.unwrap_or_default();
        let req = self.http_request.unwrap_or_default();
        let url = req.url.unwrap_or_default();
        let query = self.query.unwrap_or_default();
        let file = self.file.unwrap_or_default();
        let api = self.api.unwrap_or_default();
        let cloud = self.cloud.unwrap_or_default();
        let fields = Normalized {
            src_ip: src.ip,
            src_port: src.port,
            dst_ip: dst.ip,
            dst_port: dst.port,
            protocol: self.connection_info.and_then(|c| c.protocol_name),
            hostname: self.device.and_then(|d| d.hostname),
            user: self.actor.and_then(|a| a.user).and_then(|u| u.name),
            dns_query: query.hostname,
            dns_qtype: query.qtype,
            dns_rcode: self.rcode,
            dns_answers: self.answers.into_iter().filter_map(|a| a.rdata).collect(),
            url: url.url_string,
            http_host: url.hostname.or(dst.hostname),
            http_method: req.http_method,
            http_status: self.http_response.and_then(|r| r.code),
            user_agent: req.user_agent,
            process_name: process.name,
            process_cmdline: process.cmd_line,
            process_pid: process.pid,
            parent_process_name: process.parent_process.and_then(|p| p.name),
            file_name: file.name,
            file_hashes: file
                .hashes
                .into_iter()
                .filter_map(|h| Some((h.algorithm?, h.value?)))
                .collect(),
            api_operation: api.operation,
            api_service: api.service.and_then(|s| s.name),
            cloud_account: cloud.account.and_then(|a| a.uid),
            cloud_region: cloud.region,
            status: word("status").or(match self.status_id {
                Some(1) => Some("success".into()),
                Some(2) => Some("failure".into()),
                _ => None,
            }),
            message: self.message,
            severity: word("severity"),
        };
        Event {
            id: self.id,
            org_id: self.org_id,
            received: self.received,
            body: EventBody {
                time: Some(self.time),
                class: class_of_uid(self.class_uid).unwrap_or(OcsfClass::BaseEvent),
                source: self.metadata.product.name.unwrap_or_default(),
                fields,
                raw,
            },
        }
    }
}
