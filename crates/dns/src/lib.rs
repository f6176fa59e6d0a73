//! Protective DNS: a filtering forwarding resolver member orgs point at.
//!
//! - [`server::start`] runs UDP (a `SO_REUSEPORT` socket and thread per
//!   core, batched `recvmmsg`/`sendmmsg`), TCP and DoT listeners over an
//!   [`Engine`].
//! - The [`Engine`] answers blocks and cache hits in the receive loop from
//!   wire format ([`wire`], [`cache`]); misses go through hickory-proto and
//!   the [`upstream`] forwarder (or [`recursor`], recursion from the root
//!   servers), with serve-stale (RFC 8767).
//! - [`Policy`] is an ordered list of RPZ zones and block/allow lists plus
//!   per-org overlays by client address, swapped atomically with
//!   [`PolicyHandle::set`].
//! - Every query is reported on a bounded [`log::query_log`] channel.
//! - [`blockpage`] serves the page a sinkhole answer leads browsers to.

pub mod blockpage;
pub mod cache;
pub mod conns;
pub mod doh;
pub mod engine;
mod http;
pub mod log;
pub mod nsinfo;
pub mod policy;
pub mod recursor;
mod rpz;
pub mod secure;
pub mod server;
pub mod table;
pub mod upstream;
pub mod wire;
pub mod xfr;

pub use blockpage::BlockPageConfig;
pub use conns::{TcpCounters, TcpLimits, TcpStats};
pub use engine::{
    Engine, EngineConfig, Fast, NotifyHandler, Prefetch, RateLimit, Scratch, StatsSnapshot,
};
pub use log::{
    query_log, BlockedBy, LogName, QueryLog, QueryLogEntry, QueryLogReceiver, Transport,
};
pub use nsinfo::NsServer;
pub use policy::{
    token_digest, Action, Hit, LoadStats, LocalData, NsHit, OrgPolicy, Policy, PolicyError,
    PolicyHandle, Trigger, UnknownToken, Zone,
};
pub use recursor::{
    load_root_hints, parse_root_hints, Recursive, RecursiveConfig, RecursiveError, RootHintsError,
    IANA_ROOT_HINTS,
};
pub use secure::{Chain, SecureUpstream, SpecError, UpstreamSpec};
pub use server::{start, start_with_upstream, Handle, PdnsConfig, PdnsError, DEFAULT_UDP_COALESCE};
pub use upstream::{Forwarder, Upstream, UpstreamError};
pub use xfr::{notify_router, Refreshed, Secondary, XfrConfig, XfrError, XfrStats};
