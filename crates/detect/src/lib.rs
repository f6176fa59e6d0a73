//! Sigma detection for mimamori, on RSigma.
//!
//! - [`RuleSet::load`] reads Sigma detection rules, correlation rules and
//!   filters from directories and reports the ones it cannot use.
//! - [`routing`] maps an [`EventBody`](mimamori_event::EventBody) to the
//!   Sigma logsource (product, service, category) rules are written for.
//! - [`Detector`] evaluates events one at a time: stateless detection from
//!   any thread, plus correlation rules with state kept in event-time order.
//! - [`hunt`] runs a rule set over files (EVTX, Windows JSON, Zeek,
//!   CloudTrail, …) on all cores and writes detections as JSON lines or CSV;
//!   [`cli`] is the `mimamori hunt` / `mimamori rules check` glue.
//!
//! **Invariant: detect knows nothing about HTTP, SQL or tenancy.** Events go
//! in, detections come out; which org an event belongs to, and where a
//! detection goes, is the caller's business.

pub mod cli;
mod detector;
mod event;
pub mod hunt;
mod par;
pub mod routing;
pub mod rule_cache;
mod rules;
mod shards;

pub use detector::{CorrelationMatch, Detection, Detector, Level, MatchedField};
pub use rules::{LoadError, LoadReport, RuleFailure, RuleSet};
