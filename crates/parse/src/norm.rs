//! Small normalization helpers shared by the parsers.

use serde_json::{Map, Value};
use std::net::IpAddr;

/// An IP address as given (trimmed), or `None` if it is not one.
pub(crate) fn ip(s: &str) -> Option<String> {
    let t = s.trim();
    t.parse::<IpAddr>().ok().map(|_| t.to_string())
}

/// An IP address from a JSON string.
pub(crate) fn ip_v(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).and_then(ip)
}

/// A port from a JSON number or numeric string.
pub(crate) fn port_v(v: Option<&Value>) -> Option<u16> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A port from text.
pub(crate) fn port(s: &str) -> Option<u16> {
    s.trim().parse().ok()
}

/// A DNS name: trimmed, lower-case, without the trailing dot. Empty → `None`.
pub(crate) fn dns_name(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t.strip_suffix('.').unwrap_or(t);
    (!t.is_empty() && t != "-").then(|| t.to_lowercase())
}

/// A non-empty string value; numbers and booleans are rendered as text.
/// The unset markers `-` and the empty string give `None`.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s != "-").then_some(s)
}

/// A u32 from a number, a decimal string or a `0x` hex string.
pub(crate) fn u32_v(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|p| u32::try_from(p).ok()),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                Some(hex) => u32::from_str_radix(hex, 16).ok(),
                None => s.parse().ok(),
            }
        }
        _ => None,
    }
}

/// The last path component of a Windows or POSIX path.
pub(crate) fn basename(p: &str) -> Option<String> {
    let b = p.rsplit(['\\', '/']).next().unwrap_or(p).trim();
    (!b.is_empty() && b != "-").then(|| b.to_string())
}

/// A hash value: lower-case hex, or `None` if it is not hex.
pub(crate) fn hash(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

/// Sysmon's `Hashes` text: `SHA1=..,MD5=..,SHA256=..,IMPHASH=..`.
pub(crate) fn sysmon_hashes(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim().to_ascii_lowercase();
            (!k.is_empty()).then_some(())?;
            Some((k, hash(v)?))
        })
        .collect()
}

/// Remove spaces from a key name.
pub(crate) fn key(k: &str) -> String {
    if k.contains(' ') {
        k.replace(' ', "")
    } else {
        k.to_string()
    }
}

/// Look a key up exactly, then ignoring ASCII case.
pub(crate) fn get_ci<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    m.get(k).or_else(|| {
        m.iter()
            .find(|(mk, _)| mk.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    })
}

/// The host of a URL (`scheme://host[:port]/…`) or of a `host:port`
/// authority (Squid `CONNECT`).
pub(crate) fn url_host(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some((_, r)) => r,
        None => url,
    };
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = if let Some(v6) = auth.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        auth.split(':').next().unwrap_or("")
    };
    dns_name(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(ip(" 10.0.0.1 "), Some("10.0.0.1".into()));
        assert_eq!(ip("::1"), Some("::1".into()));
        assert_eq!(ip("ec2.amazonaws.com"), None);
        assert_eq!(dns_name("Example.COM."), Some("example.com".into()));
        assert_eq!(dns_name("."), None);
        assert_eq!(
            basename("C:\\Windows\\System32\\cmd.exe"),
            Some("cmd.exe".into())
        );
        assert_eq!(basename("/usr/bin/curl"), Some("curl".into()));
        assert_eq!(
            sysmon_hashes("SHA1=AB,MD5=CD,IMPHASH=zz"),
            vec![("sha1".into(), "ab".into()), ("md5".into(), "cd".into())]
        );
        assert_eq!(u32_v(Some(&Value::from("0x1a4"))), Some(420));
        assert_eq!(
            url_host("http://user@WWW.Example.com:8080/x?y"),
            Some("www.example.com".into())
        );
        assert_eq!(url_host("example.com:443"), Some("example.com".into()));
        assert_eq!(
            url_host("https://[2001:db8::1]:443/"),
            Some("2001:db8::1".into())
        );
    }
}
