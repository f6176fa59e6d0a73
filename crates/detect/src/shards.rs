//! Rules split by logsource into several RSigma engines.
//!
//! Two reasons. An event is matched only against the engines its logsource
//! can match: a Sysmon registry event never walks the 1,183
//! `process_creation` rules' index. And each engine's index (mostly
//! Aho-Corasick DFAs over the rules' substrings, built on one thread by
//! RSigma, the larger part of a load) is built apart from the others: all
//! in parallel up front (the server, [`Shards::build_all`]), or in a hunt
//! only once the events routed to the engine have cost, matched one rule
//! at a time, what the build would ([`Shards::evaluate`]).
//!
//! Windows rules are split by category (every category its own engine, plus
//! one for Windows rules without a category); rules of other products share
//! one engine, and rules without a product another. Correctness rests on
//! strict routing (see [`crate::routing`]): a rule that names a product or
//! a category only matches events with that product or category, so
//! [`Key::for_event`] lists every engine that can hold a matching rule
//! (tested below over a grid of logsources).

use rsigma_eval::compiler::evaluate_rule;
use rsigma_eval::result::EvaluationResult;
use rsigma_eval::{CompiledRule, Engine, Event};
use rsigma_parser::{FilterRule, LogSource};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// Which engine a rule lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// `product: windows` with this category (lower-cased).
    WindowsCategory(String),
    /// `product: windows`, no category (`service: security`, …): these can
    /// match any Windows event.
    WindowsNoCategory,
    /// Any other product.
    OtherProduct,
    /// No product (`category: proxy`, `category: dns`, `service: apache`, …).
    NoProduct,
}

fn is(v: Option<&str>, want: &str) -> bool {
    v.is_some_and(|x| x.eq_ignore_ascii_case(want))
}

impl Key {
    pub(crate) fn of(ls: &LogSource) -> Key {
        match (ls.product.as_deref(), ls.category.as_deref()) {
            (None, _) => Key::NoProduct,
            (p, _) if !is(p, "windows") => Key::OtherProduct,
            (_, None) => Key::WindowsNoCategory,
            (_, Some(c)) => Key::WindowsCategory(c.to_ascii_lowercase()),
        }
    }

    /// The keys of every engine that can hold a rule matching an event whose
    /// logsource is exactly `product`/`category`.
    pub(crate) fn for_event(product: Option<&str>, category: Option<&str>) -> Vec<Key> {
        match product {
            None => vec![Key::NoProduct],
            Some(p) if is(Some(p), "windows") => match category {
                None => vec![Key::WindowsNoCategory, Key::NoProduct],
                Some(c) => vec![
                    Key::WindowsCategory(c.to_ascii_lowercase()),
                    Key::WindowsNoCategory,
                    Key::NoProduct,
                ],
            },
            Some(_) => vec![Key::OtherProduct, Key::NoProduct],
        }
    }
}

/// One engine's rules, and the engine once built.
struct Slot {
    /// Built by [`Shards::build_all`], on first use when filters are
    /// loaded, or once evaluating without it has cost as much as building
    /// it is expected to (see [`Shards::evaluate`]).
    engine: OnceLock<Engine>,
    /// The compiled rules until the engine is built. Events are matched
    /// against them one rule at a time meanwhile; the build copies them
    /// (other threads go on reading them while it runs) or, when nothing
    /// reads them any more, takes them.
    unindexed: RwLock<Option<Arc<Vec<CompiledRule>>>>,
    /// Nanoseconds spent matching events against `unindexed`.
    unindexed_ns: AtomicU64,
    /// What building this engine's index is expected to cost, in
    /// nanoseconds (from the rules' source size, [`BUILD_NS_PER_WEIGHT`]).
    build_estimate_ns: u64,
    /// Set by the thread that starts the build; nobody starts a second.
    building: AtomicBool,
    rules: usize,
    key: Key,
}

/// Index build cost per unit of rule weight (a rule file's bytes shared
/// among its rules). Measured on the SigmaHQ rules and the attack samples
/// (`MIMAMORI_LOG=mimamori_detect=debug mimamori hunt …` logs each build):
/// 22-54 ns per unit across the Windows engines (`process_creation`,
/// 1,183 rules: 76-94 ms), up to ~90 ns for `driver_load`'s thousands of
/// hashes (~200 ms). Only the balance between matching unindexed and
/// building depends on it, never a result; a faster machine does both
/// faster.
const BUILD_NS_PER_WEIGHT: u64 = 40;

/// How an engine checks a rule's logsource against the event's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogsourceCheck {
    /// Every field the rule names must be present in the event and equal
    /// (`Engine::evaluate_with_logsource`).
    Strict,
    /// Only fields present on both sides must agree
    /// (`Engine::evaluate_pruned`).
    Loose,
}

impl LogsourceCheck {
    fn run<E: Event>(self, e: &Engine, ev: &E, ls: &LogSource) -> Vec<EvaluationResult> {
        match self {
            LogsourceCheck::Strict => e.evaluate_with_logsource(ev, ls),
            LogsourceCheck::Loose => e.evaluate_pruned(ev, ls),
        }
    }

    /// Whether a rule with logsource `rule` is evaluated on an event with
    /// logsource `ev`: the same test RSigma's engine applies after its index
    /// (written here because RSigma keeps it private).
    fn admits(self, rule: &LogSource, ev: &LogSource) -> bool {
        let eq = |r: &Option<String>, e: &Option<String>| match (r, e) {
            (Some(r), Some(e)) => r.eq_ignore_ascii_case(e),
            (Some(_), None) => self == LogsourceCheck::Loose,
            (None, _) => true,
        };
        let fields = eq(&rule.category, &ev.category)
            && eq(&rule.product, &ev.product)
            && eq(&rule.service, &ev.service);
        match self {
            LogsourceCheck::Strict => fields,
            LogsourceCheck::Loose => {
                fields
                    && rule
                        .custom
                        .iter()
                        .all(|(k, v)| ev.custom.get(k).is_none_or(|e| v.eq_ignore_ascii_case(e)))
            }
        }
    }
}

pub(crate) struct Shards {
    slots: Vec<Slot>,
    /// Filters, applied to each engine when it is built. Each was checked
    /// (compiled) by the loader; a filter names its rules by id or title,
    /// which may sit in any shard, so it goes to all (RSigma skips rules it
    /// does not name). Only RSigma's engine applies them, so with filters
    /// loaded every engine is built on first use instead of matching
    /// unindexed.
    filters: Vec<FilterRule>,
    windows: HashMap<String, usize>,
    windows_none: usize,
    other: usize,
    none: usize,
}

impl Shards {
    /// Group the rules by [`Key`], heaviest groups first. No index is built
    /// here: an engine's index (the costly part: Aho-Corasick automata over
    /// the rules' substrings) is built only when it pays, so a hunt over
    /// Windows logs never builds the Linux, cloud or proxy engines, nor
    /// those of Windows categories its events lack or hold few of
    /// ([`Shards::build_all`] builds every one up front instead). A rule's
    /// weight estimates its index work (its source size): the 10
    /// `driver_load` rules, which list thousands of driver hashes, take
    /// longer to index than the 1,183 `process_creation` rules.
    pub(crate) fn new(rules: Vec<(CompiledRule, usize)>, filters: Vec<FilterRule>) -> Shards {
        let mut groups: HashMap<Key, (usize, Vec<CompiledRule>)> = HashMap::new();
        for k in [Key::WindowsNoCategory, Key::OtherProduct, Key::NoProduct] {
            groups.entry(k).or_default();
        }
        for (r, weight) in rules {
            let g = groups.entry(Key::of(&r.logsource)).or_default();
            g.0 += weight;
            g.1.push(r);
        }
        let mut groups: Vec<(Key, (usize, Vec<CompiledRule>))> = groups.into_iter().collect();
        // Heaviest first, so that `build_all` starts the longest builds at
        // once; the key breaks ties so that engine order (and so output
        // order) is the same on every run.
        groups.sort_by(|a, b| {
            (b.1)
                .0
                .cmp(&(a.1).0)
                .then_with(|| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)))
        });
        let mut shards = Shards {
            slots: Vec::with_capacity(groups.len()),
            filters,
            windows: HashMap::new(),
            windows_none: 0,
            other: 0,
            none: 0,
        };
        for (i, (k, (weight, rules))) in groups.into_iter().enumerate() {
            shards.slots.push(Slot {
                engine: OnceLock::new(),
                rules: rules.len(),
                unindexed: RwLock::new(Some(Arc::new(rules))),
                unindexed_ns: AtomicU64::new(0),
                build_estimate_ns: (weight as u64).saturating_mul(BUILD_NS_PER_WEIGHT),
                building: AtomicBool::new(false),
                key: k.clone(),
            });
            match k {
                Key::WindowsCategory(c) => {
                    shards.windows.insert(c, i);
                }
                Key::WindowsNoCategory => shards.windows_none = i,
                Key::OtherProduct => shards.other = i,
                Key::NoProduct => shards.none = i,
            }
        }
        shards
    }

    /// The engine of slot `i`, built now if no thread has built it yet
    /// (other threads that need it meanwhile wait for that build, unless
    /// `share` leaves them the unindexed rules to go on with).
    fn engine(&self, i: usize, share: bool) -> &Engine {
        let slot = &self.slots[i];
        let engine = slot.engine.get_or_init(|| {
            let start = Instant::now();
            // Copied under a read lock, so the threads matching unindexed
            // meanwhile are not held up.
            let rules = if share {
                let held = slot.unindexed.read().unwrap_or_else(|p| p.into_inner());
                held.as_deref().cloned()
            } else {
                let taken = slot
                    .unindexed
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                taken.map(|a| Arc::try_unwrap(a).unwrap_or_else(|a| (*a).clone()))
            };
            // Only a build that panicked (inside RSigma) leaves the rules
            // taken and the engine unset; the hunt reports the file it was
            // on, and this says why later files miss these rules.
            let rules = rules.unwrap_or_else(|| {
                tracing::error!(shard = ?slot.key, rules = slot.rules,
                    "an earlier build of this rule index crashed: its rules are not used");
                Vec::new()
            });
            let mut e = Engine::new();
            e.extend_compiled_rules(rules);
            for f in &self.filters {
                // Checked by the loader, which compiled the same filter;
                // compiling it is the only step that can fail.
                if let Err(err) = e.apply_filter(f) {
                    tracing::warn!(filter = %f.title, error = %err, "filter not applied");
                }
            }
            tracing::debug!(
                shard = ?slot.key,
                rules = slot.rules,
                unindexed_us = slot.unindexed_ns.load(Ordering::Relaxed) / 1000,
                estimate_us = slot.build_estimate_ns / 1000,
                elapsed_us = start.elapsed().as_micros() as u64,
                "rule index built"
            );
            e
        });
        // Readers that still hold the rules keep them alive until they are
        // done; new ones use the engine.
        if share {
            slot.unindexed
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
        engine
    }

    /// Build every engine not built yet, on up to `threads` threads,
    /// heaviest first (for the server, which should not pay for a build on
    /// the first event of each logsource).
    pub(crate) fn build_all(&self, threads: usize) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, self.slots.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= self.slots.len() {
                        break;
                    }
                    self.engine(i, false);
                });
            }
        });
    }

    /// Engines built so far (for tests of the lazy build).
    #[cfg(test)]
    pub(crate) fn built(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.engine.get().is_some())
            .count()
    }

    #[cfg(test)]
    pub(crate) fn slots_len(&self) -> usize {
        self.slots.len()
    }

    fn index(&self, k: &Key) -> Option<usize> {
        match k {
            Key::WindowsCategory(c) => self.windows.get(c).copied(),
            Key::WindowsNoCategory => Some(self.windows_none),
            Key::OtherProduct => Some(self.other),
            Key::NoProduct => Some(self.none),
        }
    }

    /// The engines to search for an event with this exact logsource.
    /// Engines without rules are skipped.
    pub(crate) fn for_event(
        &self,
        product: Option<&str>,
        category: Option<&str>,
    ) -> impl Iterator<Item = usize> + '_ {
        Key::for_event(product, category)
            .into_iter()
            .filter_map(|k| self.index(&k))
            .filter(|&i| self.slots[i].rules > 0)
    }

    /// Every engine with rules.
    pub(crate) fn all(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.slots[i].rules > 0)
    }

    /// Match an event against engine `i`'s rules: through its index once
    /// built, else one rule at a time. Unindexed matching is a ski rental:
    /// each event pays a little, the build pays once, and the build starts
    /// when the unindexed matching has cost what the build is expected to.
    /// A hunt whose events touch an engine a few hundred times (the
    /// `driver_load` engine on most collections) never builds it; one that
    /// touches it a million times builds it early. The results are the same
    /// either way: the index only skips rules that cannot match, and both
    /// ways evaluate the rest in rule order.
    pub(crate) fn evaluate<E: Event>(
        &self,
        i: usize,
        ev: &E,
        ls: &LogSource,
        check: LogsourceCheck,
    ) -> Vec<EvaluationResult> {
        let slot = &self.slots[i];
        if let Some(e) = slot.engine.get() {
            return check.run(e, ev, ls);
        }
        if self.filters.is_empty() {
            let rules = slot
                .unindexed
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(rules) = rules {
                let start = Instant::now();
                let out: Vec<EvaluationResult> = rules
                    .iter()
                    .filter(|r| check.admits(&r.logsource, ls))
                    .filter_map(|r| evaluate_rule(r, ev))
                    .collect();
                drop(rules);
                let spent = start.elapsed().as_nanos() as u64;
                let total = slot.unindexed_ns.fetch_add(spent, Ordering::Relaxed) + spent;
                if total >= slot.build_estimate_ns && !slot.building.swap(true, Ordering::AcqRel) {
                    self.engine(i, true);
                }
                return out;
            }
        }
        check.run(self.engine(i, false), ev, ls)
    }

    pub(crate) fn rule_count(&self) -> usize {
        self.slots.iter().map(|s| s.rules).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(p: Option<&str>, s: Option<&str>, c: Option<&str>) -> LogSource {
        LogSource {
            product: p.map(String::from),
            service: s.map(String::from),
            category: c.map(String::from),
            ..Default::default()
        }
    }

    /// RSigma's strict routing: every dimension the rule names is present
    /// and equal (case-insensitively) in the event.
    fn matches(rule: &LogSource, ev: &LogSource) -> bool {
        let dim = |r: &Option<String>, e: &Option<String>| match (r, e) {
            (None, _) => true,
            (Some(r), Some(e)) => r.eq_ignore_ascii_case(e),
            (Some(_), None) => false,
        };
        dim(&rule.product, &ev.product)
            && dim(&rule.service, &ev.service)
            && dim(&rule.category, &ev.category)
    }

    /// Sharding never hides a rule from an event it matches.
    #[test]
    fn every_matching_rule_is_in_a_searched_shard() {
        let products = [
            None,
            Some("windows"),
            Some("Windows"),
            Some("linux"),
            Some("aws"),
        ];
        let services = [None, Some("sysmon"), Some("security"), Some("cloudtrail")];
        let categories = [
            None,
            Some("process_creation"),
            Some("PROCESS_CREATION"),
            Some("registry_set"),
            Some("proxy"),
        ];
        let mut checked = 0;
        for rp in products {
            for rs in services {
                for rc in categories {
                    let rule = ls(rp, rs, rc);
                    for ep in products {
                        for es in services {
                            for ec in categories {
                                let ev = ls(ep, es, ec);
                                if matches(&rule, &ev) {
                                    checked += 1;
                                    let key = Key::of(&rule);
                                    assert!(
                                        Key::for_event(ep, ec).contains(&key),
                                        "rule {rule:?} in {key:?} is not searched for event {ev:?}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 100);
    }

    /// A one-rule engine per logsource of the grid, compiled from YAML.
    fn rule_with(ls: &LogSource, custom: Option<&str>) -> CompiledRule {
        let mut fields: Vec<String> = [
            ("product", &ls.product),
            ("service", &ls.service),
            ("category", &ls.category),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}: {v}")))
        .collect();
        if let Some(c) = custom {
            fields.push(format!("definition_set: {c}"));
        }
        let mut yaml = format!("title: t\nlogsource: {{{}}}\n", fields.join(", "));
        yaml.push_str("detection:\n    sel:\n        EventID: 1\n    condition: sel\n");
        let parsed = rsigma_parser::parse_sigma_yaml(&yaml).expect("the rule parses");
        assert_eq!(parsed.rules.len(), 1, "{yaml}: {:?}", parsed.errors);
        rsigma_eval::compile_rule(&parsed.rules[0]).expect("the rule compiles")
    }

    /// `LogsourceCheck::admits` (the unindexed path's test) agrees with
    /// RSigma's engine, strict and loose, over a grid of rule and event
    /// logsources, custom fields included.
    #[test]
    fn unindexed_logsource_check_agrees_with_the_engine() {
        let products = [None, Some("windows"), Some("Windows"), Some("linux")];
        let services = [None, Some("sysmon"), Some("security")];
        let categories = [None, Some("process_creation"), Some("PROCESS_CREATION")];
        let customs = [None, Some("a"), Some("B")];
        let value = serde_json::json!({"EventID": 1});
        let event = rsigma_eval::JsonEvent::borrow(&value);
        let mut grid = Vec::new();
        for p in products {
            for s in services {
                for c in categories {
                    for x in customs {
                        let mut l = ls(p, s, c);
                        if let Some(x) = x {
                            l.custom.insert("definition_set".into(), x.into());
                        }
                        grid.push((l, x));
                    }
                }
            }
        }
        let mut fired = [0usize; 2];
        for (rule_ls, custom) in &grid {
            let rule = rule_with(rule_ls, *custom);
            let mut engine = Engine::new();
            engine.add_compiled_rule(rule.clone());
            for (ev_ls, _) in &grid {
                for (n, check) in [LogsourceCheck::Strict, LogsourceCheck::Loose]
                    .into_iter()
                    .enumerate()
                {
                    let by_engine = !check.run(&engine, &event, ev_ls).is_empty();
                    let unindexed = check.admits(&rule.logsource, ev_ls)
                        && evaluate_rule(&rule, &event).is_some();
                    assert_eq!(
                        by_engine, unindexed,
                        "{check:?}: rule {:?} on event {ev_ls:?}",
                        rule.logsource
                    );
                    fired[n] += usize::from(by_engine);
                }
            }
        }
        // Both checks admit some pairs and refuse others.
        let pairs = grid.len() * grid.len();
        assert!(fired.iter().all(|&f| f > 0 && f < pairs), "{fired:?}");
    }

    fn shards_of(yaml: &str, weight: usize) -> Shards {
        let collection = rsigma_parser::parse_sigma_yaml(yaml).expect("the rules parse");
        let rules = collection
            .rules
            .iter()
            .map(|r| (rsigma_eval::compile_rule(r).expect("compiles"), weight))
            .collect();
        Shards::new(rules, Vec::new())
    }

    const PC: &str = "title: a
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
---
title: b
logsource: {product: windows, category: process_creation}
detection:
    sel:
        CommandLine|contains: 'vssadmin delete'
    condition: sel
";

    fn pc_event(image: &str) -> serde_json::Value {
        serde_json::json!({"Image": image, "CommandLine": "vssadmin delete shadows"})
    }

    /// Matching unindexed until the build pays: an engine expected to cost
    /// more than its events is never built, one expected to cost nothing is
    /// built on its first event, and both fire the same rules.
    #[test]
    fn an_engine_is_built_once_unindexed_matching_has_cost_its_build() {
        let costly = shards_of(PC, usize::MAX / BUILD_NS_PER_WEIGHT as usize / 4);
        let free = shards_of(PC, 0);
        let ls = ls(Some("windows"), None, Some("process_creation"));
        let titles = |s: &Shards, v: &serde_json::Value| -> Vec<String> {
            let ev = rsigma_eval::JsonEvent::borrow(v);
            s.for_event(Some("windows"), Some("process_creation"))
                .flat_map(|i| s.evaluate(i, &ev, &ls, LogsourceCheck::Strict))
                .map(|r| r.header.rule_title)
                .collect()
        };
        for image in ["C:\\x\\whoami.exe", "C:\\x\\cmd.exe"] {
            let v = pc_event(image);
            assert_eq!(titles(&costly, &v), titles(&free, &v), "{image}");
        }
        assert_eq!(titles(&free, &pc_event("C:\\x\\whoami.exe")), ["a", "b"]);
        assert_eq!(costly.built(), 0);
        assert_eq!(free.built(), 1);
    }
}
