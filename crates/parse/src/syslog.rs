//! Syslog: RFC 5424 and RFC 3164 (BSD) lines. RFC 3164 time stamps carry no
//! year and no zone: the current year and UTC are assumed. A message body
//! that is CEF is parsed as CEF.

use crate::{cef, timefmt};
use mimamori_event::{EventBody, Normalized, OcsfClass, UnixMillis};
use serde_json::{Map, Value};

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A parsed syslog header and message.
#[derive(Debug, Default)]
pub(crate) struct Syslog<'a> {
    pub pri: Option<u8>,
    pub version: Option<u32>,
    pub timestamp: Option<&'a str>,
    pub time: Option<UnixMillis>,
    pub hostname: Option<&'a str>,
    pub appname: Option<&'a str>,
    pub procid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub sd: Option<Map<String, Value>>,
    pub msg: &'a str,
}

impl Syslog<'_> {
    /// The header fields as raw JSON fields, each key prefixed.
    pub(crate) fn put_raw(&self, raw: &mut Map<String, Value>, prefix: &str) {
        // Keys are joined by hand: `format!` per key cost more than the
        // whole header parse.
        let mut put = |k: &str, v: Value| {
            let mut key = String::with_capacity(prefix.len() + k.len());
            key.push_str(prefix);
            key.push_str(k);
            raw.insert(key, v);
        };
        if let Some(p) = self.pri {
            put("facility", Value::from(p >> 3));
            put("severity", Value::from(p & 7));
        }
        if let Some(v) = self.version {
            put("version", Value::from(v));
        }
        for (k, v) in [
            ("timestamp", self.timestamp),
            ("hostname", self.hostname),
            ("appname", self.appname),
            ("procid", self.procid),
            ("msgid", self.msgid),
        ] {
            if let Some(v) = v {
                put(k, Value::String(v.to_string()));
            }
        }
        if let Some(sd) = &self.sd {
            put("structured_data", Value::Object(sd.clone()));
        }
    }

    pub(crate) fn severity_name(&self) -> Option<String> {
        self.pri.map(|p| SEVERITIES[usize::from(p & 7)].to_string())
    }
}

/// Split off the first space-delimited token.
fn token(s: &str) -> (&str, &str) {
    match s.split_once(' ') {
        Some((t, rest)) => (t, rest),
        None => (s, ""),
    }
}

fn nil(t: &str) -> Option<&str> {
    (t != "-" && !t.is_empty()).then_some(t)
}

/// `<PRI>` at the start, if any.
fn pri(line: &str) -> Result<(Option<u8>, &str), String> {
    let Some(rest) = line.strip_prefix('<') else {
        return Ok((None, line));
    };
    let end = rest.find('>').ok_or("unterminated <PRI>")?;
    let p: u8 = rest[..end]
        .parse()
        .ok()
        .filter(|p| *p <= 191 && end <= 3)
        .ok_or("bad <PRI> value")?;
    Ok((Some(p), &rest[end + 1..]))
}

/// RFC 5424 structured data: `-` or `[id k="v" …]…`.
/// Structured data elements by id, each a map of parameters.
type Sd = Map<String, Value>;

fn structured_data(s: &str) -> Result<(Option<Sd>, &str), String> {
    if let Some(rest) = s.strip_prefix('-') {
        return Ok((None, rest));
    }
    let mut out = Map::new();
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        i += 1;
        let start = i;
        while i < b.len() && b[i] != b' ' && b[i] != b']' {
            i += 1;
        }
        let id = s[start..i].to_string();
        if id.is_empty() {
            return Err("structured data element without an id".into());
        }
        let mut params = Map::new();
        loop {
            match b.get(i) {
                Some(b']') => {
                    i += 1;
                    break;
                }
                Some(b' ') => i += 1,
                None => return Err("unterminated structured data".into()),
                Some(_) => {
                    let ns = i;
                    while i < b.len() && b[i] != b'=' && b[i] != b']' && b[i] != b' ' {
                        i += 1;
                    }
                    let name = s[ns..i].to_string();
                    if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
                        return Err(format!(
                            "structured data parameter {name:?} without =\"value\""
                        ));
                    }
                    i += 2;
                    let mut val = Vec::new();
                    loop {
                        match b.get(i) {
                            None => return Err("unterminated structured data value".into()),
                            Some(b'\\') if matches!(b.get(i + 1), Some(b'"' | b'\\' | b']')) => {
                                val.push(b[i + 1]);
                                i += 2;
                            }
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(&c) => {
                                val.push(c);
                                i += 1;
                            }
                        }
                    }
                    params.insert(
                        name,
                        Value::String(String::from_utf8_lossy(&val).into_owned()),
                    );
                }
            }
        }
        out.insert(id, Value::Object(params));
    }
    if out.is_empty() {
        return Err("structured data is neither - nor [...]".into());
    }
    Ok((Some(out), &s[i..]))
}

/// `Mmm dd hh:mm:ss` (optionally with a year before the clock), returning
/// the time and the rest of the line.
fn bsd_time(s: &str) -> Option<(UnixMillis, &str, &str)> {
    let month = timefmt::month(s)?;
    let after = s.get(3..)?;
    if !after.starts_with(' ') {
        return None;
    }
    let after = after.trim_start_matches(' ');
    let (day, rest) = token(after);
    let day: u8 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let (mut clock_tok, mut rest) = token(rest);
    let mut year = None;
    if clock_tok.len() == 4 && clock_tok.bytes().all(|b| b.is_ascii_digit()) {
        year = clock_tok.parse().ok();
        (clock_tok, rest) = token(rest);
    }
    let clock = timefmt::clock(clock_tok)?;
    let t = timefmt::utc_ms(
        year.unwrap_or_else(timefmt::current_year),
        month,
        day,
        clock,
    )?;
    let used = s.len() - rest.len();
    Some((t, s[..used].trim_end(), rest))
}

/// Parse a syslog line.
pub(crate) fn parse(line: &str) -> Result<Syslog<'_>, String> {
    let (pri, rest) = pri(line)?;
    let mut h = Syslog {
        pri,
        ..Default::default()
    };
    // RFC 5424: a version number right after PRI.
    if pri.is_some() {
        let (v, after) = token(rest);
        if !v.is_empty() && v.len() <= 2 && v.bytes().all(|b| b.is_ascii_digit()) {
            h.version = v.parse().ok();
            let (ts, after) = token(after);
            let (host, after) = token(after);
            let (app, after) = token(after);
            let (procid, after) = token(after);
            let (msgid, after) = token(after);
            h.timestamp = nil(ts);
            h.time = h.timestamp.and_then(timefmt::iso);
            if h.timestamp.is_some() && h.time.is_none() {
                return Err(format!("RFC 5424 time stamp {ts:?} is not RFC 3339"));
            }
            h.hostname = nil(host);
            h.appname = nil(app);
            h.procid = nil(procid);
            h.msgid = nil(msgid);
            let (sd, after) = if after.is_empty() {
                (None, "")
            } else {
                structured_data(after)?
            };
            h.sd = sd;
            let msg = after.strip_prefix(' ').unwrap_or(after);
            h.msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
            return Ok(h);
        }
    }
    // RFC 3164: a BSD time stamp (or an RFC 3339 one, as rsyslog writes).
    let mut rest = rest;
    if let Some((t, ts, after)) = bsd_time(rest) {
        h.time = Some(t);
        h.timestamp = Some(ts);
        rest = after;
    } else {
        let (tok, after) = token(rest);
        if let Some(t) = timefmt::iso(tok) {
            h.time = Some(t);
            h.timestamp = Some(tok);
            rest = after;
        } else if pri.is_none() {
            return Err("not a syslog line: no <PRI> and no time stamp".into());
        } else {
            h.msg = rest;
            return Ok(h);
        }
    }
    let is_tag = |t: &str| t.ends_with(':') || (t.contains('[') && t.ends_with(']'));
    let (tok, after) = token(rest);
    if !tok.is_empty() && !is_tag(tok) {
        h.hostname = Some(tok);
        rest = after;
    }
    let (tok, after) = token(rest);
    if is_tag(tok) || (tok.contains('[') && tok.ends_with("]:")) {
        let tag = tok.trim_end_matches(':');
        match tag.split_once('[') {
            Some((app, pid)) => {
                h.appname = nil(app);
                h.procid = nil(pid.trim_end_matches(']'));
            }
            None => h.appname = nil(tag),
        }
        rest = after;
    }
    h.msg = rest;
    Ok(h)
}

/// One syslog line as an event (or a CEF event, when the message is CEF).
pub(crate) fn from_line(line: &str) -> Result<EventBody, String> {
    let h = parse(line)?;
    let body = h.msg.trim_start();
    if body.starts_with("CEF:") {
        return cef::parse(body, Some(&h));
    }
    // The header's fields and the message: one allocation for the map.
    let mut raw = Map::with_capacity(10);
    h.put_raw(&mut raw, "");
    raw.insert("message".into(), Value::String(h.msg.to_string()));
    let fields = Normalized {
        hostname: h.hostname.map(str::to_string),
        message: (!h.msg.is_empty()).then(|| h.msg.to_string()),
        severity: h.severity_name(),
        ..Default::default()
    };
    Ok(EventBody {
        time: h.time,
        class: OcsfClass::BaseEvent,
        source: "syslog".into(),
        fields,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc5424() {
        let e = from_line(
            r#"<34>1 2026-11-25T10:00:00.003Z host app 1234 ID47 [sd@1 a="b" c="q\"x\]"][x@2 k="v"] hello world"#,
        )
        .unwrap();
        assert_eq!(e.time, Some(1_795_600_800_003));
        assert_eq!(e.fields.hostname.as_deref(), Some("host"));
        assert_eq!(e.fields.severity.as_deref(), Some("crit"));
        assert_eq!(e.fields.message.as_deref(), Some("hello world"));
        assert_eq!(e.raw["facility"], 4);
        assert_eq!(e.raw["severity"], 2);
        assert_eq!(e.raw["appname"], "app");
        assert_eq!(e.raw["procid"], "1234");
        assert_eq!(e.raw["msgid"], "ID47");
        assert_eq!(
            e.raw["structured_data"],
            json!({"sd@1": {"a": "b", "c": "q\"x]"}, "x@2": {"k": "v"}})
        );
        let e = from_line("<165>1 - - - - - -").unwrap();
        assert_eq!(e.time, None);
        assert!(from_line("<34>1 2026-11-25T10:00:00Z h a p m [unterminated").is_err());
    }

    #[test]
    fn rfc3164() {
        let y = timefmt::current_year();
        let e = from_line("<34>Nov 25 10:00:00 host app[1234]: msg here").unwrap();
        assert_eq!(
            e.time,
            timefmt::utc_ms(y, time::Month::November, 25, (10, 0, 0, 0))
        );
        assert_eq!(e.fields.hostname.as_deref(), Some("host"));
        assert_eq!(e.raw["appname"], "app");
        assert_eq!(e.raw["procid"], "1234");
        assert_eq!(e.fields.message.as_deref(), Some("msg here"));
        let e = from_line("Nov  5 01:02:03 host sshd: Failed password").unwrap();
        assert_eq!(e.raw["appname"], "sshd");
        assert_eq!(e.fields.severity, None);
        let e = from_line("<13>just a message").unwrap();
        assert_eq!(e.fields.message.as_deref(), Some("just a message"));
        assert!(from_line("hello").is_err());
        assert!(from_line("<999>x").is_err());
    }
}
