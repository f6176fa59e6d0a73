//! STIX 2.1 export: indicators (with deterministic ids), the relationships
//! and objects that go with them, and TLP 2.0 markings.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{json, Map, Value};
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::model::{Indicator, IndicatorKind, Relation, Tlp};

/// The UUIDv5 namespace of mimamori's STIX ids (a random UUID, fixed
/// forever: changing it would change every exported id).
const NAMESPACE: Uuid = Uuid::from_u128(0x6d69_6d61_6d6f_4e72_9e1f_3c4b_8a5d_2f17);

/// The creation time of the OASIS TLP 2.0 marking definitions.
const TLP2_CREATED: &str = "2022-10-01T00:00:00.000Z";
const TLP2_EXTENSION: &str = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d";

#[derive(Debug, Clone)]
pub struct StixExportOptions {
    /// Nothing stricter than this leaves: indicators above it are dropped,
    /// and so are objects marked above it.
    pub max_tlp: Tlp,
    /// The `created`/`modified` time of exported relationships.
    pub now: OffsetDateTime,
}

/// `indicator--<UUIDv5(kind:value)>`: the same indicator always gets the
/// same id, whoever exports it. The kind is taken without the domain's
/// `exact` flag, so widening a domain keeps its id.
pub fn indicator_stix_id(kind: IndicatorKind, value: &str) -> String {
    let name = format!("{:?}:{value}", kind.key());
    format!("indicator--{}", Uuid::new_v5(&NAMESPACE, name.as_bytes()))
}

/// A STIX timestamp: UTC, `Z`, and at least millisecond precision (the
/// schemas require `created`/`modified` to have it). Finer precision is
/// kept, so that a time read back compares equal.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let nanos = t.nanosecond();
    let frac = if nanos.is_multiple_of(1_000_000) {
        format!("{:03}", nanos / 1_000_000)
    } else {
        format!("{nanos:09}").trim_end_matches('0').to_owned()
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{frac}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A STIX string literal: `'` and `\` escaped.
fn lit(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The STIX pattern of one indicator. A non-exact domain is written as the
/// name itself or any name under it, which import reads back as non-exact.
pub(crate) fn pattern_of(kind: IndicatorKind, value: &str) -> String {
    let v = lit(value);
    match kind {
        IndicatorKind::Domain { exact: true } => format!("[domain-name:value = {v}]"),
        IndicatorKind::Domain { exact: false } => format!(
            "[domain-name:value = {v} OR domain-name:value LIKE {}]",
            lit(&format!("%.{value}"))
        ),
        IndicatorKind::Ipv4 => format!("[ipv4-addr:value = {v}]"),
        IndicatorKind::Ipv6 => format!("[ipv6-addr:value = {v}]"),
        IndicatorKind::Cidr if value.contains(':') => format!("[ipv6-addr:value = {v}]"),
        IndicatorKind::Cidr => format!("[ipv4-addr:value = {v}]"),
        IndicatorKind::Url => format!("[url:value = {v}]"),
        IndicatorKind::Md5 => format!("[file:hashes.MD5 = {v}]"),
        IndicatorKind::Sha1 => format!("[file:hashes.'SHA-1' = {v}]"),
        IndicatorKind::Sha256 => format!("[file:hashes.'SHA-256' = {v}]"),
        IndicatorKind::Email => format!("[email-addr:value = {v}]"),
        IndicatorKind::FileName => format!("[file:name = {v}]"),
    }
}

fn marking_object(t: Tlp) -> Value {
    let level = t.label().trim_start_matches("tlp:");
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": t.stix_marking_id(),
        "created": TLP2_CREATED,
        "name": t.label().to_ascii_uppercase(),
        "extensions": {
            TLP2_EXTENSION: {
                "extension_type": "property-extension",
                "tlp_2_0": level,
            }
        }
    })
}

/// The strictest TLP among an object's marking refs, if it has any.
fn object_tlp(o: &Value) -> Option<Tlp> {
    o.get("object_marking_refs")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter_map(Tlp::from_stix_marking_id)
        .max()
}

/// A bundle of the indicators at or below `max_tlp`, the objects (kept
/// STIX objects such as malware and attack-patterns, not marked above
/// `max_tlp`) and the relations between what is exported. Relations that
/// name an indicator by its original `stix_id` are rewritten to the
/// indicator's exported id. The output is deterministic: the same input
/// gives the same bytes.
pub fn export_stix(
    indicators: &[Indicator],
    relations: &[Relation],
    objects: &[Value],
    opts: &StixExportOptions,
) -> Value {
    let mut out: Vec<Value> = Vec::new();
    let mut remap: HashMap<&str, String> = HashMap::new();
    let mut present: HashSet<String> = HashSet::new();
    let mut used_tlp: BTreeSet<Tlp> = BTreeSet::new();

    let mut inds: Vec<&Indicator> = indicators
        .iter()
        .filter(|i| i.tlp <= opts.max_tlp)
        .collect();
    inds.sort_by(|a, b| (a.kind.key(), &a.value).cmp(&(b.kind.key(), &b.value)));
    let mut ind_objects = Vec::with_capacity(inds.len());
    for ind in inds {
        let id = indicator_stix_id(ind.kind, &ind.value);
        if let Some(orig) = ind.stix_id.as_deref() {
            remap.insert(orig, id.clone());
        }
        present.insert(id.clone());
        used_tlp.insert(ind.tlp);
        let created = ind.first_seen;
        let modified = ind.last_seen.max(created);
        let mut o = Map::new();
        o.insert("type".into(), json!("indicator"));
        o.insert("spec_version".into(), json!("2.1"));
        o.insert("id".into(), json!(id));
        o.insert("created".into(), json!(ts(created)));
        o.insert("modified".into(), json!(ts(modified)));
        o.insert(
            "name".into(),
            json!(crate::normalize::display(ind.kind, &ind.value)),
        );
        o.insert("indicator_types".into(), json!(["malicious-activity"]));
        o.insert("pattern".into(), json!(pattern_of(ind.kind, &ind.value)));
        if let Some(sub) = ind.subdomains() {
            o.insert(super::SUBDOMAINS_PROPERTY.into(), json!(sub));
        }
        o.insert("pattern_type".into(), json!("stix"));
        o.insert("pattern_version".into(), json!("2.1"));
        o.insert("valid_from".into(), json!(ts(created)));
        if let Some(end) = ind.valid_until.filter(|e| *e > created) {
            o.insert("valid_until".into(), json!(ts(end)));
        }
        o.insert("confidence".into(), json!(ind.confidence.min(100)));
        if !ind.tags.is_empty() {
            o.insert("labels".into(), json!(ind.tags));
        }
        if ind.revoked {
            o.insert("revoked".into(), json!(true));
        }
        if !ind.attack_techniques.is_empty() {
            let refs: Vec<Value> = ind
                .attack_techniques
                .iter()
                .map(|t| json!({"source_name": "mitre-attack", "external_id": t}))
                .collect();
            o.insert("external_references".into(), Value::Array(refs));
        }
        o.insert(
            "object_marking_refs".into(),
            json!([ind.tlp.stix_marking_id()]),
        );
        // mimamori's own properties, so that an export read back by
        // mimamori loses nothing; other consumers ignore them.
        o.insert("x_mimamori_sources".into(), json!(ind.sources));
        if !ind.related.is_empty() {
            o.insert("x_mimamori_related".into(), json!(ind.related));
        }
        o.insert("x_mimamori_detection".into(), json!(ind.detection));
        ind_objects.push(Value::Object(o));
    }

    let mut kept: Vec<&Value> = objects
        .iter()
        .filter(|o| object_tlp(o).is_none_or(|t| t <= opts.max_tlp))
        .filter(|o| {
            o.get("type").and_then(Value::as_str) != Some("marking-definition")
                || o.get("id")
                    .and_then(Value::as_str)
                    .and_then(Tlp::from_stix_marking_id)
                    .is_none()
        })
        .collect();
    kept.sort_by_key(|o| o.get("id").and_then(Value::as_str).unwrap_or("").to_owned());
    for o in &kept {
        if let Some(id) = o.get("id").and_then(Value::as_str) {
            present.insert(id.to_owned());
        }
        if let Some(t) = object_tlp(o) {
            used_tlp.insert(t);
        }
    }

    for t in &used_tlp {
        out.push(marking_object(*t));
    }
    out.extend(ind_objects);
    // Reports and groupings list their contents by id: point them at the
    // exported indicator ids, and drop references to what stays home, so
    // the bundle refers only to what it holds or to well-known markings.
    // One that would be left with none is dropped (`object_refs` may not be
    // empty).
    out.extend(kept.into_iter().filter_map(|o| {
        let mut o = o.clone();
        if let Some(Value::Array(refs)) = o.get_mut("object_refs") {
            refs.retain_mut(|r| match r.as_str() {
                Some(id) => {
                    if let Some(new) = remap.get(id) {
                        *r = json!(new);
                    }
                    r.as_str().is_some_and(|id| present.contains(id))
                }
                None => false,
            });
            if refs.is_empty() {
                return None;
            }
        }
        Some(o)
    }));

    let mut rels: Vec<(String, String, String)> = relations
        .iter()
        .map(|r| {
            let s = remap
                .get(r.source_ref.as_str())
                .cloned()
                .unwrap_or_else(|| r.source_ref.clone());
            let t = remap
                .get(r.target_ref.as_str())
                .cloned()
                .unwrap_or_else(|| r.target_ref.clone());
            (s, r.relationship_type.clone(), t)
        })
        .filter(|(s, _, t)| present.contains(s) && present.contains(t))
        .collect();
    rels.sort();
    rels.dedup();
    let now = ts(opts.now);
    for (s, r, t) in rels {
        let id = Uuid::new_v5(&NAMESPACE, format!("{s} {r} {t}").as_bytes());
        out.push(json!({
            "type": "relationship",
            "spec_version": "2.1",
            "id": format!("relationship--{id}"),
            "created": now,
            "modified": now,
            "relationship_type": r,
            "source_ref": s,
            "target_ref": t,
        }));
    }

    let ids: Vec<&str> = out
        .iter()
        .filter_map(|o| o.get("id").and_then(Value::as_str))
        .collect();
    let bundle_id = Uuid::new_v5(&NAMESPACE, ids.join(",").as_bytes());
    json!({
        "type": "bundle",
        "id": format!("bundle--{bundle_id}"),
        "objects": out,
    })
}
