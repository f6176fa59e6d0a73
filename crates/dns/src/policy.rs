//! The policy engine: RPZ zones (draft-vixie-dnsop-dns-rpz), plain block and
//! allow lists, and per-org policy selected by the client's address.
//!
//! A [`Zone`] is immutable once built; a [`Policy`] is an ordered list of
//! zones plus org overlays, swapped atomically at runtime through
//! [`PolicyHandle`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record};
use ipnet::IpNet;

use crate::nsinfo::NsServer;
use crate::table::{IpTable, NameTable, Slot, NONE};
use crate::wire::{self, EDE_BLOCKED};

/// What a trigger does (the RPZ "policy actions").
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `CNAME .`: answer NXDOMAIN.
    NxDomain,
    /// `CNAME *.`: answer NOERROR with no records.
    NoData,
    /// `CNAME rpz-passthru.`: exempt from every later rule.
    Passthru,
    /// `CNAME rpz-drop.`: send no answer at all.
    Drop,
    /// `CNAME rpz-tcp-only.`: over UDP answer TC=1 so the client retries
    /// over TCP, where the query is resolved normally.
    TcpOnly,
    /// Local data replacing the answer (sinkhole A/AAAA, CNAME, TXT, ...).
    Local(Box<LocalData>),
}

/// Records an RPZ trigger answers with; the owner is always the query name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalData {
    pub ttl: u32,
    pub cname: Option<LocalCname>,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    /// Any other type, in hickory form.
    pub other: Vec<RData>,
}

/// A local-data CNAME target.
#[derive(Debug, Clone, PartialEq)]
pub enum LocalCname {
    Fixed(Name),
    /// `*.suffix.`: the `*` is replaced by the whole query name.
    Wildcard(Name),
}

impl LocalData {
    /// Whether any record of `qtype` exists (ANY counts everything).
    pub fn has_type(&self, qtype: u16) -> bool {
        match qtype {
            wire::TYPE_A => !self.a.is_empty(),
            wire::TYPE_AAAA => !self.aaaa.is_empty(),
            255 => true,
            t => self.other.iter().any(|r| u16::from(r.record_type()) == t),
        }
    }
}

impl Action {
    /// A sinkhole: A and/or AAAA answers pointing at a block page.
    pub fn sinkhole(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>, ttl: u32) -> Self {
        Action::Local(Box::new(LocalData {
            ttl,
            a: v4.into_iter().collect(),
            aaaa: v6.into_iter().collect(),
            ..LocalData::default()
        }))
    }

    /// Whether this action lets the query through (nothing is blocked).
    pub fn is_passthru(&self) -> bool {
        matches!(self, Action::Passthru)
    }
}

/// Errors loading a zone or a list.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{zone} line {line}: {reason}")]
    Syntax {
        zone: String,
        line: usize,
        reason: String,
    },
    #[error("invalid zone name {0:?}")]
    ZoneName(String),
}

/// Counters from loading a zone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    pub records: usize,
    pub qname_triggers: usize,
    pub wildcard_triggers: usize,
    pub client_ip_triggers: usize,
    pub response_ip_triggers: usize,
    /// NSDNAME triggers (`rpz-nsdname`, incl. `*.` ones).
    pub nsdname_triggers: usize,
    /// NSIP triggers (`rpz-nsip`).
    pub nsip_triggers: usize,
    /// Duplicate triggers and records outside the zone, skipped.
    pub skipped: usize,
}

const ACT_NXDOMAIN: u32 = 0;
const ACT_NODATA: u32 = 1;
const ACT_PASSTHRU: u32 = 2;
const ACT_DROP: u32 = 3;
const ACT_TCPONLY: u32 = 4;

/// One policy zone: an RPZ zone or a block/allow list.
pub struct Zone {
    name: Arc<str>,
    /// What the zone is, for people (the block page): e.g. whose list.
    description: Option<Arc<str>>,
    /// The RFC 8914 info code sent on answers this zone rewrites.
    ede: u16,
    /// Name triggers; a wildcard `*.x` is stored as the wildcard slot of `x`.
    /// Shared, so a patched copy of a big zone (see [`Zone::with_overlay`])
    /// costs only its overlay.
    names: Arc<NameTable>,
    /// Names whose triggers replace `names`' for them (a slot of two `NONE`s
    /// removes a trigger): how an intel change reaches a built zone without
    /// rebuilding its million names.
    overlay: Option<Arc<NameTable>>,
    client_ip: IpTable<u32>,
    resp_ip: IpTable<u32>,
    /// NSDNAME triggers, keyed like `names` by the name server's name.
    ns_names: NameTable,
    ns_ip: IpTable<u32>,
    /// The zone's SOA (TTL and data): its serial drives zone transfers,
    /// and some answers carry it (see `EngineConfig::rpz_soa_in_additional`).
    soa: Option<(u32, SOA)>,
    actions: Vec<Action>,
    stats: LoadStats,
    /// RPZ policy override: every trigger of the zone takes this action.
    override_action: Option<Action>,
    /// A disabled zone matches nothing (Unbound's `disabled` override).
    disabled: bool,
    /// Clear RA on the NXDOMAIN answers this zone makes (Unbound's
    /// `rpz-signal-nxdomain-ra`), so a client can tell a policy NXDOMAIN
    /// from a real one.
    signal_nxdomain_ra: bool,
    /// A PASSTHRU trigger of this zone only stops the zone's own blocks:
    /// later zones still decide (see [`Zone::with_passthru_falling_through`]).
    passthru_falls_through: bool,
    /// A `*.x` trigger reaches every name under `x`, even below a name
    /// that has its own exact trigger (see
    /// [`Zone::with_wildcards_below_names`]).
    wildcards_below_names: bool,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zone")
            .field("name", &self.name)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Which trigger matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The QNAME trigger for the name itself.
    Qname,
    /// A `*.` trigger; `at` is the offset in the checked name where the
    /// matching suffix starts.
    Wildcard {
        at: u8,
    },
    ClientIp(IpNet),
    ResponseIp(IpNet),
    /// An NSDNAME trigger matched a name server of the query name's zone or
    /// of an ancestor zone; `at` as in `Wildcard` for a `*.` trigger, `None`
    /// for an exact one. The checked name is the name server's.
    NsDname {
        at: Option<u8>,
    },
    /// An NSIP trigger matched an address of such a name server.
    NsIp(IpNet),
}

/// A policy match.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub zone: &'a Zone,
    pub action: &'a Action,
    pub trigger: Trigger,
}

impl Hit<'_> {
    /// The rule in RPZ owner syntax, for logs: `*.evil.example`,
    /// `evil.example`, `24.0.2.0.192.rpz-client-ip` is given as
    /// `rpz-client-ip 192.0.2.0/24`.
    pub fn rule(&self, checked: &[u8]) -> String {
        match self.trigger {
            Trigger::Qname => wire::name_to_string(checked),
            Trigger::Wildcard { at } => {
                let base = checked.get(at as usize..).unwrap_or(b"\0");
                match wire::name_to_string(base).as_str() {
                    "." => "*".to_string(),
                    b => format!("*.{b}"),
                }
            }
            Trigger::ClientIp(n) => format!("rpz-client-ip {n}"),
            Trigger::ResponseIp(n) => format!("rpz-ip {n}"),
            Trigger::NsDname { at: None } => {
                format!("rpz-nsdname {}", wire::name_to_string(checked))
            }
            Trigger::NsDname { at: Some(at) } => {
                let base = checked.get(at as usize..).unwrap_or(b"\0");
                format!("rpz-nsdname *.{}", wire::name_to_string(base))
            }
            Trigger::NsIp(n) => format!("rpz-nsip {n}"),
        }
    }
}

/// The index of `action` in a zone's action list: the fixed actions have
/// fixed indexes, local data is appended.
fn push_action(actions: &mut Vec<Action>, action: Action) -> u32 {
    match action {
        Action::NxDomain => ACT_NXDOMAIN,
        Action::NoData => ACT_NODATA,
        Action::Passthru => ACT_PASSTHRU,
        Action::Drop => ACT_DROP,
        Action::TcpOnly => ACT_TCPONLY,
        local => {
            actions.push(local);
            (actions.len() - 1) as u32
        }
    }
}

impl Zone {
    /// An empty zone to fill with [`Zone::add_qname`] and friends.
    pub fn new(name: &str) -> Self {
        Self {
            name: Arc::from(name.trim_end_matches('.')),
            description: None,
            ede: EDE_BLOCKED,
            names: Arc::new(NameTable::new()),
            overlay: None,
            client_ip: IpTable::default(),
            resp_ip: IpTable::default(),
            ns_names: NameTable::new(),
            ns_ip: IpTable::default(),
            soa: None,
            actions: vec![
                Action::NxDomain,
                Action::NoData,
                Action::Passthru,
                Action::Drop,
                Action::TcpOnly,
            ],
            stats: LoadStats::default(),
            override_action: None,
            disabled: false,
            signal_nxdomain_ra: false,
            passthru_falls_through: false,
            wildcards_below_names: false,
        }
    }

    /// Makes a `*.x` trigger cover every name under `x`, also below a
    /// name with an exact trigger of its own (RFC 4592 says a wildcard
    /// does not reach below an existing name, which RPZ zone files follow).
    /// Used for the intel zones, so a domain indicator that covers its
    /// sub-domains blocks exactly what detection matches: the name and
    /// every name under it on label boundaries, whatever other, exact,
    /// indicators lie beneath it.
    pub fn with_wildcards_below_names(mut self) -> Self {
        self.wildcards_below_names = true;
        self
    }

    /// Makes this zone's PASSTHRU triggers mean "no verdict here" instead
    /// of "exempt from every later zone". Used for an ancestor org's list
    /// checked as a mandate for the orgs beneath it: its own exceptions
    /// (an allow under one of its blocks) lift that block, but must not
    /// exempt the name from the sub-org's own policy or the intel.
    pub fn with_passthru_falling_through(mut self) -> Self {
        self.passthru_falls_through = true;
        self
    }

    /// Overrides the action of every trigger in the zone (RPZ "policy
    /// override", Unbound's `rpz-action-override`): e.g. run a feed in
    /// PASSTHRU to observe it before enforcing it.
    pub fn with_action_override(mut self, action: Action) -> Self {
        self.override_action = Some(action);
        self
    }

    /// Disables the zone: it matches nothing and later zones decide.
    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }

    /// Marks this zone's NXDOMAIN answers with RA=0 (Unbound's
    /// `rpz-signal-nxdomain-ra`).
    pub fn with_signal_nxdomain_ra(mut self) -> Self {
        self.signal_nxdomain_ra = true;
        self
    }

    pub fn signals_nxdomain_ra(&self) -> bool {
        self.signal_nxdomain_ra
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }
    /// Says what the zone is, for the people it blocks (the block page
    /// shows it under the zone's name).
    pub fn with_description(mut self, text: &str) -> Self {
        self.description = Some(Arc::from(text));
        self
    }
    pub fn description(&self) -> Option<&Arc<str>> {
        self.description.as_ref()
    }
    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }
    pub fn ede(&self) -> u16 {
        self.ede
    }
    /// Sets the Extended DNS Error code (default 15 Blocked; 17 Filtered
    /// suits per-org filtering the org asked for).
    pub fn with_ede(mut self, code: u16) -> Self {
        self.ede = code;
        self
    }
    pub fn has_response_ip_triggers(&self) -> bool {
        !self.resp_ip.is_empty()
    }
    pub fn has_nsdname_triggers(&self) -> bool {
        !self.ns_names.is_empty()
    }
    pub fn has_nsip_triggers(&self) -> bool {
        !self.ns_ip.is_empty()
    }
    /// The zone's SOA record (owner = the zone's apex), if it has one.
    pub fn soa_record(&self) -> Option<Record> {
        let (ttl, soa) = self.soa.as_ref()?;
        let owner = match &*self.name {
            "" | "." => Name::root(),
            n => Name::from_ascii(format!("{n}.")).ok()?,
        };
        Some(Record::from_rdata(owner, *ttl, RData::SOA(soa.clone())))
    }
    /// The SOA serial, if the zone has an SOA.
    pub fn serial(&self) -> Option<u32> {
        self.soa.as_ref().map(|(_, s)| s.serial)
    }
    pub(crate) fn set_soa(&mut self, ttl: u32, soa: SOA) {
        self.soa = Some((ttl, soa));
    }

    fn action_index(&mut self, action: Action) -> u32 {
        push_action(&mut self.actions, action)
    }

    /// Room for about `names` more QNAME triggers of `bytes` wire bytes
    /// (a parser's estimate from the zone's size).
    pub(crate) fn reserve_names(&mut self, names: usize, bytes: usize) {
        Arc::make_mut(&mut self.names).reserve(names, bytes);
    }

    /// Adds a trigger for `name` (text, e.g. `evil.example` or
    /// `*.evil.example`). The first trigger for a name wins.
    pub fn add_qname(&mut self, name: &str, action: Action) -> Result<(), PolicyError> {
        let (wild, base) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None if name == "*" => (true, "."),
            None => (false, name),
        };
        let mut w = Vec::with_capacity(64);
        text_to_wire(base, &[0], &mut w).ok_or_else(|| PolicyError::Syntax {
            zone: self.name.to_string(),
            line: 0,
            reason: format!("bad name {name:?}"),
        })?;
        self.add_wire(&w, wild, action);
        Ok(())
    }

    fn add_wire(&mut self, name: &[u8], wild: bool, action: Action) {
        let mut action = Some(action);
        let actions = &mut self.actions;
        let stored = Arc::make_mut(&mut self.names).get_or_insert_with(name, wild, || {
            action
                .take()
                .map_or(ACT_NXDOMAIN, |a| push_action(actions, a))
        });
        if let Ok(existing) = stored {
            if let Some(a) = action {
                self.merge_local(existing, a);
            }
            return;
        }
        if wild {
            self.stats.wildcard_triggers += 1;
        } else {
            self.stats.qname_triggers += 1;
        }
    }

    /// Several local-data records at one owner form one answer set; any other
    /// duplicate is skipped (the first trigger wins, as in Unbound).
    fn merge_local(&mut self, existing: u32, action: Action) {
        match (self.actions.get_mut(existing as usize), action) {
            (Some(Action::Local(old)), Action::Local(new)) if old.cname.is_none() => {
                old.a.extend(new.a);
                old.aaaa.extend(new.aaaa);
                old.other.extend(new.other);
                if new.cname.is_some() && old.a.is_empty() && old.aaaa.is_empty() {
                    old.cname = new.cname;
                }
            }
            _ => self.stats.skipped += 1,
        }
    }

    fn add_ip(&mut self, client: bool, net: IpNet, action: Action) {
        let table = if client {
            &mut self.client_ip
        } else {
            &mut self.resp_ip
        };
        if let Some(&mut existing) = table.get_exact_mut(net) {
            self.merge_local(existing, action);
            return;
        }
        let idx = self.action_index(action);
        if client {
            self.client_ip.insert(net, idx);
            self.stats.client_ip_triggers += 1;
        } else {
            self.resp_ip.insert(net, idx);
            self.stats.response_ip_triggers += 1;
        }
    }

    /// A client-IP trigger (`rpz-client-ip`).
    pub fn add_client_ip(&mut self, net: IpNet, action: Action) {
        self.add_ip(true, net, action);
    }
    /// A response-IP trigger (`rpz-ip`).
    pub fn add_response_ip(&mut self, net: IpNet, action: Action) {
        self.add_ip(false, net, action);
    }

    /// An NSDNAME trigger (`rpz-nsdname`): `name` is the name server's name
    /// in lower-case wire form; `wild` for a `*.name` trigger.
    pub(crate) fn add_nsdname_wire(&mut self, name: &[u8], wild: bool, action: Action) {
        let existing = self
            .ns_names
            .get(name)
            .map(|s| if wild { s.wild } else { s.exact })
            .filter(|&v| v != NONE);
        if let Some(existing) = existing {
            self.merge_local(existing, action);
            return;
        }
        let idx = self.action_index(action);
        self.ns_names.insert_if_absent(name, wild, idx);
        self.stats.nsdname_triggers += 1;
    }

    /// An NSIP trigger (`rpz-nsip`).
    pub fn add_nsip(&mut self, net: IpNet, action: Action) {
        if let Some(&mut existing) = self.ns_ip.get_exact_mut(net) {
            self.merge_local(existing, action);
            return;
        }
        let idx = self.action_index(action);
        self.ns_ip.insert(net, idx);
        self.stats.nsip_triggers += 1;
    }

    fn finish(mut self) -> Self {
        Arc::make_mut(&mut self.names).shrink();
        self.ns_names.shrink();
        self
    }

    /// A plain list, one domain per line (`#` and `;` comments; hosts-file
    /// lines `0.0.0.0 name` accepted): each name and everything under it
    /// gets `action`.
    pub fn from_list(name: &str, text: &str, action: &Action) -> Result<Zone, PolicyError> {
        let mut z = Zone::new(name);
        let mut w = Vec::with_capacity(256);
        for (i, line) in text.lines().enumerate() {
            let line = line.split(['#', ';']).next().unwrap_or("").trim();
            let mut parts = line.split_ascii_whitespace();
            let Some(mut dom) = parts.next() else {
                continue;
            };
            if dom.parse::<IpAddr>().is_ok() {
                match parts.next() {
                    Some(d) => dom = d,
                    None => continue,
                }
            }
            let dom = dom.strip_prefix("*.").unwrap_or(dom);
            if text_to_wire(dom, &[0], &mut w).is_none() {
                return Err(PolicyError::Syntax {
                    zone: name.to_string(),
                    line: i + 1,
                    reason: format!("bad domain {dom:?}"),
                });
            }
            z.stats.records += 1;
            z.add_wire(&w, false, action.clone());
            z.add_wire(&w, true, action.clone());
        }
        Ok(z.finish())
    }

    /// A block list: NXDOMAIN for each listed name and its subdomains.
    pub fn blocklist(name: &str, text: &str) -> Result<Zone, PolicyError> {
        Zone::from_list(name, text, &Action::NxDomain)
    }

    /// An allow list: each listed name and its subdomains pass every later
    /// zone.
    pub fn allowlist(name: &str, text: &str) -> Result<Zone, PolicyError> {
        Zone::from_list(name, text, &Action::Passthru)
    }

    /// Reads a list file (see [`Zone::from_list`]); the zone is named after
    /// the file.
    pub fn load_list(path: &Path, action: &Action) -> Result<Zone, PolicyError> {
        let text = read(path)?;
        Zone::from_list(&path.display().to_string(), &text, action)
    }

    /// Reads an RPZ zone file. `origin` is the initial `$ORIGIN` (relative
    /// names in a file without `$ORIGIN` are relative to it); the zone's
    /// apex is the owner of its SOA record.
    pub fn load_rpz(path: &Path, origin: &str) -> Result<Zone, PolicyError> {
        let text = read(path)?;
        Zone::parse_rpz(origin, &text)
    }

    /// Parses RPZ zone text; see [`crate::rpz`] for the accepted syntax.
    pub fn parse_rpz(origin: &str, text: &str) -> Result<Zone, PolicyError> {
        crate::rpz::parse(origin, text).map(Zone::finish)
    }

    /// A zone from records, e.g. from a zone transfer; `apex` is the zone's
    /// name, `soa` its SOA (TTL and data).
    pub fn from_records<'r>(
        apex: &Name,
        soa: Option<(u32, SOA)>,
        records: impl Iterator<Item = (&'r Name, u32, &'r RData)>,
    ) -> Result<Zone, PolicyError> {
        crate::rpz::from_records(apex, soa, records).map(Zone::finish)
    }

    pub(crate) fn from_parts_for_parser(name: &str) -> Self {
        Zone::new(name)
    }
    pub(crate) fn stats_mut(&mut self) -> &mut LoadStats {
        &mut self.stats
    }
    pub(crate) fn add_trigger_wire(&mut self, name: &[u8], wild: bool, action: Action) {
        self.add_wire(name, wild, action)
    }
    pub(crate) fn set_name(&mut self, name: &str) {
        self.name = Arc::from(name.trim_end_matches('.'));
    }

    /// The QNAME trigger for `name` (lower-case wire): the exact name first,
    /// then the most specific `*.` wildcard. No allocation.
    #[inline]
    pub fn check_qname(&self, name: &[u8]) -> Option<(u32, Trigger)> {
        lookup_name(
            &self.names,
            self.overlay.as_deref(),
            name,
            self.wildcards_below_names,
        )
    }

    /// This zone with `overlay` over its name triggers: for every name the
    /// overlay holds, its slot replaces the zone's (a slot of two `NONE`s
    /// removes the name's triggers; use [`Zone::nxdomain_slot`] for a
    /// block). The name table itself is shared, not copied.
    pub fn with_overlay(&self, overlay: NameTable) -> Zone {
        Zone {
            name: self.name.clone(),
            description: self.description.clone(),
            ede: self.ede,
            names: self.names.clone(),
            overlay: (!overlay.is_empty()).then(|| Arc::new(overlay)),
            client_ip: self.client_ip.clone(),
            resp_ip: self.resp_ip.clone(),
            ns_names: self.ns_names.clone(),
            ns_ip: self.ns_ip.clone(),
            soa: self.soa.clone(),
            actions: self.actions.clone(),
            stats: self.stats.clone(),
            override_action: self.override_action.clone(),
            disabled: self.disabled,
            signal_nxdomain_ra: self.signal_nxdomain_ra,
            passthru_falls_through: self.passthru_falls_through,
            wildcards_below_names: self.wildcards_below_names,
        }
    }

    /// The slot of an NXDOMAIN trigger for a name (`exact_only`: the name
    /// alone, else the name and its `*.` wildcard), for overlays.
    pub fn nxdomain_slot(exact_only: bool) -> Slot {
        Slot {
            exact: ACT_NXDOMAIN,
            wild: if exact_only { NONE } else { ACT_NXDOMAIN },
        }
    }

    /// The name triggers this zone holds for `name` (lower-case wire), the
    /// overlay's if it has the name.
    pub fn name_slot(&self, name: &[u8]) -> Option<Slot> {
        slot_of(&self.names, self.overlay.as_deref(), name)
    }

    /// The NSDNAME trigger for a name server's name (lower-case wire), by
    /// the same exact-then-wildcard rule as QNAME triggers.
    pub fn check_nsdname(&self, name: &[u8]) -> Option<(u32, Trigger)> {
        lookup_name(&self.ns_names, None, name, false).map(|(a, t)| {
            let at = match t {
                Trigger::Wildcard { at } => Some(at),
                _ => None,
            };
            (a, Trigger::NsDname { at })
        })
    }

    fn action(&self, idx: u32) -> &Action {
        if let Some(a) = &self.override_action {
            return a;
        }
        // Indexes come from `action_index` of this zone; fall back to the
        // safe reading of a trigger (NXDOMAIN) rather than panic.
        self.actions.get(idx as usize).unwrap_or(&Action::NxDomain)
    }
}

/// The trigger for `name` in a name table: the exact name first, then the
/// most specific `*.` wildcard. No allocation. `below_names`: a wildcard
/// also reaches below a name with its own exact trigger (not RFC 4592).
#[inline]
fn lookup_name(
    names: &NameTable,
    overlay: Option<&NameTable>,
    name: &[u8],
    below_names: bool,
) -> Option<(u32, Trigger)> {
    if names.is_empty() && overlay.is_none() {
        return None;
    }
    if let Some(s) = slot_of(names, overlay, name) {
        if s.exact != NONE {
            return Some((s.exact, Trigger::Qname));
        }
    }
    // Suffixes strictly below the name, longest first, down to the root.
    let mut at = 0usize;
    while let Some(&len) = name.get(at) {
        if len == 0 {
            break;
        }
        at += 1 + len as usize;
        let Some(s) = name
            .get(at..)
            .and_then(|suffix| slot_of(names, overlay, suffix))
        else {
            continue;
        };
        if s.wild != NONE {
            return Some((s.wild, Trigger::Wildcard { at: at as u8 }));
        }
        // RFC 4592: a wildcard does not reach below an existing name;
        // `*.a` does not match `x.b.a` when `b.a` has its own trigger
        // (Unbound's rpz_qname scenario checks this).
        if s.exact != NONE && !below_names {
            return None;
        }
    }
    None
}

/// A name's slot: the overlay's when it holds the name, else the table's.
#[inline]
fn slot_of(names: &NameTable, overlay: Option<&NameTable>, name: &[u8]) -> Option<Slot> {
    match overlay.and_then(|o| o.get(name)) {
        Some(s) => Some(s),
        None => names.get(name),
    }
}

fn read(path: &Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Converts a text name to lower-case wire form into `out`. A name ending in
/// `.` is absolute; otherwise `origin` (wire) is appended. Handles `\.` and
/// `\DDD` escapes. `None` for an empty label or a name over 255 bytes.
pub fn text_to_wire(text: &str, origin: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let b = text.as_bytes();
    if b == b"." {
        out.push(0);
        return Some(());
    }
    if b == b"@" {
        out.extend_from_slice(origin);
        return Some(());
    }
    let mut label_start = out.len();
    out.push(0);
    let mut i = 0;
    let mut absolute = false;
    while i < b.len() {
        let c = b[i];
        match c {
            b'.' => {
                let len = out.len() - label_start - 1;
                if len == 0 || len > 63 {
                    return None;
                }
                out[label_start] = len as u8;
                if i + 1 == b.len() {
                    absolute = true;
                }
                label_start = out.len();
                out.push(0);
            }
            b'\\' => {
                let d = b.get(i + 1..i + 4);
                if let Some(d) = d.filter(|d| d.iter().all(u8::is_ascii_digit)) {
                    let v = u32::from(d[0] - b'0') * 100
                        + u32::from(d[1] - b'0') * 10
                        + u32::from(d[2] - b'0');
                    out.push(u8::try_from(v).ok()?.to_ascii_lowercase());
                    i += 3;
                } else {
                    out.push(b.get(i + 1)?.to_ascii_lowercase());
                    i += 1;
                }
            }
            _ => out.push(c.to_ascii_lowercase()),
        }
        i += 1;
    }
    if absolute {
        // `out` ends with the placeholder pushed after the final dot: it is
        // the terminating zero.
    } else {
        let len = out.len() - label_start - 1;
        if len == 0 || len > 63 {
            return None;
        }
        out[label_start] = len as u8;
        out.extend_from_slice(origin);
    }
    (out.len() <= wire::MAX_NAME).then_some(())
}

/// An org's policy overlay.
#[derive(Debug, Clone)]
pub struct OrgPolicy {
    pub name: Arc<str>,
    /// The org's declared networks: a client address in one of them (the
    /// longest match over all orgs) belongs to this org.
    pub networks: Vec<IpNet>,
    /// Zones checked before the global ones, in order. The caller
    /// precomputes the inheritance: typically the org's allowlist and
    /// blocklist, then its supervisor's, up to the root's.
    pub zones: Vec<Arc<Zone>>,
    /// Whom the org's users ask about a block, shown on the block page
    /// (free text; each line is shown as a line).
    pub contact: Option<Arc<str>>,
}

/// The whole policy a resolver enforces. Immutable; replace it with
/// [`PolicyHandle::set`].
#[derive(Debug, Clone, Default)]
pub struct Policy {
    zones: Vec<Arc<Zone>>,
    orgs: Vec<OrgPolicy>,
    org_nets: IpTable<usize>,
    respip: bool,
    nsdname: bool,
    nsip: bool,
    client_ip: bool,
    /// Set when a [`PolicyHandle`] publishes the policy, unique in the
    /// process; 0 for a policy never published.
    generation: u64,
    /// The org of clients in no org's network and without a DoH token.
    fallback: Option<usize>,
    /// Such clients are refused (REFUSED, DoH 403) instead.
    refuse_unattributed: bool,
    /// The index of the copy of an org's policy that unattributed clients
    /// get without being credited to the org ([`Policy::org_name`] is
    /// `None` for it): see [`Policy::with_unattributed_policy_of`].
    unattributed: Option<usize>,
    org_index: std::collections::HashMap<Arc<str>, usize>,
    /// DoH path tokens by the SHA-256 of the secret.
    doh_tokens: std::collections::HashMap<[u8; 32], DohToken>,
}

/// An NSDNAME or NSIP match: the hit, the position of its zone in the
/// client's zone order (for precedence against response-IP hits), and the
/// name server it matched (an index into the servers checked).
#[derive(Debug, Clone, Copy)]
pub struct NsHit<'a> {
    pub hit: Hit<'a>,
    pub ordinal: usize,
    pub server: usize,
}

#[derive(Debug, Clone, Copy)]
struct DohToken {
    org: usize,
    expires: Option<std::time::SystemTime>,
}

/// Why a client gets no answer at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnknownToken {
    /// A DoH path token that selects no org: unknown, revoked or expired.
    #[error("unknown, revoked or expired DNS client token")]
    Token,
    /// A client address in no org's network, without a token, while the
    /// policy refuses unattributed clients.
    #[error("client address in no organisation's network; unattributed clients are refused")]
    Unattributed,
}

/// The SHA-256 of a DoH path token, the form a [`Policy`] holds tokens in
/// (the same digest the store keeps of every token secret).
pub fn token_digest(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

impl Policy {
    /// Global zones, checked in order (after an org's own zones).
    pub fn new(zones: Vec<Arc<Zone>>) -> Self {
        let mut p = Policy {
            zones,
            ..Policy::default()
        };
        p.refresh();
        p
    }

    /// Adds an org overlay. When two orgs declare the same network, the
    /// first added keeps it.
    pub fn with_org(mut self, org: OrgPolicy) -> Self {
        let idx = self.orgs.len();
        for net in &org.networks {
            self.org_nets.insert(*net, idx);
        }
        self.org_index.entry(org.name.clone()).or_insert(idx);
        self.orgs.push(org);
        self.refresh();
        self
    }

    /// Clients in no org's network and without a DoH token get the policy
    /// of the org named `name` (added with [`Policy::with_org`]; typically
    /// the root, whose list applies to everyone).
    pub fn with_fallback_org(mut self, name: &str) -> Self {
        self.fallback = self.org_index.get(name).copied();
        self
    }

    /// Clients in no org's network and without a DoH token are refused:
    /// [`Policy::select_org`] fails for them.
    pub fn with_unattributed_refused(mut self) -> Self {
        self.refuse_unattributed = true;
        self
    }

    /// Clients in no org's network and without a DoH token get the policy
    /// of the org named `name` (typically the root, whose lists bind
    /// everyone), but are not credited to it: their org is a copy of its
    /// policy without networks, whose [`Policy::org_name`] is `None`, so
    /// their query log carries no org.
    pub fn with_unattributed_policy_of(mut self, name: &str) -> Self {
        let Some(mut copy) = self
            .org_index
            .get(name)
            .and_then(|&i| self.orgs.get(i).cloned())
        else {
            return self;
        };
        copy.networks.clear();
        let idx = self.orgs.len();
        self.orgs.push(copy);
        self.fallback = Some(idx);
        self.unattributed = Some(idx);
        self.refuse_unattributed = false;
        self
    }

    /// Whether `org` (from [`Policy::select_org`]) is the unattributed
    /// clients' policy, or none.
    pub fn is_unattributed(&self, org: Option<usize>) -> bool {
        org.is_none() || org == self.unattributed
    }

    /// A DoH path token (by [`token_digest`]) that selects the org named
    /// `org` for clients outside every org's networks. A token of an org
    /// not in the policy is ignored.
    pub fn with_doh_token(
        mut self,
        org: &str,
        digest: [u8; 32],
        expires: Option<std::time::SystemTime>,
    ) -> Self {
        if let Some(&idx) = self.org_index.get(org) {
            self.doh_tokens
                .insert(digest, DohToken { org: idx, expires });
        }
        self
    }

    /// The org a DoH token selects, if the token is known and unexpired.
    pub fn doh_token_org(&self, digest: &[u8; 32]) -> Option<usize> {
        let t = self.doh_tokens.get(digest)?;
        match t.expires {
            Some(e) if e <= std::time::SystemTime::now() => None,
            _ => Some(t.org),
        }
    }

    /// The org of a query: the one whose network holds `ip` (longest
    /// prefix) or else the DoH token's or else the fallback. The source
    /// address comes first so that, inside an org's network, a token of
    /// another org cannot lift the network's policy. An invalid token is
    /// an error even inside a network: such a client is misconfigured or
    /// revoked, and is answered nothing.
    pub fn select_org(
        &self,
        ip: IpAddr,
        token: Option<&[u8; 32]>,
    ) -> Result<Option<usize>, UnknownToken> {
        let by_token = match token {
            Some(d) => Some(self.doh_token_org(d).ok_or(UnknownToken::Token)?),
            None => None,
        };
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; org
        // networks are declared as IPv4.
        let org = self
            .org_nets
            .lookup(ip.to_canonical())
            .map(|(i, _)| *i)
            .or(by_token)
            .or(self.fallback);
        if org.is_none() && self.refuse_unattributed {
            return Err(UnknownToken::Unattributed);
        }
        Ok(org)
    }

    fn refresh(&mut self) {
        let all = || {
            self.zones
                .iter()
                .chain(self.orgs.iter().flat_map(|o| o.zones.iter()))
                .filter(|z| !z.disabled)
        };
        let respip = all().any(|z| z.has_response_ip_triggers());
        let nsdname = all().any(|z| z.has_nsdname_triggers());
        let nsip = all().any(|z| z.has_nsip_triggers());
        let client_ip = all().any(|z| !z.client_ip.is_empty());
        (self.respip, self.nsdname, self.nsip, self.client_ip) = (respip, nsdname, nsip, client_ip);
    }

    /// A number that stands for "this policy, for clients of `org`", when
    /// a verdict may be remembered per cache entry under it: the verdict
    /// then depends on the query name and the answer alone. `None` when it
    /// also depends on the client's address (client-IP triggers) or on
    /// lookups beyond the answer (NSDNAME/NSIP), or for an unpublished
    /// policy. Never 0.
    #[inline]
    pub fn verdict_memo(&self, org: Option<usize>) -> Option<u64> {
        const ORG_BITS: u32 = 24;
        let org_code = org.map_or(0, |i| i as u64 + 1);
        if self.generation == 0
            || self.client_ip
            || self.has_ns_triggers()
            || org_code >> ORG_BITS != 0
        {
            return None;
        }
        Some(self.generation << ORG_BITS | org_code)
    }

    /// Whether any zone has NSDNAME or NSIP triggers: only then does the
    /// resolver look up the name servers of what it resolves.
    pub fn has_ns_triggers(&self) -> bool {
        self.nsdname || self.nsip
    }

    /// Whether any zone has NSIP triggers (name server addresses needed).
    pub fn has_nsip_triggers(&self) -> bool {
        self.nsip
    }

    pub fn zones(&self) -> &[Arc<Zone>] {
        &self.zones
    }

    /// Whether any zone has response-IP triggers (answers must be checked).
    pub fn has_response_ip_triggers(&self) -> bool {
        self.respip
    }

    /// The org whose network holds `ip` (longest prefix), else the
    /// fallback org.
    #[inline]
    pub fn org_of(&self, ip: IpAddr) -> Option<usize> {
        self.org_nets.lookup(ip).map(|(i, _)| *i).or(self.fallback)
    }

    /// The name of the org a query is credited to; `None` for no org and
    /// for unattributed clients.
    pub fn org_name(&self, org: Option<usize>) -> Option<&Arc<str>> {
        org.filter(|&i| Some(i) != self.unattributed)
            .and_then(|i| self.orgs.get(i))
            .map(|o| &o.name)
    }

    /// The org's contact for the block page ([`OrgPolicy::contact`]).
    pub fn org_contact(&self, org: Option<usize>) -> Option<&Arc<str>> {
        org.and_then(|i| self.orgs.get(i))
            .and_then(|o| o.contact.as_ref())
    }

    fn zones_for(&self, org: Option<usize>) -> impl Iterator<Item = &Zone> {
        let own = org.and_then(|i| self.orgs.get(i));
        own.into_iter()
            .flat_map(|o| o.zones.iter())
            .chain(self.zones.iter())
            .map(|z| &**z)
            .filter(|z| !z.disabled)
    }

    /// Query-time triggers: per zone in order, the client IP then the QNAME
    /// (RPZ precedence); the first zone with a match decides.
    #[inline]
    pub fn check_query(&self, org: Option<usize>, client: IpAddr, qname: &[u8]) -> Option<Hit<'_>> {
        for z in self.zones_for(org) {
            if !z.client_ip.is_empty() {
                if let Some((&a, net)) = z.client_ip.lookup(client.to_canonical()) {
                    let action = z.action(a);
                    if !(z.passthru_falls_through && action.is_passthru()) {
                        return Some(Hit {
                            zone: z,
                            action,
                            trigger: Trigger::ClientIp(net),
                        });
                    }
                }
            }
            if let Some((a, trigger)) = z.check_qname(qname) {
                let action = z.action(a);
                if z.passthru_falls_through && action.is_passthru() {
                    continue;
                }
                return Some(Hit {
                    zone: z,
                    action,
                    trigger,
                });
            }
        }
        None
    }

    /// QNAME triggers only, for the targets of a CNAME chain.
    pub fn check_name(&self, org: Option<usize>, name: &[u8]) -> Option<Hit<'_>> {
        self.zones_for(org).find_map(|z| {
            z.check_qname(name)
                .map(|(a, trigger)| Hit {
                    zone: z,
                    action: z.action(a),
                    trigger,
                })
                .filter(|h| !(z.passthru_falls_through && h.action.is_passthru()))
        })
    }

    /// Response-IP triggers over the addresses of an answer.
    pub fn check_response_ips(&self, org: Option<usize>, ips: &[IpAddr]) -> Option<Hit<'_>> {
        self.check_response_ips_ranked(org, ips).map(|(_, h)| h)
    }

    /// Whether a zone at or before position `ordinal` of the client's zone
    /// order has response-IP triggers (which would take precedence over an
    /// NS trigger of the zone at `ordinal`).
    pub fn response_ip_zone_until(&self, org: Option<usize>, ordinal: usize) -> bool {
        self.respip
            && self
                .zones_for(org)
                .take(ordinal + 1)
                .any(|z| z.has_response_ip_triggers())
    }

    /// NSDNAME and NSIP triggers over the name servers of the query name's
    /// zone and its ancestor zones (`servers`, closest zone first). Zones
    /// are checked in order and the first with a match decides; within a
    /// zone NSDNAME before NSIP (draft-vixie-dnsop-dns-rpz §5 precedence),
    /// the first server in `servers` with an NSDNAME match, and for NSIP
    /// the longest prefix over all addresses.
    pub fn check_ns<'a>(&'a self, org: Option<usize>, servers: &[NsServer]) -> Option<NsHit<'a>> {
        if !self.has_ns_triggers() || servers.is_empty() {
            return None;
        }
        for (ordinal, z) in self.zones_for(org).enumerate() {
            if !z.ns_names.is_empty() {
                for (i, s) in servers.iter().enumerate() {
                    if let Some((a, trigger)) = z.check_nsdname(&s.name) {
                        return Some(NsHit {
                            hit: Hit {
                                zone: z,
                                action: z.action(a),
                                trigger,
                            },
                            ordinal,
                            server: i,
                        });
                    }
                }
            }
            if !z.ns_ip.is_empty() {
                let best = servers
                    .iter()
                    .enumerate()
                    .flat_map(|(i, s)| s.addrs.iter().map(move |ip| (i, *ip)))
                    .filter_map(|(i, ip)| z.ns_ip.lookup(ip).map(|(a, net)| (i, *a, net)))
                    .max_by_key(|(_, _, net)| net.prefix_len());
                if let Some((i, a, net)) = best {
                    return Some(NsHit {
                        hit: Hit {
                            zone: z,
                            action: z.action(a),
                            trigger: Trigger::NsIp(net),
                        },
                        ordinal,
                        server: i,
                    });
                }
            }
        }
        None
    }

    /// Like [`Policy::check_response_ips`], with the position of the
    /// matching zone in the client's zone order.
    pub fn check_response_ips_ranked(
        &self,
        org: Option<usize>,
        ips: &[IpAddr],
    ) -> Option<(usize, Hit<'_>)> {
        if !self.respip || ips.is_empty() {
            return None;
        }
        for (ordinal, z) in self.zones_for(org).enumerate() {
            if z.resp_ip.is_empty() {
                continue;
            }
            // The longest prefix over all addresses of the answer wins.
            let best = ips
                .iter()
                .filter_map(|ip| z.resp_ip.lookup(*ip))
                .max_by_key(|(_, net)| net.prefix_len());
            if let Some((&a, net)) = best {
                if z.passthru_falls_through && z.action(a).is_passthru() {
                    continue;
                }
                return Some((
                    ordinal,
                    Hit {
                        zone: z,
                        action: z.action(a),
                        trigger: Trigger::ResponseIp(net),
                    },
                ));
            }
        }
        None
    }
}

/// A shared, atomically replaceable policy. Readers take a snapshot per
/// query (`load`, lock-free); `set` publishes a new one, and queries already
/// running finish on the old one, so a swap drops no query.
#[derive(Clone)]
pub struct PolicyHandle(Arc<ArcSwap<Policy>>);

impl PolicyHandle {
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(Self::published(policy))))
    }
    /// Replaces the policy; takes effect for the next query.
    pub fn set(&self, policy: Policy) {
        self.0.store(Arc::new(Self::published(policy)));
    }
    /// Gives the policy its generation: a fresh one per publication, so a
    /// verdict remembered under the old policy never passes for the new.
    fn published(mut policy: Policy) -> Policy {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        policy.generation = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        policy
    }
    pub fn load(&self) -> arc_swap::Guard<Arc<Policy>> {
        self.0.load()
    }
    pub fn load_full(&self) -> Arc<Policy> {
        self.0.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        text_to_wire(s, &[0], &mut v).expect("valid name");
        v
    }

    #[test]
    fn ipv4_clients_seen_through_a_dual_stack_socket_keep_their_org_and_triggers() {
        let mut zone = Zone::blocklist("c", "").expect("empty list");
        zone.add_client_ip("192.0.2.0/24".parse().expect("net"), Action::NxDomain);
        let p = Policy::new(vec![Arc::new(zone)]).with_org(OrgPolicy {
            name: "a".into(),
            networks: vec!["198.51.100.0/24".parse().expect("net")],
            zones: vec![],
            contact: None,
        });
        let mapped = |s: &str| {
            IpAddr::V6(
                s.parse::<std::net::Ipv4Addr>()
                    .expect("v4")
                    .to_ipv6_mapped(),
            )
        };
        assert_eq!(p.select_org(mapped("198.51.100.7"), None), Ok(Some(0)));
        assert!(p
            .check_query(None, mapped("192.0.2.9"), &w("x.test"))
            .is_some());
        assert!(p
            .check_query(None, mapped("203.0.113.1"), &w("x.test"))
            .is_none());
    }

    #[test]
    fn verdict_memo_is_per_publication_and_org_and_only_when_name_decides() {
        let list = || Arc::new(Zone::blocklist("b", "evil.test\n").expect("list"));
        let org = |name: &str| OrgPolicy {
            name: name.into(),
            networks: vec![],
            zones: vec![],
            contact: None,
        };
        let unpublished = Policy::new(vec![list()]);
        assert_eq!(unpublished.verdict_memo(None), None);

        let h = PolicyHandle::new(
            Policy::new(vec![list()])
                .with_org(org("a"))
                .with_org(org("b")),
        );
        let first = h.load_full();
        let (root, a, b) = (
            first.verdict_memo(None),
            first.verdict_memo(Some(0)),
            first.verdict_memo(Some(1)),
        );
        assert!(root.is_some() && a.is_some() && b.is_some());
        assert!(root != a && a != b && root != b);
        assert_ne!(root, Some(0));
        // The same content published again is another policy.
        h.set(
            Policy::new(vec![list()])
                .with_org(org("a"))
                .with_org(org("b")),
        );
        assert_ne!(h.load().verdict_memo(Some(0)), a);

        // Client-IP triggers make the verdict depend on the client.
        let mut by_client = Zone::blocklist("c", "").expect("empty list");
        by_client.add_client_ip("192.0.2.0/24".parse().expect("net"), Action::NxDomain);
        h.set(Policy::new(vec![list(), Arc::new(by_client)]));
        assert_eq!(h.load().verdict_memo(None), None);
    }

    #[test]
    fn text_to_wire_forms() {
        assert_eq!(w("Example.COM"), b"\x07example\x03com\x00");
        assert_eq!(w("example.com."), b"\x07example\x03com\x00");
        assert_eq!(w("."), b"\x00");
        let mut v = Vec::new();
        text_to_wire("a", b"\x03rpz\x00", &mut v).expect("valid");
        assert_eq!(v, b"\x01a\x03rpz\x00");
        assert!(text_to_wire("a..b", &[0], &mut v).is_none());
        text_to_wire("a\\.b", &[0], &mut v).expect("escaped dot");
        assert_eq!(v, b"\x03a.b\x00");
    }

    #[test]
    fn blocklist_blocks_name_and_subdomains_only() {
        let z = Zone::blocklist("bl", "# comment\nevil.example\n0.0.0.0 ads.example\n")
            .expect("parses");
        let p = Policy::new(vec![Arc::new(z)]);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        assert!(p.check_query(None, ip, &w("evil.example")).is_some());
        let hit = p
            .check_query(None, ip, &w("a.b.evil.example"))
            .expect("hit");
        assert_eq!(hit.rule(&w("a.b.evil.example")), "*.evil.example");
        assert!(p.check_query(None, ip, &w("ads.example")).is_some());
        assert!(p.check_query(None, ip, &w("notevil.example")).is_none());
        assert!(p.check_query(None, ip, &w("example")).is_none());
    }

    #[test]
    fn wildcards_below_names_cover_every_sub_domain_on_label_boundaries() {
        let build = |below: bool| {
            let mut z = Zone::new("intel");
            if below {
                z = z.with_wildcards_below_names();
            }
            for n in ["bad.example", "*.bad.example", "exact.cdn.bad.example"] {
                z.add_qname(n, Action::NxDomain).expect("name");
            }
            Policy::new(vec![Arc::new(z)])
        };
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let rfc = build(false);
        let intel = build(true);
        for p in [&rfc, &intel] {
            assert!(p.check_query(None, ip, &w("bad.example")).is_some());
            assert!(p.check_query(None, ip, &w("update.bad.example")).is_some());
            assert!(p
                .check_query(None, ip, &w("exact.cdn.bad.example"))
                .is_some());
            assert!(p.check_query(None, ip, &w("notbad.example")).is_none());
            assert!(p.check_query(None, ip, &w("x.notbad.example")).is_none());
            assert!(p.check_query(None, ip, &w("bad.example.other")).is_none());
        }
        // RFC 4592: the wildcard stops at the existing name...
        assert!(rfc
            .check_query(None, ip, &w("x.exact.cdn.bad.example"))
            .is_none());
        // ...the intel rule does not: bad.example covers all beneath it.
        let hit = intel
            .check_query(None, ip, &w("x.exact.cdn.bad.example"))
            .expect("hit");
        assert_eq!(hit.rule(&w("x.exact.cdn.bad.example")), "*.bad.example");
    }

    #[test]
    fn an_overlay_adds_changes_and_removes_names_and_shares_the_base() {
        let base = Arc::new(
            Zone::blocklist("intel", "gone.example\nkept.example\nnarrowed.example\n")
                .expect("parses"),
        );
        let none = Slot {
            exact: NONE,
            wild: NONE,
        };
        let mut o = NameTable::new();
        o.set(&w("gone.example"), none);
        o.set(&w("new.example"), Zone::nxdomain_slot(false));
        o.set(&w("narrowed.example"), Zone::nxdomain_slot(true));
        o.set(&w("never.example"), none);
        let z = base.with_overlay(o);
        assert!(Arc::ptr_eq(&z.names, &base.names), "the base is shared");
        let hit = |name: &str| z.check_qname(&w(name)).map(|(_, t)| t);
        assert_eq!(hit("gone.example"), None);
        assert_eq!(hit("a.gone.example"), None);
        assert_eq!(hit("kept.example"), Some(Trigger::Qname));
        assert!(matches!(
            hit("x.kept.example"),
            Some(Trigger::Wildcard { .. })
        ));
        assert_eq!(hit("new.example"), Some(Trigger::Qname));
        assert!(matches!(
            hit("a.b.new.example"),
            Some(Trigger::Wildcard { .. })
        ));
        // Exact only now: the name, not what is under it.
        assert_eq!(hit("narrowed.example"), Some(Trigger::Qname));
        assert_eq!(hit("www.narrowed.example"), None);
        assert_eq!(hit("never.example"), None);
        // The base itself is untouched.
        assert!(base.check_qname(&w("gone.example")).is_some());
        assert!(base.check_qname(&w("new.example")).is_none());
    }

    fn ns(name: &str, addrs: &[&str]) -> NsServer {
        NsServer {
            name: w(name).into(),
            addrs: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
        }
    }

    #[test]
    fn ns_triggers_follow_zone_order_then_nsdname_before_nsip() {
        let first = Zone::parse_rpz(
            "one",
            "$ORIGIN one.\n@ SOA ns hm 7 3600 600 86400 60\n\
             24.0.2.0.192.rpz-nsip CNAME .\n\
             ns.evil.example.rpz-nsdname CNAME *.\n",
        )
        .expect("zone one");
        assert_eq!(first.serial(), Some(7));
        assert_eq!(first.stats().nsdname_triggers, 1);
        assert_eq!(first.stats().nsip_triggers, 1);
        let second = Zone::parse_rpz(
            "two",
            "$ORIGIN two.\n*.bad.example.rpz-nsdname CNAME rpz-drop.\n",
        )
        .expect("zone two");
        let p = Policy::new(vec![Arc::new(first), Arc::new(second)]);
        assert!(p.has_ns_triggers() && p.has_nsip_triggers());

        // Both triggers of zone one match: NSDNAME wins within the zone.
        let servers = [ns("ns.evil.example", &["192.0.2.53"])];
        let h = p.check_ns(None, &servers).expect("hit");
        assert_eq!(h.hit.action, &Action::NoData);
        assert_eq!(h.hit.rule(&servers[0].name), "rpz-nsdname ns.evil.example");
        assert_eq!(h.ordinal, 0);

        // Zone one's NSIP beats zone two's NSDNAME wildcard.
        let servers = [ns("a.bad.example", &[]), ns("b.other", &["192.0.2.1"])];
        let h = p.check_ns(None, &servers).expect("hit");
        assert_eq!(h.hit.action, &Action::NxDomain);
        assert_eq!(h.server, 1);
        assert_eq!(h.hit.rule(&servers[1].name), "rpz-nsip 192.0.2.0/24");

        // Only zone two matches.
        let servers = [ns("a.bad.example", &["198.51.100.1"])];
        let h = p.check_ns(None, &servers).expect("hit");
        assert_eq!(h.hit.action, &Action::Drop);
        assert_eq!(h.ordinal, 1);
        assert_eq!(h.hit.rule(&servers[0].name), "rpz-nsdname *.bad.example");
        assert!(p
            .check_ns(None, &[ns("ns.fine.example", &["198.51.100.1"])])
            .is_none());
    }

    #[test]
    fn policies_without_ns_triggers_skip_ns_checks() {
        let z = Zone::blocklist("bl", "evil.example\n").expect("ok");
        let p = Policy::new(vec![Arc::new(z)]);
        assert!(!p.has_ns_triggers());
    }

    #[test]
    fn unattributed_clients_are_refused_or_given_the_root_policy_uncredited() {
        let root_list = Arc::new(Zone::blocklist("root-list", "mandated.example\n").expect("ok"));
        let base = || {
            Policy::new(vec![Arc::new(
                Zone::blocklist("intel", "evil.example\n").expect("ok"),
            )])
            .with_org(OrgPolicy {
                name: "root".into(),
                networks: vec!["192.0.2.0/24".parse().expect("net")],
                zones: vec![root_list.clone()],
                contact: None,
            })
        };
        let member: IpAddr = "192.0.2.9".parse().expect("ip");
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");

        // Refused: no org, no answer; declared clients as before.
        let p = base().with_unattributed_refused();
        assert_eq!(
            p.select_org(stranger, None),
            Err(UnknownToken::Unattributed)
        );
        let m = p.select_org(member, None).expect("member");
        assert_eq!(p.org_name(m).map(|s| &**s), Some("root"));

        // Logged: the root's policy applies, but the query is nobody's.
        let p = base().with_unattributed_policy_of("root");
        let u = p.select_org(stranger, None).expect("answered");
        assert!(p.is_unattributed(u));
        assert_eq!(p.org_name(u), None);
        assert!(p.check_query(u, stranger, &w("mandated.example")).is_some());
        assert!(p.check_query(u, stranger, &w("evil.example")).is_some());
        let m = p.select_org(member, None).expect("member");
        assert!(!p.is_unattributed(m));
        assert_eq!(p.org_name(m).map(|s| &**s), Some("root"));

        // The old behaviour, still available: credited to the fallback.
        let p = base().with_fallback_org("root");
        let f = p.select_org(stranger, None).expect("answered");
        assert_eq!(p.org_name(f).map(|s| &**s), Some("root"));
    }

    #[test]
    fn org_zones_come_first() {
        let global = Arc::new(Zone::blocklist("global", "evil.example\n").expect("ok"));
        let allow = Arc::new(Zone::allowlist("mof-allow", "evil.example\n").expect("ok"));
        let p = Policy::new(vec![global]).with_org(OrgPolicy {
            name: "mof".into(),
            networks: vec!["127.0.0.2/32".parse().expect("net")],
            zones: vec![allow],
            contact: None,
        });
        let name = w("evil.example");
        let mof = p.org_of("127.0.0.2".parse().expect("ip"));
        assert_eq!(p.org_name(mof).map(|s| &**s), Some("mof"));
        let hit = p
            .check_query(mof, "127.0.0.2".parse().expect("ip"), &name)
            .expect("hit");
        assert!(hit.action.is_passthru());
        let other = p.org_of("127.0.0.3".parse().expect("ip"));
        assert_eq!(other, None);
        let hit = p
            .check_query(other, "127.0.0.3".parse().expect("ip"), &name)
            .expect("hit");
        assert_eq!(hit.action, &Action::NxDomain);
    }
}
