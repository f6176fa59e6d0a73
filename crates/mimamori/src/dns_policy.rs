//! The policy `serve`'s resolver applies, built from the store (see the
//! `pdns` module docs for what goes into it), and kept up to date:
//!
//! - a change of the org tree, the sharing groups, the org lists, the DNS
//!   client tokens or a transferred zone rebuilds the whole policy;
//! - a change of indicators only is applied as an **overlay** on the built
//!   intel zones: the domains of the changed rows are decided again from
//!   every active row holding them (whoever owns it), and their new
//!   triggers shadow the built zones' for exactly those names (added,
//!   changed or removed), so a feed of a thousand domains reaches a policy
//!   of a million without rebuilding it. The overlay is dropped by the next
//!   full rebuild, which comes when it grows past [`PATCH_MAX_NAMES`], when
//!   a change finds the base older than [`BASE_MAX_AGE`], or when an
//!   indicator in force expires by time alone (its `valid_until`). Nothing
//!   changed and nothing expired: no rebuild, however old the base.

use mimamori_dns::table::NameTable;
use mimamori_dns::{Action, OrgPolicy, Policy, Zone};
use mimamori_intel::{IndicatorKind, Tlp};
use mimamori_store::{ActiveIndicator, DnsClientToken, DnsListItem, DnsListKind, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the resolver does with a client whose address is in no org's
/// declared network and that presents no DoH token (`[pdns]
/// unattributed`). Such a query is never credited to an org.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unattributed {
    /// Answer REFUSED (DoH: 403), resolve nothing. The default: a resolver
    /// serves the member orgs it knows, not whoever reaches it.
    #[default]
    Refuse,
    /// Answer with the root's policy (its lists bind everyone, plus the
    /// intel for everyone and the configured zones) and log the queries as
    /// unattributed telemetry: in `serve`'s log, in no org's events, so no
    /// org's detection or alerts see them.
    Log,
}

impl std::str::FromStr for Unattributed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "refuse" => Ok(Unattributed::Refuse),
            "log" => Ok(Unattributed::Log),
            other => Err(format!("{other:?} is not refuse or log")),
        }
    }
}

/// Names an overlay may hold before a full rebuild is cheaper (each patch
/// rebuilds the overlay tables, checking every name against every org's
/// base zone).
pub const PATCH_MAX_NAMES: usize = 50_000;
/// Age after which the base is rebuilt, changes or not.
pub const BASE_MAX_AGE: Duration = mimamori_pipeline::intel::BASE_MAX_AGE;

/// The EDE code on answers blocked by intel or by an ancestor org's block
/// list: 15 Blocked (RFC 8914).
const EDE_BLOCKED: u16 = 15;
/// The EDE code on answers blocked by the client's own org's list: 17
/// Filtered (the org asked for it).
const EDE_FILTERED: u16 = 17;

/// One org's list from the store, as zones.
struct OrgLists {
    /// The list with its allows as PASSTHRU: checked for the org itself
    /// (an allow exempts from everything after it) and, for the allows, for
    /// the orgs beneath it.
    own: Arc<Zone>,
    /// The same triggers, checked first for the orgs beneath it: a block
    /// there is binding, and an allow only lifts this org's own blocks.
    mandate: Option<Arc<Zone>>,
    has_allow: bool,
}

/// `block`: the action of the lists' blocks (NXDOMAIN, or the sinkhole).
fn org_lists(
    orgs: &[mimamori_core::Org],
    items: &[DnsListItem],
    block: &Action,
) -> HashMap<String, OrgLists> {
    let by_id: HashMap<&str, &mimamori_core::Org> =
        orgs.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut by_org: HashMap<&str, Vec<&DnsListItem>> = HashMap::new();
    for it in items {
        by_org.entry(it.org_id.as_str()).or_default().push(it);
    }
    let mut out = HashMap::new();
    for (org_id, items) in by_org {
        let Some(org) = by_id.get(org_id) else {
            continue;
        };
        let name = format!("dns:{}", org.slug);
        let what = format!("The DNS block list of {}", org.name);
        let mut own = Zone::new(&name)
            .with_ede(EDE_FILTERED)
            .with_description(&what);
        let mut mandate = Zone::new(&name)
            .with_ede(EDE_BLOCKED)
            .with_description(&format!("{what}, binding on the organisations beneath it"))
            .with_passthru_falling_through();
        let (mut has_allow, mut has_block) = (false, false);
        for it in items {
            let action = match it.kind {
                DnsListKind::Allow => {
                    has_allow = true;
                    Action::Passthru
                }
                DnsListKind::Block => {
                    has_block = true;
                    block.clone()
                }
            };
            // The store validated the name; one that still makes no DNS
            // name is skipped rather than failing the whole policy.
            for z in [&mut own, &mut mandate] {
                let _ = z.add_qname(&it.domain, action.clone());
                let _ = z.add_qname(&format!("*.{}", it.domain), action.clone());
            }
        }
        out.insert(
            org_id.to_string(),
            OrgLists {
                own: Arc::new(own),
                mandate: has_block.then(|| Arc::new(mandate)),
                has_allow,
            },
        );
    }
    out
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The intel part of the policy: the zone for every org and one zone per
/// org for what protects only it (and its sub-tree's, and AMBER shares).
#[derive(Clone)]
struct IntelZones {
    global: Arc<Zone>,
    per_org: HashMap<String, Arc<Zone>>,
}

/// An intel zone: NXDOMAIN triggers only, so a sinkhole is an override of
/// the whole zone (one action, not one per name, and the overlays' NXDOMAIN
/// slots get it too).
fn intel_zone(name: &str, shared_with: &str, sinkhole: Option<&Action>) -> Zone {
    let z = Zone::new(name)
        .with_wildcards_below_names()
        .with_ede(EDE_BLOCKED)
        .with_description(&format!(
            "Threat intelligence: domains reported as malicious, shared with {shared_with}"
        ));
    match sinkhole {
        Some(a) => z.with_action_override(a.clone()),
        None => z,
    }
}

fn org_intel_zone(o: &mimamori_core::Org, sinkhole: Option<&Action>) -> Zone {
    intel_zone(&format!("intel:{}", o.slug), &o.name, sinkhole)
}

const EVERYONE: &str = "every member organisation";

/// A domain indicator's name and whether it is exact (no sub-domains).
fn domain(a: &ActiveIndicator) -> Option<(&str, bool)> {
    match a.indicator.kind {
        IndicatorKind::Domain { exact } => Some((a.indicator.value.as_str(), exact)),
        _ => None,
    }
}

/// Whether an indicator is for everyone: CLEAR/GREEN, or the root's own.
fn for_everyone(a: &ActiveIndicator, root_path: &str) -> bool {
    a.indicator.tlp <= Tlp::Green || a.owner_path == root_path
}

fn intel_zones(
    indicators: &[ActiveIndicator],
    orgs: &[mimamori_core::Org],
    root_path: &str,
    sinkhole: Option<&Action>,
) -> IntelZones {
    let add = |zone: &mut Zone, name: &str, exact: bool| {
        // A name that does not make a DNS name is skipped, not fatal.
        let _ = zone.add_qname(name, Action::NxDomain);
        if !exact {
            let _ = zone.add_qname(&format!("*.{name}"), Action::NxDomain);
        }
    };
    let mut global = intel_zone("intel", EVERYONE, sinkhole);
    let mut per_org: HashMap<String, Zone> = HashMap::new();
    for a in indicators {
        let Some((name, exact)) = domain(a) else {
            continue;
        };
        if for_everyone(a, root_path) {
            add(&mut global, name, exact);
            continue;
        }
        for o in orgs {
            if a.protects(o.id.as_str(), o.path.as_str()) {
                let z = per_org
                    .entry(o.id.to_string())
                    .or_insert_with(|| org_intel_zone(o, sinkhole));
                add(z, name, exact);
            }
        }
    }
    IntelZones {
        global: Arc::new(global),
        per_org: per_org.into_iter().map(|(k, z)| (k, Arc::new(z))).collect(),
    }
}

/// The policy: the intel as described in the module docs, each org's own
/// lists down the tree, the DoH client tokens, then the file zones.
///
/// For a client of org O whose ancestors are R (the root) … P (its
/// parent), the zones are checked in this order, the first match deciding:
///
/// 1. the lists of R … P, top-down, as mandates: their blocks apply to O
///    and nothing at O's level lifts them (an ancestor's allow only lifts
///    that ancestor's own, wider block);
/// 2. O's own list: an allow exempts from everything below, a block
///    blocks (within the list the more specific entry wins);
/// 3. the allows of P … R, nearest first: exempt from intel and the file
///    zones;
/// 4. the intel shared with O, then the global zones: the configured files
///    (allowlists, RPZ, blocklists) and the intel for everyone.
///
/// Clients in no org's network and without a DoH token are refused, or
/// get the root's policy without being credited to the root (see
/// [`Unattributed`]).
fn assemble(
    file_zones: &[Arc<Zone>],
    intel: &IntelZones,
    orgs: &[mimamori_core::Org],
    lists: &HashMap<String, OrgLists>,
    tokens: &[DnsClientToken],
    unattributed: Unattributed,
) -> Policy {
    let root = orgs.iter().find(|o| o.parent_id.is_none());
    let mut zones: Vec<Arc<Zone>> = file_zones.to_vec();
    zones.push(intel.global.clone());
    let mut policy = Policy::new(zones);
    let by_id: HashMap<&str, &mimamori_core::Org> =
        orgs.iter().map(|o| (o.id.as_str(), o)).collect();
    for o in orgs {
        // The path is the ids from the root down to the org itself.
        let chain: Vec<&str> = o
            .path
            .as_str()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let ancestors = &chain[..chain.len().saturating_sub(1)];
        let mut zones: Vec<Arc<Zone>> = vec![];
        for a in ancestors {
            if let Some(m) = lists.get(*a).and_then(|l| l.mandate.clone()) {
                zones.push(m);
            }
        }
        if let Some(l) = lists.get(o.id.as_str()) {
            zones.push(l.own.clone());
        }
        for a in ancestors.iter().rev() {
            if let Some(l) = lists.get(*a).filter(|l| l.has_allow) {
                zones.push(l.own.clone());
            }
        }
        zones.extend(intel.per_org.get(o.id.as_str()).cloned());
        let contact = chain
            .iter()
            .rev()
            .filter_map(|id| by_id.get(id))
            .find(|x| !x.contacts.is_empty())
            .map(|x| contact_text(x));
        policy = policy.with_org(OrgPolicy {
            // The org id: the query log maps entries back to orgs by it.
            name: Arc::from(o.id.as_str()),
            networks: o.networks.clone(),
            zones,
            contact,
        });
    }
    policy = match (unattributed, root) {
        (Unattributed::Log, Some(r)) => policy.with_unattributed_policy_of(r.id.as_str()),
        // No org tree yet: the global zones, credited to nobody.
        (Unattributed::Log, None) => policy,
        (Unattributed::Refuse, _) => policy.with_unattributed_refused(),
    };
    for t in tokens {
        let Some(digest) = hex32(&t.secret_hash) else {
            continue;
        };
        let expires = t.expires_at.and_then(|ms| {
            std::time::UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(ms).ok()?))
        });
        policy = policy.with_doh_token(&t.org_id, digest, expires);
    }
    policy
}

/// The block page's contact for an org's users: the org's name and its
/// help desk contacts (role containing "helpdesk", "help desk" or
/// "support"), else its first three contacts, one a line. An org's
/// contacts are also whom the SOC calls at 3 a.m.; a help desk entry keeps
/// those numbers off the page its users see. `assemble` takes the nearest
/// org up the tree that lists any, so a member without contacts of its own
/// shows its supervisor's (or the central SOC's).
fn contact_text(o: &mimamori_core::Org) -> Arc<str> {
    let for_users = |c: &&mimamori_core::org::Contact| {
        c.role.as_deref().is_some_and(|r| {
            let r = r.to_lowercase();
            ["helpdesk", "help desk", "support"]
                .iter()
                .any(|k| r.contains(k))
        })
    };
    let helpdesk: Vec<_> = o.contacts.iter().filter(for_users).take(3).collect();
    let shown = if helpdesk.is_empty() {
        o.contacts.iter().take(3).collect()
    } else {
        helpdesk
    };
    let mut lines = vec![o.name.clone()];
    for c in shown {
        let mut line = c.name.clone();
        if let Some(role) = &c.role {
            line.push_str(&format!(" ({role})"));
        }
        let reach: Vec<&str> = [c.email.as_deref(), c.phone.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !reach.is_empty() {
            line.push_str(": ");
            line.push_str(&reach.join(", "));
        }
        lines.push(line);
    }
    Arc::from(lines.join("\n"))
}

fn root_path(orgs: &[mimamori_core::Org]) -> String {
    orgs.iter()
        .find(|o| o.parent_id.is_none())
        .map(|o| o.path.as_str().to_string())
        .unwrap_or_default()
}

/// What the watcher compares to notice a change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    intel: mimamori_pipeline::intel::SnapshotVersion,
    dns: mimamori_store::DnsPolicyVersion,
}

impl Version {
    pub async fn of(store: &Store) -> anyhow::Result<Version> {
        Ok(Version {
            intel: mimamori_pipeline::intel::SnapshotVersion::of(store).await?,
            dns: store.dns_policy_version().await?,
        })
    }

    /// Whether going from `self` to `now` changed indicators only.
    fn only_indicators_changed(&self, now: &Version) -> bool {
        let mut same = now.clone();
        same.intel.indicators = self.intel.indicators;
        same == *self && now.intel.indicators.0 >= self.intel.indicators.0
    }
}

/// A domain decided again for an overlay: whether it is blocked for
/// everyone, and for which orgs by their own zones (`true`: the name
/// alone, no sub-domains).
#[derive(Debug, Clone, Default)]
struct Decision {
    global: Option<bool>,
    orgs: HashMap<String, bool>,
}

fn merge_exact(slot: &mut Option<bool>, exact: bool) {
    // One row covering sub-domains makes the name cover them.
    *slot = Some(slot.unwrap_or(true) && exact);
}

/// The policy in force and what it was built from, for patching.
pub struct PolicyState {
    files: Vec<Arc<Zone>>,
    orgs: Vec<mimamori_core::Org>,
    lists: HashMap<String, OrgLists>,
    tokens: Vec<DnsClientToken>,
    root_path: String,
    /// The answer to intel and org-list blocks when not NXDOMAIN.
    sinkhole: Option<Action>,
    base: IntelZones,
    base_built: Instant,
    /// Every name decided again since the base was built (wire form).
    overlay: HashMap<Vec<u8>, Decision>,
    /// What the policy reflects.
    pub version: Version,
    unattributed: Unattributed,
    /// The first time an indicator in force stops by time alone (its
    /// `valid_until`), when the policy must be rebuilt although the store
    /// did not change.
    next_expiry: Option<time::OffsetDateTime>,
}

/// The earliest `valid_until` of `rows`, and `also`.
fn first_expiry<'a>(
    rows: impl IntoIterator<Item = &'a ActiveIndicator>,
    also: Option<time::OffsetDateTime>,
) -> Option<time::OffsetDateTime> {
    rows.into_iter()
        .filter_map(|a| a.indicator.valid_until)
        .chain(also)
        .min()
}

/// How the policy was brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing changed.
    Unchanged,
    /// Indicator changes applied as an overlay of this many names.
    Patched(usize),
    /// Rebuilt from the store.
    Rebuilt,
}

impl PolicyState {
    /// Builds the whole policy from the store. `sinkhole`: the answer to
    /// what the intel and the orgs' lists block, instead of NXDOMAIN.
    pub async fn load(
        store: &Store,
        files: &[Arc<Zone>],
        sinkhole: Option<Action>,
        unattributed: Unattributed,
    ) -> anyhow::Result<PolicyState> {
        let version = Version::of(store).await?;
        let indicators = store.intel_active().await?;
        let orgs = match store.root_org().await? {
            Some(root) => {
                store
                    .org_all(&mimamori_core::Scope::Subtree(root.path.clone()))
                    .await?
            }
            None => vec![],
        };
        let items = store.dns_policy_all().await?;
        let tokens = store.dns_client_tokens().await?;
        let files = files.to_vec();
        Ok(tokio::task::spawn_blocking(move || {
            let next_expiry = first_expiry(&indicators, None);
            let root_path = root_path(&orgs);
            let base = intel_zones(&indicators, &orgs, &root_path, sinkhole.as_ref());
            let block = sinkhole.clone().unwrap_or(Action::NxDomain);
            let lists = org_lists(&orgs, &items, &block);
            PolicyState {
                files,
                orgs,
                lists,
                tokens,
                root_path,
                sinkhole,
                base,
                base_built: Instant::now(),
                overlay: HashMap::new(),
                version,
                unattributed,
                next_expiry,
            }
        })
        .await?)
    }

    /// The policy to serve.
    pub fn policy(&self) -> Policy {
        assemble(
            &self.files,
            &self.base,
            &self.orgs,
            &self.lists,
            &self.tokens,
            self.unattributed,
        )
    }

    /// Brings the policy up to the store's `now`: an overlay when only
    /// indicators changed (and the overlay stays small and the base young),
    /// else a full rebuild. `files_changed`: a transferred zone changed.
    pub async fn refresh(
        &mut self,
        store: &Store,
        files: &[Arc<Zone>],
        now: Version,
        files_changed: bool,
    ) -> anyhow::Result<(Refresh, Option<Policy>)> {
        let young = self.base_built.elapsed() < BASE_MAX_AGE;
        // Nothing changed in the store and nothing expired by time: the
        // policy in force is the one a rebuild would make, whatever its age.
        let expired = self
            .next_expiry
            .is_some_and(|e| e <= time::OffsetDateTime::now_utc());
        if now == self.version && !files_changed && !expired {
            return Ok((Refresh::Unchanged, None));
        }
        // An expiry needs the full rebuild: the overlay decides only the
        // names of changed rows.
        if !files_changed && !expired && young && self.version.only_indicators_changed(&now) {
            if let Some(policy) = self.patch(store, now.clone()).await? {
                return Ok((Refresh::Patched(self.overlay.len()), Some(policy)));
            }
        }
        *self = PolicyState::load(store, files, self.sinkhole.clone(), self.unattributed).await?;
        Ok((Refresh::Rebuilt, Some(self.policy())))
    }

    /// The overlay for the indicator rows changed since the last version;
    /// `None` when too much changed for an overlay.
    async fn patch(&mut self, store: &Store, now: Version) -> anyhow::Result<Option<Policy>> {
        // Stamps strictly increase in commit order (store migration 0007).
        let since = self.version.intel.indicators.1 + 1;
        let Some(changes) = store.intel_changed_since(since, PATCH_MAX_NAMES).await? else {
            return Ok(None);
        };
        let mut names: Vec<String> = changes
            .changed_values
            .into_iter()
            .filter(|(k, _)| k == "domain")
            .map(|(_, v)| v)
            .collect();
        names.sort_unstable();
        names.dedup();
        if self.overlay.len() + names.len() > PATCH_MAX_NAMES {
            return Ok(None);
        }
        let rows = store.intel_active_with_values("domain", &names).await?;
        self.next_expiry = first_expiry(&rows, self.next_expiry);
        let mut decided: HashMap<&str, Decision> = names
            .iter()
            .map(|n| (n.as_str(), Decision::default()))
            .collect();
        for a in &rows {
            let Some((name, exact)) = domain(a) else {
                continue;
            };
            let Some(d) = decided.get_mut(name) else {
                continue;
            };
            if for_everyone(a, &self.root_path) {
                merge_exact(&mut d.global, exact);
                continue;
            }
            for o in &self.orgs {
                if a.protects(o.id.as_str(), o.path.as_str()) {
                    let mut slot = d.orgs.get(o.id.as_str()).copied();
                    merge_exact(&mut slot, exact);
                    if let Some(e) = slot {
                        d.orgs.insert(o.id.to_string(), e);
                    }
                }
            }
        }
        let mut wire = Vec::with_capacity(256);
        for (name, d) in decided {
            // A name that makes no DNS name was skipped by the base too.
            if mimamori_dns::policy::text_to_wire(name, &[0], &mut wire).is_some() {
                self.overlay.insert(wire.clone(), d);
            }
        }
        let intel = self.overlaid();
        self.version = now;
        Ok(Some(assemble(
            &self.files,
            &intel,
            &self.orgs,
            &self.lists,
            &self.tokens,
            self.unattributed,
        )))
    }

    /// The base intel zones with the overlay over them. Every org whose
    /// base zone holds an overlay name, or that an overlay name now
    /// protects, gets an entry for it; other orgs' zones are shared as
    /// they are.
    fn overlaid(&self) -> IntelZones {
        let empty = mimamori_dns::table::Slot {
            exact: mimamori_dns::table::NONE,
            wild: mimamori_dns::table::NONE,
        };
        let mut global = NameTable::new();
        let mut per_org: HashMap<&str, NameTable> = HashMap::new();
        for (name, d) in &self.overlay {
            global.set(name, d.global.map(Zone::nxdomain_slot).unwrap_or(empty));
            for (org, exact) in &d.orgs {
                per_org
                    .entry(org.as_str())
                    .or_default()
                    .set(name, Zone::nxdomain_slot(*exact));
            }
            for (org, zone) in &self.base.per_org {
                if !d.orgs.contains_key(org) && zone.name_slot(name).is_some() {
                    per_org.entry(org.as_str()).or_default().set(name, empty);
                }
            }
        }
        let mut out = IntelZones {
            global: Arc::new(self.base.global.with_overlay(global)),
            per_org: self.base.per_org.clone(),
        };
        for (org, table) in per_org {
            let base = match self.base.per_org.get(org) {
                Some(z) => z.clone(),
                None => {
                    let sinkhole = self.sinkhole.as_ref();
                    Arc::new(match self.orgs.iter().find(|o| o.id.as_str() == org) {
                        Some(o) => org_intel_zone(o, sinkhole),
                        None => intel_zone(&format!("intel:{org}"), org, sinkhole),
                    })
                }
            };
            out.per_org
                .insert(org.to_string(), Arc::new(base.with_overlay(table)));
        }
        out
    }
}
