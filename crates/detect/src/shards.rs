//! Rules split by logsource into several RSigma engines.
//!
//! Two reasons. An event is matched only against the engines its logsource
//! can match: a Sysmon registry event never walks the 1,183
//! `process_creation` rules' index. And each engine's index (mostly
//! Aho-Corasick DFAs over the rules' substrings, built on one thread by
//! RSigma, the larger part of a load) is built apart from the others: only
//! when an event first needs it (a hunt), or all in parallel up front (the
//! server, [`Shards::build_all`]).
//!
//! Windows rules are split by category (every category its own engine, plus
//! one for Windows rules without a category); rules of other products share
//! one engine, and rules without a product another. Correctness rests on
//! strict routing (see [`crate::routing`]): a rule that names a product or
//! a category only matches events with that product or category, so
//! [`Key::for_event`] lists every engine that can hold a matching rule
//! (tested below over a grid of logsources).

use rsigma_eval::{CompiledRule, Engine};
use rsigma_parser::{FilterRule, LogSource};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

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
    /// Built on first use ([`Shards::for_event`]) or by [`Shards::build_all`].
    engine: OnceLock<Engine>,
    /// The compiled rules until the engine is built.
    pending: Mutex<Option<Vec<CompiledRule>>>,
    rules: usize,
    key: Key,
}

pub(crate) struct Shards {
    slots: Vec<Slot>,
    /// Filters, applied to each engine when it is built. Each was checked
    /// (compiled) by the loader; a filter names its rules by id or title,
    /// which may sit in any shard, so it goes to all (RSigma skips rules it
    /// does not name).
    filters: Vec<FilterRule>,
    windows: HashMap<String, usize>,
    windows_none: usize,
    other: usize,
    none: usize,
}

impl Shards {
    /// Group the rules by [`Key`], heaviest groups first. No index is built
    /// here: an engine's index (the costly part: Aho-Corasick automata over
    /// the rules' substrings) is built when an event first needs that
    /// engine, so a hunt over Windows logs never builds the Linux, cloud or
    /// proxy engines, nor those of Windows categories its events lack
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
        for (i, (k, (_, rules))) in groups.into_iter().enumerate() {
            shards.slots.push(Slot {
                engine: OnceLock::new(),
                rules: rules.len(),
                pending: Mutex::new(Some(rules)),
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
    /// (other threads that need it meanwhile wait for that build).
    fn engine(&self, i: usize) -> &Engine {
        let slot = &self.slots[i];
        slot.engine.get_or_init(|| {
            let start = std::time::Instant::now();
            let taken = slot
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            // Only a build that panicked (inside RSigma) leaves the rules
            // taken and the engine unset; the hunt reports the file it was
            // on, and this says why later files miss these rules.
            let rules = taken.unwrap_or_else(|| {
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
                elapsed_us = start.elapsed().as_micros() as u64,
                "rule index built"
            );
            e
        })
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
                    self.engine(i);
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

    /// The engines to search for an event with this exact logsource,
    /// built on first use. Engines without rules are skipped.
    pub(crate) fn for_event(
        &self,
        product: Option<&str>,
        category: Option<&str>,
    ) -> impl Iterator<Item = &Engine> {
        Key::for_event(product, category)
            .into_iter()
            .filter_map(|k| self.index(&k))
            .filter(|&i| self.slots[i].rules > 0)
            .map(|i| self.engine(i))
    }

    /// Every engine with rules, built on first use.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Engine> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].rules > 0)
            .map(|i| self.engine(i))
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
}
