//! The policy `serve`'s resolver applies, built from the store and from
//! the detection matcher's intel views (see the `pdns` module docs for what
//! goes into it), and kept up to date:
//!
//! - the intel zones are built from the matcher's current
//!   [`IntelView`]: the same rows, loaded once from the store and indexed
//!   once for detection, decide what the resolver blocks (one zone for
//!   everyone, one per owner org for what protects its sub-tree, one per
//!   org for AMBER rows shared with it). Nothing is read from the store
//!   for intel here;
//! - a view over the same base (the matcher patched the rows changed since
//!   it) is applied as an **overlay** on the built intel zones: the domains
//!   of the changed rows are decided again from the view, and their new
//!   triggers shadow the built zones' for exactly those names (added,
//!   changed or removed), so a feed of a thousand domains reaches a policy
//!   of a million without rebuilding it;
//! - a new base (the matcher rebuilt it), changed shares, an overlay past
//!   [`PATCH_MAX_NAMES`] or an indicator expiring by time alone (its
//!   `valid_until`) rebuild the intel zones from the view, in memory;
//! - a change of the org tree, the org lists, the DNS client tokens or a
//!   transferred zone re-reads those (small) and re-assembles the policy
//!   around the intel zones it has: the zones are keyed by owner and by
//!   share, not by the tree, so an org added, moved or given new networks
//!   needs no intel rebuild.
//!
//! Nothing changed and nothing expired: no rebuild, however old the base.

use mimamori_dns::table::NameTable;
use mimamori_dns::{Action, OrgPolicy, Policy, Zone};
use mimamori_pipeline::intel::{IntelView, Reach};
use mimamori_store::{DnsClientToken, DnsListItem, DnsListKind, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
/// rebuilds the overlay tables, checking every name against every base
/// zone).
pub const PATCH_MAX_NAMES: usize = 50_000;

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

/// The intel part of the policy, keyed so that the org tree does not
/// enter it: the zone for every org, one per owner org for the rows that
/// protect its sub-tree, and one per org for the AMBER rows shared with it.
#[derive(Clone)]
struct IntelZones {
    global: Arc<Zone>,
    subtree: HashMap<String, Arc<Zone>>,
    shared: HashMap<String, Arc<Zone>>,
}

/// Which intel zone a row goes into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ZoneKey {
    Global,
    Subtree(String),
    Shared(String),
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

const EVERYONE: &str = "every member organisation";

/// The empty zone for `key`, named and described after its org.
fn keyed_zone(
    key: &ZoneKey,
    orgs: &HashMap<&str, &mimamori_core::Org>,
    sinkhole: Option<&Action>,
) -> Zone {
    let org = |id: &str| {
        orgs.get(id).map_or((id.to_string(), id.to_string()), |o| {
            (o.slug.to_string(), o.name.clone())
        })
    };
    match key {
        ZoneKey::Global => intel_zone("intel", EVERYONE, sinkhole),
        ZoneKey::Subtree(id) => {
            let (slug, name) = org(id);
            intel_zone(
                &format!("intel:{slug}"),
                &format!("{name} and the organisations beneath it"),
                sinkhole,
            )
        }
        ZoneKey::Shared(id) => {
            let (slug, name) = org(id);
            intel_zone(&format!("intel-shared:{slug}"), &name, sinkhole)
        }
    }
}

/// The zones a row reaching `reach` goes into.
fn zone_keys(reach: Reach<'_>, mut f: impl FnMut(ZoneKey)) {
    match reach {
        Reach::Everyone => f(ZoneKey::Global),
        Reach::Subtree(owner) => f(ZoneKey::Subtree(owner.to_string())),
        Reach::Shared(orgs) => orgs.iter().for_each(|o| f(ZoneKey::Shared(o.clone()))),
    }
}

fn by_id(orgs: &[mimamori_core::Org]) -> HashMap<&str, &mimamori_core::Org> {
    orgs.iter().map(|o| (o.id.as_str(), o)).collect()
}

/// The intel zones of every domain row in force in `view`.
fn intel_zones(
    view: &IntelView,
    orgs: &[mimamori_core::Org],
    sinkhole: Option<&Action>,
) -> IntelZones {
    let orgs = by_id(orgs);
    let mut global = keyed_zone(&ZoneKey::Global, &orgs, sinkhole);
    let mut others: HashMap<ZoneKey, Zone> = HashMap::new();
    view.for_each_domain(mimamori_core::now_millis(), |name, exact, reach| {
        let add = |zone: &mut Zone| {
            // A name that does not make a DNS name is skipped, not fatal.
            let _ = zone.add_qname(name, Action::NxDomain);
            if !exact {
                let _ = zone.add_qname(&format!("*.{name}"), Action::NxDomain);
            }
        };
        zone_keys(reach, |key| match key {
            ZoneKey::Global => add(&mut global),
            key => add(others
                .entry(key.clone())
                .or_insert_with(|| keyed_zone(&key, &orgs, sinkhole))),
        });
    });
    let mut out = IntelZones {
        global: Arc::new(global),
        subtree: HashMap::new(),
        shared: HashMap::new(),
    };
    for (key, zone) in others {
        match key {
            ZoneKey::Subtree(id) => out.subtree.insert(id, Arc::new(zone)),
            ZoneKey::Shared(id) => out.shared.insert(id, Arc::new(zone)),
            ZoneKey::Global => None,
        };
    }
    out
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
        // The intel protecting O: its own and its ancestors' (nearest
        // first; the root's is in the global zone), then what was shared
        // with it.
        for id in chain.iter().rev() {
            zones.extend(intel.subtree.get(*id).cloned());
        }
        zones.extend(intel.shared.get(o.id.as_str()).cloned());
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

/// What the watcher compares to notice a change outside the intel (whose
/// changes arrive as new views).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    orgs: (i64, i64),
    dns: mimamori_store::DnsPolicyVersion,
}

impl Version {
    pub async fn of(store: &Store) -> anyhow::Result<Version> {
        Ok(Version {
            orgs: store.org_version().await?,
            dns: store.dns_policy_version().await?,
        })
    }
}

/// The policy in force and what it was built from, for patching.
pub struct PolicyState {
    files: Vec<Arc<Zone>>,
    orgs: Vec<mimamori_core::Org>,
    lists: HashMap<String, OrgLists>,
    tokens: Vec<DnsClientToken>,
    /// The answer to intel and org-list blocks when not NXDOMAIN.
    sinkhole: Option<Action>,
    /// The intel zones built in full, and the view they were built from.
    base: IntelZones,
    base_view: Arc<IntelView>,
    /// The intel zones in force: `base` with the overlay of `view`.
    intel: IntelZones,
    /// The view the policy in force reflects.
    view: Arc<IntelView>,
    /// Names in the overlay over `base`.
    overlay_names: usize,
    /// What the policy reflects besides the intel.
    pub version: Version,
    unattributed: Unattributed,
    /// The first time a row in force stops by time alone (its
    /// `valid_until`, ms), when the intel zones must be rebuilt although
    /// nothing changed; `base_expiry` is that of `base_view`, so that a
    /// patch looks only at its own rows.
    next_expiry: Option<i64>,
    base_expiry: Option<i64>,
}

/// How the policy was brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing changed.
    Unchanged,
    /// Indicator changes applied as an overlay of this many names.
    Patched(usize),
    /// The org tree, lists, client tokens or zones changed: the policy was
    /// assembled again around the intel zones it had.
    Reassembled,
    /// The intel zones were rebuilt from the matcher's view.
    Rebuilt,
}

/// The org tree, lists and client tokens from the store.
async fn tree_and_lists(
    store: &Store,
    sinkhole: Option<&Action>,
) -> anyhow::Result<(
    Vec<mimamori_core::Org>,
    HashMap<String, OrgLists>,
    Vec<DnsClientToken>,
)> {
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
    let block = sinkhole.cloned().unwrap_or(Action::NxDomain);
    let lists = org_lists(&orgs, &items, &block);
    Ok((orgs, lists, tokens))
}

impl PolicyState {
    /// Builds the whole policy: the org tree, lists and client tokens from
    /// the store, the intel zones from `view` (the detection matcher's).
    /// `sinkhole`: the answer to what the intel and the orgs' lists block,
    /// instead of NXDOMAIN.
    pub async fn load(
        store: &Store,
        files: &[Arc<Zone>],
        view: Arc<IntelView>,
        sinkhole: Option<Action>,
        unattributed: Unattributed,
    ) -> anyhow::Result<PolicyState> {
        let version = Version::of(store).await?;
        let (orgs, lists, tokens) = tree_and_lists(store, sinkhole.as_ref()).await?;
        let files = files.to_vec();
        Ok(tokio::task::spawn_blocking(move || {
            let base = intel_zones(&view, &orgs, sinkhole.as_ref());
            let expiry = view.next_expiry(mimamori_core::now_millis(), false);
            PolicyState {
                files,
                orgs,
                lists,
                tokens,
                sinkhole,
                intel: base.clone(),
                base,
                next_expiry: expiry,
                base_expiry: expiry,
                base_view: view.clone(),
                view,
                overlay_names: 0,
                version,
                unattributed,
            }
        })
        .await?)
    }

    /// The policy to serve.
    pub fn policy(&self) -> Policy {
        assemble(
            &self.files,
            &self.intel,
            &self.orgs,
            &self.lists,
            &self.tokens,
            self.unattributed,
        )
    }

    /// Brings the policy up to `view` (the matcher's current one) and the
    /// store's `now`. `files_changed`: a transferred or file zone changed.
    pub async fn refresh(
        &mut self,
        store: &Store,
        files: &[Arc<Zone>],
        view: Arc<IntelView>,
        now: Version,
        files_changed: bool,
    ) -> anyhow::Result<(Refresh, Option<Policy>)> {
        let now_ms = mimamori_core::now_millis();
        let expired = self.next_expiry.is_some_and(|e| e <= now_ms);
        let intel_changed = !Arc::ptr_eq(&view, &self.view) || expired;
        let others_changed = now != self.version || files_changed;
        // Nothing changed in the store and nothing expired by time: the
        // policy in force is the one a rebuild would make, whatever its age.
        if !intel_changed && !others_changed {
            return Ok((Refresh::Unchanged, None));
        }
        if others_changed {
            if now != self.version {
                let (orgs, lists, tokens) = tree_and_lists(store, self.sinkhole.as_ref()).await?;
                (self.orgs, self.lists, self.tokens) = (orgs, lists, tokens);
                self.version = now;
            }
            self.files = files.to_vec();
        }
        let mut how = Refresh::Reassembled;
        // A view re-scoped for an org-tree change, with the same rows and
        // shares: the intel zones are the same.
        let rescoped_only = !expired
            && view.version.indicators == self.view.version.indicators
            && view.same_base(&self.view)
            && view.same_shares(&self.view);
        if intel_changed && rescoped_only {
            self.view = view;
        } else if intel_changed {
            let changed = view.changed_domains();
            let overlay = !expired
                && view.same_base(&self.base_view)
                && view.same_shares(&self.base_view)
                && changed.len() <= PATCH_MAX_NAMES;
            if overlay {
                self.intel = self.overlaid(&view, &changed);
                self.overlay_names = changed.len();
                self.next_expiry = self
                    .base_expiry
                    .into_iter()
                    .chain(view.next_expiry(now_ms, true))
                    .min();
                how = Refresh::Patched(self.overlay_names);
            } else {
                let (v, orgs, sinkhole) = (view.clone(), self.orgs.clone(), self.sinkhole.clone());
                let base =
                    tokio::task::spawn_blocking(move || intel_zones(&v, &orgs, sinkhole.as_ref()))
                        .await?;
                self.intel = base.clone();
                self.base = base;
                self.base_view = view.clone();
                self.overlay_names = 0;
                self.base_expiry = view.next_expiry(now_ms, false);
                self.next_expiry = self.base_expiry;
                how = Refresh::Rebuilt;
            }
            self.view = view;
        }
        Ok((how, Some(self.policy())))
    }

    /// The base intel zones with the overlay of `view` over them: each
    /// domain changed since the base was built (`changed`) is decided
    /// again from the view. Every zone that holds such a name in its base, or that the
    /// name now goes into, gets an entry for it; other zones are shared
    /// as they are.
    fn overlaid(&self, view: &IntelView, changed: &[&str]) -> IntelZones {
        let empty = mimamori_dns::table::Slot {
            exact: mimamori_dns::table::NONE,
            wild: mimamori_dns::table::NONE,
        };
        let now_ms = mimamori_core::now_millis();
        let mut tables: HashMap<ZoneKey, NameTable> = HashMap::new();
        let mut wire = Vec::with_capacity(256);
        for &name in changed {
            // A name that makes no DNS name was skipped by the base too.
            if mimamori_dns::policy::text_to_wire(name, &[0], &mut wire).is_none() {
                continue;
            }
            // `true`: the name alone; one row covering sub-domains makes
            // the name cover them.
            let mut decided: HashMap<ZoneKey, bool> = HashMap::new();
            view.domain_rows(name, now_ms, |exact, reach| {
                zone_keys(reach, |key| {
                    let slot = decided.entry(key).or_insert(true);
                    *slot = *slot && exact;
                })
            });
            tables.entry(ZoneKey::Global).or_default().set(&wire, empty);
            let subtree = ZoneKey::Subtree as fn(String) -> ZoneKey;
            for (key, zones) in [
                (subtree, &self.base.subtree),
                (ZoneKey::Shared, &self.base.shared),
            ] {
                for (id, zone) in zones {
                    if zone.name_slot(&wire).is_some() {
                        tables.entry(key(id.clone())).or_default().set(&wire, empty);
                    }
                }
            }
            for (key, exact) in decided {
                tables
                    .entry(key)
                    .or_default()
                    .set(&wire, Zone::nxdomain_slot(exact));
            }
        }
        let orgs = by_id(&self.orgs);
        let sinkhole = self.sinkhole.as_ref();
        let mut out = self.base.clone();
        for (key, table) in tables {
            let base = |m: &HashMap<String, Arc<Zone>>, id: &str| {
                m.get(id)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(keyed_zone(&key, &orgs, sinkhole)))
            };
            match &key {
                ZoneKey::Global => out.global = Arc::new(self.base.global.with_overlay(table)),
                ZoneKey::Subtree(id) => {
                    let z = base(&self.base.subtree, id).with_overlay(table);
                    out.subtree.insert(id.clone(), Arc::new(z));
                }
                ZoneKey::Shared(id) => {
                    let z = base(&self.base.shared, id).with_overlay(table);
                    out.shared.insert(id.clone(), Arc::new(z));
                }
            }
        }
        out
    }
}
