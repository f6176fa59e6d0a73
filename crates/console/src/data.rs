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
