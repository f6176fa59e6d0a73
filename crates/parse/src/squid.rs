//! Squid's native `access.log` format:
//! `time elapsed client action/status bytes method URL user hierarchy/peer type`.

use crate::{norm, timefmt};
use mimamori_event::{EventBody, Normalized, OcsfClass};
use serde_json::{Map, Value};

pub(crate) fn from_line(line: &str) -> Result<EventBody, String> {
    let t: Vec<&str> = line.split_whitespace().collect();
    if t.len() < 7 {
        return Err(format!(
            "Squid access.log line has {} fields, expected 10",
            t.len()
        ));
    }
    let time = timefmt::epoch(t[0])
        .ok_or_else(|| format!("Squid time stamp {:?} is not epoch seconds", t[0]))?;
    let (action, status) = t[3]
        .split_once('/')
        .ok_or_else(|| format!("Squid result {:?} is not ACTION/STATUS", t[3]))?;
    let mut raw = Map::new();
    let mut put = |k: &str, v: &str| {
        raw.insert(k.to_string(), Value::String(v.to_string()));
    };
    put("time", t[0]);
    put("elapsed", t[1]);
    put("client", t[2]);
    put("action", action);
    put("status", status);
    put("bytes", t[4]);
    put("method", t[5]);
    put("url", t[6]);
    let mut peer = None;
    if let Some(u) = t.get(7) {
        put("user", u);
    }
    if let Some(h) = t.get(8) {
        let (hi, pe) = h.split_once('/').unwrap_or((h, "-"));
        put("hierarchy", hi);
        put("peer", pe);
        peer = Some(pe);
    }
    if let Some(ty) = t.get(9) {
        put("type", ty);
    }
    if t.len() > 10 {
        put("extra", &t[10..].join(" "));
    }
    let url = t[6];
    let f = Normalized {
        src_ip: norm::ip(t[2]),
        dst_ip: peer.and_then(norm::ip),
        http_method: (t[5] != "-").then(|| t[5].to_string()),
        http_status: status.parse().ok().filter(|s| *s != 0),
        url: (url != "-").then(|| url.to_string()),
        http_host: norm::url_host(url),
        user: t.get(7).filter(|u| **u != "-").map(|u| u.to_string()),
        status: Some(action.to_string()),
        ..Default::default()
    };
    Ok(EventBody {
        time: Some(time),
        class: OcsfClass::HttpActivity,
        source: "squid".into(),
        fields: f,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_line() {
        let e = from_line("1286536309.586    921 192.168.0.68 TCP_MISS/200 507 GET http://www.google.com/ - DIRECT/74.125.39.103 text/html").unwrap();
        assert_eq!(e.time, Some(1_286_536_309_586));
        assert_eq!(e.fields.src_ip.as_deref(), Some("192.168.0.68"));
        assert_eq!(e.fields.dst_ip.as_deref(), Some("74.125.39.103"));
        assert_eq!(e.fields.http_status, Some(200));
        assert_eq!(e.fields.http_method.as_deref(), Some("GET"));
        assert_eq!(e.fields.http_host.as_deref(), Some("www.google.com"));
        assert_eq!(e.fields.user, None);
        assert_eq!(e.raw["action"], "TCP_MISS");
        assert_eq!(e.raw["type"], "text/html");
        let e = from_line("1286536309.586 5 10.0.0.1 TCP_TUNNEL/200 0 CONNECT Example.org:443 alice HIER_DIRECT/93.184.216.34 -").unwrap();
        assert_eq!(e.fields.http_host.as_deref(), Some("example.org"));
        assert_eq!(e.fields.user.as_deref(), Some("alice"));
        assert!(from_line("hello world").is_err());
        assert!(from_line("x 1 2 3/4 5 6 7").is_err());
    }
}
