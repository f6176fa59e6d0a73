//! The `mimamori hunt` and `mimamori rules check` commands, so that the
//! binary only wires them in:
//!
//! ```text
//! Command::Hunt(args) => mimamori_detect::cli::run_hunt(args, &mut stdout, &mut stderr).map(drop)?,
//! Command::Rules(RulesCommand::Check(args)) => mimamori_detect::cli::run_rules_check(args, &mut stdout, &mut stderr).map(drop)?,
//! ```
//!
//! Detections go to `out`; warnings, progress (only when standard error is
//! a terminal) and the one summary line go to `err`, so `out` can be piped
//! to a file or another tool.

use crate::hunt::{self, HitWriter, HuntOptions, OutputFormat, Summary};
use crate::{Detector, Level, LoadError, LoadReport, RuleSet};
use mimamori_parse::Format;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `mimamori hunt --rules DIR [--rules DIR…] [--format jsonl|csv] PATH…`
#[derive(Debug, Clone, clap::Args)]
pub struct HuntArgs {
    /// A directory of Sigma rules (read recursively) or a rule file. Repeat
    /// for several.
    #[arg(long = "rules", value_name = "DIR", required = true)]
    pub rules: Vec<PathBuf>,
    /// How detections are written to standard output.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: OutputFormat,
    /// The format of every input file (default: detected per file).
    #[arg(long, value_name = "FORMAT")]
    pub input_format: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// No progress lines on standard error.
    #[arg(long)]
    pub quiet: bool,
    /// Parse every rule file instead of reading the rule cache (kept in
    /// `$MIMAMORI_CACHE_DIR`, else `$XDG_CACHE_HOME/mimamori`, else
    /// `~/.cache/mimamori`; keyed by each rule file's path, size and
    /// modification time).
    #[arg(long, conflicts_with = "rule_cache")]
    pub no_rule_cache: bool,
    /// Keep the rule cache in this directory rather than the default one.
    #[arg(long, value_name = "DIR")]
    pub rule_cache: Option<PathBuf>,
    /// Log files or directories (read recursively) to hunt through.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
}

/// `mimamori rules check DIR…`
#[derive(Debug, Clone, clap::Args)]
pub struct RulesCheckArgs {
    /// Directories of Sigma rules (read recursively) or rule files.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Also list warnings (problems in rules that are still used).
    #[arg(long)]
    pub warnings: bool,
}

/// Why a command failed. The message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(
        "no Sigma rule could be used from {dirs}; run `mimamori rules check` on them to see why"
    )]
    NoRules { dirs: String },
    #[error("unknown input format {0:?}; use one of: {names}", names = Format::names())]
    InputFormat(String),
    #[error("no input could be read ({skipped} skipped); check the paths")]
    NothingRead { skipped: usize },
    #[error("{failures} of {files} rule files have rules that cannot be used (listed above)")]
    RulesFailed { failures: usize, files: usize },
    #[error("cannot write output: {0}")]
    Io(io::Error),
}

// By hand, not `#[from]`: the message already includes the inner error,
// and as its `source` too `{:#}` (anyhow's chain) would print it twice.
impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        CliError::Io(e)
    }
}

fn show_dirs(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn load_line(r: &LoadReport) -> String {
    format!(
        "rules: {} files, {} rules, {} correlations, {} filters, {} not usable, in {} ms",
        r.files,
        r.rules,
        r.correlations,
        r.filters,
        r.failures.len(),
        r.elapsed.as_millis()
    )
}

/// Load the rules, hunt through the paths, write detections to `out` and a
/// summary to `err`.
pub fn run_hunt(
    args: HuntArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Summary, CliError> {
    let input_format = match &args.input_format {
        None => None,
        Some(f) => Some(Format::parse(f).ok_or_else(|| CliError::InputFormat(f.clone()))?),
    };
    let cache = if args.no_rule_cache {
        None
    } else {
        args.rule_cache
            .clone()
            .or_else(crate::rule_cache::default_dir)
    };
    let (rules, report) = RuleSet::load_cached(&args.rules, cache.as_deref())?;
    if report.rules + report.correlations == 0 {
        return Err(CliError::NoRules {
            dirs: show_dirs(&args.rules),
        });
    }
    // Lazy: a hunt over Windows logs never builds the indexes of the
    // Linux, cloud or proxy rules.
    let detector = Detector::lazy(rules);
    let opts = HuntOptions {
        input_format,
        threads: args.threads,
    };
    let mut writer = HitWriter::new(io::BufWriter::with_capacity(1 << 16, out), args.format);
    if !report.failures.is_empty() {
        // The rest are used; say how many are not, and where to see why.
        let files: std::collections::HashSet<_> = report.failures.iter().map(|f| &f.path).collect();
        writeln!(
            err,
            "warning: {} rules in {} files are not usable and were skipped; `mimamori rules check {}` lists them",
            report.failures.len(),
            files.len(),
            args.rules
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )?;
    }
    let mut last = Instant::now();
    // Progress is for a person watching: not for a log file or a pipe.
    let quiet = args.quiet || !io::stderr().is_terminal();
    let summary = {
        let mut progress = |p: &hunt::Progress<'_>| {
            if !quiet && last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                // Progress is best effort: a closed stderr must not stop the hunt.
                let _ = writeln!(
                    err,
                    "hunt: {}/{} files, {} records, {} detections",
                    p.files_done, p.files_total, p.records, p.detections
                );
            }
        };
        hunt::hunt(
            &detector,
            &args.paths,
            &opts,
            &mut |h| writer.write(h),
            &mut progress,
        )?
    };
    writer.finish()?;
    write_summary(err, &summary, &report)?;
    if summary.files == 0 && !summary.skipped.is_empty() {
        return Err(CliError::NothingRead {
            skipped: summary.skipped.len(),
        });
    }
    Ok(summary)
}

/// The one summary line (then the skipped files and reject reasons, which
/// are warnings).
fn write_summary(err: &mut dyn Write, s: &Summary, r: &LoadReport) -> io::Result<()> {
    let levels = Level::ALL
        .iter()
        .rev()
        .map(|l| format!("{} {}", l.as_str(), s.by_level.get(l).copied().unwrap_or(0)))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(
        err,
        "hunt: {} files, {} records, {} detections ({} correlations; {levels}), {} rejected records, {} files skipped, in {:.2} s; {} rules and {} correlations loaded in {:.2} s{}",
        s.files,
        s.records,
        s.detections,
        s.correlations,
        s.rejects,
        s.skipped.len(),
        s.elapsed.as_secs_f64(),
        r.rules,
        r.correlations,
        r.elapsed.as_secs_f64(),
        if r.from_cache {
            " (from the rule cache)"
        } else {
            ""
        }
    )?;
    for p in s.skipped.iter().take(5) {
        writeln!(err, "  skipped {}: {}", p.path.display(), p.reason)?;
    }
    if s.skipped.len() > 5 {
        writeln!(err, "  … and {} more skipped files", s.skipped.len() - 5)?;
    }
    for p in &s.reject_samples {
        writeln!(err, "  rejected in {}: {}", p.path.display(), p.reason)?;
    }
    Ok(())
}

/// Load the rules and list every rule that cannot be used, with its file
/// and the reason. Fails when any cannot.
pub fn run_rules_check(
    args: RulesCheckArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<LoadReport, CliError> {
    let (_, report) = RuleSet::load(&args.dirs)?;
    for f in &report.failures {
        writeln!(out, "error: {f}")?;
    }
    if args.warnings {
        for w in &report.warnings {
            writeln!(out, "warning: {w}")?;
        }
    }
    writeln!(err, "{}", load_line(&report))?;
    if !report.failures.is_empty() {
        let files: std::collections::HashSet<_> = report.failures.iter().map(|f| &f.path).collect();
        return Err(CliError::RulesFailed {
            failures: files.len(),
            files: report.files,
        });
    }
    Ok(report)
}
