//! Identifiers. Every id is a UUIDv7 rendered as lower-case text: time-ordered
//! (so `ORDER BY id` is creation order and cursor pagination is stable) and
//! stored as TEXT so the same schema serves SQLite and PostgreSQL.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A fresh time-ordered identifier.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// True when `s` looks like an id we issue (a hyphenated UUID). Used to give
/// a precise error for malformed ids instead of a silent "not found".
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// A new, unique, time-ordered id.
            pub fn generate() -> Self {
                Self(new_id())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

id_type!(
    /// Identifies an organization in the tree.
    OrgId
);
id_type!(
    /// Identifies a human user.
    UserId
);
id_type!(
    /// Identifies an API token (never the token secret itself).
    TokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_valid() {
        let a = new_id();
        let b = new_id();
        assert!(a < b, "{a} should sort before {b}");
        assert!(is_valid_id(&a));
        assert!(!is_valid_id("mof"));
        assert!(!is_valid_id(""));
    }
}
