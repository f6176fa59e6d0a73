//! Normalization of indicator values: one spelling per indicator, so that
//! de-duplication, sharing and matching compare like with like.
//!
//! Every value is first *refanged* (`hxxp://evil[.]com` → `http://evil.com`),
//! then normalized by kind:
//!
//! - domains: lower-cased, IDNA → punycode (`idna` crate, UTS 46), trailing
//!   dot removed, labels checked (1–63 bytes of `a-z0-9-_`, at least two
//!   labels, at most 253 bytes, not an all-digit top label); a leading `*.`
//!   means "and every sub-domain" (`Domain { exact: false }`);
//! - IP addresses: the standard text form; IPv4-mapped IPv6 becomes IPv4;
//! - CIDRs: host bits must be zero; a /32 (/128) is an address;
//! - URLs: parsed and serialized by the `url` crate (WHATWG: lower-case
//!   scheme and host, punycode, default port dropped, dot segments removed),
//!   the fragment and a host's trailing dot removed; only http(s), ftp and
//!   ws(s) are accepted, because only those have a host the `url` crate
//!   normalizes;
//! - hashes: hex of the right length for the kind, lower-cased;
//! - e-mail addresses: lower-cased, the domain normalized as a domain;
//! - file names: trimmed, no path separators or control characters, case
//!   kept (file names are case-sensitive on most systems).
//!
//! Normalization is idempotent: feeding a result back with the hint of its
//! kind gives the same result (a proptest checks this).

use std::borrow::Cow;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::model::{IndicatorKind, Kind};

/// Inputs longer than this are refused before any parsing.
pub const MAX_VALUE_LEN: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NormError {
    #[error("empty value")]
    Empty,
    #[error("value longer than {MAX_VALUE_LEN} bytes")]
    TooLong,
    #[error("not a domain, IP address, CIDR, URL, hash or e-mail address: {0:?}")]
    Unrecognized(String),
    #[error("invalid domain {value:?}: {reason}")]
    Domain { value: String, reason: String },
    #[error("invalid IP address {0:?}")]
    Ip(String),
    #[error("expected an {expected} address, got {value:?}")]
    IpFamily {
        expected: &'static str,
        value: String,
    },
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
    #[error("CIDR {given} has host bits set (network is {network})")]
    CidrHostBits { given: String, network: String },
    #[error("invalid URL {value:?}: {reason}")]
    Url { value: String, reason: String },
    #[error("invalid {kind} hash: {reason}")]
    Hash { kind: &'static str, reason: String },
    #[error("invalid e-mail address {value:?}: {reason}")]
    Email { value: String, reason: String },
    #[error("invalid file name {value:?}: {reason}")]
    FileName { value: String, reason: String },
}

/// Normalizes `input`, guessing the kind unless `kind_hint` gives it.
///
/// Without a hint, a file name is never guessed (any word would be one), and
/// a bare name is an exact domain unless written `*.name`.
pub fn normalize(
    kind_hint: Option<Kind>,
    input: &str,
) -> Result<(IndicatorKind, String), NormError> {
    if input.len() > MAX_VALUE_LEN {
        return Err(NormError::TooLong);
    }
    // Tabs and line breaks inside a value are dropped first, as the URL
    // standard's parser drops them: done later (by the URL parser alone)
    // they could join a defanged `[.\r]` into a `[.]` that was never
    // refanged, and the stored value would change when normalized again.
    let input: Cow<'_, str> = if input.contains(['\t', '\r', '\n']) {
        Cow::Owned(input.replace(['\t', '\r', '\n'], ""))
    } else {
        Cow::Borrowed(input)
    };
    let refanged = refang(input.trim());
    let s = refanged.trim();
    if s.is_empty() {
        return Err(NormError::Empty);
    }
    match kind_hint {
        None => guess(s),
        Some(Kind::Domain) => domain(s, false),
        Some(Kind::Hostname) => domain(s, true),
        Some(Kind::Ip) => ip(s, None),
        Some(Kind::Ipv4) => ip(s, Some(false)),
        Some(Kind::Ipv6) => ip(s, Some(true)),
        Some(Kind::Cidr) => cidr(s),
        Some(Kind::Url) => url(s),
        Some(Kind::Hash) => hash(s, None),
        Some(Kind::Md5) => hash(s, Some(IndicatorKind::Md5)),
        Some(Kind::Sha1) => hash(s, Some(IndicatorKind::Sha1)),
        Some(Kind::Sha256) => hash(s, Some(IndicatorKind::Sha256)),
        Some(Kind::Email) => email(s),
        Some(Kind::FileName) => file_name(s),
    }
}

/// The hint under which a normalized value normalizes to itself.
pub fn hint_for(kind: IndicatorKind) -> Kind {
    match kind {
        IndicatorKind::Domain { exact: false } => Kind::Domain,
        IndicatorKind::Domain { exact: true } => Kind::Hostname,
        IndicatorKind::Ipv4 => Kind::Ipv4,
        IndicatorKind::Ipv6 => Kind::Ipv6,
        IndicatorKind::Cidr => Kind::Cidr,
        IndicatorKind::Url => Kind::Url,
        IndicatorKind::Md5 => Kind::Md5,
        IndicatorKind::Sha1 => Kind::Sha1,
        IndicatorKind::Sha256 => Kind::Sha256,
        IndicatorKind::Email => Kind::Email,
        IndicatorKind::FileName => Kind::FileName,
    }
}

/// The one-line text form that [`normalize`] without a hint reads back as
/// the same indicator: `*.name` for a non-exact domain, else the value.
/// (File names have no such form; they read back only with their hint.)
pub fn display(kind: IndicatorKind, value: &str) -> Cow<'_, str> {
    match kind {
        IndicatorKind::Domain { exact: false } => Cow::Owned(format!("*.{value}")),
        _ => Cow::Borrowed(value),
    }
}

fn guess(s: &str) -> Result<(IndicatorKind, String), NormError> {
    if s.contains("://") {
        return url(s);
    }
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(addr) = unbracketed.parse::<IpAddr>() {
        return Ok(ip_kind(addr));
    }
    if let Some((head, tail)) = s.split_once('/') {
        let head_is_ip = head.parse::<IpAddr>().is_ok();
        if head_is_ip && !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) {
            return cidr(s);
        }
        // A host with a path: a URL without its scheme (`evil.com/gate.php`).
        if head_is_ip || domain_name(head).is_ok() {
            return url(s);
        }
        return Err(NormError::Unrecognized(s.to_owned()));
    }
    if matches!(s.len(), 32 | 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hash(s, None);
    }
    if s.contains('@') {
        return email(s);
    }
    if s.contains('.') {
        return match s.strip_prefix("*.") {
            Some(_) => domain(s, false),
            None => domain(s, true),
        };
    }
    Err(NormError::Unrecognized(s.to_owned()))
}

/// Undoes the usual ways of defanging an indicator in reports and feeds:
/// `hxxp`, `[.]`, `(.)`, `{.}`, `[dot]`, `\.`, `[:]`, `[://]`, `[/]`,
/// `[at]`, `(at)`, `[@]`. Only bracketed forms are touched, so ordinary
/// text is left alone.
pub fn refang(s: &str) -> Cow<'_, str> {
    let mut out = refang_once(s);
    // `[[.]]` refangs to `[.]`: repeat until nothing changes, so that
    // normalizing a result again cannot change it. Each round that changes
    // something makes the text shorter, so this ends.
    loop {
        let next = match refang_once(&out) {
            Cow::Borrowed(_) => None,
            Cow::Owned(n) => Some(n),
        };
        match next {
            None => return out,
            Some(n) => out = Cow::Owned(n),
        }
    }
}

fn refang_once(s: &str) -> Cow<'_, str> {
    let has_bracket = s.contains(['[', '(', '{', '\\']);
    // `hxxp` only as a scheme (`hxxp://`, `hxxps[:]//`…): a name such as
    // `hxxp1.example.com` is a name, and refanging it would make its
    // normal form change when normalized again.
    let lower_start = s.get(..6).or(s.get(..5)).map(|p| p.to_ascii_lowercase());
    let hx = matches!(lower_start.as_deref(), Some(p)
        if p.starts_with("hxxp:") || p.starts_with("hxxp[")
            || p.starts_with("hxxps:") || p.starts_with("hxxps["));
    if !has_bracket && !hx {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    if hx {
        // `hxxp` → `http`, `hxxps` → `https`, keeping the rest as written.
        out.push_str("http");
        rest = &rest[4..];
    }
    const SUBST: [(&str, &str); 17] = [
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("{dot}", "."),
        ("\\.", "."),
        ("[:]", ":"),
        ("[://]", "://"),
        ("[:/]", ":/"),
        ("[/]", "/"),
        ("[at]", "@"),
        ("(at)", "@"),
        ("{at}", "@"),
        ("[@]", "@"),
        ("[dot ]", "."),
        ("[ dot ]", "."),
    ];
    'outer: while !rest.is_empty() {
        let b = rest.as_bytes()[0];
        if matches!(b, b'[' | b'(' | b'{' | b'\\') {
            for (from, to) in SUBST {
                if rest.len() >= from.len()
                    && rest.is_char_boundary(from.len())
                    && rest[..from.len()].eq_ignore_ascii_case(from)
                {
                    out.push_str(to);
                    rest = &rest[from.len()..];
                    continue 'outer;
                }
            }
        }
        let ch_len = rest.chars().next().map_or(1, char::len_utf8);
        out.push_str(&rest[..ch_len]);
        rest = &rest[ch_len..];
    }
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

fn domain_err(value: &str, reason: impl Into<String>) -> NormError {
    NormError::Domain {
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Normalizes a domain name; `*.` in front makes it non-exact whatever
/// `exact` says.
fn domain(s: &str, exact: bool) -> Result<(IndicatorKind, String), NormError> {
    let (exact, name) = match s.strip_prefix("*.") {
        Some(rest) => (false, rest),
        None => (exact, s),
    };
    Ok((IndicatorKind::Domain { exact }, domain_name(name)?))
}

/// A domain name in its normalized (punycode, lower-case) spelling.
pub(crate) fn domain_name(s: &str) -> Result<String, NormError> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        return Err(domain_err(s, "empty name"));
    }
    // The URL deny list refuses characters that cannot be in a host
    // (space, `/`, `@`, `:` …) but allows `_`, which real DNS names carry.
    let ascii = idna::domain_to_ascii_cow(name.as_bytes(), idna::AsciiDenyList::URL)
        .map_err(|_| domain_err(s, "not a valid internationalized domain name"))?;
    let ascii = ascii.into_owned();
    check_labels(&ascii).map_err(|r| domain_err(s, r))?;
    Ok(ascii)
}

fn check_labels(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("{} bytes, more than 253", name.len()));
    }
    let mut labels = 0;
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err("empty label".into());
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} longer than 63 bytes"));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} not allowed in a DNS name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label {label:?} starts or ends with '-'"));
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err("a single label is not a domain".into());
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("top-level label is all digits".into());
    }
    Ok(())
}

fn ip_kind(addr: IpAddr) -> (IndicatorKind, String) {
    match addr.to_canonical() {
        IpAddr::V4(a) => (IndicatorKind::Ipv4, a.to_string()),
        IpAddr::V6(a) => (IndicatorKind::Ipv6, a.to_string()),
    }
}

/// `v6`: `None` either family, `Some(true)` IPv6 only, `Some(false)` IPv4.
/// A CIDR is accepted too (MISP `ip-src` may hold one).
fn ip(s: &str, v6: Option<bool>) -> Result<(IndicatorKind, String), NormError> {
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    let (kind, value) = match unbracketed.parse::<IpAddr>() {
        Ok(addr) => ip_kind(addr),
        Err(_) if s.contains('/') => cidr(s)?,
        Err(_) => return Err(NormError::Ip(s.to_owned())),
    };
    let is_v6 = match kind {
        IndicatorKind::Ipv6 => true,
        IndicatorKind::Cidr => value.contains(':'),
        _ => false,
    };
    match v6 {
        Some(want) if want != is_v6 => Err(NormError::IpFamily {
            expected: if want { "IPv6" } else { "IPv4" },
            value: s.to_owned(),
        }),
        _ => Ok((kind, value)),
    }
}

fn cidr(s: &str) -> Result<(IndicatorKind, String), NormError> {
    let net: IpNet = s.parse().map_err(|_| NormError::Cidr(s.to_owned()))?;
    let trunc = net.trunc();
    if trunc != net {
        return Err(NormError::CidrHostBits {
            given: s.to_owned(),
            network: trunc.to_string(),
        });
    }
    if net.prefix_len() == net.max_prefix_len() {
        return Ok(ip_kind(net.addr()));
    }
    Ok((IndicatorKind::Cidr, net.to_string()))
}

fn url_err(value: &str, reason: impl Into<String>) -> NormError {
    NormError::Url {
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn url(s: &str) -> Result<(IndicatorKind, String), NormError> {
    // The URL parser can write a defanged form the text did not have (it
    // turns `\` into `/`, so `[\]` becomes `[/]`), which the next
    // normalization would refang: parse again until the serialization is
    // refanged already, so that the normal form is a fixed point. Each
    // round that changes something removes a backslash or shortens the
    // text, so a few rounds suffice.
    let mut value = url_once(s)?;
    for _ in 0..8 {
        let again = refang(&value.1);
        if again == value.1 {
            return Ok(value);
        }
        value = url_once(&again)?;
    }
    Err(url_err(s, "its defanged forms do not settle"))
}

fn url_once(s: &str) -> Result<(IndicatorKind, String), NormError> {
    let with_scheme: Cow<'_, str> = if s.contains("://") {
        Cow::Borrowed(s)
    } else {
        // Feeds often drop the scheme (`evil.com/gate.php`); http is what a
        // browser would try.
        Cow::Owned(format!("http://{s}"))
    };
    let mut u = url::Url::parse(&with_scheme).map_err(|e| url_err(s, e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https" | "ftp" | "ws" | "wss") {
        return Err(url_err(s, format!("scheme {:?} not supported", u.scheme())));
    }
    let host = match u.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.strip_suffix('.').unwrap_or(d);
            check_labels(d).map_err(|r| url_err(s, format!("host: {r}")))?;
            Some(d.to_owned())
        }
        Some(_) => None,
        None => return Err(url_err(s, "no host")),
    };
    if let Some(h) = host {
        u.set_host(Some(&h))
            .map_err(|e| url_err(s, format!("host: {e}")))?;
    }
    u.set_fragment(None);
    Ok((IndicatorKind::Url, u.to_string()))
}

fn hash(s: &str, want: Option<IndicatorKind>) -> Result<(IndicatorKind, String), NormError> {
    let name = match want {
        Some(IndicatorKind::Md5) => "MD5",
        Some(IndicatorKind::Sha1) => "SHA-1",
        Some(IndicatorKind::Sha256) => "SHA-256",
        _ => "MD5/SHA-1/SHA-256",
    };
    if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(NormError::Hash {
            kind: name,
            reason: format!("{c:?} is not a hex digit"),
        });
    }
    let by_len = match s.len() {
        32 => IndicatorKind::Md5,
        40 => IndicatorKind::Sha1,
        64 => IndicatorKind::Sha256,
        n => {
            return Err(NormError::Hash {
                kind: name,
                reason: format!("{n} hex digits; expected 32 (MD5), 40 (SHA-1) or 64 (SHA-256)"),
            })
        }
    };
    if let Some(w) = want {
        if w != by_len {
            let expected = match w {
                IndicatorKind::Md5 => 32,
                IndicatorKind::Sha1 => 40,
                _ => 64,
            };
            return Err(NormError::Hash {
                kind: name,
                reason: format!("{} hex digits; expected {expected}", s.len()),
            });
        }
    }
    Ok((by_len, s.to_ascii_lowercase()))
}

fn email(s: &str) -> Result<(IndicatorKind, String), NormError> {
    let err = |r: &str| NormError::Email {
        value: s.to_owned(),
        reason: r.to_owned(),
    };
    let s2 = s.strip_prefix("mailto:").unwrap_or(s);
    let (local, dom) = s2.rsplit_once('@').ok_or_else(|| err("no '@'"))?;
    if local.is_empty() {
        return Err(err("empty local part"));
    }
    if local.len() > 64 {
        return Err(err("local part longer than 64 bytes"));
    }
    if local.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '@' | '<' | '>' | '"' | ',' | ';' | '/' | '[' | ']' | '(' | ')'
            )
    }) {
        return Err(err("local part has a character not allowed unquoted"));
    }
    let dom = domain_name(dom).map_err(|e| match e {
        NormError::Domain { reason, .. } => err(&format!("domain: {reason}")),
        other => other,
    })?;
    Ok((
        IndicatorKind::Email,
        format!("{}@{dom}", local.to_lowercase()),
    ))
}

fn file_name(s: &str) -> Result<(IndicatorKind, String), NormError> {
    let err = |r: &str| NormError::FileName {
        value: s.to_owned(),
        reason: r.to_owned(),
    };
    if s.len() > 255 {
        return Err(err("longer than 255 bytes"));
    }
    if s.contains(['/', '\\']) {
        return Err(err("contains a path separator"));
    }
    if s.chars().any(char::is_control) {
        return Err(err("contains a control character"));
    }
    Ok((IndicatorKind::FileName, s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(h: Option<Kind>, s: &str) -> (IndicatorKind, String) {
        normalize(h, s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn domains() {
        let exact = IndicatorKind::Domain { exact: true };
        assert_eq!(n(None, "Evil.COM."), (exact, "evil.com".into()));
        assert_eq!(n(None, "evil[.]com"), (exact, "evil.com".into()));
        assert_eq!(n(None, "evil(.)com"), (exact, "evil.com".into()));
        assert_eq!(n(None, "evil{dot}com"), (exact, "evil.com".into()));
        assert_eq!(
            n(None, "*.Bücher.example"),
            (
                IndicatorKind::Domain { exact: false },
                "xn--bcher-kva.example".into()
            )
        );
        assert_eq!(
            n(Some(Kind::Domain), "a.b").0,
            IndicatorKind::Domain { exact: false }
        );
        assert_eq!(n(None, "_dmarc.example.org").1, "_dmarc.example.org");
        for bad in [
            "evil",
            "evil..com",
            "ev il.com",
            "1.2.3",
            "a.-",
            "x.*.com",
            ".",
        ] {
            let r = normalize(Some(Kind::Domain), bad);
            assert!(r.is_err(), "{bad}: {r:?}");
        }
        let long = format!("{}.com", "a".repeat(64));
        assert!(matches!(
            normalize(None, &long),
            Err(NormError::Domain { reason, .. }) if reason.contains("longer than 63")
        ));
    }

    #[test]
    fn ips_and_cidrs() {
        assert_eq!(n(None, "1.2.3.4"), (IndicatorKind::Ipv4, "1.2.3.4".into()));
        assert_eq!(
            n(None, "1[.]2[.]3[.]4"),
            (IndicatorKind::Ipv4, "1.2.3.4".into())
        );
        assert_eq!(
            n(None, "::FFFF:1.2.3.4"),
            (IndicatorKind::Ipv4, "1.2.3.4".into())
        );
        assert_eq!(
            n(None, "[2001:DB8::0:1]"),
            (IndicatorKind::Ipv6, "2001:db8::1".into())
        );
        assert_eq!(
            n(None, "10.0.0.0/8"),
            (IndicatorKind::Cidr, "10.0.0.0/8".into())
        );
        assert_eq!(
            n(None, "10.1.2.3/32"),
            (IndicatorKind::Ipv4, "10.1.2.3".into())
        );
        assert_eq!(
            normalize(None, "10.1.2.3/8"),
            Err(NormError::CidrHostBits {
                given: "10.1.2.3/8".into(),
                network: "10.0.0.0/8".into()
            })
        );
        assert!(matches!(
            normalize(Some(Kind::Ipv4), "::1"),
            Err(NormError::IpFamily { .. })
        ));
        assert!(matches!(
            normalize(Some(Kind::Ip), "300.1.1.1"),
            Err(NormError::Ip(_))
        ));
        assert_eq!(n(Some(Kind::Ip), "58.246.0.0/15").0, IndicatorKind::Cidr);
    }

    #[test]
    fn urls() {
        let u = |s| n(None, s).1;
        assert_eq!(
            u("hxxp://Evil[.]COM/a/../b?q=1#frag"),
            "http://evil.com/b?q=1"
        );
        assert_eq!(u("HXXPS[://]evil.com:443"), "https://evil.com/");
        assert_eq!(u("http://evil.com./x"), "http://evil.com/x");
        assert_eq!(
            u("http://bücher.example/ü"),
            "http://xn--bcher-kva.example/%C3%BC"
        );
        assert_eq!(u("evil.com/gate.php"), "http://evil.com/gate.php");
        assert_eq!(u("1.2.3.4/x.php"), "http://1.2.3.4/x.php");
        assert_eq!(n(Some(Kind::Url), "evil.com").1, "http://evil.com/");
        assert!(matches!(
            normalize(None, "javascript://alert(1)"),
            Err(NormError::Url { .. })
        ));
        assert!(normalize(None, "mailto://x").is_err());
        assert!(normalize(None, "http://").is_err());
    }

    #[test]
    fn hashes_emails_files() {
        let md5 = "D41D8CD98F00B204E9800998ECF8427E";
        assert_eq!(n(None, md5), (IndicatorKind::Md5, md5.to_lowercase()));
        assert_eq!(
            n(Some(Kind::Hash), &"a".repeat(64)).0,
            IndicatorKind::Sha256
        );
        assert!(matches!(
            normalize(Some(Kind::Sha1), md5),
            Err(NormError::Hash { reason, .. }) if reason.contains("expected 40")
        ));
        assert!(matches!(
            normalize(Some(Kind::Md5), &"g".repeat(32)),
            Err(NormError::Hash { reason, .. }) if reason.contains("not a hex digit")
        ));
        assert_eq!(
            n(None, "Bad.Guy[at]Evil[.]com"),
            (IndicatorKind::Email, "bad.guy@evil.com".into())
        );
        assert!(normalize(None, "@evil.com").is_err());
        assert_eq!(
            n(Some(Kind::FileName), " Invoice.PDF.exe "),
            (IndicatorKind::FileName, "Invoice.PDF.exe".into())
        );
        assert!(normalize(Some(Kind::FileName), "C:\\x.exe").is_err());
        assert_eq!(normalize(None, "   "), Err(NormError::Empty));
        assert!(matches!(
            normalize(None, "hello"),
            Err(NormError::Unrecognized(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_and_is_idempotent(
            s in "(hxxps?://|\\*\\.|)[a-zA-Z0-9üé.:/\\[\\]()@_%?#=-]{0,40}",
            hint in proptest::option::of(proptest::sample::select(vec![
                Kind::Domain, Kind::Hostname, Kind::Ip, Kind::Ipv4, Kind::Ipv6, Kind::Cidr,
                Kind::Url, Kind::Hash, Kind::Md5, Kind::Sha1, Kind::Sha256, Kind::Email,
                Kind::FileName,
            ])),
        ) {
            if let Ok((k, v)) = normalize(hint, &s) {
                prop_assert_eq!(normalize(Some(hint_for(k)), &v), Ok((k, v.clone())));
                if k != IndicatorKind::FileName {
                    prop_assert_eq!(normalize(None, &display(k, &v)), Ok((k, v.clone())));
                }
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            for h in [None, Some(Kind::Url), Some(Kind::Domain), Some(Kind::Email)] {
                if let Ok((k, v)) = normalize(h, &s) {
                    prop_assert_eq!(normalize(Some(hint_for(k)), &v), Ok((k, v.clone())));
                }
            }
        }
    }
}
