//! AWS CloudTrail: `{"Records": [...]}` documents, one record per line, the
//! Logstash shape with `@timestamp`, and `{"log": {...}}` wrappers (Panther
//! test cases). Field names are looked up exactly, then ignoring case (some
//! exports lower-case them: `eventname`).

use crate::{norm, timefmt, windows::kind};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{Map, Value};

/// Keys of which a CloudTrail record has at least one.
const MARKERS: [&str; 8] = [
    "eventName",
    "eventSource",
    "eventTime",
    "eventVersion",
    "eventID",
    "userIdentity",
    "awsRegion",
    "recipientAccountId",
];

/// The records in one top-level JSON value.
pub(crate) fn records(v: Value) -> Vec<Result<EventBody, String>> {
    match v {
        Value::Object(mut o) => {
            if let Some(Value::Array(recs)) = o.get_mut("Records").map(Value::take) {
                return recs
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| match r {
                        Value::Object(m) => {
                            from_record(m).map_err(|e| format!("Records[{i}]: {e}"))
                        }
                        other => Err(format!("Records[{i}] is {}, not an object", kind(&other))),
                    })
                    .collect();
            }
            if !is_record(&o) {
                if let Some(Value::Object(log)) = o.remove("log") {
                    return vec![from_record(log)];
                }
            }
            vec![from_record(o)]
        }
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Value::Object(m) => from_record(m).map_err(|e| format!("[{i}]: {e}")),
                other => Err(format!("[{i}] is {}, not an object", kind(&other))),
            })
            .collect(),
        other => vec![Err(format!(
            "expected a JSON object, found {}",
            kind(&other)
        ))],
    }
}

fn is_record(o: &Map<String, Value>) -> bool {
    MARKERS.iter().any(|k| norm::get_ci(o, k).is_some())
}

fn text(o: &Map<String, Value>, k: &str) -> Option<String> {
    norm::text(norm::get_ci(o, k))
}

/// One CloudTrail record.
pub(crate) fn from_record(raw: Map<String, Value>) -> Result<EventBody, String> {
    if !is_record(&raw) {
        return Err(
            "not a CloudTrail record: no eventName, eventSource, eventTime or userIdentity".into(),
        );
    }
    let ui = norm::get_ci(&raw, "userIdentity").and_then(Value::as_object);
    let error =
        norm::get_ci(&raw, "errorCode").is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
    let f = Normalized {
        api_operation: text(&raw, "eventName"),
        api_service: text(&raw, "eventSource"),
        src_ip: text(&raw, "sourceIPAddress").and_then(|s| norm::ip(&s)),
        user: ui.and_then(|u| text(u, "arn").or_else(|| text(u, "userName"))),
        cloud_account: text(&raw, "recipientAccountId")
            .or_else(|| ui.and_then(|u| text(u, "accountId"))),
        cloud_region: text(&raw, "awsRegion"),
        status: Some(if error { "failure" } else { "success" }.to_string()),
        user_agent: text(&raw, "userAgent"),
        message: text(&raw, "errorMessage"),
        ..Default::default()
    };
    let time = norm::get_ci(&raw, "eventTime")
        .and_then(timefmt::from_value)
        .or_else(|| raw.get("@timestamp").and_then(timefmt::from_value));
    Ok(EventBody {
        time,
        class: OcsfClass::ApiActivity,
        source: "cloudtrail".into(),
        fields: f,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn record_shapes() {
        let r = json!({"eventTime": "2020-01-01T00:00:00Z", "eventName": "GetObject", "eventSource": "s3.amazonaws.com",
            "sourceIPAddress": "ec2.amazonaws.com", "userIdentity": {"userName": "bob", "accountId": "1"},
            "awsRegion": "us-east-1", "errorCode": "AccessDenied"});
        let out = records(json!({"Records": [r.clone(), 5]}));
        assert_eq!(out.len(), 2);
        let e = out[0].as_ref().unwrap();
        assert_eq!(e.fields.api_operation.as_deref(), Some("GetObject"));
        assert_eq!(e.fields.src_ip, None);
        assert_eq!(e.fields.user.as_deref(), Some("bob"));
        assert_eq!(e.fields.cloud_account.as_deref(), Some("1"));
        assert_eq!(e.fields.status.as_deref(), Some("failure"));
        assert_eq!(e.time, Some(1_577_836_800_000));
        assert!(out[1].is_err());
        let out = records(
            json!({"rule_id": "x", "log": {"eventname": "ListBuckets", "sourceIPAddress": "1.2.3.4"}}),
        );
        let e = out[0].as_ref().unwrap();
        assert_eq!(e.fields.api_operation.as_deref(), Some("ListBuckets"));
        assert_eq!(e.fields.src_ip.as_deref(), Some("1.2.3.4"));
        assert_eq!(e.fields.status.as_deref(), Some("success"));
        assert!(records(json!({"a": 1}))[0].is_err());
    }
}
