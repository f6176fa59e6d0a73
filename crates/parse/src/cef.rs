//! ArcSight Common Event Format:
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`,
//! optionally after a syslog header.
//!
//! `raw` holds the header fields as `cefVersion`, `deviceVendor`,
//! `deviceProduct`, `deviceVersion`, `deviceEventClassId`, `name`,
//! `severity`, then every extension key as written; a syslog header's fields
//! are kept with a `syslog_` prefix.

use crate::syslog::{self, Syslog};
use crate::{norm, timefmt};
use mimamori_event::{EventBody, Normalized, OcsfClass, UnixMillis};
use serde_json::{Map, Value};

const HEADER: [&str; 7] = [
    "cefVersion",
    "deviceVendor",
    "deviceProduct",
    "deviceVersion",
    "deviceEventClassId",
    "name",
    "severity",
];

/// A CEF line, with or without a syslog header before `CEF:`.
pub(crate) fn from_line(line: &str) -> Result<EventBody, String> {
    let idx = line.find("CEF:").ok_or("no CEF: header")?;
    let prefix = line[..idx].trim();
    if prefix.is_empty() {
        return parse(&line[idx..], None);
    }
    match syslog::parse(prefix) {
        Ok(h) => parse(&line[idx..], Some(&h)),
        Err(_) => {
            let mut ev = parse(&line[idx..], None)?;
            ev.raw
                .insert("syslog_prefix".into(), Value::String(prefix.to_string()));
            Ok(ev)
        }
    }
}

/// Split the seven header fields (escapes `\|` and `\\`) from the extension.
fn header(s: &str) -> Result<(Vec<String>, &str), String> {
    let mut fields = Vec::with_capacity(7);
    let mut cur = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.clone().next() {
                Some((_, n @ ('|' | '\\'))) => {
                    cur.push(n);
                    chars.next();
                }
                _ => cur.push('\\'),
            },
            '|' => {
                fields.push(std::mem::take(&mut cur));
                if fields.len() == 7 {
                    return Ok((fields, &s[i + 1..]));
                }
            }
            c => cur.push(c),
        }
    }
    if fields.len() == 6 {
        fields.push(cur);
        return Ok((fields, ""));
    }
    Err(format!("CEF header has {} of 7 fields", fields.len() + 1))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']')
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(n @ ('=' | '\\' | '|')) => out.push(n),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `k=v k2=v two …`: a key is a run of key characters before an unescaped
/// `=`, at the start or after a space; its value runs to the space before
/// the next key.
fn extension(ext: &str) -> Vec<(String, String)> {
    let b = ext.as_bytes();
    let mut keys: Vec<(usize, usize)> = Vec::new(); // (key start, '=' position)
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'=' => {
                let mut s = i;
                while s > 0 && is_key_byte(b[s - 1]) {
                    s -= 1;
                }
                if s < i && (s == 0 || b[s - 1] == b' ') {
                    keys.push((s, i));
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    let mut out = Vec::with_capacity(keys.len());
    for (n, &(ks, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(b.len(), |&(next, _)| next);
        let v = ext[eq + 1..end].trim_end_matches(' ');
        out.push((ext[ks..eq].to_string(), unescape(v)));
    }
    out
}

/// CEF `rt`/`start`/`end`: epoch milliseconds or `MMM dd [yyyy] HH:mm:ss[.SSS] [zone]`.
fn cef_time(s: &str) -> Option<UnixMillis> {
    let s = s.trim();
    if let Some(t) = timefmt::from_str(s) {
        return Some(t);
    }
    let month = timefmt::month(s)?;
    let mut parts = s.get(4..)?.split_whitespace();
    let day: u8 = parts.next()?.parse().ok()?;
    let mut tok = parts.next()?;
    let mut year = timefmt::current_year();
    if tok.len() == 4 {
        year = tok.parse().ok()?;
        tok = parts.next()?;
    }
    timefmt::utc_ms(year, month, day, timefmt::clock(tok)?)
}

/// Parse `CEF:…` text; `h` is the syslog header it came with, if any.
pub(crate) fn parse(cef: &str, h: Option<&Syslog<'_>>) -> Result<EventBody, String> {
    let body = cef.strip_prefix("CEF:").ok_or("no CEF: header")?;
    let (head, ext) = header(body)?;
    let mut raw = Map::new();
    for (k, v) in HEADER.iter().zip(&head) {
        raw.insert((*k).to_string(), Value::String(v.trim().to_string()));
    }
    for (k, v) in extension(ext) {
        raw.insert(k, Value::String(v));
    }
    if let Some(h) = h {
        h.put_raw(&mut raw, "syslog_");
    }
    let g = |k: &str| {
        raw.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let request = g("request").map(str::to_string);
    let f = Normalized {
        src_ip: g("src").and_then(norm::ip),
        dst_ip: g("dst").and_then(norm::ip),
        src_port: g("spt").and_then(norm::port),
        dst_port: g("dpt").and_then(norm::port),
        protocol: g("proto").map(str::to_ascii_lowercase),
        user: g("suser").or_else(|| g("duser")).map(str::to_string),
        hostname: g("dvchost")
            .or_else(|| h.and_then(|h| h.hostname))
            .or_else(|| g("shost"))
            .map(str::to_string),
        http_host: request.as_deref().and_then(norm::url_host),
        http_method: g("requestMethod").map(str::to_string),
        user_agent: g("requestClientApplication").map(str::to_string),
        url: request.clone(),
        file_name: g("fname").map(str::to_string),
        status: g("outcome").map(str::to_string),
        message: g("name").map(str::to_string),
        severity: g("severity").map(str::to_string),
        ..Default::default()
    };
    let class = if request.is_some() {
        OcsfClass::HttpActivity
    } else if f.src_ip.is_some() || f.dst_ip.is_some() {
        OcsfClass::NetworkActivity
    } else {
        OcsfClass::BaseEvent
    };
    let time = g("rt")
        .or_else(|| g("start"))
        .and_then(cef_time)
        .or_else(|| h.and_then(|h| h.time));
    Ok(EventBody {
        time,
        class,
        source: "cef".into(),
        fields: f,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_extension_escapes() {
        let e = from_line(
            r"CEF:0|Security|threat\|manager|1.0|100|worm successfully stopped|10|src=10.0.0.1 dst=2.1.2.2 spt=1232 msg=a b\=c d\\e act=blocked a=b cs1=two words http://x/?q=1",
        )
        .unwrap();
        assert_eq!(e.raw["deviceProduct"], "threat|manager");
        assert_eq!(e.raw["severity"], "10");
        assert_eq!(e.raw["msg"], "a b=c d\\e");
        assert_eq!(e.raw["act"], "blocked");
        assert_eq!(e.raw["a"], "b");
        assert_eq!(e.raw["cs1"], "two words http://x/?q=1");
        assert_eq!(e.fields.src_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(e.fields.src_port, Some(1232));
        assert_eq!(e.class, OcsfClass::NetworkActivity);
        assert_eq!(
            e.fields.message.as_deref(),
            Some("worm successfully stopped")
        );
    }

    #[test]
    fn http_and_syslog_header() {
        let e = from_line(
            "<134>Nov 25 10:00:00 fw01 CEF:0|Acme|Proxy|2.1|200|Web request|3|rt=1795600800000 request=http://evil.example/x?a=b requestMethod=GET suser=bob",
        )
        .unwrap();
        assert_eq!(e.class, OcsfClass::HttpActivity);
        assert_eq!(e.fields.url.as_deref(), Some("http://evil.example/x?a=b"));
        assert_eq!(e.fields.http_host.as_deref(), Some("evil.example"));
        assert_eq!(e.fields.hostname.as_deref(), Some("fw01"));
        assert_eq!(e.time, Some(1_795_600_800_000));
        assert_eq!(e.raw["syslog_hostname"], "fw01");
        assert_eq!(e.raw["request"], "http://evil.example/x?a=b");
        assert!(from_line("CEF:0|a|b").is_err());
        let e = from_line("CEF:0|a|b|c|d|e|5").unwrap();
        assert_eq!(e.class, OcsfClass::BaseEvent);
        assert_eq!(
            cef_time("Nov 25 2026 10:00:00.000"),
            Some(1_795_600_800_000)
        );
    }
}
