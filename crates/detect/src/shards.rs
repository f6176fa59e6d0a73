//! Rules split by logsource into several RSigma engines.
//!
//! Two reasons. An event is matched only against the engines its logsource
//! can match: a Sysmon registry event never walks the 1,183
//! `process_creation` rules' index. And each engine's index (mostly
//! Aho-Corasick DFAs over the rules' substrings, built on one thread by
//! RSigma) is built in parallel with the others, which halves the load time
//! on two cores.
//!
//! Windows rules are split by category (every category its own engine, plus
//! one for Windows rules without a category); rules of other products share
//! one engine, and rules without a product another. Correctness rests on
//! strict routing (see [`crate::routing`]): a rule that names a product or
//! a category only matches events with that product or category, so
//! [`Key::for_event`] lists every engine that can hold a matching rule
//! (tested below over a grid of logsources).

use rsigma_eval::{CompiledRule, Engine};
use rsigma_parser::LogSource;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

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

pub(crate) struct Shards {
    engines: Vec<Engine>,
    windows: HashMap<String, usize>,
    windows_none: usize,
    other: usize,
    none: usize,
}

impl Shards {
    /// Group the rules by [`Key`] and build one engine per group on
    /// `threads` threads, heaviest groups first. A rule's weight estimates
    /// its index work (its source size): the 10 `driver_load` rules, which
    /// list thousands of driver hashes, take longer to index than the 1,183
    /// `process_creation` rules.
    pub(crate) fn build(rules: Vec<(CompiledRule, usize)>, threads: usize) -> Shards {
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
        // Heaviest first, so the longest builds start at once; the key
        // breaks ties so that engine order (and so output order) is the same
        // on every run.
        groups.sort_by(|a, b| {
            (b.1)
                .0
                .cmp(&(a.1).0)
                .then_with(|| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)))
        });
        let keys: Vec<Key> = groups.iter().map(|g| g.0.clone()).collect();
        let work: Vec<Mutex<Option<Vec<CompiledRule>>>> = groups
            .into_iter()
            .map(|(_, (_, rules))| Mutex::new(Some(rules)))
            .collect();
        let built: Vec<Mutex<Option<Engine>>> = work.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..threads.clamp(1, work.len().max(1)) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = work.get(i) else { break };
                    let rules = slot
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or_default();
                    let mut e = Engine::new();
                    e.extend_compiled_rules(rules);
                    *built[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                });
            }
        });
        let engines: Vec<Engine> = built
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    // Only a panic inside RSigma leaves a slot empty; the
                    // scope above has already re-raised it.
                    .unwrap_or_default()
            })
            .collect();
        let mut shards = Shards {
            engines,
            windows: HashMap::new(),
            windows_none: 0,
            other: 0,
            none: 0,
        };
        for (i, k) in keys.into_iter().enumerate() {
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

    fn index(&self, k: &Key) -> Option<usize> {
        match k {
            Key::WindowsCategory(c) => self.windows.get(c).copied(),
            Key::WindowsNoCategory => Some(self.windows_none),
            Key::OtherProduct => Some(self.other),
            Key::NoProduct => Some(self.none),
        }
    }

    /// The engines to search for an event with this exact logsource.
    pub(crate) fn for_event(
        &self,
        product: Option<&str>,
        category: Option<&str>,
    ) -> impl Iterator<Item = &Engine> {
        Key::for_event(product, category)
            .into_iter()
            .filter_map(|k| self.index(&k))
            .map(|i| &self.engines[i])
    }

    pub(crate) fn all(&self) -> &[Engine] {
        &self.engines
    }

    pub(crate) fn all_mut(&mut self) -> &mut [Engine] {
        &mut self.engines
    }

    pub(crate) fn rule_count(&self) -> usize {
        self.engines.iter().map(Engine::rule_count).sum()
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
