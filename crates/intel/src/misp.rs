//! MISP: events (the core format, `{"Event": {…}}` or bare), feeds
//! (`manifest.json`, `<uuid>.json` per event, `hashes.csv`) and the export
//! of a feed that members can subscribe to.
//!
//! TLP: an attribute's own `tlp:*` tag wins, then its object's, then the
//! event's; without a tag, the `distribution` level decides (attribute,
//! then object, then event; `5` means "inherit"):
//!
//! | distribution | meaning | TLP |
//! |---|---|---|
//! | 0 | this organization only | AMBER+STRICT |
//! | 1 | this community | AMBER |
//! | 2 | connected communities | GREEN |
//! | 3 | all communities | GREEN (not CLEAR: "all MISP communities" is still not public) |
//! | 4 | a sharing group | AMBER |
//!
//! An event with distribution 4 names its sharing group (`SharingGroup`,
//! an object or a one-element list, with `name`): the name is put in
//! [`ImportBatch::sharing_groups`] and the importer shares the event's
//! indicators with the local sharing group of that name (one the owner
//! owns or is a member of); an unknown name shares with nobody and is
//! reported. Attribute- and object-level sharing groups are not mapped:
//! those attributes are AMBER, shared as the event is.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::macros::format_description;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::limits::{inflate, InflateError, InflateLimits};
use crate::model::{
    union_into, ImportBatch, Indicator, IndicatorKind, Kind, Provenance, Reject, Tlp,
};
use crate::normalize::normalize;
use crate::stix::is_technique_id;

#[derive(Debug, Clone)]
pub struct MispOptions {
    pub provenance: Provenance,
    /// Any reject fails the whole import: no partial result.
    pub strict: bool,
    /// Largest event document, after decompression.
    pub max_event_bytes: usize,
    pub inflate: InflateLimits,
}

impl MispOptions {
    pub fn new(provenance: Provenance) -> MispOptions {
        MispOptions {
            provenance,
            strict: false,
            max_event_bytes: 64 << 20,
            inflate: InflateLimits::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum MispError {
    #[error("not well-formed JSON: {0}")]
    Json(serde_json::Error),
    #[error("not a MISP event: {0}")]
    NotMisp(String),
    #[error("{name}: {size} bytes, more than the limit of {limit}")]
    TooLarge {
        name: String,
        size: usize,
        limit: usize,
    },
    #[error(transparent)]
    Inflate(#[from] InflateError),
    #[error("feed has no manifest.json")]
    NoManifest,
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("strict import refused: {} rejected: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Strict(Vec<Reject>),
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<serde_json::Error> for MispError {
    fn from(e: serde_json::Error) -> Self {
        MispError::Json(e)
    }
}

/// The TLP of a distribution level; `None` for 5 (inherit) and unknown.
pub fn tlp_of_distribution(d: u8) -> Option<Tlp> {
    match d {
        0 => Some(Tlp::AmberStrict),
        1 | 4 => Some(Tlp::Amber),
        2 | 3 => Some(Tlp::Green),
        _ => None,
    }
}

fn distribution(o: &Value) -> Option<u8> {
    match o.get("distribution")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        _ => None,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "1" | "true" | "True"),
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

fn tag_names(o: &Value) -> Vec<String> {
    o.get("Tag")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("name").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// What tags say: the TLP, ATT&CK techniques and related threats from
/// galaxy tags, and the remaining plain tags.
#[derive(Default, Clone)]
struct TagInfo {
    tlp: Option<Tlp>,
    /// `mimamori:subdomains="true"|"false"`.
    subdomains: Option<bool>,
    techniques: Vec<String>,
    related: Vec<String>,
    tags: Vec<String>,
}

/// `misp-galaxy:mitre-attack-pattern="Spearphishing - T1193"` → technique;
/// `misp-galaxy:threat-actor="Sofacy"` → `threat-actor:Sofacy`.
fn galaxy(kind: &str, value: &str, info: &mut TagInfo) {
    if kind.starts_with("mitre-") && kind.contains("attack-pattern") {
        if let Some(t) = value
            .rsplit([' ', '-'])
            .find(|w| !w.is_empty())
            .filter(|w| is_technique_id(w))
        {
            union_into(&mut info.techniques, vec![t.to_owned()]);
            return;
        }
    }
    union_into(&mut info.related, vec![format!("{kind}:{value}")]);
}

/// The tag (on an attribute, or on the event for all its attributes) that
/// says whether a `domain`/`hostname` attribute covers its sub-domains:
/// `mimamori:subdomains="false"` for the name only. Without it the source's
/// default ([`Provenance::subdomains`]) decides.
pub const SUBDOMAINS_TAG: &str = "mimamori:subdomains=";

fn tag_info(names: &[String]) -> TagInfo {
    let mut info = TagInfo::default();
    for n in names {
        if let Some(t) = Tlp::parse_label(n).filter(|_| n.to_ascii_lowercase().starts_with("tlp:"))
        {
            info.tlp = Some(info.tlp.map_or(t, |o| o.max(t)));
        } else if let Some(v) = n.strip_prefix(SUBDOMAINS_TAG) {
            match v.trim_matches('"').to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => info.subdomains = Some(true),
                "false" | "no" | "0" => info.subdomains = Some(false),
                _ => union_into(&mut info.tags, vec![n.clone()]),
            }
        } else if let Some(rest) = n.strip_prefix("misp-galaxy:") {
            if let Some((kind, value)) = rest.split_once('=') {
                galaxy(kind, value.trim_matches('"'), &mut info);
            }
        } else {
            union_into(&mut info.tags, vec![n.clone()]);
        }
    }
    info
}

/// Indicator kinds for a MISP attribute type and value; `None` when the
/// type does not name an indicator mimamori uses.
fn attribute_values(ty: &str, value: &str) -> Option<Vec<(Kind, String)>> {
    let left = |v: &str| v.rsplit_once('|').map_or(v, |(l, _)| l).to_owned();
    let right = |v: &str| v.rsplit_once('|').map_or(v, |(_, r)| r).to_owned();
    Some(match ty {
        // `domain` and `hostname` alike: whether sub-domains are covered is
        // the source's default or the attribute's `mimamori:subdomains` tag.
        "domain" => vec![(Kind::Hostname, value.to_owned())],
        "hostname" => vec![(Kind::Hostname, value.to_owned())],
        "ip-src" | "ip-dst" => vec![(Kind::Ip, value.to_owned())],
        "ip-src|port" | "ip-dst|port" => vec![(Kind::Ip, left(value))],
        "hostname|port" => vec![(Kind::Hostname, left(value))],
        "domain|ip" => {
            let (d, i) = value.split_once('|')?;
            vec![(Kind::Hostname, d.to_owned()), (Kind::Ip, i.to_owned())]
        }
        "url" => vec![(Kind::Url, value.to_owned())],
        "md5" => vec![(Kind::Md5, value.to_owned())],
        "sha1" => vec![(Kind::Sha1, value.to_owned())],
        "sha256" => vec![(Kind::Sha256, value.to_owned())],
        // The file name next to a hash is context for the hash; alone it
        // would match every file of that name.
        "filename|md5" => vec![(Kind::Md5, right(value))],
        // `filename|md5` once MISP has stored the sample; before that (as
        // PyMISP builds it) only the file name, which names no sample.
        "malware-sample" if value.contains('|') => vec![(Kind::Md5, right(value))],
        "filename|sha1" => vec![(Kind::Sha1, right(value))],
        "filename|sha256" => vec![(Kind::Sha256, right(value))],
        // MISP `filename` often holds a path (`%TEMP%\\x.lnk`); the file
        // name is its last component.
        "filename" => vec![(
            Kind::FileName,
            value.rsplit(['\\', '/']).next().unwrap_or(value).to_owned(),
        )],
        "email" | "email-src" | "email-dst" | "email-reply-to" | "whois-registrant-email" => {
            vec![(Kind::Email, value.to_owned())]
        }
        _ => return None,
    })
}

fn epoch(v: Option<&Value>) -> Option<OffsetDateTime> {
    let n = match v? {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    OffsetDateTime::from_unix_timestamp(n).ok()
}

fn iso(v: Option<&Value>) -> Option<OffsetDateTime> {
    let s = v?.as_str()?;
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .or_else(|_| {
            OffsetDateTime::parse(s, &time::format_description::well_known::Iso8601::DEFAULT)
        })
        .ok()
}

fn event_date(e: &Value) -> Option<OffsetDateTime> {
    let s = e.get("date")?.as_str()?;
    Date::parse(s, &format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// The events of a document: `{"Event": …}`, a bare event, a
/// `{"response": […]}` search result, or a list of any of these.
fn events_of(doc: Value, out: &mut Vec<(String, Value)>, path: &str) -> Result<(), MispError> {
    match doc {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                events_of(item, out, &format!("{path}[{i}]"))?;
            }
        }
        Value::Object(mut m) => {
            if let Some(e) = m.remove("Event") {
                out.push((format!("{path}.Event"), e));
            } else if let Some(r) = m.remove("response") {
                events_of(r, out, &format!("{path}.response"))?;
            } else if m.contains_key("Attribute")
                || m.contains_key("Object")
                || m.contains_key("info")
                || m.contains_key("uuid")
            {
                out.push((path.to_owned(), Value::Object(m)));
            } else {
                return Err(MispError::NotMisp(format!(
                    "{path}: no Event, Attribute, Object or info"
                )));
            }
        }
        _ => return Err(MispError::NotMisp(format!("{path}: not an object"))),
    }
    Ok(())
}

/// Imports one MISP event document.
pub fn import_misp_event(json: &[u8], opts: &MispOptions) -> Result<ImportBatch, MispError> {
    if json.len() > opts.max_event_bytes {
        return Err(MispError::TooLarge {
            name: "event".into(),
            size: json.len(),
            limit: opts.max_event_bytes,
        });
    }
    let doc: Value = serde_json::from_slice(json)?;
    let mut events = Vec::new();
    events_of(doc, &mut events, "$")?;
    let mut batch = ImportBatch::default();
    for (path, e) in &events {
        event(&mut batch, path, e, &opts.provenance);
    }
    if opts.strict && !batch.rejects.is_empty() {
        return Err(MispError::Strict(batch.rejects));
    }
    Ok(batch)
}

struct Ctx<'a> {
    prov: &'a Provenance,
    source: Vec<String>,
    tags: TagInfo,
    tlp: Option<Tlp>,
    date: Option<OffsetDateTime>,
}

fn event(batch: &mut ImportBatch, path: &str, e: &Value, prov: &Provenance) {
    let mut tags = tag_info(&tag_names(e));
    for g in e
        .get("Galaxy")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kind = g.get("type").and_then(Value::as_str).unwrap_or("galaxy");
        for c in g
            .get("GalaxyCluster")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(v) = c.get("value").and_then(Value::as_str) {
                galaxy(kind, v, &mut tags);
            }
        }
    }
    if distribution(e) == Some(4) {
        let group = match e.get("SharingGroup") {
            Some(Value::Array(a)) => a.first(),
            other => other,
        };
        if let Some(name) = group
            .and_then(|g| g.get("name"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            if !batch.sharing_groups.iter().any(|g| g == name) {
                batch.sharing_groups.push(name.to_string());
            }
        }
    }
    let mut source = vec![prov.source.clone()];
    if let Some(u) = e.get("uuid").and_then(Value::as_str) {
        source.push(format!("misp-event:{u}"));
    }
    let ctx = Ctx {
        prov,
        source,
        tlp: tags
            .tlp
            .or_else(|| distribution(e).and_then(tlp_of_distribution)),
        tags,
        date: event_date(e).or_else(|| epoch(e.get("timestamp"))),
    };
    for (i, a) in e
        .get("Attribute")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        attribute(
            batch,
            &format!("{path}.Attribute[{i}]"),
            a,
            &ctx,
            ctx.tlp,
            &[],
        );
    }
    for (i, o) in e
        .get("Object")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if truthy(o.get("deleted")) {
            continue;
        }
        let otags = tag_info(&tag_names(o));
        let otlp = otags
            .tlp
            .or_else(|| distribution(o).and_then(tlp_of_distribution))
            .or(ctx.tlp);
        let name = o
            .get("name")
            .and_then(Value::as_str)
            .map(|n| format!("misp-object:{n}"));
        for (j, a) in o
            .get("Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            attribute(
                batch,
                &format!("{path}.Object[{i}].Attribute[{j}]"),
                a,
                &ctx,
                otlp,
                name.as_slice(),
            );
        }
    }
}

fn attribute(
    batch: &mut ImportBatch,
    path: &str,
    a: &Value,
    ctx: &Ctx<'_>,
    parent_tlp: Option<Tlp>,
    extra_tags: &[String],
) {
    if truthy(a.get("deleted")) {
        return;
    }
    let ty = a.get("type").and_then(Value::as_str).unwrap_or("");
    let Some(value) = a.get("value").and_then(Value::as_str) else {
        batch.reject(format!("{path}.value"), "missing value");
        return;
    };
    let Some(values) = attribute_values(ty, value) else {
        batch.count_unsupported(ty);
        return;
    };
    let atags = tag_info(&tag_names(a));
    let tlp = atags
        .tlp
        .or_else(|| distribution(a).and_then(tlp_of_distribution))
        .or(parent_tlp)
        .unwrap_or(ctx.prov.tlp);
    let ts = epoch(a.get("timestamp"));
    let first = iso(a.get("first_seen"))
        .or(ts)
        .or(ctx.date)
        .unwrap_or(ctx.prov.now);
    let last = iso(a.get("last_seen")).or(ts).unwrap_or(first).max(first);
    for (hint, v) in values {
        match normalize(Some(hint), &v) {
            Ok((kind, norm)) => {
                let mut ind = ctx.prov.indicator(kind, norm);
                if let Some(sub) = atags.subdomains.or(ctx.tags.subdomains) {
                    ind.set_subdomains(sub);
                }
                ind.sources = ctx.source.clone();
                ind.tlp = tlp;
                ind.detection = truthy(a.get("to_ids"));
                ind.first_seen = first;
                ind.last_seen = last;
                ind.tags = ctx.tags.tags.clone();
                union_into(&mut ind.tags, extra_tags.to_vec());
                union_into(&mut ind.tags, atags.tags.clone());
                ind.attack_techniques = ctx.tags.techniques.clone();
                union_into(&mut ind.attack_techniques, atags.techniques.clone());
                ind.related = ctx.tags.related.clone();
                union_into(&mut ind.related, atags.related.clone());
                batch.push(ind);
            }
            Err(e) => batch.reject(format!("{path}.value"), format!("{ty}: {e}")),
        }
    }
}

/// Reads a feed directory (`manifest.json`, `<uuid>.json`, `hashes.csv`;
/// gzip or zip payloads are inflated under [`MispOptions::inflate`]).
pub fn import_misp_feed_dir(dir: &Path, opts: &MispOptions) -> Result<ImportBatch, MispError> {
    let mut files = BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|source| MispError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in rd.flatten() {
        let p = entry.path();
        if !p.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).map_err(|source| MispError::Io {
            path: p.display().to_string(),
            source,
        })?;
        files.insert(name, bytes);
    }
    import_misp_feed(&files, opts)
}

/// Imports a feed given as file name → contents. Every event listed in
/// `manifest.json` is read from `<uuid>.json`; when the manifest gives
/// `integrity:sha256`, the file must match it. `hashes.csv` lines must name
/// listed events. Problems are rejects located by file (and JSON path or
/// line); with `strict`, any reject fails the import.
pub fn import_misp_feed(
    files: &BTreeMap<String, Vec<u8>>,
    opts: &MispOptions,
) -> Result<ImportBatch, MispError> {
    // Inflate compressed members first; the total is bounded by the limits.
    let mut plain: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, bytes) in files {
        for (n, b) in inflate(name, bytes, &opts.inflate)? {
            if b.len() > opts.max_event_bytes {
                return Err(MispError::TooLarge {
                    name: n,
                    size: b.len(),
                    limit: opts.max_event_bytes,
                });
            }
            plain.insert(n, b);
        }
    }
    let manifest = plain.get("manifest.json").ok_or(MispError::NoManifest)?;
    let manifest: Value = serde_json::from_slice(manifest)?;
    let Some(manifest) = manifest.as_object() else {
        return Err(MispError::NotMisp("manifest.json is not an object".into()));
    };
    let mut batch = ImportBatch::default();
    for (uuid, meta) in manifest {
        let file = format!("{uuid}.json");
        let Some(bytes) = plain.get(&file) else {
            batch.reject(file, "listed in manifest.json but missing");
            continue;
        };
        if let Some(want) = meta.get("integrity:sha256").and_then(Value::as_str) {
            let got = hex_lower(&Sha256::digest(bytes));
            if !got.eq_ignore_ascii_case(want) {
                batch.reject(
                    file,
                    format!("SHA-256 {got} does not match the manifest's {want}"),
                );
                continue;
            }
        }
        let doc: Value = match serde_json::from_slice(bytes) {
            Ok(d) => d,
            Err(e) => {
                batch.reject(file, format!("not well-formed JSON: {e}"));
                continue;
            }
        };
        let mut events = Vec::new();
        if let Err(e) = events_of(doc, &mut events, "$") {
            batch.reject(file, e.to_string());
            continue;
        }
        for (path, e) in &events {
            let mut one = ImportBatch::default();
            event(&mut one, path, e, &opts.provenance);
            for r in one.rejects.drain(..) {
                batch.reject(format!("{file}:{}", r.path), r.reason);
            }
            for (t, n) in std::mem::take(&mut one.unsupported_types) {
                *batch.unsupported_types.entry(t).or_default() += n;
            }
            for ind in one.indicators {
                batch.push(ind);
            }
        }
    }
    if let Some(h) = plain.get("hashes.csv") {
        let text = String::from_utf8_lossy(h);
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let ok = line.split_once(',').is_some_and(|(hash, uuid)| {
                hash.len() == 32
                    && hash.bytes().all(|b| b.is_ascii_hexdigit())
                    && manifest.contains_key(uuid.trim())
            });
            if !ok {
                batch.reject(
                    format!("hashes.csv:line {}", n + 1),
                    "expected `md5,event-uuid` naming an event in manifest.json",
                );
            }
        }
    }
    if opts.strict && !batch.rejects.is_empty() {
        return Err(MispError::Strict(batch.rejects));
    }
    Ok(batch)
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone)]
pub struct MispFeedExport {
    /// Names the feed; event UUIDs are derived from it, so re-exports of
    /// the same feed update the same events.
    pub feed_name: String,
    pub org_name: String,
    pub org_uuid: Uuid,
    /// Nothing stricter leaves.
    pub max_tlp: Tlp,
    pub now: OffsetDateTime,
}

const FEED_NAMESPACE: Uuid = Uuid::from_u128(0x8f3c_2a71_5d0e_4b6a_9c21_7e4f_0a6b_d35c);

fn misp_type(kind: IndicatorKind) -> (&'static str, &'static str) {
    match kind {
        IndicatorKind::Domain { exact: false } => ("domain", "Network activity"),
        IndicatorKind::Domain { exact: true } => ("hostname", "Network activity"),
        IndicatorKind::Ipv4 | IndicatorKind::Ipv6 | IndicatorKind::Cidr => {
            ("ip-dst", "Network activity")
        }
        IndicatorKind::Url => ("url", "Network activity"),
        IndicatorKind::Md5 => ("md5", "Payload delivery"),
        IndicatorKind::Sha1 => ("sha1", "Payload delivery"),
        IndicatorKind::Sha256 => ("sha256", "Payload delivery"),
        IndicatorKind::Email => ("email-src", "Payload delivery"),
        IndicatorKind::FileName => ("filename", "Payload delivery"),
    }
}

fn iso_ts(t: OffsetDateTime) -> String {
    crate::stix::export::ts(t)
}

/// A MISP feed of the non-revoked indicators at or below `max_tlp`: one
/// event per TLP level (tagged with it, so subscribers can filter),
/// `manifest.json` with `integrity:sha256` of each event file, and
/// `hashes.csv` (MD5 of each attribute value, event UUID). Context-only
/// indicators are exported with `to_ids: false`. Deterministic: the same
/// input gives the same files.
pub fn export_misp_feed(
    indicators: &[Indicator],
    opts: &MispFeedExport,
) -> BTreeMap<String, Vec<u8>> {
    let mut by_tlp: BTreeMap<Tlp, Vec<&Indicator>> = BTreeMap::new();
    for i in indicators
        .iter()
        .filter(|i| i.tlp <= opts.max_tlp && !i.revoked)
    {
        by_tlp.entry(i.tlp).or_default().push(i);
    }
    let mut files = BTreeMap::new();
    let mut manifest = Map::new();
    let mut hashes = String::new();
    let date = format!(
        "{:04}-{:02}-{:02}",
        opts.now.year(),
        u8::from(opts.now.month()),
        opts.now.day()
    );
    let stamp = opts.now.unix_timestamp().to_string();
    for (tlp, mut inds) in by_tlp {
        inds.sort_by(|a, b| (a.kind.key(), &a.value).cmp(&(b.kind.key(), &b.value)));
        let event_uuid = Uuid::new_v5(
            &FEED_NAMESPACE,
            format!("{}\u{0}{}", opts.feed_name, tlp.label()).as_bytes(),
        );
        let mut seen = HashSet::new();
        let mut attributes = Vec::with_capacity(inds.len());
        for i in inds {
            let (ty, category) = misp_type(i.kind);
            let mut tags: Vec<Value> = i.tags.iter().map(|t| json!({"name": t})).collect();
            tags.extend(
                i.attack_techniques
                    .iter()
                    .map(|t| json!({"name": format!("misp-galaxy:mitre-attack-pattern=\"{t}\"")})),
            );
            tags.extend(i.related.iter().map(|r| {
                let (k, v) = r.split_once(':').unwrap_or(("related", r));
                json!({"name": format!("misp-galaxy:{k}=\"{v}\"")})
            }));
            if let Some(sub) = i.subdomains() {
                tags.push(json!({"name": format!("{SUBDOMAINS_TAG}\"{sub}\"")}));
            }
            let attr_uuid = Uuid::new_v5(
                &FEED_NAMESPACE,
                format!("{:?}:{}", i.kind.key(), i.value).as_bytes(),
            );
            attributes.push(json!({
                "uuid": attr_uuid.to_string(),
                "type": ty,
                "category": category,
                "value": i.value,
                "to_ids": i.detection,
                "distribution": "5",
                "timestamp": i.last_seen.unix_timestamp().to_string(),
                "first_seen": iso_ts(i.first_seen),
                "last_seen": iso_ts(i.last_seen.max(i.first_seen)),
                "comment": "",
                "Tag": tags,
            }));
            if seen.insert(i.value.as_str()) {
                hashes.push_str(&format!(
                    "{},{event_uuid}\n",
                    hex_lower(&md5::Md5::digest(i.value.as_bytes()))
                ));
            }
        }
        let orgc = json!({"name": opts.org_name, "uuid": opts.org_uuid.to_string()});
        let info = format!("{} ({})", opts.feed_name, tlp.label().to_ascii_uppercase());
        let tag = json!([{"name": tlp.label()}]);
        let event = json!({"Event": {
            "uuid": event_uuid.to_string(),
            "info": info,
            "date": date,
            "timestamp": stamp,
            "published": true,
            "analysis": "2",
            "threat_level_id": "4",
            "distribution": "3",
            "Orgc": orgc,
            "Tag": tag,
            "Attribute": attributes,
        }});
        let bytes = serde_json::to_vec(&event).unwrap_or_default();
        manifest.insert(
            event_uuid.to_string(),
            json!({
                "info": info,
                "Orgc": orgc,
                "analysis": "2",
                "timestamp": stamp,
                "date": date,
                "threat_level_id": "4",
                "Tag": tag,
                "integrity:sha256": hex_lower(&Sha256::digest(&bytes)),
            }),
        );
        files.insert(format!("{event_uuid}.json"), bytes);
    }
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec_pretty(&Value::Object(manifest)).unwrap_or_default(),
    );
    files.insert("hashes.csv".into(), hashes.into_bytes());
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_give_tlp_techniques_and_related() {
        let info = tag_info(&[
            "tlp:green".into(),
            "TLP:AMBER".into(),
            "misp-galaxy:mitre-attack-pattern=\"Spearphishing Attachment - T1566.001\"".into(),
            "misp-galaxy:threat-actor=\"Sofacy\"".into(),
            "type:OSINT".into(),
        ]);
        assert_eq!(info.tlp, Some(Tlp::Amber));
        assert_eq!(info.techniques, vec!["T1566.001"]);
        assert_eq!(info.related, vec!["threat-actor:Sofacy"]);
        assert_eq!(info.tags, vec!["type:OSINT"]);
    }

    #[test]
    fn attribute_types() {
        assert_eq!(
            attribute_values("domain|ip", "evil.com|1.2.3.4"),
            Some(vec![
                (Kind::Hostname, "evil.com".into()),
                (Kind::Ip, "1.2.3.4".into())
            ])
        );
        assert_eq!(
            attribute_values("ip-dst|port", "2001:db8::1|443"),
            Some(vec![(Kind::Ip, "2001:db8::1".into())])
        );
        assert_eq!(
            attribute_values("filename|sha256", "a|b.exe|ab"),
            Some(vec![(Kind::Sha256, "ab".into())])
        );
        assert_eq!(attribute_values("link", "http://x"), None);
    }
}
