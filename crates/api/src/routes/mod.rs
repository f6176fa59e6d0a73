//! Route handlers, one module per resource.

pub mod alerts;
pub mod audit;
pub mod dns;
pub mod identity;
pub mod ingest;
pub mod intel;
pub mod notify;
pub mod orgs;
pub mod query;
pub mod reports;
pub mod sharing;
pub mod system;
pub mod taxii;

use crate::error::ApiError;
use base64::Engine;
use mimamori_store::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Default page length when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;

/// Cursor pagination parameters shared by every listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page length, 1 to 500 (default 100).
    pub limit: Option<u32>,
}

impl PageParams {
    pub fn to_request(&self) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=mimamori_store::MAX_PAGE).contains(&limit) {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {}, got {limit}",
                mimamori_store::MAX_PAGE
            )));
        }
        let after = match &self.cursor {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::bad_request(
                    "cursor is not one this API issued; pass next_cursor back unchanged",
                )
            })?),
        };
        Ok(PageRequest { after, limit })
    }
}

fn decode_cursor(c: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let s = String::from_utf8(bytes).ok()?;
    mimamori_core::ids::is_valid_id(&s).then_some(s)
}

fn encode_cursor(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> From<Vec<T>> for List<T> {
    /// A listing that fits in one page.
    fn from(items: Vec<T>) -> Self {
        List {
            items,
            next_cursor: None,
        }
    }
}

impl<T: ToSchema> From<Page<T>> for List<T> {
    fn from(p: Page<T>) -> Self {
        List {
            items: p.items,
            next_cursor: p.next_cursor.as_deref().map(encode_cursor),
        }
    }
}

/// The org `id` when the caller's scope holds it; otherwise a 404 naming
/// it (an org outside the scope looks the same as one that does not exist).
pub(crate) async fn org_in_scope(
    state: &crate::AppState,
    caller: &crate::auth::Caller,
    id: &str,
) -> Result<mimamori_core::Org, ApiError> {
    state
        .store
        .org_get(&caller.principal.scope(), id)
        .await
        .map_err(not_found_as("org", id))
}

/// Maps a store `NotFound` to a 404 that names the resource and id.
pub(crate) fn not_found_as<'a>(
    what: &'static str,
    id: &'a str,
) -> impl FnOnce(mimamori_store::StoreError) -> ApiError + 'a {
    move |e| match e {
        mimamori_store::StoreError::NotFound => ApiError::not_found(what, id),
        other => other.into(),
    }
}
