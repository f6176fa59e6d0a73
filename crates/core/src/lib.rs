//! Domain types every mimamori crate shares: identifiers, the org tree,
//! roles and the scope a caller may see.
//!
//! This crate knows nothing about HTTP, SQL or files. It holds the rules of
//! tenancy in one place so that the store and the API cannot disagree about
//! who may see what:
//!
//! - an org sits in a tree under one root (the central SOC) and is addressed
//!   by its materialized [`OrgPath`];
//! - a caller acts with one [`Role`] anchored at one org; the role decides
//!   whether the caller sees that org alone or its whole sub-tree
//!   ([`Scope`]);
//! - [`Action`]s are allowed or refused by [`Role::allows`], and grants can
//!   never exceed the granter's own power ([`Role::can_grant`]).

pub mod ids;
pub mod org;
pub mod role;
pub mod validate;

pub use ids::{new_id, OrgId, TokenId, UserId};
pub use org::{NewOrg, Org, OrgKind, OrgPatch, OrgPath};
pub use role::{Action, Principal, Role, Scope};
pub use validate::{InvalidInput, Validated};

/// Milliseconds since the Unix epoch, the one time representation stored in
/// every table (it sorts, compares and survives both SQLite and PostgreSQL).
pub type UnixMillis = i64;

/// The current time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Renders [`UnixMillis`] as RFC 3339 (UTC), for people and for the wire
/// formats that want it. The JSON API itself returns integer Unix
/// milliseconds.
pub fn millis_to_rfc3339(ms: UnixMillis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| ms.to_string()),
        Err(_) => ms.to_string(),
    }
}

/// Parses an RFC 3339 timestamp into [`UnixMillis`].
pub fn rfc3339_to_millis(s: &str) -> Result<UnixMillis, InvalidInput> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| InvalidInput::new("timestamp", format!("{s:?} is not RFC 3339: {e}")))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let ms = 1_764_100_000_123;
        let s = millis_to_rfc3339(ms);
        assert_eq!(s, "2025-11-25T19:46:40.123Z");
        assert_eq!(rfc3339_to_millis(&s).unwrap(), ms);
        assert!(rfc3339_to_millis("yesterday").is_err());
    }
}
