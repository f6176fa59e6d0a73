//! The rule cache through `mimamori hunt`'s CLI glue and `RuleSet::load_cached`:
//! a warm load gives the same rules, report and detections as a cold one;
//! an edited file, a corrupt cache and correlations all lead back to parsing.

mod common;

use mimamori_detect::cli::{run_hunt, HuntArgs};
use mimamori_detect::hunt::OutputFormat;
use mimamori_detect::{LoadReport, RuleSet};
use std::path::{Path, PathBuf};

fn cache_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
    v.sort();
    v
}

fn hunt(rules: Vec<PathBuf>, cache: &Path, paths: Vec<PathBuf>) -> (String, String) {
    let a = HuntArgs {
        rules,
        format: OutputFormat::Jsonl,
        input_format: None,
        threads: 2,
        quiet: true,
        no_rule_cache: false,
        rule_cache: Some(cache.to_path_buf()),
        paths,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    run_hunt(a, &mut out, &mut err).expect("hunt");
    (
        String::from_utf8(out).expect("utf-8"),
        String::from_utf8(err).expect("utf-8"),
    )
}

/// The parts of a report that must not depend on the cache.
fn same_report(a: &LoadReport, b: &LoadReport) {
    assert_eq!(
        (a.files, a.rules, a.correlations, a.filters),
        (b.files, b.rules, b.correlations, b.filters)
    );
    assert_eq!(a.failures, b.failures);
    assert_eq!(a.warnings, b.warnings);
}

/// All SigmaHQ rules over the attack samples: the second hunt reads the
/// rules from the cache and writes byte for byte the same detections.
#[test]
fn a_warm_hunt_over_all_sigmahq_rules_finds_what_a_cold_one_does() {
    let c = common::corpora();
    let cache = tempfile::tempdir().expect("tempdir");
    let rules = vec![c.join("sigma/rules")];
    let input = vec![c.join("evtx/attack-samples")];
    let (cold, cold_err) = hunt(rules.clone(), cache.path(), input.clone());
    assert!(!cold_err.contains("from the rule cache"), "{cold_err}");
    assert_eq!(cache_files(cache.path()).len(), 1, "one cache written");
    let (warm, warm_err) = hunt(rules.clone(), cache.path(), input.clone());
    assert!(warm_err.contains("(from the rule cache)"), "{warm_err}");
    assert!(cold.lines().count() > 1000, "{cold_err}");
    assert!(cold == warm, "the warm hunt's detections differ");
    // And the parsed and cached rule sets report the same.
    let (_, parsed) = RuleSet::load(&rules).expect("load");
    let (_, cached) = RuleSet::load_cached(&rules, Some(cache.path())).expect("load");
    assert!(cached.from_cache && !parsed.from_cache);
    same_report(&parsed, &cached);
}

const GOOD: &str = "title: whoami
id: 6f3b0a52-7d1e-4c5e-9a43-2d3c4e5f6a7b
logsource: {product: windows, category: process_creation}
detection:
    sel:
        Image|endswith: '\\whoami.exe'
    condition: sel
";

const BAD_REGEX: &str = "title: broken regex
logsource: {product: windows, category: process_creation}
detection:
    sel:
        CommandLine|re: '(unclosed'
    condition: sel
";

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        std::fs::write(d.path().join(name), text).expect("write rule");
    }
    d
}

/// A rule that does not compile is reported the same from the cache; an
/// edited file is seen (another key, a fresh parse).
#[test]
fn failures_survive_the_cache_and_an_edit_is_seen() {
    let rules = dir_with(&[("good.yml", GOOD), ("bad.yml", BAD_REGEX)]);
    let cache = tempfile::tempdir().expect("tempdir");
    let dirs = vec![rules.path().to_path_buf()];
    let (_, cold) = RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
    let (_, warm) = RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
    assert!(!cold.from_cache && warm.from_cache);
    assert_eq!(
        (cold.rules, cold.failures.len()),
        (1, 1),
        "{:?}",
        cold.failures
    );
    same_report(&cold, &warm);

    // Fix the broken rule: the file's size changes, so the cache misses.
    std::fs::write(
        rules.path().join("bad.yml"),
        BAD_REGEX.replace("(unclosed", "(closed)"),
    )
    .expect("edit");
    let (_, edited) = RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
    assert!(!edited.from_cache);
    assert_eq!((edited.rules, edited.failures.len()), (2, 0));
    assert_eq!(cache_files(cache.path()).len(), 2);
}

/// A cache file that is cut short or is not JSON is not used: the rules
/// are parsed (and the cache rewritten).
#[test]
fn a_corrupt_cache_is_parsed_past_and_rewritten() {
    let rules = dir_with(&[("good.yml", GOOD), ("bad.yml", BAD_REGEX)]);
    let cache = tempfile::tempdir().expect("tempdir");
    let dirs = vec![rules.path().to_path_buf()];
    RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
    let [file] = cache_files(cache.path())
        .try_into()
        .expect("one cache file");
    let text = std::fs::read_to_string(&file).expect("read cache");
    for broken in [
        text[..text.len() / 2].to_string(),
        "not json\n".to_string(),
        text.replacen("\"version\":1", "\"version\":999", 1),
    ] {
        std::fs::write(&file, broken).expect("corrupt");
        let (_, r) = RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
        assert!(!r.from_cache);
        assert_eq!((r.rules, r.failures.len()), (1, 1));
        let (_, again) = RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
        assert!(again.from_cache, "rewritten after the bad read");
    }
}

/// Correlations need the parsed rules: such a rule set is never cached.
#[test]
fn a_rule_set_with_correlations_is_not_cached() {
    let corr = "title: many whoami
correlation:
    type: event_count
    rules: [6f3b0a52-7d1e-4c5e-9a43-2d3c4e5f6a7b]
    group-by: [User]
    timespan: 5m
    condition: {gte: 3}
";
    let rules = dir_with(&[("good.yml", GOOD), ("corr.yml", corr)]);
    let cache = tempfile::tempdir().expect("tempdir");
    let dirs = vec![rules.path().to_path_buf()];
    for _ in 0..2 {
        let (_, r) = RuleSet::load_cached(&dirs, Some(cache.path())).expect("load");
        assert!(!r.from_cache);
        assert_eq!((r.rules, r.correlations), (1, 1), "{:?}", r.failures);
    }
    assert!(cache_files(cache.path()).is_empty());
}
