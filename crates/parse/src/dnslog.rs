//! DNS server query logs: BIND `querylog` and Unbound `log-queries`,
//! `log-replies` and `log-local-actions` (including RPZ actions).

use crate::{norm, syslog, timefmt};
use mimamori_event::{EventBody, Normalized, OcsfClass, UnixMillis};
use serde_json::{Map, Value};

fn put(raw: &mut Map<String, Value>, k: &str, v: &str) {
    raw.insert(k.to_string(), Value::String(v.to_string()));
}

/// BIND's own time stamp: `25-Nov-2026 10:00:00.123`.
fn bind_time(s: &str) -> Option<(UnixMillis, &str)> {
    let (date, rest) = s.split_once(' ')?;
    let mut p = date.split('-');
    let day: u8 = p.next()?.parse().ok()?;
    let month = timefmt::month(p.next()?)?;
    let year: i32 = p.next()?.parse().ok()?;
    let (clock, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let t = timefmt::utc_ms(year, month, day, timefmt::clock(clock)?)?;
    Some((t, rest))
}

/// `ip#port`, `ip@port` or a bare ip.
fn ip_port(s: &str, sep: char) -> Option<(String, Option<u16>)> {
    match s.rsplit_once(sep) {
        Some((ip, port)) => Some((norm::ip(ip)?, norm::port(port))),
        None => Some((norm::ip(s)?, None)),
    }
}

/// One BIND query log line.
pub(crate) fn bind(line: &str) -> Result<EventBody, String> {
    let ci = line
        .find("client ")
        .ok_or("not a BIND query log line: no \"client\"")?;
    let qi = line[ci..]
        .find("query: ")
        .map(|q| q + ci)
        .ok_or("not a BIND query log line: no \"query:\"")?;
    let prefix = line[..ci].trim();
    let mut raw = Map::new();
    let mut time = None;
    let mut hostname = None;
    if !prefix.is_empty() {
        // `25-Nov-2026 10:00:00.123 [queries: info:]` or a syslog header.
        if let Some((t, rest)) = bind_time(prefix) {
            time = Some(t);
            put(
                &mut raw,
                "timestamp",
                prefix[..prefix.len() - rest.len()].trim(),
            );
            let mut cat = rest.split(':').map(str::trim).filter(|s| !s.is_empty());
            if let Some(c) = cat.next() {
                put(&mut raw, "category", c);
            }
            if let Some(s) = cat.next() {
                put(&mut raw, "level", s);
            }
        } else if let Ok(h) = syslog::parse(prefix) {
            time = h.time;
            hostname = h.hostname.map(str::to_string);
            h.put_raw(&mut raw, "syslog_");
        }
    }
    // client [@0x…] ip#port [(name)]: [view v: ]query: …
    let mut toks = line[ci + 7..qi].split_whitespace().peekable();
    if toks.peek().is_some_and(|t| t.starts_with("@0x")) {
        toks.next();
    }
    let client = toks
        .next()
        .ok_or("BIND query log line without a client address")?;
    let (client_ip, client_port) = ip_port(client.trim_end_matches(':'), '#')
        .ok_or_else(|| format!("BIND client {client:?} is not ip#port"))?;
    put(&mut raw, "client_ip", &client_ip);
    if let Some(p) = client_port {
        raw.insert("client_port".into(), Value::from(p));
    }
    let rest: Vec<&str> = toks.collect();
    if let Some(i) = rest.iter().position(|t| *t == "view") {
        if let Some(v) = rest.get(i + 1) {
            put(&mut raw, "view", v.trim_end_matches(':'));
        }
    }
    let q: Vec<&str> = line[qi + 7..].split_whitespace().collect();
    if q.len() < 3 {
        return Err("BIND query without name, class and type".into());
    }
    put(&mut raw, "query", q[0]);
    put(&mut raw, "qclass", q[1]);
    put(&mut raw, "qtype", q[2]);
    if let Some(flags) = q.get(3) {
        put(&mut raw, "flags", flags);
    }
    let server = q
        .get(4)
        .and_then(|s| s.strip_prefix('(')?.strip_suffix(')'))
        .and_then(norm::ip);
    if let Some(s) = &server {
        put(&mut raw, "server", s);
    }
    let f = Normalized {
        src_ip: Some(client_ip),
        src_port: client_port,
        dst_ip: server,
        hostname,
        dns_query: norm::dns_name(q[0]),
        dns_qtype: Some(q[2].to_string()),
        ..Default::default()
    };
    Ok(EventBody {
        time,
        class: OcsfClass::DnsActivity,
        source: "bind.query".into(),
        fields: f,
        raw,
    })
}

/// One Unbound log line with a query, reply or local action.
pub(crate) fn unbound(line: &str) -> Result<EventBody, String> {
    let ii = line
        .find(" info: ")
        .ok_or("not an Unbound query log line: no \"info:\"")?;
    let prefix = line[..ii].trim();
    let body = &line[ii + 7..];
    let mut raw = Map::new();
    let mut time = None;
    let mut hostname = None;
    // `[1732530000] unbound[1234:0]`, `Nov 25 10:00:00 unbound[1234:0]`
    // (log-time-ascii) or `Nov 25 10:00:00 host unbound: [1234:0]` (syslog).
    if let Some(rest) = prefix.strip_prefix('[') {
        let (ts, _) = rest.split_once(']').ok_or("unterminated [time]")?;
        time = timefmt::epoch(ts);
        put(&mut raw, "timestamp", ts);
    } else if let Ok(h) = syslog::parse(prefix) {
        time = h.time;
        if h.hostname.is_some_and(|n| !n.starts_with("unbound")) {
            hostname = h.hostname.map(str::to_string);
        }
        if let Some(ts) = h.timestamp {
            put(&mut raw, "timestamp", ts);
        }
    }
    let tag = prefix
        .rsplit(' ')
        .find(|t| t.starts_with('[') || t.starts_with("unbound["))
        .unwrap_or("");
    if let Some((pid, thread)) = tag
        .trim_start_matches("unbound")
        .trim_start_matches('[')
        .trim_end_matches(':')
        .trim_end_matches(']')
        .split_once(':')
    {
        put(&mut raw, "pid", pid);
        put(&mut raw, "thread", thread);
    }
    let t: Vec<&str> = body.split_whitespace().collect();
    let mut f = Normalized {
        hostname,
        ..Default::default()
    };
    // log-local-actions / RPZ: `… <action> <ip>@<port> <qname> <qtype> <qclass>`
    let action_at = t
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, tok)| tok.contains('@') && ip_port(tok, '@').is_some())
        .map(|(i, _)| i)
        .filter(|i| t.len() >= i + 4);
    let q = if let Some(i) = action_at {
        let action = t[i - 1];
        put(&mut raw, "action", action);
        f.status = Some(action.to_string());
        if t[0] == "rpz:" {
            if let Some(zone) = t.iter().find(|x| x.starts_with('[')) {
                put(
                    &mut raw,
                    "rpz_zone",
                    zone.trim_matches(|c| c == '[' || c == ']'),
                );
            }
        } else if i >= 2 {
            put(&mut raw, "local_zone", t[i - 2]);
        }
        &t[i..]
    } else {
        &t[..]
    };
    if q.len() < 4 {
        return Err("not an Unbound query log line: expected client, name, type and class".into());
    }
    let (client_ip, client_port) = ip_port(q[0], '@').ok_or_else(|| {
        format!(
            "not an Unbound query log line: {:?} is not a client address",
            q[0]
        )
    })?;
    put(&mut raw, "client_ip", &client_ip);
    if let Some(p) = client_port {
        raw.insert("client_port".into(), Value::from(p));
    }
    put(&mut raw, "query", q[1]);
    put(&mut raw, "qtype", q[2]);
    put(&mut raw, "qclass", q[3]);
    if action_at.is_none() && q.len() >= 5 {
        // log-replies: rcode, response time, cached, size
        for (k, v) in ["rcode", "response_time", "cached", "size"]
            .iter()
            .zip(&q[4..])
        {
            put(&mut raw, k, v);
        }
        f.dns_rcode = Some(q[4].to_string());
    }
    f.src_ip = Some(client_ip);
    f.src_port = client_port;
    f.dns_query = norm::dns_name(q[1]);
    f.dns_qtype = Some(q[2].to_string());
    Ok(EventBody {
        time,
        class: OcsfClass::DnsActivity,
        source: "unbound.query".into(),
        fields: f,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_variants() {
        let e = bind("25-Nov-2026 10:00:00.123 client @0x7f3a2c0b1d68 192.0.2.5#53124 (Example.com): query: Example.com IN A +E(0)K (192.0.2.1)").unwrap();
        assert_eq!(e.time, Some(1_795_600_800_123));
        assert_eq!(e.fields.src_ip.as_deref(), Some("192.0.2.5"));
        assert_eq!(e.fields.src_port, Some(53124));
        assert_eq!(e.fields.dst_ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(e.fields.dns_query.as_deref(), Some("example.com"));
        assert_eq!(e.fields.dns_qtype.as_deref(), Some("A"));
        assert_eq!(e.raw["flags"], "+E(0)K");
        let e = bind("25-Nov-2026 10:00:00.123 queries: info: client @0x7f 2001:db8::5#5353 (x.example): view internal: query: x.example IN AAAA + (2001:db8::1)").unwrap();
        assert_eq!(e.raw["category"], "queries");
        assert_eq!(e.raw["level"], "info");
        assert_eq!(e.raw["view"], "internal");
        assert_eq!(e.fields.src_ip.as_deref(), Some("2001:db8::5"));
        let e =
            bind("Nov 25 10:00:00 ns1 named[812]: client 192.0.2.5#1234: query: a.example IN MX +")
                .unwrap();
        assert_eq!(e.fields.hostname.as_deref(), Some("ns1"));
        assert_eq!(e.fields.dns_qtype.as_deref(), Some("MX"));
        assert!(bind("25-Nov-2026 10:00:00.123 general: info: zone loaded").is_err());
        assert!(bind("client nonsense query: a IN A").is_err());
    }

    #[test]
    fn unbound_variants() {
        let e = unbound("[1732530000] unbound[1234:0] info: 192.0.2.5 example.com. A IN").unwrap();
        assert_eq!(e.time, Some(1_732_530_000_000));
        assert_eq!(e.fields.dns_query.as_deref(), Some("example.com"));
        assert_eq!(e.raw["pid"], "1234");
        assert_eq!(e.raw["thread"], "0");
        let e = unbound("[1732530000] unbound[1234:1] info: 192.0.2.5 Bad.Example. AAAA IN NXDOMAIN 0.012345 0 97").unwrap();
        assert_eq!(e.fields.dns_rcode.as_deref(), Some("NXDOMAIN"));
        assert_eq!(e.raw["size"], "97");
        let e = unbound("[1732530000] unbound[1234:0] info: rpz: applied [rpz.example.] evil.example. rpz-nxdomain 192.0.2.5@53124 evil.example. A IN").unwrap();
        assert_eq!(e.fields.status.as_deref(), Some("rpz-nxdomain"));
        assert_eq!(e.raw["rpz_zone"], "rpz.example.");
        assert_eq!(e.fields.src_port, Some(53124));
        let e = unbound("[1732530000] unbound[1234:0] info: ads.example. always_nxdomain 192.0.2.9@41000 ads.example. A IN").unwrap();
        assert_eq!(e.fields.status.as_deref(), Some("always_nxdomain"));
        assert_eq!(e.raw["local_zone"], "ads.example.");
        let e = unbound(
            "Nov 25 10:00:00 resolver1 unbound: [1234:0] info: 192.0.2.5 example.com. A IN",
        )
        .unwrap();
        assert_eq!(e.fields.hostname.as_deref(), Some("resolver1"));
        assert!(
            unbound("[1732530000] unbound[1234:0] info: start of service (unbound 1.19.0).")
                .is_err()
        );
        assert!(unbound("[1732530000] unbound[1234:0] notice: init module 0: validator").is_err());
    }
}
