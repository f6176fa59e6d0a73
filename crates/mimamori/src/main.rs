//! The `mimamori` binary: argument handling and wiring only. The work is
//! done in the library crates (see ARCHITECTURE.md).

// Events are allocated on the normalize thread and freed on the archive
// thread; glibc malloc made those cross-thread frees a fifth of the archive
// thread's time under syslog load (perf, BENCHMARKS.md).
/// The log filter when `MIMAMORI_LOG` is unset: our own crates at info,
/// every dependency at warn. A dependency's info lines are its own
/// bookkeeping (the evtx crate logs "Initializing string cache" once per
/// file, hundreds of lines for a hunt over a directory) and say nothing a
/// user can act on. hickory_resolver is held at error: its recursor warns
/// about every NXDOMAIN and NODATA it meets, and each cold lookup meets
/// several (it walks down names that are not zone cuts); the failures that
/// matter are the resolver's own (counted and logged by mimamori_dns).
const DEFAULT_LOG_FILTER: &str = "warn,mimamori=info,mimamori_api=info,mimamori_console=info,mimamori_core=info,\
    mimamori_detect=info,mimamori_dns=info,mimamori_event=info,mimamori_fetch=info,mimamori_ingest=info,\
    mimamori_intel=info,mimamori_notify=info,mimamori_parse=info,mimamori_pipeline=info,\
    mimamori_query=info,mimamori_store=info,hickory_resolver=error";

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod allocator;
mod config;
mod demo;
mod demo_feed;
mod detection;
mod dns_policy;
mod ingest_cmd;
mod intel_cmd;
mod pdns;
mod query_cmd;
mod server;
mod wal_cmd;
mod zone_files;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimamori (見守り, "watching over"): one security operations center
/// watching over many member organizations.
///
/// Start with `mimamori demo` to see a realistic multi-org setup running, or
/// `mimamori init` then `mimamori serve` for your own.
#[derive(Debug, Parser)]
#[command(name = "mimamori", version, propagate_version = true)]
struct Cli {
    /// Where mimamori keeps its database, configuration, certificates and
    /// telemetry (`pdns`, `hunt` and `rules` use none, and refuse it).
    #[arg(
        long,
        global = true,
        env = "MIMAMORI_DATA_DIR",
        default_value = "./mimamori-data"
    )]
    data_dir: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: database, root org (the central SOC), TLS
    /// certificate, config file, and a first soc-admin token.
    Init(admin::InitArgs),
    /// Run the services described by the configuration until Ctrl-C.
    Serve(server::ServeArgs),
    /// Run everything on a fresh data directory with a realistic tree of
    /// orgs, print the URL and tokens, and keep running until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Manage the org tree.
    #[command(subcommand)]
    Org(admin::OrgCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(admin::TokenCommand),
    /// Manage human users.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Load telemetry files (EVTX, Zeek, CloudTrail, syslog, …) into an
    /// org's archive. Stop `serve` first, or send to its HTTP endpoint.
    Ingest(ingest_cmd::IngestArgs),
    /// Query archived telemetry with SQL (table `events`); one JSON object
    /// per row on stdout.
    Query(query_cmd::QueryArgs),
    /// Import and export threat intelligence (STIX, MISP, lists, RPZ).
    #[command(subcommand)]
    Intel(intel_cmd::IntelCommand),
    /// Run only the Protective DNS resolver, with policy from RPZ zones and
    /// lists (no data directory needed).
    Pdns(Box<pdns::PdnsArgs>),
    /// Hunt through log files (EVTX, Windows JSON, Zeek, CloudTrail, …)
    /// with Sigma rules, offline: one detection per line on stdout, a
    /// summary on stderr (no data directory needed).
    Hunt(mimamori_detect::cli::HuntArgs),
    /// Work with Sigma rule folders.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Check or salvage the write-ahead log (acknowledged events not yet
    /// archived) after disk damage.
    #[command(subcommand)]
    Wal(wal_cmd::WalCommand),
}

#[derive(Debug, clap::Subcommand)]
enum RulesCommand {
    /// Load rule folders and list every rule that cannot be used, and why
    /// (exit status 1 when there is one).
    Check(mimamori_detect::cli::RulesCheckArgs),
}

/// `mimamori hunt`: detections on stdout, the summary on stderr.
fn hunt(args: mimamori_detect::cli::HuntArgs) -> anyhow::Result<()> {
    allocator::tune_for_batch();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    mimamori_detect::cli::run_hunt(args, &mut out, &mut err)?;
    Ok(())
}

/// `mimamori rules check`.
fn rules_check(args: mimamori_detect::cli::RulesCheckArgs) -> anyhow::Result<()> {
    allocator::tune_for_batch();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr());
    mimamori_detect::cli::run_rules_check(args, &mut out, &mut err)?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let data_dir_source = matches.value_source("data_dir");
    // A data directory given to a command that reads none would be
    // silently ignored: say so instead (the environment variable, set for
    // the other commands, is fine).
    if matches.value_source("data_dir") == Some(clap::parser::ValueSource::CommandLine) {
        if let Some(name) = matches
            .subcommand_name()
            .filter(|n| ["pdns", "hunt", "rules"].contains(n))
        {
            eprintln!("error: --data-dir has no effect on `mimamori {name}`, which keeps no data directory (its policy, rules and input are the files it is given)");
            return std::process::ExitCode::from(2);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIMAMORI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a log file or a pipe gets text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // `hunt` and `rules check` only read files and write to the terminal:
    // they run on this thread, without the async runtime (whose worker
    // threads would hold their own allocator heaps for nothing).
    let (data_dir, command) = match cli.command {
        Command::Hunt(args) => return exit_code(hunt(args)),
        Command::Rules(RulesCommand::Check(args)) => return exit_code(rules_check(args)),
        command => (cli.data_dir, command),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            Command::Init(args) => admin::init(&data_dir, args).await,
            Command::Serve(args) => server::serve(&data_dir, args).await,
            Command::Demo(mut args) => {
                // `--data-dir` names the demo's directory; its default
                // (./mimamori-data) and MIMAMORI_DATA_DIR (set for a real
                // deployment) do not.
                if data_dir_source == Some(clap::parser::ValueSource::CommandLine) {
                    args.data_dir = Some(data_dir.clone());
                }
                demo::run(args).await
            }
            Command::Org(cmd) => admin::org(&data_dir, cmd).await,
            Command::Token(cmd) => admin::token(&data_dir, cmd).await,
            Command::User(cmd) => admin::user(&data_dir, cmd).await,
            Command::Ingest(args) => ingest_cmd::run(&data_dir, args).await,
            Command::Intel(cmd) => intel_cmd::run(&data_dir, cmd).await,
            Command::Pdns(args) => pdns::run_standalone(*args).await,
            Command::Query(args) => query_cmd::run(&data_dir, args).await,
            Command::Wal(cmd) => wal_cmd::run(&data_dir, cmd),
            Command::Hunt(_) | Command::Rules(_) => {
                unreachable!("hunt and rules run without the runtime, above")
            }
        }
    });
    exit_code(result)
}

fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// A crate added to the workspace but missing from the default filter
    /// would be silenced to warn: every member must be listed at info.
    #[test]
    fn default_log_filter_names_every_workspace_crate_at_info() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        for entry in std::fs::read_dir(&crates).expect("the crates directory") {
            let manifest = entry.expect("a directory entry").path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let name = text
                .lines()
                .find_map(|l| l.strip_prefix("name = \""))
                .and_then(|l| l.strip_suffix('"'))
                .expect("a package name");
            let directive = format!("{}=info", name.replace('-', "_"));
            assert!(
                super::DEFAULT_LOG_FILTER
                    .split(',')
                    .any(|d| d.trim() == directive),
                "{directive} missing from DEFAULT_LOG_FILTER"
            );
            seen += 1;
        }
        assert!(seen >= 13, "only {seen} crates found");
        tracing_subscriber::EnvFilter::try_new(super::DEFAULT_LOG_FILTER)
            .expect("the default filter parses");
    }
}
