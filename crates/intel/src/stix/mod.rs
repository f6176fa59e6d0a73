//! STIX 2.1: import of bundles (schema validation, pattern translation,
//! relationship resolution, TLP markings) and export.

mod bundled;
pub(crate) mod export;
pub mod pattern;
mod schema;

use std::collections::HashMap;

use serde_json::Value;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::{
    union_into, ImportBatch, IndicatorKind, Kind, Provenance, Reject, Relation, Tlp,
};
use crate::normalize::normalize;
use pattern::{Comparison, Observation, Op, Test, Value as PValue};

pub use export::{export_stix, indicator_stix_id, StixExportOptions};
pub use schema::{SchemaError, StixSchemas};

/// How many schema failures are reported per object.
const ERRORS_PER_OBJECT: usize = 5;

/// The custom property (on an `indicator` or a `domain-name` object) that
/// says whether its domains cover their sub-domains; without it the
/// source's default ([`Provenance::subdomains`]) decides, except that a
/// `domain-name:value LIKE '%.name'` comparison always covers them.
pub const SUBDOMAINS_PROPERTY: &str = "x_mimamori_subdomains";

#[derive(Debug, Clone)]
pub struct StixOptions {
    pub provenance: Provenance,
    /// Any reject fails the whole import with [`StixError::Strict`]: no
    /// partial result.
    pub strict: bool,
    /// Documents larger than this are refused unread.
    pub max_bytes: usize,
    /// Bundles with more objects are refused.
    pub max_objects: usize,
    /// Whether indicators made from bare observables (`domain-name`,
    /// `file`, … objects) are used for detection. An observable says that
    /// something was seen, not that it is malicious, so by default they are
    /// context only.
    pub sco_detection: bool,
}

impl StixOptions {
    pub fn new(provenance: Provenance) -> StixOptions {
        StixOptions {
            provenance,
            strict: false,
            max_bytes: 64 << 20,
            max_objects: 200_000,
            sco_detection: false,
        }
    }
}

#[derive(Debug, Error)]
pub enum StixError {
    #[error("document of {size} bytes is larger than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("bundle has {count} objects, more than the limit of {limit}")]
    TooManyObjects { count: usize, limit: usize },
    #[error("not well-formed JSON: {0}")]
    Json(serde_json::Error),
    #[error("not a STIX document: {0}")]
    NotStix(String),
    #[error("strict import refused: {} invalid: {}", .0.len(), .0.first().map(ToString::to_string).unwrap_or_default())]
    Strict(Vec<Reject>),
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<serde_json::Error> for StixError {
    fn from(e: serde_json::Error) -> Self {
        StixError::Json(e)
    }
}

/// Parses, validates and translates one STIX 2.1 document: a bundle or a
/// single object.
///
/// Objects that fail their schema, or whose `modified` is earlier than
/// `created`, are rejected with their JSON path; the rest are imported
/// (unless `strict`, where one reject refuses the whole document).
pub fn import_stix(
    json: &[u8],
    schemas: &StixSchemas,
    opts: &StixOptions,
) -> Result<ImportBatch, StixError> {
    let (objects, base): (Vec<Value>, &str) = match parse_bounded(json, opts)? {
        Value::Object(mut m) if m.get("type").and_then(Value::as_str) == Some("bundle") => {
            match m.get("id").and_then(Value::as_str) {
                Some(id) if id.starts_with("bundle--") => {}
                _ => return Err(StixError::NotStix("bundle without a bundle-- id".into())),
            }
            match m.remove("objects") {
                Some(Value::Array(a)) => (a, "$.objects"),
                None => (Vec::new(), "$.objects"),
                Some(_) => return Err(StixError::NotStix("bundle objects is not an array".into())),
            }
        }
        v @ Value::Object(_) if v.get("type").and_then(Value::as_str).is_some() => (vec![v], "$"),
        _ => {
            return Err(StixError::NotStix(
                "neither a bundle nor a STIX object".into(),
            ))
        }
    };
    import_objects(objects, base, schemas, opts)
}

/// One page of a TAXII 2.1 collection's objects (an envelope,
/// `{"more", "next", "objects"}`, TAXII 2.1 section 3.7), imported like a
/// bundle's objects.
#[derive(Debug, Default)]
pub struct TaxiiPage {
    pub batch: ImportBatch,
    /// The server has more objects after this page.
    pub more: bool,
    /// Where the next page starts (`next` query parameter), when the
    /// server pages that way.
    pub next: Option<String>,
}

/// Parses, validates and translates a TAXII 2.1 envelope (the answer of
/// `GET …/collections/{id}/objects/`): its objects are checked and imported
/// as [`import_stix`] does a bundle's, with JSON paths under `$.objects`.
pub fn import_taxii_envelope(
    json: &[u8],
    schemas: &StixSchemas,
    opts: &StixOptions,
) -> Result<TaxiiPage, StixError> {
    let Value::Object(mut env) = parse_bounded(json, opts)? else {
        return Err(StixError::NotStix(
            "a TAXII envelope is a JSON object".into(),
        ));
    };
    let objects = match env.remove("objects") {
        Some(Value::Array(a)) => a,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(StixError::NotStix(
                "envelope objects is not an array".into(),
            ))
        }
    };
    let more = match env.get("more") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(StixError::NotStix("envelope more is not a boolean".into())),
    };
    let next = match env.get("next") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(StixError::NotStix("envelope next is not a string".into())),
    };
    Ok(TaxiiPage {
        batch: import_objects(objects, "$.objects", schemas, opts)?,
        more,
        next,
    })
}

/// The JSON of a document no larger than `opts.max_bytes`.
fn parse_bounded(json: &[u8], opts: &StixOptions) -> Result<Value, StixError> {
    if json.len() > opts.max_bytes {
        return Err(StixError::TooLarge {
            size: json.len(),
            limit: opts.max_bytes,
        });
    }
    Ok(serde_json::from_slice(json)?)
}

/// Checks and translates the objects of a bundle or envelope found at
/// `base` (`$` for a single object).
fn import_objects(
    objects: Vec<Value>,
    base: &str,
    schemas: &StixSchemas,
    opts: &StixOptions,
) -> Result<ImportBatch, StixError> {
    if objects.len() > opts.max_objects {
        return Err(StixError::TooManyObjects {
            count: objects.len(),
            limit: opts.max_objects,
        });
    }
    let path_of = |i: usize| {
        if base == "$" {
            "$".to_owned()
        } else {
            format!("{base}[{i}]")
        }
    };

    let mut batch = ImportBatch::default();
    let mut valid = Vec::with_capacity(objects.len());
    for (i, obj) in objects.into_iter().enumerate() {
        let path = path_of(i);
        let errors = check_object(&obj, schemas);
        if errors.is_empty() {
            valid.push((path, obj));
        } else {
            for (ptr, reason) in errors {
                batch.reject(format!("{path}{}", pointer_to_path(&ptr)), reason);
            }
        }
    }
    // Translate even when strict and something was already rejected, so the
    // caller hears of every problem at once.
    translate(&mut batch, valid, opts);
    if opts.strict && !batch.rejects.is_empty() {
        return Err(StixError::Strict(batch.rejects));
    }
    Ok(batch)
}

/// Schema failures plus the checks a schema cannot express.
fn check_object(obj: &Value, schemas: &StixSchemas) -> Vec<(String, String)> {
    if !obj.is_object() {
        return vec![(String::new(), "not a JSON object".into())];
    }
    let mut errors = schemas.validate(obj, ERRORS_PER_OBJECT);
    let ts = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
    };
    if let (Some(c), Some(m)) = (ts("created"), ts("modified")) {
        if m < c {
            errors.push((
                "/modified".into(),
                format!("modified ({m}) is earlier than created ({c})"),
            ));
        }
    }
    errors
}

/// `/objects/3/name` → `.objects[3].name` (appended to a `$…` path).
fn pointer_to_path(ptr: &str) -> String {
    let mut out = String::new();
    for seg in ptr.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else if seg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            out.push('.');
            out.push_str(&seg);
        } else {
            out.push_str(&format!("[{seg:?}]"));
        }
    }
    out
}

fn str_of<'a>(o: &'a Value, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}

fn strings_of(o: &Value, k: &str) -> Vec<String> {
    o.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn time_of(o: &Value, k: &str) -> Option<OffsetDateTime> {
    str_of(o, k).and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
}

/// ATT&CK technique ids in `external_references` (`T0803`, `T1566.001`).
fn techniques_of(o: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for r in o
        .get("external_references")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = str_of(r, "external_id") {
            if is_technique_id(id) && !out.iter().any(|x| x == id) {
                out.push(id.to_owned());
            }
        }
    }
    out
}

/// `T` + 4 digits, optionally `.` + 3 digits.
pub(crate) fn is_technique_id(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => b[0] == b'T' && digits(&b[1..5]),
        9 => b[0] == b'T' && digits(&b[1..5]) && b[5] == b'.' && digits(&b[6..9]),
        _ => false,
    }
}

/// The TLP a marking-definition object stands for, in any of the ways
/// TLP is written: a well-known id, TLP 1.0 `definition_type: tlp`, the TLP
/// 2.0 extension's `tlp_2_0`, or a `TLP:…` name.
fn tlp_of_marking(o: &Value) -> Option<Tlp> {
    if let Some(t) = str_of(o, "id").and_then(Tlp::from_stix_marking_id) {
        return Some(t);
    }
    if str_of(o, "definition_type") == Some("tlp") {
        if let Some(t) = o
            .get("definition")
            .and_then(|d| str_of(d, "tlp"))
            .and_then(Tlp::parse_label)
        {
            return Some(t);
        }
    }
    if let Some(exts) = o.get("extensions").and_then(Value::as_object) {
        for e in exts.values() {
            if let Some(t) = str_of(e, "tlp_2_0").and_then(Tlp::parse_label) {
                return Some(t);
            }
        }
    }
    str_of(o, "name").and_then(Tlp::parse_label)
}

/// Types whose objects name a threat an indicator can be related to.
const RELATED_TYPES: [&str; 7] = [
    "malware",
    "campaign",
    "intrusion-set",
    "threat-actor",
    "tool",
    "infrastructure",
    "vulnerability",
];

fn translate(batch: &mut ImportBatch, objects: Vec<(String, Value)>, opts: &StixOptions) {
    let prov = &opts.provenance;
    // First pass: what markings, names and relationships say.
    let mut marking_tlp: HashMap<String, Tlp> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut techniques: HashMap<String, Vec<String>> = HashMap::new();
    for (_, o) in &objects {
        let (Some(ty), Some(id)) = (str_of(o, "type"), str_of(o, "id")) else {
            continue;
        };
        match ty {
            "marking-definition" => {
                if let Some(t) = tlp_of_marking(o) {
                    marking_tlp.insert(id.to_owned(), t);
                }
            }
            "relationship" => {
                if let (Some(s), Some(r), Some(t)) = (
                    str_of(o, "source_ref"),
                    str_of(o, "relationship_type"),
                    str_of(o, "target_ref"),
                ) {
                    batch.relations.push(Relation {
                        source_ref: s.to_owned(),
                        relationship_type: r.to_owned(),
                        target_ref: t.to_owned(),
                    });
                }
            }
            "attack-pattern" => {
                techniques.insert(id.to_owned(), techniques_of(o));
            }
            t if RELATED_TYPES.contains(&t) => {
                let name = str_of(o, "name").unwrap_or(id);
                names.insert(id.to_owned(), format!("{t}:{name}"));
            }
            _ => {}
        }
    }
    let tlp_for = |o: &Value| -> Tlp {
        let refs = strings_of(o, "object_marking_refs");
        refs.iter()
            .filter_map(|r| {
                marking_tlp
                    .get(r)
                    .copied()
                    .or_else(|| Tlp::from_stix_marking_id(r))
            })
            .max()
            .unwrap_or(prov.tlp)
    };

    // Second pass: indicators and observables become indicators.
    let mut from_stix: HashMap<String, Vec<usize>> = HashMap::new();
    for (path, o) in objects {
        let ty = str_of(&o, "type").unwrap_or("");
        let id = str_of(&o, "id").unwrap_or("").to_owned();
        let produced = match ty {
            "indicator" => indicator_sdo(batch, &path, &o, tlp_for(&o), prov),
            "domain-name" | "ipv4-addr" | "ipv6-addr" | "url" | "email-addr" | "file" => {
                observable(batch, &path, &o, tlp_for(&o), opts)
            }
            "relationship" => continue,
            _ => {
                batch.objects.push(o);
                continue;
            }
        };
        from_stix.entry(id).or_default().extend(produced);
    }

    // Resolve relationships: indicator → (indicates|…) → threat, and one
    // hop further: the threat's `uses` of attack-patterns and
    // `attributed-to` actors.
    let mut outgoing: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for r in &batch.relations {
        outgoing
            .entry(r.source_ref.as_str())
            .or_default()
            .push((r.relationship_type.as_str(), r.target_ref.as_str()));
    }
    let mut updates: Vec<(usize, Vec<String>, Vec<String>)> = Vec::new();
    for (sid, positions) in &from_stix {
        let mut related = Vec::new();
        let mut techs = Vec::new();
        let visit = |target: &str, related: &mut Vec<String>, techs: &mut Vec<String>| {
            if let Some(n) = names.get(target) {
                union_into(related, vec![n.clone()]);
            }
            if let Some(t) = techniques.get(target) {
                union_into(techs, t.clone());
            }
        };
        for &(_, target) in outgoing.get(sid.as_str()).map(Vec::as_slice).unwrap_or(&[]) {
            visit(target, &mut related, &mut techs);
            if names.contains_key(target) {
                for &(rel, t2) in outgoing.get(target).map(Vec::as_slice).unwrap_or(&[]) {
                    if matches!(rel, "uses" | "attributed-to") {
                        visit(t2, &mut related, &mut techs);
                    }
                }
            }
        }
        if related.is_empty() && techs.is_empty() {
            continue;
        }
        for &p in positions {
            updates.push((p, related.clone(), techs.clone()));
        }
    }
    for (p, related, techs) in updates {
        let ind = batch.get_mut_at(p);
        union_into(&mut ind.related, related);
        union_into(&mut ind.attack_techniques, techs);
    }
}

/// The kind hint for a supported object path, or why it is not supported.
fn path_hint(t: &Test) -> Result<Option<Kind>, String> {
    let prop = t.property.as_str();
    Ok(match (t.object_type.as_str(), prop) {
        ("domain-name", "value") => Some(Kind::Hostname),
        ("ipv4-addr", "value") => Some(Kind::Ipv4),
        ("ipv6-addr", "value") => Some(Kind::Ipv6),
        ("url", "value") => Some(Kind::Url),
        ("email-addr", "value") => Some(Kind::Email),
        ("email-message", "from_ref.value" | "sender_ref.value") => Some(Kind::Email),
        ("network-traffic", "dst_ref.value" | "src_ref.value") => None,
        ("file", "name") => Some(Kind::FileName),
        ("file", p) if p.starts_with("hashes.") => {
            let alg = p["hashes.".len()..]
                .to_ascii_uppercase()
                .replace(['-', '_'], "");
            match alg.as_str() {
                "MD5" => Some(Kind::Md5),
                "SHA1" => Some(Kind::Sha1),
                "SHA256" => Some(Kind::Sha256),
                _ => return Err(format!("hash algorithm {:?} not supported", &p[7..])),
            }
        }
        (ty, p) => return Err(format!("object path {ty}:{p} not supported")),
    })
}

/// What one comparison test yields: indicators `(kind, value)` or a reason
/// it yields none.
fn test_values(t: &Test) -> Result<Vec<(IndicatorKind, String)>, String> {
    let hint = path_hint(t)?;
    let text = format!("{}:{} {}", t.object_type, t.property, t.op.as_str());
    if t.negated {
        return Err(format!(
            "{text}: negated comparisons do not name indicators"
        ));
    }
    let values: Vec<&str> = match (t.op, &t.value) {
        (Op::Eq, Some(PValue::Str(s))) => vec![s.as_str()],
        (Op::In, Some(PValue::Set(items))) => items
            .iter()
            .map(|v| match v {
                PValue::Str(s) => Ok(s.as_str()),
                _ => Err(format!("{text}: non-string set member")),
            })
            .collect::<Result<_, _>>()?,
        // `domain-name:value LIKE '%.evil.com'`: every sub-domain, the way
        // export writes a non-exact domain.
        (Op::Like, Some(PValue::Str(s))) if t.object_type == "domain-name" => {
            match s.strip_prefix("%.") {
                Some(rest) if !rest.contains(['%', '_']) => {
                    let v = crate::normalize::domain_name(rest).map_err(|e| e.to_string())?;
                    return Ok(vec![(IndicatorKind::Domain { exact: false }, v)]);
                }
                _ => return Err(format!("{text} {s:?}: only '%.name' is supported")),
            }
        }
        (Op::Eq | Op::In, _) => return Err(format!("{text}: value is not a string")),
        _ => return Err(format!("{text}: operator not supported")),
    };
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let (k, n) = normalize(hint, v).map_err(|e| format!("{text} {v:?}: {e}"))?;
        if hint.is_none()
            && !matches!(
                k,
                IndicatorKind::Ipv4
                    | IndicatorKind::Ipv6
                    | IndicatorKind::Cidr
                    | IndicatorKind::Domain { .. }
            )
        {
            return Err(format!("{text} {v:?}: not an address or domain"));
        }
        out.push((k, n));
    }
    Ok(out)
}

/// Collects the indicators of a comparison expression. In an `AND`, a file
/// name next to anything stronger (a hash, typically) is left out: alone it
/// would match every file of that name.
fn comparison_values(
    c: &Comparison,
    out: &mut Vec<(IndicatorKind, String)>,
    unsupported: &mut Vec<String>,
) {
    match c {
        Comparison::Test(t) => match test_values(t) {
            Ok(v) => out.extend(v),
            Err(reason) => unsupported.push(reason),
        },
        Comparison::Or(items) => {
            for i in items {
                comparison_values(i, out, unsupported);
            }
        }
        Comparison::And(items) => {
            let mut mine = Vec::new();
            for i in items {
                comparison_values(i, &mut mine, unsupported);
            }
            if mine.iter().any(|(k, _)| *k != IndicatorKind::FileName) {
                let before = mine.len();
                mine.retain(|(k, _)| *k != IndicatorKind::FileName);
                if mine.len() != before {
                    unsupported.push(
                        "file:name ANDed with a stronger comparison is not used on its own".into(),
                    );
                }
            }
            out.extend(mine);
        }
    }
}

fn observation_values(
    o: &Observation,
    out: &mut Vec<(IndicatorKind, String)>,
    unsupported: &mut Vec<String>,
) {
    match o {
        Observation::Comparison(c) => comparison_values(c, out, unsupported),
        Observation::And(items) | Observation::Or(items) | Observation::FollowedBy(items) => {
            for i in items {
                observation_values(i, out, unsupported);
            }
        }
    }
}

fn indicator_sdo(
    batch: &mut ImportBatch,
    path: &str,
    o: &Value,
    tlp: Tlp,
    prov: &Provenance,
) -> Vec<usize> {
    let pattern_type = str_of(o, "pattern_type").unwrap_or("stix");
    if pattern_type != "stix" {
        batch.unsupported.push(Reject::new(
            format!("{path}.pattern"),
            format!("pattern_type {pattern_type:?} is not translated into indicators"),
        ));
        batch.objects.push(o.clone());
        return Vec::new();
    }
    let Some(pat) = str_of(o, "pattern") else {
        batch.reject(format!("{path}.pattern"), "missing pattern");
        return Vec::new();
    };
    let parsed = match pattern::parse(pat) {
        Ok(p) => p,
        Err(e) => {
            batch.reject(format!("{path}.pattern"), e.to_string());
            return Vec::new();
        }
    };
    let mut values = Vec::new();
    let mut unsupported = Vec::new();
    observation_values(&parsed, &mut values, &mut unsupported);
    for u in unsupported {
        batch
            .unsupported
            .push(Reject::new(format!("{path}.pattern"), u));
    }
    let mut tags = strings_of(o, "labels");
    union_into(&mut tags, strings_of(o, "indicator_types"));
    let first = time_of(o, "valid_from")
        .or_else(|| time_of(o, "created"))
        .unwrap_or(prov.now);
    let last = time_of(o, "modified").unwrap_or(first).max(first);
    let mut sources = vec![prov.source.clone()];
    union_into(&mut sources, strings_of(o, "x_mimamori_sources"));
    let mut positions = Vec::new();
    for (kind, value) in values {
        let mut ind = prov.indicator(kind, value);
        ind.sources = sources.clone();
        ind.first_seen = first;
        ind.last_seen = last;
        ind.valid_until = time_of(o, "valid_until").or(ind.valid_until);
        if let Some(c) = o.get("confidence").and_then(Value::as_u64) {
            ind.confidence = c.min(100) as u8;
        }
        ind.tlp = tlp;
        ind.revoked = o.get("revoked").and_then(Value::as_bool).unwrap_or(false);
        if let Some(d) = o.get("x_mimamori_detection").and_then(Value::as_bool) {
            ind.detection = d;
        }
        if let Some(sub) = o.get(SUBDOMAINS_PROPERTY).and_then(Value::as_bool) {
            ind.set_subdomains(sub);
        }
        ind.tags = tags.clone();
        ind.attack_techniques = techniques_of(o);
        ind.related = strings_of(o, "x_mimamori_related");
        ind.stix_id = str_of(o, "id").map(str::to_owned);
        positions.push((ind.kind.key(), ind.value.clone()));
        batch.push(ind);
    }
    positions
        .into_iter()
        .filter_map(|(k, v)| batch.position(k, &v))
        .collect()
}

fn observable(
    batch: &mut ImportBatch,
    path: &str,
    o: &Value,
    tlp: Tlp,
    opts: &StixOptions,
) -> Vec<usize> {
    let ty = str_of(o, "type").unwrap_or("");
    let mut candidates: Vec<(Option<Kind>, String, &str)> = Vec::new();
    match ty {
        "file" => {
            if let Some(h) = o.get("hashes").and_then(Value::as_object) {
                for (alg, v) in h {
                    let kind = match alg.to_ascii_uppercase().replace(['-', '_'], "").as_str() {
                        "MD5" => Kind::Md5,
                        "SHA1" => Kind::Sha1,
                        "SHA256" => Kind::Sha256,
                        _ => continue,
                    };
                    if let Some(v) = v.as_str() {
                        candidates.push((Some(kind), v.to_owned(), "hashes"));
                    }
                }
            }
            // A file name alone names no particular file; only used when the
            // object has no hash.
            if candidates.is_empty() {
                if let Some(n) = str_of(o, "name") {
                    candidates.push((Some(Kind::FileName), n.to_owned(), "name"));
                }
            }
        }
        _ => {
            let hint = match ty {
                "domain-name" => Kind::Hostname,
                "ipv4-addr" => Kind::Ipv4,
                "ipv6-addr" => Kind::Ipv6,
                "url" => Kind::Url,
                _ => Kind::Email,
            };
            if let Some(v) = str_of(o, "value") {
                candidates.push((Some(hint), v.to_owned(), "value"));
            }
        }
    }
    let mut positions = Vec::new();
    for (hint, v, field) in candidates {
        match normalize(hint, &v) {
            Ok((kind, value)) => {
                let mut ind = opts.provenance.indicator(kind, value);
                if let Some(sub) = o.get(SUBDOMAINS_PROPERTY).and_then(Value::as_bool) {
                    ind.set_subdomains(sub);
                }
                ind.tlp = tlp;
                ind.detection = opts.sco_detection;
                ind.stix_id = str_of(o, "id").map(str::to_owned);
                let key = (ind.kind.key(), ind.value.clone());
                batch.push(ind);
                if let Some(p) = batch.position(key.0, &key.1) {
                    positions.push(p);
                }
            }
            Err(e) => batch.reject(format!("{path}.{field}"), e.to_string()),
        }
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_paths() {
        assert_eq!(pointer_to_path("/objects/3/name"), ".objects[3].name");
        assert_eq!(pointer_to_path("/hashes/SHA-256"), ".hashes.SHA-256");
        assert_eq!(pointer_to_path("/a b"), "[\"a b\"]");
        assert_eq!(pointer_to_path(""), "");
    }

    #[test]
    fn technique_ids() {
        assert!(is_technique_id("T0803"));
        assert!(is_technique_id("T1566.001"));
        assert!(!is_technique_id("TA0001"));
        assert!(!is_technique_id("T1566.01"));
    }

    fn values(p: &str) -> (Vec<(IndicatorKind, String)>, Vec<String>) {
        let mut v = Vec::new();
        let mut u = Vec::new();
        observation_values(&pattern::parse(p).unwrap(), &mut v, &mut u);
        (v, u)
    }

    #[test]
    fn pattern_translation() {
        let (v, u) = values(
            "[domain-name:value = 'Evil.com' OR ipv4-addr:value IN ('1.2.3.4', '10.0.0.0/8')] \
             OR [file:hashes.'SHA-256' = 'AB' AND file:name = 'x.exe']",
        );
        assert_eq!(
            v,
            vec![
                (IndicatorKind::Domain { exact: true }, "evil.com".into()),
                (IndicatorKind::Ipv4, "1.2.3.4".into()),
                (IndicatorKind::Cidr, "10.0.0.0/8".into()),
                (IndicatorKind::FileName, "x.exe".into()),
            ]
        );
        // The short hash is rejected; the file name alone is then used.
        assert_eq!(u.len(), 1, "{u:?}");
        assert!(u[0].contains("hex digits"));
        let (v, u) = values(
            "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e' AND file:name = 'x.exe'] \
             AND [domain-name:value LIKE '%.evil.com'] AND [url:value MATCHES 'x'] \
             AND [x509-certificate:issuer = 'CN=x']",
        );
        assert_eq!(
            v,
            vec![
                (
                    IndicatorKind::Md5,
                    "d41d8cd98f00b204e9800998ecf8427e".into()
                ),
                (IndicatorKind::Domain { exact: false }, "evil.com".into()),
            ]
        );
        assert_eq!(u.len(), 3, "{u:?}");
        assert!(u
            .iter()
            .any(|r| r.contains("MATCHES: operator not supported")));
        assert!(u
            .iter()
            .any(|r| r.contains("x509-certificate:issuer not supported")));
    }
}
