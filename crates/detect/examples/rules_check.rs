//! `mimamori rules check` without the server binary:
//!
//! ```sh
//! cargo run --release -p mimamori-detect --example rules_check -- ../shared/corpora/sigma/rules
//! ```

use clap::Parser;
use mimamori_detect::cli::{run_rules_check, RulesCheckArgs};

#[derive(Parser)]
#[command(
    name = "rules-check",
    about = "List the Sigma rules that cannot be used, and why"
)]
struct Cli {
    #[command(flatten)]
    args: RulesCheckArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    match run_rules_check(cli.args, &mut out, &mut err) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
