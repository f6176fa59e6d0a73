//! The code behind `mimamori hunt` without the server binary, for
//! profiling the library alone (perf, massif) without building DataFusion.
//! It runs with the system allocator, not the binary's mimalloc, so its
//! time and memory are not the product's: benchmarks time the `mimamori`
//! binary (`bench/hunt.sh`).
//!
//! ```sh
//! cargo run --release -p mimamori-detect --example hunt -- \
//!     --rules ../shared/corpora/sigma/rules ../shared/corpora/evtx/attack-samples > hits.jsonl
//! ```

use clap::Parser;
use mimamori_detect::cli::{run_hunt, HuntArgs};

#[derive(Parser)]
#[command(name = "hunt", about = "Hunt through log files with Sigma rules")]
struct Cli {
    #[command(flatten)]
    args: HuntArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr();
    match run_hunt(cli.args, &mut out, &mut err) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
