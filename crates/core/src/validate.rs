//! Input validation with precise errors: every failure names the field (with
//! its index in a list) and says what was wrong and what is accepted.

use crate::org::Contact;
use ipnet::IpNet;
use std::fmt;

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidInput {
    /// The field, as a JSON-pointer-like path: `name`, `networks[2]`.
    pub field: String,
    /// What was wrong, quoting the offending value.
    pub reason: String,
}

impl InvalidInput {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Input that can be checked and normalized before it is stored.
pub trait Validated {
    type Output;
    fn validate(&self) -> Result<Self::Output, InvalidInput>;
}

/// Longest display name we keep, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Most entries in any list field (networks, domains, contacts).
pub const MAX_LIST_LEN: usize = 1000;

/// A slug: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter or
/// digit. Slugs appear on command lines and in URLs, so they stay ASCII.
pub fn slug(s: &str) -> Result<String, InvalidInput> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidInput::new(
            "slug",
            format!(
                "{s:?} is not a valid slug: use 1-63 characters of a-z, 0-9 and '-', not starting with '-'"
            ),
        ))
    }
}

/// A display name: trimmed, non-empty, at most [`MAX_NAME_CHARS`] characters,
/// no control characters. Any script is welcome.
pub fn display_name(field: &str, s: &str) -> Result<String, InvalidInput> {
    let t = s.trim();
    if t.is_empty() {
        return Err(InvalidInput::new(field, "must not be empty"));
    }
    let n = t.chars().count();
    if n > MAX_NAME_CHARS {
        return Err(InvalidInput::new(
            field,
            format!("is {n} characters long; at most {MAX_NAME_CHARS} are allowed"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(t.to_string())
}

/// Optional free text, trimmed; empty becomes `None`.
pub fn optional_text(
    field: &str,
    s: Option<&str>,
    max_chars: usize,
) -> Result<Option<String>, InvalidInput> {
    let Some(s) = s.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if s.chars().count() > max_chars {
        return Err(InvalidInput::new(
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(InvalidInput::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(Some(s.to_string()))
}

fn check_len<T>(field: &str, items: &[T]) -> Result<(), InvalidInput> {
    if items.len() > MAX_LIST_LEN {
        return Err(InvalidInput::new(
            field,
            format!(
                "has {} entries; at most {MAX_LIST_LEN} are allowed",
                items.len()
            ),
        ));
    }
    Ok(())
}

/// CIDR ranges (a bare address is taken as a /32 or /128), normalized to
/// their network address and de-duplicated.
pub fn networks(items: &[String]) -> Result<Vec<IpNet>, InvalidInput> {
    check_len("networks", items)?;
    let mut out: Vec<IpNet> = Vec::with_capacity(items.len());
    for (i, s) in items.iter().enumerate() {
        let s = s.trim();
        let net = s
            .parse::<IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                InvalidInput::new(
                    format!("networks[{i}]"),
                    format!("{s:?} is not an IP network; expected CIDR like 192.0.2.0/24 or 2001:db8::/32"),
                )
            })?
            .trunc();
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

/// Domain names: lower-cased, trailing dot dropped, Unicode converted to
/// punycode (IDNA), each label 1–63 LDH characters, at most 253 in all.
pub fn domains(items: &[String]) -> Result<Vec<String>, InvalidInput> {
    check_len("domains", items)?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, raw) in items.iter().enumerate() {
        let d = domain(raw).map_err(|reason| InvalidInput::new(format!("domains[{i}]"), reason))?;
        if !out.contains(&d) {
            out.push(d);
        }
    }
    Ok(out)
}

/// Normalizes one domain name; the error says why it is not one.
pub fn domain(raw: &str) -> Result<String, String> {
    let s = raw.trim().trim_end_matches('.');
    if s.is_empty() {
        return Err(format!("{raw:?} is not a domain name: it is empty"));
    }
    let ascii = idna::domain_to_ascii(s)
        .map_err(|_| format!("{raw:?} is not a valid internationalized domain name"))?;
    if ascii.len() > 253 {
        return Err(format!("{raw:?} is longer than 253 characters"));
    }
    if !ascii.contains('.') {
        return Err(format!(
            "{raw:?} is a single label; give a full domain such as example.go.jp"
        ));
    }
    for label in ascii.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{raw:?} has an invalid label {label:?}: labels are 1-63 letters, digits or '-'"
            ));
        }
    }
    Ok(ascii)
}

/// A plausible e-mail address (one `@`, a domain after it). Deliverability is
/// not our business; typos like a missing `@` are.
pub fn email(field: &str, s: &str) -> Result<String, InvalidInput> {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, dom))
            if !local.is_empty() && !dom.contains('@') && domain(dom).is_ok() && s.len() <= 254 =>
        {
            Ok(s.to_string())
        }
        _ => Err(InvalidInput::new(
            field,
            format!("{s:?} is not an e-mail address"),
        )),
    }
}

/// Contacts: each needs a name; e-mail, phone and role are optional.
pub fn contacts(items: &[Contact]) -> Result<Vec<Contact>, InvalidInput> {
    check_len("contacts", items)?;
    items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok(Contact {
                name: display_name(&format!("contacts[{i}].name"), &c.name)?,
                email: c
                    .email
                    .as_deref()
                    .map(|e| email(&format!("contacts[{i}].email"), e))
                    .transpose()?,
                phone: optional_text(&format!("contacts[{i}].phone"), c.phone.as_deref(), 50)?,
                role: optional_text(&format!("contacts[{i}].role"), c.role.as_deref(), 100)?,
            })
        })
        .collect()
}

/// A user name: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn username(s: &str) -> Result<String, InvalidInput> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(InvalidInput::new(
            "username",
            format!(
                "{s:?} is not a valid user name: use 1-64 of a-z, A-Z, 0-9, '.', '_', '-', '@'"
            ),
        ))
    }
}

/// A password for a human login: at least 12 characters, at most 1024 bytes
/// (argon2 input is bounded so a huge body cannot buy CPU).
pub fn password(s: &str) -> Result<(), InvalidInput> {
    if s.chars().count() < 12 {
        return Err(InvalidInput::new(
            "password",
            "must be at least 12 characters long",
        ));
    }
    if s.len() > 1024 {
        return Err(InvalidInput::new("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn domains_normalize() {
        assert_eq!(domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(domain("省庁.jp").unwrap(), "xn--uwt585c.jp");
        assert!(domain("localhost").is_err());
        assert!(domain("-bad.com").is_err());
        assert!(domain("a..b").is_err());
    }

    #[test]
    fn networks_normalize() {
        let n = networks(&["10.1.2.3/8".into(), "10.0.0.0/8".into(), "192.0.2.7".into()]).unwrap();
        assert_eq!(
            n.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            vec!["10.0.0.0/8", "192.0.2.7/32"]
        );
    }

    #[test]
    fn emails() {
        assert!(email("e", "soc@example.go.jp").is_ok());
        assert!(email("e", "soc.example.go.jp").is_err());
        assert!(email("e", "a@b@c.jp").is_err());
    }

    proptest! {
        // Validation never panics, whatever it is fed.
        #[test]
        fn validators_total(s in "\\PC{0,300}") {
            let _ = slug(&s);
            let _ = display_name("f", &s);
            let _ = domain(&s);
            let _ = email("f", &s);
            let _ = username(&s);
            let _ = networks(std::slice::from_ref(&s));
        }

        // What `domain` accepts it returns in a fixed point.
        #[test]
        fn domain_idempotent(s in "[a-zA-Z0-9.-]{1,80}") {
            if let Ok(d) = domain(&s) {
                prop_assert_eq!(domain(&d).unwrap(), d);
            }
        }
    }
}
