//! RPZ zone file parser.
//!
//! Hand-written rather than hickory-proto's zone `Parser`: that one builds a
//! `Name`, a `Record` and a `BTreeMap` node for every record, which for the
//! 2M-record benchmark zone costs seconds and well over the 300 MB RSS
//! budget, and everything it builds would be thrown away. Here each line is
//! split into tokens and the owner goes straight into the zone's name table.
//! The RDATA of local-data records of other types than A/AAAA/CNAME is handed
//! to hickory's `RData::try_from_str`.
//!
//! Accepted master-file syntax (RFC 1035 §5.1): `$ORIGIN`, `$TTL`, `@`,
//! relative and absolute names, a blank owner (the previous one), optional
//! TTL and class in either order, `;` comments, quoted strings and
//! parentheses across lines. `$INCLUDE` is refused. The apex is the owner
//! of the first SOA, or the configured zone name when there is none.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;

use crate::policy::{text_to_wire, Action, LocalCname, LocalData, PolicyError, Zone};

/// Splits one logical line into tokens; `None` when the line continues
/// (open parenthesis).
fn tokenize<'a>(line: &'a str, toks: &mut Vec<&'a str>, depth: &mut i32) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => break,
            b'(' => {
                *depth += 1;
                i += 1;
            }
            b')' => {
                *depth -= 1;
                if *depth < 0 {
                    return Err("unbalanced ')'".into());
                }
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                toks.push(&line[start..i]);
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b';' | b'(' | b')') {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = i.min(b.len());
                toks.push(&line[start..end]);
            }
        }
    }
    Ok(())
}

fn is_class(t: &str) -> bool {
    t.eq_ignore_ascii_case("IN") || t.eq_ignore_ascii_case("CH") || t.eq_ignore_ascii_case("HS")
}

/// A master-file TTL: seconds, or BIND's units (`1h30m`, `6w5d`).
pub(crate) fn parse_ttl(t: &str) -> Option<u32> {
    if let Ok(v) = t.parse::<u32>() {
        return Some(v);
    }
    hickory_proto::serialize::txt::parse_ttl(t).ok()
}

/// About how many distinct names, and wire bytes of names, a zone's name
/// table will hold: the lines, less the share of `*.` owners in a sample of
/// the first lines (a wildcard usually shares its entry with the name
/// itself, `x CNAME .` beside `*.x CNAME .`). Too low costs a rehash, too
/// high a rehash when the table is shrunk; either way the zone is the same.
fn estimate_names(text: &str) -> (usize, usize) {
    const SAMPLE: usize = 4096;
    let lines = memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1;
    let (mut sampled, mut wild) = (0usize, 0usize);
    for line in text.lines().take(SAMPLE) {
        sampled += 1;
        if line.starts_with("*.") {
            wild += 1;
        }
    }
    if sampled == 0 {
        return (0, 0);
    }
    let names = lines.saturating_sub(lines * wild / sampled);
    // A name's wire form is as long as its text plus 2; its line is longer.
    let bytes = text.len() / sampled * (sampled - wild);
    (names, bytes)
}

/// Parses RPZ zone text with initial origin `origin`.
pub(crate) fn parse(origin: &str, text: &str) -> Result<Zone, PolicyError> {
    let mut origin_w = Vec::with_capacity(64);
    let o = if origin.ends_with('.') {
        origin.to_string()
    } else {
        format!("{origin}.")
    };
    text_to_wire(&o, &[0], &mut origin_w).ok_or_else(|| PolicyError::ZoneName(origin.into()))?;
    let initial_origin = origin_w.clone();
    let mut zone = Zone::from_parts_for_parser(&o);
    let mut apex: Option<Vec<u8>> = None;
    let mut default_ttl: u32 = 3600;
    let mut owner: Vec<u8> = Vec::with_capacity(256);
    let mut have_owner = false;
    let mut scratch = Vec::with_capacity(256);
    let mut toks: Vec<&str> = Vec::with_capacity(16);
    let mut depth = 0i32;
    let mut first_line = 0usize;
    let mut starts_blank = false;
    let err = |line: usize, reason: String| PolicyError::Syntax {
        zone: o.clone(),
        line,
        reason,
    };

    let (names, bytes) = estimate_names(text);
    zone.reserve_names(names, bytes);

    for (lineno, line) in text.lines().enumerate() {
        let lineno = lineno + 1;
        if depth == 0 {
            toks.clear();
            first_line = lineno;
            starts_blank = line.starts_with([' ', '\t']);
        }
        tokenize(line, &mut toks, &mut depth).map_err(|e| err(lineno, e))?;
        if depth > 0 || toks.is_empty() {
            continue;
        }
        let lineno = first_line;
        let t0 = toks[0];
        if t0.starts_with('$') {
            match (t0.to_ascii_uppercase().as_str(), toks.get(1)) {
                ("$ORIGIN", Some(name)) => {
                    let mut w = Vec::new();
                    text_to_wire(name, &origin_w, &mut w)
                        .ok_or_else(|| err(lineno, format!("bad $ORIGIN {name:?}")))?;
                    origin_w = w;
                }
                ("$TTL", Some(v)) => {
                    default_ttl =
                        parse_ttl(v).ok_or_else(|| err(lineno, format!("bad $TTL {v:?}")))?;
                }
                (d, _) => return Err(err(lineno, format!("unsupported directive {d}"))),
            }
            continue;
        }
        let mut rest: &[&str] = &toks;
        if !starts_blank {
            text_to_wire(t0, &origin_w, &mut owner)
                .ok_or_else(|| err(lineno, format!("bad owner {t0:?}")))?;
            have_owner = true;
            rest = &rest[1..];
        } else if !have_owner {
            return Err(err(lineno, "record without an owner".into()));
        }
        let mut ttl = None;
        let mut class_seen = false;
        while let Some(&t) = rest.first() {
            if !class_seen && is_class(t) {
                class_seen = true;
            } else if ttl.is_none() && t.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                ttl = Some(parse_ttl(t).ok_or_else(|| err(lineno, format!("bad TTL {t:?}")))?);
            } else {
                break;
            }
            rest = &rest[1..];
        }
        let Some((&rtype, rdata)) = rest.split_first() else {
            return Err(err(lineno, "record without a type".into()));
        };
        zone.stats_mut().records += 1;
        if rtype.eq_ignore_ascii_case("SOA") {
            if apex.is_none() {
                apex = Some(owner.clone());
                zone.set_name(&crate::wire::name_to_string(&owner));
                let soa = parse_soa(rdata, &origin_w).map_err(|e| err(lineno, e))?;
                zone.set_soa(ttl.unwrap_or(default_ttl), soa);
            }
            continue;
        }
        // A zone without SOA (Unbound accepts those) has the configured
        // name as its apex.
        let apex_w = apex.as_deref().unwrap_or(&initial_origin);
        // The owner relative to the apex, label-aligned.
        let rel = match relative(&owner, apex_w) {
            Some(r) => r,
            None => {
                zone.stats_mut().skipped += 1;
                continue;
            }
        };
        if rel.is_empty() {
            // Apex records (NS, ...) are zone plumbing, not triggers.
            continue;
        }
        let ttl = ttl.unwrap_or(default_ttl);
        // Compared without upper-casing the type into a new string: this
        // runs once per record, millions of times for a large zone.
        let is = |want: &str| rtype.eq_ignore_ascii_case(want);
        let action = match rtype {
            _ if is("CNAME") => {
                let target = rdata
                    .first()
                    .ok_or_else(|| err(lineno, "CNAME without target".into()))?;
                cname_action(target, &origin_w, ttl)
                    .ok_or_else(|| err(lineno, format!("bad CNAME target {target:?}")))?
            }
            _ if is("A") => {
                let a = rdata
                    .first()
                    .and_then(|t| Ipv4Addr::from_str(t).ok())
                    .ok_or_else(|| err(lineno, "bad A record".into()))?;
                Action::Local(Box::new(LocalData {
                    ttl,
                    a: vec![a],
                    ..LocalData::default()
                }))
            }
            _ if is("AAAA") => {
                let a = rdata
                    .first()
                    .and_then(|t| Ipv6Addr::from_str(t).ok())
                    .ok_or_else(|| err(lineno, "bad AAAA record".into()))?;
                Action::Local(Box::new(LocalData {
                    ttl,
                    aaaa: vec![a],
                    ..LocalData::default()
                }))
            }
            // DNSSEC records of a signed policy zone are not policy.
            _ if ["RRSIG", "NSEC", "NSEC3", "NSEC3PARAM", "DNSKEY", "DS"]
                .iter()
                .any(|t| is(t)) =>
            {
                continue
            }
            other => {
                let other = other.to_ascii_uppercase();
                let other = other.as_str();
                let rt = RecordType::from_str(other)
                    .map_err(|_| err(lineno, format!("unknown type {other}")))?;
                let joined = rdata.join(" ");
                let rd = RData::try_from_str(rt, &joined)
                    .map_err(|e| err(lineno, format!("bad {other} data: {e}")))?;
                Action::Local(Box::new(LocalData {
                    ttl,
                    other: vec![rd],
                    ..LocalData::default()
                }))
            }
        };
        add_trigger(&mut zone, rel, action, &mut scratch);
    }
    if depth != 0 {
        return Err(err(first_line, "unclosed '('".into()));
    }
    Ok(zone)
}

/// Builds a zone from records (a zone transfer): the same triggers and
/// actions as the text form, without a round trip through text (hickory's
/// presentation format of TXT, for one, is not parseable back).
pub(crate) fn from_records<'r>(
    apex: &Name,
    soa: Option<(u32, SOA)>,
    records: impl Iterator<Item = (&'r Name, u32, &'r RData)>,
) -> Result<Zone, PolicyError> {
    let apex_text = apex.to_ascii();
    let mut zone = Zone::from_parts_for_parser(&apex_text);
    zone.set_name(&apex_text);
    if let Some((ttl, soa)) = soa {
        zone.set_soa(ttl, soa);
    }
    let apex_w = crate::engine::name_to_wire(apex);
    let mut scratch = Vec::with_capacity(256);
    for (name, ttl, rd) in records {
        zone.stats_mut().records += 1;
        let owner = crate::engine::name_to_wire(name);
        let Some(rel) = relative(&owner, &apex_w) else {
            zone.stats_mut().skipped += 1;
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let local = |ld: LocalData| Action::Local(Box::new(LocalData { ttl, ..ld }));
        let action = match rd {
            RData::CNAME(t) => {
                let target = t.0.to_ascii();
                cname_action(&target, &[0], ttl).ok_or_else(|| PolicyError::Syntax {
                    zone: apex_text.clone(),
                    line: 0,
                    reason: format!("bad CNAME target {target:?} at {name}"),
                })?
            }
            RData::A(a) => local(LocalData {
                a: vec![a.0],
                ..LocalData::default()
            }),
            RData::AAAA(a) => local(LocalData {
                aaaa: vec![a.0],
                ..LocalData::default()
            }),
            rd if matches!(
                rd.record_type(),
                RecordType::RRSIG
                    | RecordType::NSEC
                    | RecordType::NSEC3
                    | RecordType::NSEC3PARAM
                    | RecordType::DNSKEY
                    | RecordType::DS
                    | RecordType::SOA
            ) =>
            {
                continue
            }
            other => local(LocalData {
                other: vec![other.clone()],
                ..LocalData::default()
            }),
        };
        add_trigger(&mut zone, rel, action, &mut scratch);
    }
    Ok(zone)
}

/// `owner` minus `apex` (both wire), or `None` when not under the apex. The
/// result holds only the relative labels (no terminating zero).
fn relative<'a>(owner: &'a [u8], apex: &[u8]) -> Option<&'a [u8]> {
    if owner.len() < apex.len() || !owner.ends_with(apex) {
        return None;
    }
    let cut = owner.len() - apex.len();
    // The cut must fall on a label boundary of the owner.
    let mut at = 0usize;
    while at < cut {
        at += 1 + *owner.get(at)? as usize;
    }
    (at == cut).then(|| &owner[..cut])
}

/// Labels of a relative wire name (no terminating zero).
fn labels(rel: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut at = 0;
    while let Some(&len) = rel.get(at) {
        let end = (at + 1 + len as usize).min(rel.len());
        v.push(&rel[at + 1..end]);
        at = end;
    }
    v
}

/// The last label of a relative wire name.
fn last_label(rel: &[u8]) -> &[u8] {
    let mut at = 0;
    let mut last: &[u8] = &[];
    while let Some(&len) = rel.get(at) {
        let end = (at + 1 + len as usize).min(rel.len());
        last = &rel[at + 1..end];
        at = end;
    }
    last
}

fn add_trigger(zone: &mut Zone, rel: &[u8], action: Action, scratch: &mut Vec<u8>) {
    // The common case, a QNAME trigger, needs only the first and last
    // labels; the label list (an allocation) only for the special suffixes.
    let last = last_label(rel);
    let wild = rel.starts_with(b"\x01*");
    if !matches!(
        last,
        b"rpz-client-ip" | b"rpz-ip" | b"rpz-nsip" | b"rpz-nsdname"
    ) {
        scratch.clear();
        let start = if wild { 2 } else { 0 };
        scratch.extend_from_slice(&rel[start..]);
        scratch.push(0);
        zone.add_trigger_wire(scratch, wild, action);
        return;
    }
    let ls = labels(rel);
    match last {
        b"rpz-client-ip" | b"rpz-ip" => match ip_trigger(&ls[..ls.len() - 1]) {
            Some(net) if last == b"rpz-client-ip" => zone.add_client_ip(net, action),
            Some(net) => zone.add_response_ip(net, action),
            None => zone.stats_mut().skipped += 1,
        },
        b"rpz-nsip" => match ip_trigger(&ls[..ls.len() - 1]) {
            Some(net) => zone.add_nsip(net, action),
            None => zone.stats_mut().skipped += 1,
        },
        b"rpz-nsdname" => {
            // The name server's name: the owner without the trailing
            // `rpz-nsdname` label, `*.` marking a wildcard trigger.
            let cut = rel.len() - 1 - last.len();
            let wild = ls.first() == Some(&&b"*"[..]);
            let start = if wild { 2 } else { 0 };
            if start > cut {
                zone.stats_mut().skipped += 1;
                return;
            }
            scratch.clear();
            scratch.extend_from_slice(&rel[start..cut]);
            scratch.push(0);
            zone.add_nsdname_wire(scratch, wild, action);
        }
        _ => {}
    }
}

/// SOA RDATA: MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM, the names
/// relative to `origin` (wire).
fn parse_soa(rdata: &[&str], origin: &[u8]) -> Result<SOA, String> {
    let [mname, rname, serial, refresh, retry, expire, minimum] = rdata else {
        return Err(format!("SOA needs 7 fields, got {}", rdata.len()));
    };
    let name = |t: &str| {
        let mut w = Vec::new();
        text_to_wire(t, origin, &mut w)
            .and_then(|()| crate::engine::wire_to_name(&w))
            .ok_or_else(|| format!("bad SOA name {t:?}"))
    };
    let num = |t: &str| parse_ttl(t).ok_or_else(|| format!("bad SOA number {t:?}"));
    Ok(SOA::new(
        name(mname)?,
        name(rname)?,
        serial
            .parse::<u32>()
            .map_err(|_| format!("bad SOA serial {serial:?}"))?,
        num(refresh)? as i32,
        num(retry)? as i32,
        num(expire)? as i32,
        num(minimum)?,
    ))
}

/// `24.0.2.0.192` → 192.0.2.0/24; `128.1.zz.db8.2001` → 2001:db8::1/128.
fn ip_trigger(ls: &[&[u8]]) -> Option<IpNet> {
    let (plen, rest) = ls.split_first()?;
    let plen: u8 = std::str::from_utf8(plen).ok()?.parse().ok()?;
    let parts: Vec<&str> = rest
        .iter()
        .rev()
        .map(|l| std::str::from_utf8(l).ok())
        .collect::<Option<_>>()?;
    if parts.len() == 4 && parts.iter().all(|p| p.parse::<u8>().is_ok()) {
        let ip: Ipv4Addr = parts.join(".").parse().ok()?;
        return IpNet::new(IpAddr::V4(ip), plen).ok().map(|n| n.trunc());
    }
    let text = parts
        .iter()
        .map(|p| if *p == "zz" { "" } else { p })
        .collect::<Vec<_>>()
        .join(":");
    // `zz` at either end stands for the `::` that a plain join renders as a
    // single colon.
    let text = if text.starts_with(':') {
        format!(":{text}")
    } else if text.ends_with(':') {
        format!("{text}:")
    } else {
        text
    };
    let ip: Ipv6Addr = text.parse().ok()?;
    IpNet::new(IpAddr::V6(ip), plen).ok().map(|n| n.trunc())
}

fn cname_action(target: &str, origin: &[u8], ttl: u32) -> Option<Action> {
    // The usual targets without lower-casing into a new string (once per
    // record of a zone of millions).
    for (t, a) in [
        (".", Action::NxDomain),
        ("*.", Action::NoData),
        ("rpz-passthru.", Action::Passthru),
        ("rpz-drop.", Action::Drop),
        ("rpz-tcp-only.", Action::TcpOnly),
    ] {
        if target.eq_ignore_ascii_case(t) {
            return Some(a);
        }
    }
    let lower = target.to_ascii_lowercase();
    Some(match lower.as_str() {
        "." => Action::NxDomain,
        "*." => Action::NoData,
        "rpz-passthru." => Action::Passthru,
        "rpz-drop." => Action::Drop,
        "rpz-tcp-only." => Action::TcpOnly,
        _ => {
            let mut w = Vec::new();
            let (wild, base) = match lower.strip_prefix("*.") {
                Some(b) => (true, b),
                None => (false, lower.as_str()),
            };
            text_to_wire(base, origin, &mut w)?;
            let name = Name::from_ascii(crate::wire::name_to_string(&w) + ".").ok()?;
            Action::Local(Box::new(LocalData {
                ttl,
                cname: Some(if wild {
                    LocalCname::Wildcard(name)
                } else {
                    LocalCname::Fixed(name)
                }),
                ..LocalData::default()
            }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, Trigger};
    use std::sync::Arc;

    const ZONE: &str = r#"
$ORIGIN example.com.
rpz	3600	IN	SOA	ns1.rpz.example.com. hostmaster.rpz.example.com. (
		1379078166 28800 7200 604800 7200 )
	3600	IN	NS	ns1.rpz.example.com.
$ORIGIN rpz.example.com.
a	CNAME 	.
a	CNAME 	*. ; duplicate CNAME here on purpose
*.a	TXT	"wildcard local data"
b.a	CNAME 	*.
c.a	CNAME	rpz-passthru.
e	CNAME	*.a.example.
24.0.2.0.192.rpz-client-ip CNAME rpz-drop.
128.1.zz.cc.bb.aa.db8.2001.rpz-ip AAAA 2001:db1::123
32.1.1.1.10.rpz-ip CNAME rpz-tcp-only.
32.1.123.0.10.rpz-ip.rpz.example.com.	CNAME *.
ns.example.rpz-nsdname CNAME .
"#;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        text_to_wire(s, &[0], &mut v).expect("name");
        v
    }

    #[test]
    fn parses_the_unbound_style_zone() {
        let z = parse(".", ZONE).expect("parses");
        assert_eq!(&**z.name(), "rpz.example.com");
        let s = z.stats().clone();
        assert_eq!(s.qname_triggers, 4, "{s:?}");
        assert_eq!(s.wildcard_triggers, 1);
        assert_eq!(s.client_ip_triggers, 1);
        assert_eq!(s.response_ip_triggers, 3);
        assert_eq!(s.nsdname_triggers, 1);
        assert_eq!(s.skipped, 1, "the duplicate CNAME");
        let p = Policy::new(vec![Arc::new(z)]);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let h = p.check_query(None, ip, &w("a")).expect("a");
        assert_eq!(h.action, &Action::NxDomain);
        let h = p.check_query(None, ip, &w("x.a")).expect("x.a");
        assert!(matches!(h.action, Action::Local(l) if l.has_type(16)));
        assert_eq!(h.trigger, Trigger::Wildcard { at: 2 });
        let h = p.check_query(None, ip, &w("b.a")).expect("b.a");
        assert_eq!(h.action, &Action::NoData);
        let h = p
            .check_query(None, "192.0.2.9".parse().expect("ip"), &w("zzz"))
            .expect("client ip");
        assert_eq!(h.action, &Action::Drop);
        let h = p
            .check_response_ips(None, &["2001:db8:aa:bb:cc::1".parse().expect("ip")])
            .expect("respip v6");
        assert!(matches!(h.action, Action::Local(l) if l.aaaa.len() == 1));
        let h = p
            .check_response_ips(None, &["10.0.123.1".parse().expect("ip")])
            .expect("absolute owner");
        assert_eq!(h.action, &Action::NoData);
    }

    #[test]
    fn ip_trigger_forms() {
        let t = |s: &str| {
            let parts: Vec<&[u8]> = s.split('.').map(str::as_bytes).collect();
            ip_trigger(&parts).map(|n| n.to_string())
        };
        assert_eq!(t("24.0.2.0.192").as_deref(), Some("192.0.2.0/24"));
        assert_eq!(t("128.1.zz.db8.2001").as_deref(), Some("2001:db8::1/128"));
        assert_eq!(t("48.zz.db8.2001").as_deref(), Some("2001:db8::/48"));
        assert_eq!(t("33.0.2.0.192"), None);
    }

    #[test]
    fn types_and_special_targets_in_any_case() {
        let z = parse(
            "rpz.test.",
            "@ soa ns. h. 1 1 1 1 1\n\
             a cname .\n\
             *.a CNAME .\n\
             b Cname RPZ-PASSTHRU.\n\
             c in a 192.0.2.7\n\
             d TxT \"x\"\n",
        )
        .expect("parses");
        let s = z.stats().clone();
        assert_eq!((s.qname_triggers, s.wildcard_triggers), (4, 1), "{s:?}");
        let p = Policy::new(vec![Arc::new(z)]);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        assert_eq!(
            p.check_query(None, ip, &w("x.a")).expect("x.a").action,
            &Action::NxDomain
        );
        assert_eq!(
            p.check_query(None, ip, &w("b")).expect("b").action,
            &Action::Passthru
        );
        assert!(
            matches!(p.check_query(None, ip, &w("c")).expect("c").action,
            Action::Local(l) if l.a.len() == 1)
        );
        assert!(
            matches!(p.check_query(None, ip, &w("d")).expect("d").action,
            Action::Local(l) if l.has_type(16))
        );
    }

    #[test]
    fn name_estimate_follows_the_share_of_wildcards() {
        let mut zone = String::from("$TTL 300\n");
        for i in 0..1000 {
            zone.push_str(&format!("n{i}.test CNAME .\n*.n{i}.test CNAME .\n"));
        }
        let (names, bytes) = estimate_names(&zone);
        assert!((990..=1010).contains(&names), "{names}");
        assert!(bytes <= zone.len() && bytes >= zone.len() / 3, "{bytes}");
        assert_eq!(estimate_names(""), (0, 0));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(".", "x CNAME\n").is_err(), "CNAME without target");
        assert!(parse(".", "x A 1.2.3\n").is_err(), "bad address");
        assert!(parse(".", "@ SOA a. b. 1 2 3 4 5\nx CNAME\n").is_err());
        assert!(parse(".", "@ SOA a. b. ( 1 2 3 4 5\n").is_err());
        assert!(parse(".", "$INCLUDE /etc/passwd\n").is_err());
    }
}
