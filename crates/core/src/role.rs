//! Roles, scopes and the authorization rules. Every check the API makes comes
//! from here, so the rules can be read (and tested) in one place.

use crate::org::OrgPath;
use crate::{OrgId, TokenId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// What a caller is allowed to do, anchored at one org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the central SOC: everything, everywhere. Anchored at the root.
    SocAdmin,
    /// Central SOC analyst: reads the whole tree. Anchored at the root.
    SocAnalyst,
    /// Analyst of a supervising org: reads its own sub-tree.
    SupervisorAnalyst,
    /// Administers one org: its profile, users, tokens and audit log.
    OrgAdmin,
    /// Reads one org's data.
    OrgAnalyst,
    /// A telemetry shipper: may only send events for its one org.
    Sensor,
    /// A Protective DNS client (a roaming laptop): its token, in the DoH
    /// path `/dns-query/<token>`, selects its org's DNS policy. It may do
    /// nothing in the API.
    DnsClient,
}

/// Every role, in decreasing power (used by tests and `--help`).
pub const ALL_ROLES: [Role; 7] = [
    Role::SocAdmin,
    Role::SocAnalyst,
    Role::SupervisorAnalyst,
    Role::OrgAdmin,
    Role::OrgAnalyst,
    Role::Sensor,
    Role::DnsClient,
];

/// Something a caller may try to do. Authorization is the pair (role allows
/// the action) ∧ (the target org is inside the caller's scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    OrgRead,
    OrgCreate,
    OrgUpdate,
    OrgDelete,
    UserRead,
    UserManage,
    TokenRead,
    TokenManage,
    AuditRead,
    Ingest,
    /// Query archived telemetry (SQL over the event archive).
    EventRead,
    /// Read alerts, campaigns and suppressions.
    AlertRead,
    /// Work alerts: status, assignee, comments, suppressions.
    AlertTriage,
    /// Read and change where an org's alerts are delivered.
    NotifyManage,
    /// Read threat intelligence (as TLP allows the caller's org).
    IntelRead,
    /// Contribute threat intelligence (owned by an org in scope).
    IntelWrite,
    /// Create and change sharing groups owned by an org in scope.
    SharingManage,
    /// Read an org's Protective DNS allow and block lists.
    DnsPolicyRead,
    /// Change them (they apply to the org and, for blocks, its sub-tree).
    DnsPolicyManage,
    /// Make the resolver read its policy files (RPZ zones, lists) again:
    /// the central SOC's administrators only.
    DnsZoneReload,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SocAdmin => "soc-admin",
            Role::SocAnalyst => "soc-analyst",
            Role::SupervisorAnalyst => "supervisor-analyst",
            Role::OrgAdmin => "org-admin",
            Role::OrgAnalyst => "org-analyst",
            Role::Sensor => "sensor",
            Role::DnsClient => "dns-client",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        ALL_ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// Roles that only make sense at the root org (the central SOC).
    pub fn requires_root(self) -> bool {
        matches!(self, Role::SocAdmin | Role::SocAnalyst)
    }

    /// True when the role sees the whole sub-tree below its org, false when
    /// it sees its own org only.
    pub fn sees_subtree(self) -> bool {
        matches!(
            self,
            Role::SocAdmin | Role::SocAnalyst | Role::SupervisorAnalyst
        )
    }

    /// Whether the role may perform `action` at all (scope is checked apart).
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::SocAdmin => action != Ingest,
            Role::SocAnalyst | Role::OrgAnalyst => {
                matches!(
                    action,
                    OrgRead
                        | EventRead
                        | AlertRead
                        | AlertTriage
                        | IntelRead
                        | IntelWrite
                        | DnsPolicyRead
                )
            }
            // A supervisor sets DNS policy for its sub-tree, as it shares
            // intel with it.
            Role::SupervisorAnalyst => matches!(
                action,
                OrgRead
                    | EventRead
                    | AlertRead
                    | AlertTriage
                    | IntelRead
                    | IntelWrite
                    | DnsPolicyRead
                    | DnsPolicyManage
            ),
            Role::OrgAdmin => matches!(
                action,
                OrgRead
                    | OrgUpdate
                    | UserRead
                    | UserManage
                    | TokenRead
                    | TokenManage
                    | AuditRead
                    | EventRead
                    | AlertRead
                    | AlertTriage
                    | NotifyManage
                    | IntelRead
                    | IntelWrite
                    | SharingManage
                    | DnsPolicyRead
                    | DnsPolicyManage
            ),
            Role::Sensor => action == Ingest,
            Role::DnsClient => false,
        }
    }

    /// Whether a human user may hold this role (sensors and DNS clients
    /// are machines: they only ever get tokens).
    pub fn for_humans(self) -> bool {
        !matches!(self, Role::Sensor | Role::DnsClient)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of orgs a caller can see, as a path predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The org at this path and everything below it.
    Subtree(OrgPath),
    /// Exactly the org at this path.
    Only(OrgPath),
}

impl Scope {
    pub fn contains(&self, path: &OrgPath) -> bool {
        match self {
            Scope::Subtree(root) => path.is_within(root),
            Scope::Only(p) => p == path,
        }
    }

    /// The SQL predicate on a `path` column and the value to bind for it.
    /// Both SQLite and PostgreSQL read it the same way.
    pub fn sql_predicate(&self, column: &str, placeholder: usize) -> (String, String) {
        match self {
            Scope::Subtree(p) => (
                format!("{column} LIKE ${placeholder}"),
                format!("{}%", p.as_str()),
            ),
            Scope::Only(p) => (format!("{column} = ${placeholder}"), p.as_str().to_string()),
        }
    }
}

/// An authenticated caller: who, acting as which role, anchored where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token_id: TokenId,
    pub user_id: Option<UserId>,
    pub org_id: OrgId,
    pub org_path: OrgPath,
    pub role: Role,
}

impl Principal {
    pub fn scope(&self) -> Scope {
        if self.role.sees_subtree() {
            Scope::Subtree(self.org_path.clone())
        } else {
            Scope::Only(self.org_path.clone())
        }
    }

    pub fn can(&self, action: Action) -> bool {
        self.role.allows(action)
    }

    /// Whether this caller may give `role` to a user or token of the org at
    /// `target`. A grant never exceeds the granter's own power, never leaves
    /// its scope, and root-only roles are only granted at the root.
    pub fn can_grant(
        &self,
        role: Role,
        target: &OrgPath,
        target_is_root: bool,
    ) -> Result<(), String> {
        if !self.scope().contains(target) {
            return Err("the org is outside your scope".into());
        }
        let grantable: &[Role] = match self.role {
            Role::SocAdmin => &ALL_ROLES,
            Role::OrgAdmin => &[
                Role::OrgAdmin,
                Role::OrgAnalyst,
                Role::Sensor,
                Role::DnsClient,
            ],
            _ => &[],
        };
        if !grantable.contains(&role) {
            return Err(format!("a {} cannot grant role {role}", self.role));
        }
        if role.requires_root() && !target_is_root {
            return Err(format!(
                "role {role} can only be granted at the root org (the central SOC)"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, path: &str) -> Principal {
        Principal {
            token_id: TokenId("t".into()),
            user_id: None,
            org_id: OrgId("o".into()),
            org_path: OrgPath(path.into()),
            role,
        }
    }

    #[test]
    fn role_names_round_trip() {
        for r in ALL_ROLES {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            let json = format!("\"{}\"", r.as_str());
            assert_eq!(serde_json_like(r), json);
        }
        assert_eq!(Role::parse("admin"), None);
    }

    fn serde_json_like(r: Role) -> String {
        // The serde name must equal as_str(); checked via Display.
        format!("\"{r}\"")
    }

    #[test]
    fn scopes() {
        let sup = principal(Role::SupervisorAnalyst, "/r/s/");
        assert!(sup.scope().contains(&OrgPath("/r/s/".into())));
        assert!(sup.scope().contains(&OrgPath("/r/s/a/".into())));
        assert!(!sup.scope().contains(&OrgPath("/r/".into())));
        assert!(!sup.scope().contains(&OrgPath("/r/t/".into())));
        let org = principal(Role::OrgAnalyst, "/r/s/");
        assert!(org.scope().contains(&OrgPath("/r/s/".into())));
        assert!(!org.scope().contains(&OrgPath("/r/s/a/".into())));
    }

    #[test]
    fn grants_never_escalate() {
        let org_admin = principal(Role::OrgAdmin, "/r/a/");
        let own = OrgPath("/r/a/".into());
        assert!(org_admin.can_grant(Role::OrgAnalyst, &own, false).is_ok());
        assert!(org_admin.can_grant(Role::Sensor, &own, false).is_ok());
        assert!(org_admin
            .can_grant(Role::SupervisorAnalyst, &own, false)
            .is_err());
        assert!(org_admin.can_grant(Role::SocAdmin, &own, false).is_err());
        assert!(org_admin
            .can_grant(Role::OrgAnalyst, &OrgPath("/r/b/".into()), false)
            .is_err());
        let soc = principal(Role::SocAdmin, "/r/");
        assert!(soc
            .can_grant(Role::SocAnalyst, &OrgPath("/r/".into()), true)
            .is_ok());
        assert!(soc
            .can_grant(Role::SocAnalyst, &OrgPath("/r/a/".into()), false)
            .is_err());
        for r in [
            Role::SocAnalyst,
            Role::SupervisorAnalyst,
            Role::OrgAnalyst,
            Role::Sensor,
        ] {
            let p = principal(r, "/r/");
            assert!(p
                .can_grant(Role::OrgAnalyst, &OrgPath("/r/".into()), true)
                .is_err());
        }
    }

    #[test]
    fn sql_predicates() {
        let (sql, v) = Scope::Subtree(OrgPath("/r/".into())).sql_predicate("o.path", 2);
        assert_eq!(sql, "o.path LIKE $2");
        assert_eq!(v, "/r/%");
        let (sql, v) = Scope::Only(OrgPath("/r/".into())).sql_predicate("path", 1);
        assert_eq!(sql, "path = $1");
        assert_eq!(v, "/r/");
    }
}
