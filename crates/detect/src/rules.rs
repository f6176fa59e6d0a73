//! Loading Sigma rules: detection rules, correlation rules and filters, from
//! directory trees, with a report of what could not be used.
//!
//! Bad rules never fail the load: each becomes a [`RuleFailure`] naming its
//! file and the reason, and the rest are used. Only a rules path that cannot
//! be read at all is an error.

use crate::shards::Shards;
use crate::{par, rule_cache};
use rsigma_eval::{compile_to_compiled, CompiledRule};
use rsigma_parser::{parse_sigma_yaml, CorrelationRule, FilterRule, SigmaRule};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why rules could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read rules at {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A rule file, or one rule in it, that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    pub path: PathBuf,
    /// The rule's title (or id) when the file parsed far enough to tell.
    pub rule: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for RuleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.rule {
            Some(r) => write!(f, "{}: rule {r:?}: {}", self.path.display(), self.reason),
            None => write!(f, "{}: {}", self.path.display(), self.reason),
        }
    }
}

/// What [`RuleSet::load`] did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// `.yml`/`.yaml` files read.
    pub files: usize,
    /// Detection rules compiled and in use.
    pub rules: usize,
    /// Correlation rules in use.
    pub correlations: usize,
    /// Filters applied.
    pub filters: usize,
    /// Files and rules not used, with the reason.
    pub failures: Vec<RuleFailure>,
    /// Problems in files whose rules are still used: a malformed `related`
    /// entry, a bad date, or, in a file of several YAML documents, the error
    /// of a document that did not parse while others did (RSigma reports
    /// warnings and errors together, so a file is a failure only when
    /// nothing in it parsed).
    pub warnings: Vec<RuleFailure>,
    /// Wall time of the load.
    pub elapsed: Duration,
    /// Whether the rules came from the rule cache rather than parsed.
    pub from_cache: bool,
}

/// A compiled set of Sigma rules, ready for a [`crate::Detector`].
pub struct RuleSet {
    pub(crate) shards: Shards,
    pub(crate) correlations: Vec<CorrelationRule>,
    /// The detection rules correlations refer to, which the correlation
    /// engine needs to resolve names to ids.
    pub(crate) correlated_rules: Vec<SigmaRule>,
}

impl std::fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleSet")
            .field("rules", &self.rule_count())
            .field("correlations", &self.correlations.len())
            .finish()
    }
}

/// One detection rule of a file, compiled (or why not).
pub(crate) struct LoadedRule {
    pub(crate) title: String,
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    /// The parsed rule, when it came from YAML rather than the rule cache:
    /// the correlation engine needs the rules correlations refer to.
    pub(crate) ast: Option<SigmaRule>,
    pub(crate) compiled: Result<CompiledRule, String>,
}

impl LoadedRule {
    fn label(&self) -> String {
        if self.title.is_empty() {
            self.id.clone().unwrap_or_default()
        } else {
            self.title.clone()
        }
    }
}

/// One file, parsed and its detection rules compiled (on a worker thread).
#[derive(Default)]
pub(crate) struct FileOutcome {
    pub(crate) rules: Vec<LoadedRule>,
    /// The rules' lowered form (RSigma's IR), kept only to write the rule
    /// cache, one per entry of `rules`.
    pub(crate) ir: Vec<Result<rsigma_ir::IrRule, String>>,
    /// The file's size in bytes: a rough measure of the index work its
    /// rules make (a rule listing 2,000 driver hashes is a big file).
    pub(crate) bytes: usize,
    pub(crate) correlations: Vec<CorrelationRule>,
    pub(crate) filters: Vec<FilterRule>,
    /// Parser errors and warnings for the file (RSigma does not tell them
    /// apart; they are failures when nothing in the file parsed).
    pub(crate) errors: Vec<String>,
    pub(crate) read_error: Option<String>,
}

fn parse_one(path: &Path, keep_ir: bool) -> FileOutcome {
    let mut out = FileOutcome::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            out.read_error = Some(format!("cannot read: {e}"));
            return out;
        }
    };
    parse_text(&text, &mut out, keep_ir);
    out
}

/// Parse YAML text and compile its detection rules into `out` (what
/// `rsigma_eval::compile_rule` does, in its two steps, so that the lowered
/// rule can be kept for the cache).
fn parse_text(text: &str, out: &mut FileOutcome, keep_ir: bool) {
    out.bytes = text.len();
    match parse_sigma_yaml(text) {
        Ok(c) => {
            for r in c.rules {
                let ir = rsigma_ir::lower_rule(&r, &rsigma_ir::LowerOptions::default())
                    .map_err(|e| rsigma_eval::EvalError::from(e).to_string());
                let compiled = match &ir {
                    Ok(ir) => compile_to_compiled(ir).map_err(|e| e.to_string()),
                    Err(e) => Err(e.clone()),
                };
                out.rules.push(LoadedRule {
                    title: r.title.clone(),
                    id: r.id.clone(),
                    name: r.name.clone(),
                    ast: Some(r),
                    compiled,
                });
                if keep_ir {
                    out.ir.push(ir);
                }
            }
            out.correlations = c.correlations;
            out.filters = c.filters;
            out.errors = c.errors;
        }
        Err(e) => out.errors.push(e.to_string()),
    }
}

/// Every `.yml`/`.yaml` file under `path` (or `path` itself), sorted.
fn rule_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries = std::fs::read_dir(path)
        .map_err(err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rule_files(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
    Ok(())
}

/// Worker threads for parsing: the cores there are, at most 4 (parsing 3k
/// rules is a few hundred ms of work; more threads only add start-up).
fn workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

impl RuleSet {
    /// Load every `.yml`/`.yaml` file under `dirs` (each a directory, read
    /// recursively, or a single file). Parsing and compiling run on up to 4
    /// threads. Rules that do not parse or compile are listed in the report
    /// and skipped; the error is only for a path that cannot be read.
    pub fn load(dirs: &[PathBuf]) -> Result<(RuleSet, LoadReport), LoadError> {
        Self::load_cached(dirs, None)
    }

    /// [`RuleSet::load`], through the rule cache in `cache` (see
    /// [`crate::rule_cache`]): when the same files were loaded before, their
    /// lowered rules are read from there instead of parsed, and otherwise
    /// written there for next time. The rules, the report and so every
    /// detection are the same either way; [`LoadReport::from_cache`] says
    /// which way it went.
    pub fn load_cached(
        dirs: &[PathBuf],
        cache: Option<&Path>,
    ) -> Result<(RuleSet, LoadReport), LoadError> {
        let start = Instant::now();
        let mut files = Vec::new();
        for d in dirs {
            rule_files(d, &mut files)?;
        }
        let n = workers();
        let key = cache.and_then(|dir| Some((dir, rule_cache::key(&files)?)));
        if let Some((dir, key)) = &key {
            match rule_cache::read(dir, key, files.len(), n) {
                Ok(outcomes) => {
                    let outcomes = outcomes.into_iter().map(Some).collect();
                    let (set, mut report) = Self::assemble(files, outcomes, start);
                    report.from_cache = true;
                    return Ok((set, report));
                }
                Err(rule_cache::ReadError::Absent) => {}
                Err(e) => tracing::warn!(error = %e, "rule cache not used; parsing the rules"),
            }
        }
        let keep_ir = key.is_some();
        // A panic inside the YAML parser on one file must not lose the
        // rest; the files its thread held are reported as crashed.
        let mut outcomes =
            par::map_on_threads(&files, n, "rule-parsing", |_, p| parse_one(p, keep_ir));
        if let Some((dir, key)) = &key {
            if rule_cache::cacheable(&outcomes) {
                if let Err(e) = rule_cache::write(dir, key, &outcomes) {
                    tracing::debug!(error = %e, dir = %dir.display(), "rule cache not written");
                }
            }
            for o in outcomes.iter_mut().flatten() {
                o.ir = Vec::new();
            }
        }
        Ok(Self::assemble(files, outcomes, start))
    }

    fn assemble(
        files: Vec<PathBuf>,
        outcomes: Vec<Option<FileOutcome>>,
        start: Instant,
    ) -> (RuleSet, LoadReport) {
        let mut report = LoadReport {
            files: files.len(),
            ..Default::default()
        };
        let fail = |path: &Path, rule: Option<String>, reason: String| RuleFailure {
            path: path.to_path_buf(),
            rule,
            reason,
        };
        // Correlations first: they decide which detection rules the
        // correlation engine needs to know.
        let mut refs: HashSet<String> = HashSet::new();
        for o in outcomes.iter().flatten() {
            for c in &o.correlations {
                refs.extend(c.rules.iter().cloned());
            }
        }
        let mut compiled: Vec<(CompiledRule, usize)> = Vec::new();
        let mut correlated_rules = Vec::new();
        let mut known: HashSet<String> = HashSet::new();
        let mut ids_seen: HashMap<String, PathBuf> = HashMap::new();
        let mut correlations = Vec::new();
        let mut filters = Vec::new();
        for (path, o) in files.iter().zip(outcomes) {
            let Some(o) = o else {
                report
                    .failures
                    .push(fail(path, None, "the parser crashed on this file".into()));
                continue;
            };
            if let Some(e) = o.read_error {
                report.failures.push(fail(path, None, e));
                continue;
            }
            let produced = o.rules.len() + o.correlations.len() + o.filters.len();
            if produced == 0 {
                let reason = if o.errors.is_empty() {
                    "no Sigma rule, correlation or filter in the file".to_string()
                } else {
                    o.errors.join("; ")
                };
                report.failures.push(fail(path, None, reason));
                continue;
            }
            for e in o.errors {
                report.warnings.push(fail(path, None, e));
            }
            let weight = o.bytes / o.rules.len().max(1);
            for rule in o.rules {
                // The same rule twice (overlapping `--rules` directories, a
                // copied file) would report every firing twice.
                if let Some(id) = &rule.id {
                    if let Some(first) = ids_seen.get(id) {
                        report.failures.push(fail(
                            path,
                            Some(rule.label()),
                            format!("duplicate id {id}, already loaded from {}", first.display()),
                        ));
                        continue;
                    }
                    ids_seen.insert(id.clone(), path.clone());
                }
                let label = rule.label();
                match rule.compiled {
                    Ok(c) => {
                        compiled.push((c, weight));
                        let ids = [rule.id.as_ref(), rule.name.as_ref()];
                        if ids.iter().flatten().any(|k| refs.contains(*k)) {
                            // The rule cache is written only for rule sets
                            // without correlations, so a rule correlations
                            // refer to always comes parsed.
                            match &rule.ast {
                                Some(ast) => correlated_rules.push(ast.clone()),
                                None => report.failures.push(fail(
                                    path,
                                    Some(label),
                                    "loaded from the rule cache, which a correlation cannot use"
                                        .into(),
                                )),
                            }
                        }
                        known.extend(ids.into_iter().flatten().cloned());
                    }
                    Err(e) => report.failures.push(fail(path, Some(label), e)),
                }
            }
            for c in o.correlations {
                known.extend([c.id.clone(), c.name.clone()].into_iter().flatten());
                correlations.push((path.clone(), c));
            }
            filters.extend(o.filters.into_iter().map(|f| (path.clone(), f)));
        }
        report.rules = compiled.len();
        let mut checked = Vec::new();
        for (path, f) in filters {
            // Compiling the filter's own detections is the only step of
            // applying it that can fail (`Engine::apply_filter`): check that
            // here, and apply it to each engine when that is built.
            let detections: rsigma_eval::Result<Vec<_>> = f
                .detection
                .named
                .values()
                .map(rsigma_eval::compiler::compile_detection)
                .collect();
            match detections {
                Ok(_) => checked.push(f),
                Err(e) => report
                    .failures
                    .push(fail(&path, Some(f.title.clone()), e.to_string())),
            }
        }
        report.filters = checked.len();
        let shards = Shards::new(compiled, checked);
        let mut used = Vec::new();
        for (path, c) in correlations {
            let missing: Vec<&String> = c.rules.iter().filter(|r| !known.contains(*r)).collect();
            if !missing.is_empty() {
                report.failures.push(fail(
                    &path,
                    Some(c.title.clone()),
                    format!("refers to rules that are not loaded: {missing:?}"),
                ));
                continue;
            }
            // Compile now so a bad correlation is reported here, not when a
            // detector is built.
            let mut probe = rsigma_eval::CorrelationEngine::new(Default::default());
            if let Err(e) = probe.add_correlation(&c) {
                report
                    .failures
                    .push(fail(&path, Some(c.title.clone()), e.to_string()));
                continue;
            }
            used.push(c);
        }
        report.correlations = used.len();
        report.elapsed = start.elapsed();
        tracing::debug!(
            files = report.files,
            rules = report.rules,
            correlations = report.correlations,
            failures = report.failures.len(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "sigma rules loaded"
        );
        (
            RuleSet {
                shards,
                correlations: used,
                correlated_rules,
            },
            report,
        )
    }

    /// Parse rules from YAML text (one or more documents), for tests and for
    /// rules that do not live in files. `origin` names the text in the report.
    pub fn from_yaml(origin: &Path, yaml: &str) -> (RuleSet, LoadReport) {
        let start = Instant::now();
        let mut o = FileOutcome::default();
        parse_text(yaml, &mut o, false);
        Self::assemble(vec![origin.to_path_buf()], vec![Some(o)], start)
    }

    /// Build the index of every rule engine now, in parallel, rather than
    /// when an event first needs it (a server should not pay for that on
    /// the first event of each logsource). [`crate::Detector::new`] calls it.
    pub fn build_indexes(&self) {
        self.shards.build_all(workers());
    }

    /// Detection rules in use.
    pub fn rule_count(&self) -> usize {
        self.shards.rule_count()
    }

    /// Correlation rules in use.
    pub fn correlation_count(&self) -> usize {
        self.correlations.len()
    }
}
