//! Japanese and English: Fluent message catalogues compiled into the
//! binary (`locales/*.ftl`), the language from the user's choice (a
//! cookie) or else the browser's `Accept-Language`.
//!
//! Every message id used in the code must exist in both catalogues; the
//! tests read the sources for the ids they use and fail on one that is
//! missing, and on a catalogue that has an id the other lacks. At run time
//! a missing id renders as `⟦id⟧` (and is logged), never as an empty
//! string, so a gap is visible rather than silent.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use std::sync::OnceLock;

/// A language the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

/// The catalogues' sources, by language.
pub const CATALOGUES: [(Lang, &str); 2] = [
    (Lang::En, include_str!("../locales/en.ftl")),
    (Lang::Ja, include_str!("../locales/ja.ftl")),
];

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ja];

    /// The BCP 47 tag, for `<html lang>` and the cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn from_tag(tag: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.tag() == tag)
    }

    /// The language for a request: the cookie's when it names one, else
    /// the first of `Accept-Language` (by its q-values) that the console
    /// speaks, else English.
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(l) = cookie.and_then(Lang::from_tag) {
            return l;
        }
        let mut best: Option<(f32, Lang)> = None;
        for part in accept_language.unwrap_or("").split(',') {
            let mut it = part.split(';');
            let range = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_string))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = range.split('-').next().unwrap_or("");
            let Some(lang) = Lang::from_tag(primary) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    fn bundle(self) -> &'static FluentBundle<FluentResource> {
        static BUNDLES: OnceLock<Vec<FluentBundle<FluentResource>>> = OnceLock::new();
        let all =
            BUNDLES.get_or_init(|| CATALOGUES.iter().map(|(l, src)| build(*l, src)).collect());
        let i = CATALOGUES.iter().position(|(l, _)| *l == self).unwrap_or(0);
        &all[i]
    }

    /// The message `id`.
    pub fn t(self, id: &str) -> String {
        self.format(id, None)
    }

    /// The message `id` with its variables.
    pub fn ta(self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, v.clone());
        }
        self.format(id, Some(&fa))
    }

    fn format(self, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        let bundle = self.bundle();
        let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) else {
            tracing::warn!(
                id,
                lang = self.tag(),
                "console message missing from the catalogue"
            );
            return format!("⟦{id}⟧");
        };
        let mut errors = vec![];
        let text = bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(
                id,
                lang = self.tag(),
                ?errors,
                "console message did not format cleanly"
            );
        }
        text.into_owned()
    }
}

/// One catalogue as a bundle. The sources are part of the binary and the
/// tests parse both, so a syntax error cannot reach a user; should one get
/// through anyway, the entries that parsed are kept.
fn build(lang: Lang, src: &'static str) -> FluentBundle<FluentResource> {
    let resource = match FluentResource::try_new(src.to_string()) {
        Ok(r) => r,
        Err((r, errors)) => {
            tracing::error!(
                lang = lang.tag(),
                ?errors,
                "console catalogue has syntax errors"
            );
            r
        }
    };
    let id: unic_langid::LanguageIdentifier = lang.tag().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Unicode isolation marks around variables would show up in copied
    // text and in tests; the console's variables are ids, counts and org
    // names, not right-to-left text.
    bundle.set_use_isolating(false);
    if let Err(errors) = bundle.add_resource(resource) {
        tracing::error!(
            lang = lang.tag(),
            ?errors,
            "console catalogue has duplicate ids"
        );
    }
    bundle
}

/// The message ids a catalogue source defines (messages, not terms).
pub fn ids(src: &str) -> Vec<String> {
    let resource = match FluentResource::try_new(src.to_string()) {
        Ok(r) => r,
        Err((r, _)) => r,
    };
    resource
        .entries()
        .filter_map(|e| match e {
            fluent_syntax::ast::Entry::Message(m) => Some(m.id.name.to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn negotiation_prefers_the_cookie_then_the_highest_q() {
        assert_eq!(Lang::negotiate(Some("ja"), Some("en")), Lang::Ja);
        assert_eq!(
            Lang::negotiate(Some("xx"), Some("ja-JP,en;q=0.5")),
            Lang::Ja
        );
        assert_eq!(
            Lang::negotiate(None, Some("en-US;q=0.4, ja;q=0.9")),
            Lang::Ja
        );
        assert_eq!(Lang::negotiate(None, Some("fr, ja;q=0")), Lang::En);
        assert_eq!(Lang::negotiate(None, None), Lang::En);
    }

    #[test]
    fn both_catalogues_parse_and_define_the_same_ids() {
        let mut sets = vec![];
        for (lang, src) in CATALOGUES {
            if let Err((_, errors)) = FluentResource::try_new(src.to_string()) {
                panic!("{} catalogue: {errors:?}", lang.tag());
            }
            let ids = ids(src);
            let set: BTreeSet<_> = ids.iter().cloned().collect();
            assert_eq!(set.len(), ids.len(), "{}: an id defined twice", lang.tag());
            sets.push((lang, set));
        }
        let (en, ja) = (&sets[0].1, &sets[1].1);
        let only_en: Vec<_> = en.difference(ja).collect();
        let only_ja: Vec<_> = ja.difference(en).collect();
        assert!(only_en.is_empty(), "missing in ja.ftl: {only_en:?}");
        assert!(only_ja.is_empty(), "missing in en.ftl: {only_ja:?}");
    }

    /// The ids the code asks for: the literal of every `.t("…")`,
    /// `.ta("…"`, and `key: "…"` (the page table), read from the sources.
    fn used_ids() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut used = BTreeSet::new();
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("src dir") {
                let p = entry.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                // This file names ids only in its tests (one on purpose
                // missing).
                if p.extension().is_none_or(|e| e != "rs") || p.ends_with("i18n.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).expect("source");
                for marker in [".t(\"", ".ta(\"", "key: \""] {
                    for (at, _) in text.match_indices(marker) {
                        let rest = &text[at + marker.len()..];
                        if let Some(end) = rest.find('"') {
                            let id = &rest[..end];
                            if !id.is_empty()
                                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                            {
                                used.insert(id.to_string());
                            }
                        }
                    }
                }
            }
        }
        used
    }

    #[test]
    fn every_id_the_code_uses_is_in_both_catalogues() {
        let used = used_ids();
        assert!(used.len() > 50, "the scan found too few ids: {used:?}");
        for (lang, src) in CATALOGUES {
            let defined: BTreeSet<_> = ids(src).into_iter().collect();
            let missing: Vec<_> = used.difference(&defined).collect();
            assert!(
                missing.is_empty(),
                "missing in {}.ftl: {missing:?}",
                lang.tag()
            );
        }
    }

    #[test]
    fn every_message_formats_without_errors_in_both_languages() {
        let args = [
            ("count", FluentValue::from(3)),
            ("org", FluentValue::from("mof")),
            ("name", FluentValue::from("x")),
            ("role", FluentValue::from("soc-analyst")),
            ("scope", FluentValue::from("/soc/")),
            ("minutes", FluentValue::from(30)),
            ("from", FluentValue::from("new")),
            ("to", FluentValue::from("acknowledged")),
            ("actor", FluentValue::from("user:1")),
            ("hours", FluentValue::from(24)),
            ("updated", FluentValue::from(1)),
            ("unchanged", FluentValue::from(2)),
            ("rejected", FluentValue::from(0)),
            ("orgs", FluentValue::from(4)),
            ("ms", FluentValue::from(12)),
        ];
        for (lang, src) in CATALOGUES {
            for id in ids(src) {
                let text = lang.ta(&id, &args);
                assert!(!text.contains('⟦'), "{}: {id}", lang.tag());
                assert!(!text.trim().is_empty(), "{}: {id} is empty", lang.tag());
            }
        }
        assert_eq!(Lang::Ja.t("no-such-id"), "⟦no-such-id⟧");
    }
}
