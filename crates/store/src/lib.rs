//! Tenant-scoped repositories over SQLite (the embedded default) or
//! PostgreSQL (scale-out), through sqlx's runtime `Any` driver.
//!
//! Architecture invariant: there is no unscoped read. Every function that
//! reads tenant data takes a [`Scope`] and puts it in the SQL `WHERE`
//! clause. The few unscoped functions are named for what they do:
//! `bootstrap_root` (init), `root_org` (finding the tree's top, used by the
//! local CLI and the demo to build the operator's whole-tree scope),
//! `authenticate` and `login` (which is how a scope is found at all).
//!
//! Every mutation writes its audit record in the same transaction, so an
//! action is either done and audited or neither.
//!
//! The SQL is written once for both databases: `$n` placeholders (SQLite
//! accepts them too), TEXT ids, BIGINT times, JSON as TEXT.

mod alerts;
mod audit;
mod dns;
mod identity;
mod intel;
mod migrate;
mod notify;
mod orgs;
mod reports;
pub mod secret;
mod sharing;

pub use alerts::{
    Alert, AlertChange, AlertComment, AlertCount, AlertFilter, AlertKind, AlertStatus,
    AlertSummary, Campaign, CampaignPolicy, CampaignUpdate, Detection, Recorded, Severity,
    Suppression, TimelineCount, MAX_ALERT_EVENTS, MAX_COMMENT_CHARS,
};
pub use audit::{AuditActor, AuditEntry};
pub use dns::{
    DnsClientToken, DnsListItem, DnsListKind, DnsPolicyEntry, DnsPolicyVersion, NewDnsPolicyEntry,
    MAX_DNS_POLICY_ENTRIES,
};
pub use identity::{AuthError, IssuedToken, NewToken, NewUser, TokenInfo, User};
pub use intel::{
    protects, tlp_str, ActiveIndicator, Feed, FeedPoll, IndicatorFilter, IntelChanges, NewFeed,
    StoredIndicator, UpsertReport, VerdictPolicy, FEED_FORMATS, MAX_IMPORT,
};
pub use notify::{
    validate_target, ChannelKind, NewChannel, NotifyChannel, OutboxItem, MAX_ATTEMPTS,
};
pub use orgs::OrgFilter;
pub use reports::{
    NewReport, Proposal, ProposalStatus, Report, ReportHit, ReportPage, MAX_REPORT_PAGES,
};
pub use sharing::{NewSharingGroup, Sharing, SharingGroup, SharingGroupPatch, MAX_GROUP_CHANGE};

use mimamori_core::InvalidInput;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Errors from the store. `NotFound` is also what an out-of-scope read
/// returns: callers cannot tell "absent" from "not yours".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid input: {0}")]
    Invalid(InvalidInput),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(sqlx::Error),
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<InvalidInput> for StoreError {
    fn from(e: InvalidInput) -> Self {
        StoreError::Invalid(e)
    }
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to a `Conflict` with `what`.
    fn unique(err: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what()),
            _ => StoreError::Db(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Placeholders for statements built at run time with many parameters,
/// numbered from 1 in the order they are written (and so must be bound).
/// PostgreSQL takes `$n`. On SQLite sqlx resolves each `$n` with
/// `sqlite3_bind_parameter_name`, a linear scan, once per parameter: a
/// statement's binding is quadratic in its parameters, and a 500-row
/// insert of 9,500 parameters spent 90 % of a bulk import there. SQLite's
/// anonymous `?` (bound in order) skip that lookup.
pub(crate) struct Params {
    backend: Backend,
    next: usize,
}

impl Params {
    pub(crate) fn new(backend: Backend) -> Params {
        Params { backend, next: 1 }
    }

    /// The next placeholder.
    pub(crate) fn one(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        match self.backend {
            Backend::Sqlite => "?".into(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `(p, p, …)` of `n` placeholders.
    pub(crate) fn list(&mut self, n: usize) -> String {
        let items: Vec<String> = (0..n).map(|_| self.one()).collect();
        format!("({})", items.join(", "))
    }

    /// `(…), (…), …`: `rows` lists of `cols` placeholders.
    pub(crate) fn rows(&mut self, rows: usize, cols: usize) -> String {
        let items: Vec<String> = (0..rows).map(|_| self.list(cols)).collect();
        items.join(", ")
    }
}

/// One page of a cursor-paginated listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// The id after which to continue (exclusive); `None` for the first page.
    pub after: Option<String>,
    pub limit: u32,
}

/// Largest page any listing returns.
pub const MAX_PAGE: u32 = 500;

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    fn limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, MAX_PAGE))
    }

    /// Builds the page from `limit + 1` fetched rows.
    fn finish<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> &str) -> Page<T> {
        let limit = self.limit() as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| id(r).to_string())
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// The handle to the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Begins a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`, waiting up to the busy timeout):
    /// a deferred transaction that reads first and writes later fails with
    /// `SQLITE_BUSY` at once, without waiting, whenever another connection
    /// wrote in between — under load, alerts and imports did.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Opens (creating if needed) the database at `url` and brings its
    /// schema up to date. `url` is `sqlite://PATH` or `postgres://…`.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(InvalidInput::new(
                "database.url",
                format!("{url:?}: expected sqlite://PATH or postgres://HOST/DB"),
            )));
        };
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            // Create the file on first open.
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_string()
        };
        let opts = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer; a small pool avoids lock convoys.
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; foreign keys
                        // are off by default in SQLite; wait for the writer
                        // lock instead of failing with SQLITE_BUSY.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts)
            .await?;
        let store = Store { pool, backend };
        migrate::run(&store.pool).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A cheap round trip, for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether [`Store::close`] has been called: background tasks that
    /// poll the store stop quietly then instead of logging the closed
    /// pool as an error.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

fn json_text<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json_text<T: serde::de::DeserializeOwned>(column: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

#[doc(hidden)]
pub mod testing;
