//! Every page of the console in one table: its route, its title, the
//! action its role must allow, and whether it is in the navigation. The
//! router is built from this table (see [`crate::routes`]) and every
//! handler checks its page's action through [`require`], so what a page
//! may show is stated once. What it may show *of whom* is never decided
//! here: pages read through the API's own handlers with the user's caller,
//! so the API's scope rules are the console's.

use mimamori_core::{Action, Role};

/// A page of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageId {
    Overview,
    Alerts,
    Alert,
    Campaigns,
    Campaign,
    Hunt,
    Intel,
    Indicator,
    IntelImport,
    DnsPolicy,
    Orgs,
    Users,
    Tokens,
    Audit,
}

/// One row of the page table.
#[derive(Debug)]
pub struct Page {
    pub id: PageId,
    /// The axum route.
    pub route: &'static str,
    /// The message id of its title.
    pub key: &'static str,
    /// What the user's role must allow to see it.
    pub needs: Action,
    /// Shown in the navigation (detail pages are reached from lists).
    pub in_nav: bool,
}

pub const PAGES: &[Page] = &[
    Page {
        id: PageId::Overview,
        route: "/console/",
        key: "page-overview",
        needs: Action::AlertRead,
        in_nav: true,
    },
    Page {
        id: PageId::Alerts,
        route: "/console/alerts",
        key: "page-alerts",
        needs: Action::AlertRead,
        in_nav: true,
    },
    Page {
        id: PageId::Alert,
        route: "/console/alerts/{id}",
        key: "page-alert",
        needs: Action::AlertRead,
        in_nav: false,
    },
    Page {
        id: PageId::Campaigns,
        route: "/console/campaigns",
        key: "page-campaigns",
        needs: Action::AlertRead,
        in_nav: true,
    },
    Page {
        id: PageId::Campaign,
        route: "/console/campaigns/{id}",
        key: "page-campaign",
        needs: Action::AlertRead,
        in_nav: false,
    },
    Page {
        id: PageId::Hunt,
        route: "/console/hunt",
        key: "page-hunt",
        needs: Action::EventRead,
        in_nav: true,
    },
    Page {
        id: PageId::Intel,
        route: "/console/intel",
        key: "page-intel",
        needs: Action::IntelRead,
        in_nav: true,
    },
    Page {
        id: PageId::IntelImport,
        route: "/console/intel/import",
        key: "page-intel-import",
        needs: Action::IntelWrite,
        in_nav: false,
    },
    Page {
        id: PageId::Indicator,
        route: "/console/intel/{id}",
        key: "page-indicator",
        needs: Action::IntelRead,
        in_nav: false,
    },
    Page {
        id: PageId::DnsPolicy,
        route: "/console/dns",
        key: "page-dns",
        needs: Action::DnsPolicyRead,
        in_nav: true,
    },
    Page {
        id: PageId::Orgs,
        route: "/console/orgs",
        key: "page-orgs",
        needs: Action::OrgRead,
        in_nav: true,
    },
    Page {
        id: PageId::Users,
        route: "/console/users",
        key: "page-users",
        needs: Action::UserRead,
        in_nav: true,
    },
    Page {
        id: PageId::Tokens,
        route: "/console/tokens",
        key: "page-tokens",
        needs: Action::TokenRead,
        in_nav: true,
    },
    Page {
        id: PageId::Audit,
        route: "/console/audit",
        key: "page-audit",
        needs: Action::AuditRead,
        in_nav: true,
    },
];

/// The table row of `id`.
pub fn page(id: PageId) -> &'static Page {
    // Every PageId has a row: the test below checks it.
    PAGES.iter().find(|p| p.id == id).unwrap_or(&PAGES[0])
}

/// Whether a role may sign in to the console at all: roles that can read
/// no page (sensors, DNS clients) cannot.
pub fn may_sign_in(role: Role) -> bool {
    PAGES.iter().any(|p| role.allows(p.needs))
}

/// The page's action check for the signed-in user: a 403 page when the
/// role does not allow it (before anything is looked up, like the API).
/// Boxed: a response is large, and the check is on every page's path.
pub fn require(
    session: &crate::session::Session,
    id: PageId,
) -> Result<&'static Page, Box<axum::response::Response>> {
    let p = page(id);
    if session.principal().can(p.needs) {
        Ok(p)
    } else {
        Err(Box::new(crate::layout::error_page(
            session.lang,
            axum::http::StatusCode::FORBIDDEN,
            &session.lang.t("error-forbidden"),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_id_has_one_row_and_routes_are_unique() {
        use PageId::*;
        for id in [
            Overview,
            Alerts,
            Alert,
            Campaigns,
            Campaign,
            Hunt,
            Intel,
            Indicator,
            IntelImport,
            DnsPolicy,
            Orgs,
            Users,
            Tokens,
            Audit,
        ] {
            assert_eq!(PAGES.iter().filter(|p| p.id == id).count(), 1, "{id:?}");
        }
        let mut routes: Vec<_> = PAGES.iter().map(|p| p.route).collect();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), PAGES.len());
        assert!(PAGES.iter().all(|p| p.route.starts_with("/console/")));
    }

    #[test]
    fn machine_roles_cannot_sign_in_and_people_can() {
        assert!(!may_sign_in(Role::Sensor));
        assert!(!may_sign_in(Role::DnsClient));
        for r in [
            Role::SocAdmin,
            Role::SocAnalyst,
            Role::SupervisorAnalyst,
            Role::OrgAdmin,
            Role::OrgAnalyst,
        ] {
            assert!(may_sign_in(r), "{r:?}");
        }
    }
}
