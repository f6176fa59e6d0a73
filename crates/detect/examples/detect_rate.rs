//! Detection throughput on one core: parse the inputs into memory, then time
//! `Detector::detect` alone over every event, several passes.
//!
//! ```sh
//! cargo run --release -p mimamori-detect --example detect_rate -- \
//!     ../shared/corpora/sigma/rules ../shared/corpora/evtx/attack-samples [PASSES]
//! ```

use mimamori_detect::{hunt, Detector, RuleSet};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [rules, input, rest @ ..] = args.as_slice() else {
        return Err("usage: detect_rate RULES_DIR INPUT [PASSES]".into());
    };
    let passes: usize = rest.first().map(|p| p.parse()).transpose()?.unwrap_or(5);
    let (rules, report) = RuleSet::load(&[PathBuf::from(rules)])?;
    eprintln!(
        "{} rules loaded in {} ms",
        report.rules,
        report.elapsed.as_millis()
    );
    let detector = Detector::new(rules);
    let (files, _) = hunt::input_files(&[PathBuf::from(input)]);
    let events: Vec<_> = files
        .iter()
        .filter_map(|f| mimamori_parse::parse_file(f, None).ok())
        .flat_map(|p| p.events)
        .collect();
    let mut hits = 0;
    let start = Instant::now();
    for _ in 0..passes {
        hits = events
            .iter()
            .map(|e| detector.detect(e).len())
            .sum::<usize>();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = events.len() * passes;
    println!(
        "{n} events ({} × {passes} passes), {hits} detections per pass, {:.3} s, {:.0} events/s on one core",
        events.len(),
        secs,
        n as f64 / secs
    );
    Ok(())
}
