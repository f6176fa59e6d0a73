//! Lookups several pages share, made through the API's handlers.

use crate::session::Session;
use axum::extract::State;
use mimamori_api::error::ApiQuery;
use mimamori_api::routes::orgs::{self, OrgListParams};
use mimamori_api::AppState;
use mimamori_core::Org;
use std::collections::HashMap;

/// The orgs the user can see, by id (empty when the role may not read
/// orgs: pages then show ids).
pub async fn orgs(state: &AppState, s: &Session) -> HashMap<String, Org> {
    let mut out = HashMap::new();
    let mut cursor = None;
    loop {
        let r = orgs::list(
            State(state.clone()),
            s.caller.clone(),
            ApiQuery(OrgListParams {
                parent: None,
                cursor: cursor.take(),
                limit: Some(500),
            }),
        )
        .await;
        let Ok(axum::Json(list)) = r else {
            return out;
        };
        for o in list.items {
            out.insert(o.id.to_string(), o);
        }
        match list.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// How a page names the org `id`: its slug, or the id itself when the
/// user cannot read that org.
pub fn slug<'a>(orgs: &'a HashMap<String, Org>, id: &'a str) -> &'a str {
    orgs.get(id).map_or(id, |o| o.slug.as_str())
}

/// [`slug`] with the org's name: `mof — 財務省`.
pub fn slug_and_name(orgs: &HashMap<String, Org>, id: &str) -> String {
    orgs.get(id)
        .map_or_else(|| id.to_string(), |o| format!("{} — {}", o.slug, o.name))
}
