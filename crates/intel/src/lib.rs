//! Threat intelligence for mimamori: the indicator model, normalization,
//! scoring, importers (STIX 2.1, MISP events and feeds, lists, reports),
//! exporters (STIX, MISP feed, RPZ, plain lists) and the in-memory matcher
//! index used by detection and Protective DNS.
//!
//! This crate does no network or database I/O; the only files it reads are
//! the ones it is pointed at (STIX schemas, a MISP feed directory).

pub mod index;
pub mod limits;
pub mod lists;
pub mod misp;
pub mod model;
pub mod normalize;
pub mod report;
pub mod score;
pub mod stix;

pub use index::IndicatorIndex;
pub use limits::{inflate, InflateError, InflateLimits};
pub use lists::{export_plain, export_rpz, import_list, ListFormat, ListOptions, RpzOptions};
pub use misp::{
    export_misp_feed, import_misp_event, import_misp_feed, import_misp_feed_dir, MispError,
    MispFeedExport, MispOptions,
};
pub use model::{ImportBatch, Indicator, IndicatorKind, Kind, Provenance, Reject, Relation, Tlp};
pub use normalize::{normalize, refang, NormError};
pub use report::{
    extract_proposals, html_to_text, read_report, report_from_html, report_from_pdf,
    report_from_text, PdfError, PdfLimits, Proposal, Report, ReportError, MAX_REPORT_BYTES,
};
pub use score::{score, ScoreConfig};
pub use stix::{
    export_stix, import_stix, import_taxii_envelope, StixError, StixExportOptions, StixOptions,
    StixSchemas, TaxiiPage,
};
