//! The indicator model shared by every importer, exporter and the index.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What an indicator's value is. `Domain { exact: false }` also covers every
/// sub-domain of the value; `exact: true` covers that one name only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum IndicatorKind {
    Domain { exact: bool },
    Ipv4,
    Ipv6,
    Cidr,
    Url,
    Md5,
    Sha1,
    Sha256,
    Email,
    FileName,
}

impl IndicatorKind {
    /// The kind without the `exact` flag: two indicators with the same key
    /// and value are the same indicator (a non-exact domain absorbs an exact
    /// one, see [`Indicator::merge`]).
    pub fn key(self) -> Kind {
        match self {
            IndicatorKind::Domain { .. } => Kind::Domain,
            IndicatorKind::Ipv4 => Kind::Ipv4,
            IndicatorKind::Ipv6 => Kind::Ipv6,
            IndicatorKind::Cidr => Kind::Cidr,
            IndicatorKind::Url => Kind::Url,
            IndicatorKind::Md5 => Kind::Md5,
            IndicatorKind::Sha1 => Kind::Sha1,
            IndicatorKind::Sha256 => Kind::Sha256,
            IndicatorKind::Email => Kind::Email,
            IndicatorKind::FileName => Kind::FileName,
        }
    }

    /// A stable lower-case name (`domain`, `hostname` for exact domains, …).
    pub fn name(self) -> &'static str {
        match self {
            IndicatorKind::Domain { exact: false } => "domain",
            IndicatorKind::Domain { exact: true } => "hostname",
            IndicatorKind::Ipv4 => "ipv4",
            IndicatorKind::Ipv6 => "ipv6",
            IndicatorKind::Cidr => "cidr",
            IndicatorKind::Url => "url",
            IndicatorKind::Md5 => "md5",
            IndicatorKind::Sha1 => "sha1",
            IndicatorKind::Sha256 => "sha256",
            IndicatorKind::Email => "email",
            IndicatorKind::FileName => "file-name",
        }
    }
}

/// A kind hint for [`crate::normalize`]: what the caller believes the value
/// is. `Hostname` is an exact domain, `Domain` one that covers sub-domains,
/// `Ip` either family, `Hash` any of the three digests (told by length).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Domain,
    Hostname,
    Ip,
    Ipv4,
    Ipv6,
    Cidr,
    Url,
    Hash,
    Md5,
    Sha1,
    Sha256,
    Email,
    FileName,
}

/// Traffic Light Protocol label. The order is from least to most
/// restrictive, so `max` of two labels is the stricter one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Tlp {
    Clear,
    Green,
    /// The default when a source says nothing: sharing is limited until
    /// someone decides otherwise.
    #[default]
    Amber,
    AmberStrict,
    Red,
}

/// The STIX 2.1 TLP 1.0 marking-definition ids (STIX 2.1 §7.2.1.4).
const TLP1_IDS: [(&str, Tlp); 4] = [
    (
        "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9",
        Tlp::Clear,
    ),
    (
        "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da",
        Tlp::Green,
    ),
    (
        "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82",
        Tlp::Amber,
    ),
    (
        "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed",
        Tlp::Red,
    ),
];

/// The TLP 2.0 marking-definition ids published by OASIS (extension
/// `extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d`).
const TLP2_IDS: [(&str, Tlp); 5] = [
    (
        "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
        Tlp::Clear,
    ),
    (
        "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
        Tlp::Green,
    ),
    (
        "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
        Tlp::Amber,
    ),
    (
        "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
        Tlp::AmberStrict,
    ),
    (
        "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
        Tlp::Red,
    ),
];

impl Tlp {
    pub const ALL: [Tlp; 5] = [
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    /// The TLP of a well-known STIX marking-definition id (TLP 1.0 or 2.0).
    pub fn from_stix_marking_id(id: &str) -> Option<Tlp> {
        TLP1_IDS
            .iter()
            .chain(TLP2_IDS.iter())
            .find(|(known, _)| known.eq_ignore_ascii_case(id))
            .map(|&(_, tlp)| tlp)
    }

    /// The TLP 2.0 marking-definition id, which exports always use.
    pub fn stix_marking_id(self) -> &'static str {
        TLP2_IDS
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(id, _)| *id)
            .unwrap_or(TLP2_IDS[2].0)
    }

    /// Parses a label as written in MISP tags and TLP 2.0 names:
    /// `tlp:amber+strict`, `TLP:WHITE` (1.0's white is 2.0's clear), `green`.
    pub fn parse_label(label: &str) -> Option<Tlp> {
        let l = label.trim().to_ascii_lowercase();
        let l = l.strip_prefix("tlp:").unwrap_or(&l).trim();
        match l {
            "clear" | "white" => Some(Tlp::Clear),
            "green" => Some(Tlp::Green),
            "amber" => Some(Tlp::Amber),
            "amber+strict" | "amber-strict" | "amber_strict" => Some(Tlp::AmberStrict),
            "red" => Some(Tlp::Red),
            _ => None,
        }
    }

    /// `tlp:clear`, `tlp:amber+strict`, … (the MISP tag and TLP 2.0 spelling).
    pub fn label(self) -> &'static str {
        match self {
            Tlp::Clear => "tlp:clear",
            Tlp::Green => "tlp:green",
            Tlp::Amber => "tlp:amber",
            Tlp::AmberStrict => "tlp:amber+strict",
            Tlp::Red => "tlp:red",
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One normalized indicator with its provenance and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Indicator {
    pub kind: IndicatorKind,
    /// Normalized by [`crate::normalize`]; `(kind.key(), value)` identifies it.
    pub value: String,
    /// Feed or document names the indicator came from, de-duplicated.
    pub sources: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub valid_until: Option<OffsetDateTime>,
    /// 0–100, as in STIX.
    pub confidence: u8,
    pub tlp: Tlp,
    /// `false` for context only (MISP `to_ids: false`, STIX observables):
    /// kept and searchable, but never used to raise alerts or block.
    pub detection: bool,
    /// Withdrawn by its source (STIX `revoked`).
    #[serde(default)]
    pub revoked: bool,
    pub tags: Vec<String>,
    /// ATT&CK technique ids, `T1234` or `T1234.001`.
    pub attack_techniques: Vec<String>,
    /// Malware, campaign, intrusion-set, … names as `type:name`.
    pub related: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stix_id: Option<String>,
}

impl Indicator {
    /// A fresh indicator seen first and last at `now`, with default TLP and
    /// confidence 50, used for detection.
    pub fn new(kind: IndicatorKind, value: String, now: OffsetDateTime) -> Indicator {
        Indicator {
            kind,
            value,
            sources: Vec::new(),
            first_seen: now,
            last_seen: now,
            valid_until: None,
            confidence: 50,
            tlp: Tlp::default(),
            detection: true,
            revoked: false,
            tags: Vec::new(),
            attack_techniques: Vec::new(),
            related: Vec::new(),
            stix_id: None,
        }
    }

    /// For a domain: set whether it covers its sub-domains (an indicator's
    /// own marker, which wins over its source's default). Other kinds are
    /// left alone.
    pub fn set_subdomains(&mut self, subdomains: bool) {
        if let IndicatorKind::Domain { .. } = self.kind {
            self.kind = IndicatorKind::Domain { exact: !subdomains };
        }
    }

    /// For a domain, whether it covers its sub-domains; `None` for other
    /// kinds.
    pub fn subdomains(&self) -> Option<bool> {
        match self.kind {
            IndicatorKind::Domain { exact } => Some(!exact),
            _ => None,
        }
    }

    /// Folds another report of the same indicator into this one. The union
    /// of everything is kept; the stricter TLP and the higher confidence win
    /// (a second source can only restrict sharing, never widen it); a
    /// non-exact domain absorbs an exact one.
    pub fn merge(&mut self, other: Indicator) {
        if let (IndicatorKind::Domain { exact: a }, IndicatorKind::Domain { exact: b }) =
            (self.kind, other.kind)
        {
            self.kind = IndicatorKind::Domain { exact: a && b };
        }
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.valid_until = match (self.valid_until, other.valid_until) {
            (Some(a), Some(b)) => Some(a.max(b)),
            // No end from either side means no end.
            _ => None,
        };
        self.confidence = self.confidence.max(other.confidence);
        self.tlp = self.tlp.max(other.tlp);
        self.detection |= other.detection;
        self.revoked &= other.revoked;
        union_into(&mut self.sources, other.sources);
        union_into(&mut self.tags, other.tags);
        union_into(&mut self.attack_techniques, other.attack_techniques);
        union_into(&mut self.related, other.related);
        if self.stix_id.is_none() {
            self.stix_id = other.stix_id;
        }
    }
}

/// Appends the items of `more` not yet in `into`, keeping first-seen order.
pub(crate) fn union_into(into: &mut Vec<String>, more: Vec<String>) {
    for m in more {
        if !into.contains(&m) {
            into.push(m);
        }
    }
}

/// A STIX-style relationship between two objects, by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub source_ref: String,
    pub relationship_type: String,
    pub target_ref: String,
}

/// Something left out of an import, and why. `path` is a JSON path
/// (`$.objects[3].modified`) or a line (`line 12`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reject {
    pub path: String,
    pub reason: String,
}

impl Reject {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Reject {
        Reject {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// The result of one import. Indicators are de-duplicated on
/// `(kind.key(), value)` with [`Indicator::merge`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportBatch {
    pub indicators: Vec<Indicator>,
    pub relations: Vec<Relation>,
    /// STIX objects kept as they are (malware, campaign, attack-pattern,
    /// identity, marking-definition, …).
    pub objects: Vec<serde_json::Value>,
    /// Input that is wrong: invalid objects, lines that do not normalize.
    pub rejects: Vec<Reject>,
    /// Input that is valid but that mimamori cannot turn into indicators
    /// (STIX pattern parts with other operators, non-STIX pattern types).
    pub unsupported: Vec<Reject>,
    /// MISP attribute types (and the like) skipped, with their counts.
    pub unsupported_types: BTreeMap<String, usize>,
    /// Names of the sharing groups the input was distributed to (a MISP
    /// event with distribution 4 names its `SharingGroup`): the importer
    /// shares the batch with the local groups of those names.
    pub sharing_groups: Vec<String>,
    #[serde(skip)]
    positions: HashMap<(Kind, String), usize>,
}

impl ImportBatch {
    /// An empty batch with room for `n` indicators (a list's line count).
    pub fn with_capacity(n: usize) -> ImportBatch {
        let mut b = ImportBatch::default();
        b.indicators.reserve(n);
        b.positions.reserve(n);
        b
    }

    /// Adds an indicator, merging it into an earlier one with the same key.
    pub fn push(&mut self, ind: Indicator) {
        let key = (ind.kind.key(), ind.value.clone());
        match self.positions.get(&key) {
            Some(&i) => self.indicators[i].merge(ind),
            None => {
                self.positions.insert(key, self.indicators.len());
                self.indicators.push(ind);
            }
        }
    }

    pub fn reject(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.rejects.push(Reject::new(path, reason));
    }

    pub fn count_unsupported(&mut self, ty: &str) {
        *self.unsupported_types.entry(ty.to_owned()).or_default() += 1;
    }

    /// The indicator with this key and value, if imported.
    pub fn get(&self, kind: Kind, value: &str) -> Option<&Indicator> {
        self.positions
            .get(&(kind, value.to_owned()))
            .map(|&i| &self.indicators[i])
    }

    pub(crate) fn get_mut_at(&mut self, i: usize) -> &mut Indicator {
        &mut self.indicators[i]
    }

    pub(crate) fn position(&self, kind: Kind, value: &str) -> Option<usize> {
        self.positions.get(&(kind, value.to_owned())).copied()
    }
}

/// Where an import's indicators come from and what they get when the input
/// does not say: the source name, the TLP, the confidence and the time.
#[derive(Debug, Clone)]
pub struct Provenance {
    pub source: String,
    pub tlp: Tlp,
    pub confidence: u8,
    pub now: OffsetDateTime,
    /// How long indicators stay valid when the input gives no end;
    /// `None`: no end, only the score decays.
    pub valid_for: Option<time::Duration>,
    /// The source's default for domain indicators: also cover every
    /// sub-domain (true, the default, as RPZ's `*.name` and Protective DNS
    /// services do) or only the name itself. An indicator's own marker
    /// (list `=name` / `*.name`, STIX `x_mimamori_subdomains` or a
    /// `LIKE '%.name'` pattern, MISP tag `mimamori:subdomains="…"`) wins.
    pub subdomains: bool,
}

impl Provenance {
    pub fn new(source: impl Into<String>, now: OffsetDateTime) -> Provenance {
        Provenance {
            source: source.into(),
            tlp: Tlp::default(),
            confidence: 50,
            now,
            valid_for: None,
            subdomains: true,
        }
    }

    /// An indicator stamped with this provenance. An exact domain is
    /// widened to its sub-domains when the source's default says so; a
    /// domain already marked as covering them stays so.
    pub fn indicator(&self, kind: IndicatorKind, value: String) -> Indicator {
        let kind = match kind {
            IndicatorKind::Domain { exact: true } if self.subdomains => {
                IndicatorKind::Domain { exact: false }
            }
            k => k,
        };
        let mut ind = Indicator::new(kind, value, self.now);
        ind.sources = vec![self.source.clone()];
        ind.tlp = self.tlp;
        ind.confidence = self.confidence.min(100);
        ind.valid_until = self.valid_for.map(|d| self.now + d);
        ind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlp_parses_misp_tags_and_stix_ids() {
        assert_eq!(Tlp::parse_label("tlp:white"), Some(Tlp::Clear));
        assert_eq!(Tlp::parse_label("TLP:AMBER+STRICT"), Some(Tlp::AmberStrict));
        assert_eq!(Tlp::parse_label("tlp:red"), Some(Tlp::Red));
        assert_eq!(Tlp::parse_label("tlp:ex:chr"), None);
        assert_eq!(
            Tlp::from_stix_marking_id("marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"),
            Some(Tlp::Amber)
        );
        for t in Tlp::ALL {
            assert_eq!(Tlp::from_stix_marking_id(t.stix_marking_id()), Some(t));
            assert_eq!(Tlp::parse_label(t.label()), Some(t));
        }
        assert!(Tlp::Clear < Tlp::Green && Tlp::AmberStrict < Tlp::Red);
    }

    #[test]
    fn merge_keeps_stricter_tlp_and_non_exact_domain() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut a = Indicator::new(
            IndicatorKind::Domain { exact: true },
            "evil.com".into(),
            now,
        );
        a.tlp = Tlp::Green;
        a.sources = vec!["x".into()];
        let mut b = Indicator::new(
            IndicatorKind::Domain { exact: false },
            "evil.com".into(),
            now + time::Duration::days(1),
        );
        b.tlp = Tlp::Red;
        b.sources = vec!["y".into(), "x".into()];
        a.merge(b);
        assert_eq!(a.kind, IndicatorKind::Domain { exact: false });
        assert_eq!(a.tlp, Tlp::Red);
        assert_eq!(a.sources, vec!["x", "y"]);
        assert_eq!(a.last_seen, now + time::Duration::days(1));
        assert_eq!(a.first_seen, now);
    }
}
