//! The org tree: the central SOC at the root, supervisors that watch a
//! sub-tree, and member orgs, to any depth.

use crate::validate::{self, InvalidInput, Validated};
use crate::{OrgId, UnixMillis};
pub use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What an org is in the tree. It describes the org; what a caller may see is
/// decided by the caller's [`crate::Role`], not by this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OrgKind {
    /// The root: the central SOC. Exactly one exists.
    Soc,
    /// Watches its sub-tree (e.g. a ministry's agency overseeing independent
    /// administrative agencies).
    Supervisor,
    /// A member org: a ministry, an agency, a hospital, a customer.
    Member,
}

impl OrgKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Soc => "soc",
            OrgKind::Supervisor => "supervisor",
            OrgKind::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        match s {
            "soc" => Ok(OrgKind::Soc),
            "supervisor" => Ok(OrgKind::Supervisor),
            "member" => Ok(OrgKind::Member),
            other => Err(InvalidInput::new(
                "kind",
                format!("unknown org kind {other:?}; expected one of soc, supervisor, member"),
            )),
        }
    }
}

/// The materialized path of an org: `/<root-id>/<child-id>/…/<org-id>/`.
///
/// Sub-tree membership is a prefix test on this string, in Rust and in SQL
/// (`path LIKE '<prefix>%'`), so every scoped query is one predicate rather
/// than a recursive walk. Ids are UUIDs, so a path never contains the LIKE
/// wildcards `%` or `_`. (Whether the database serves the prefix from an
/// index depends on its collation settings; tuning that for large trees is
/// open work.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgPath(pub String);

impl OrgPath {
    /// The path of the root org.
    pub fn root(id: &OrgId) -> Self {
        OrgPath(format!("/{id}/"))
    }

    /// The path of a child of `self`.
    pub fn child(&self, id: &OrgId) -> Self {
        OrgPath(format!("{}{id}/", self.0))
    }

    /// True when `self` is `ancestor` or lies below it.
    pub fn is_within(&self, ancestor: &OrgPath) -> bool {
        self.0.starts_with(&ancestor.0)
    }

    /// Number of orgs on the path (the root has depth 1).
    pub fn depth(&self) -> usize {
        self.0.matches('/').count().saturating_sub(1)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A contact person for an org (who the SOC calls at 3 a.m.).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// What the contact is for, e.g. "incident", "management".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// An organization as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Org {
    #[schema(value_type = String)]
    pub id: OrgId,
    /// Short unique handle used on the command line (`mof`, `ipa-jaxa`).
    pub slug: String,
    /// Display name; any Unicode (Japanese names are the norm).
    pub name: String,
    pub kind: OrgKind,
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<OrgId>,
    /// Sector, free text (e.g. "government", "health", "education").
    pub sector: Option<String>,
    pub contacts: Vec<Contact>,
    /// Declared network ranges (CIDR): used to attribute telemetry, DNS
    /// clients and attack-surface scope to this org.
    #[schema(value_type = Vec<String>)]
    pub networks: Vec<IpNet>,
    /// Declared domains (ASCII/punycode, lower-case).
    pub domains: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    #[serde(skip)]
    pub path: OrgPath,
}

/// What a caller supplies to create an org (under a given parent).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub slug: String,
    pub name: String,
    /// Parent org id. Required: only `mimamori init` creates the root.
    #[schema(value_type = String)]
    pub parent_id: Option<OrgId>,
    /// `supervisor` or `member` (default `member`).
    #[serde(default)]
    pub kind: Option<OrgKind>,
    #[serde(default)]
    pub sector: Option<String>,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// A partial update of an org's profile. The parent cannot change: moving an
/// org between supervisors would silently change who sees its history, so
/// that is a separate, explicit operation (not built yet).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    pub name: Option<String>,
    pub sector: Option<String>,
    pub contacts: Option<Vec<Contact>>,
    pub networks: Option<Vec<String>>,
    pub domains: Option<Vec<String>>,
}

/// The validated, normalized fields of an org profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgProfile {
    pub name: String,
    pub sector: Option<String>,
    pub contacts: Vec<Contact>,
    pub networks: Vec<IpNet>,
    pub domains: Vec<String>,
}

impl Validated for NewOrg {
    type Output = (String, OrgProfile);

    /// Returns the normalized slug and profile.
    fn validate(&self) -> Result<Self::Output, InvalidInput> {
        let slug = validate::slug(&self.slug)?;
        let profile = OrgProfile {
            name: validate::display_name("name", &self.name)?,
            sector: validate::optional_text("sector", self.sector.as_deref(), 100)?,
            contacts: validate::contacts(&self.contacts)?,
            networks: validate::networks(&self.networks)?,
            domains: validate::domains(&self.domains)?,
        };
        Ok((slug, profile))
    }
}

impl OrgPatch {
    /// Applies the patch to `org`'s current profile, validating every field.
    pub fn apply_to(&self, org: &Org) -> Result<OrgProfile, InvalidInput> {
        Ok(OrgProfile {
            name: match &self.name {
                Some(n) => validate::display_name("name", n)?,
                None => org.name.clone(),
            },
            sector: match &self.sector {
                Some(s) => validate::optional_text("sector", Some(s), 100)?,
                None => org.sector.clone(),
            },
            contacts: match &self.contacts {
                Some(c) => validate::contacts(c)?,
                None => org.contacts.clone(),
            },
            networks: match &self.networks {
                Some(n) => validate::networks(n)?,
                None => org.networks.clone(),
            },
            domains: match &self.domains {
                Some(d) => validate::domains(d)?,
                None => org.domains.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest() {
        let root = OrgPath::root(&OrgId("a".into()));
        let child = root.child(&OrgId("b".into()));
        let grandchild = child.child(&OrgId("c".into()));
        assert_eq!(grandchild.as_str(), "/a/b/c/");
        assert!(grandchild.is_within(&root));
        assert!(grandchild.is_within(&child));
        assert!(!child.is_within(&grandchild));
        assert_eq!(grandchild.depth(), 3);
        // A sibling whose id shares a prefix must not be inside.
        let sibling = root.child(&OrgId("bb".into()));
        assert!(!sibling.is_within(&child));
    }

    #[test]
    fn new_org_validates_and_normalizes() {
        let new = NewOrg {
            slug: "mof".into(),
            name: "  財務省  ".into(),
            networks: vec!["192.0.2.0/24".into(), "2001:db8::/32".into()],
            domains: vec!["MOF.go.JP.".into(), "例え.jp".into()],
            ..Default::default()
        };
        let (slug, profile) = new.validate().unwrap();
        assert_eq!(slug, "mof");
        assert_eq!(profile.name, "財務省");
        assert_eq!(profile.domains, vec!["mof.go.jp", "xn--r8jz45g.jp"]);
        assert_eq!(profile.networks.len(), 2);
    }

    #[test]
    fn new_org_rejects_bad_fields_precisely() {
        let bad = NewOrg {
            slug: "Mof Ministry".into(),
            name: "x".into(),
            ..Default::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.field, "slug");

        let bad = NewOrg {
            slug: "mof".into(),
            name: "x".into(),
            networks: vec!["192.0.2.0/33".into()],
            ..Default::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.field, "networks[0]");
        assert!(err.reason.contains("192.0.2.0/33"), "{}", err.reason);
    }
}
