//! Where an archived event's CPU goes, stage by stage, without sockets or
//! fsync waits: parse + normalize + the JSON text of `fields` and `raw`
//! (the normalize thread's work), then `Archive::flush_rows` (the archive
//! thread's: column building, Parquet encoding, the part file), then
//! freeing the events. Two workloads, as the ingest benchmarks send them: RFC 5424
//! syslog lines like loggen's (300 bytes) and NDJSON DNS events like
//! `ingest_load`'s.
//!
//! ```sh
//! cargo run --release -p mimamori-ingest --example archive_bench -- [EVENTS=500000] [syslog|dns]
//! ```

use mimamori_event::Event;
use mimamori_ingest::archive::{Archive, EventText};
use mimamori_parse::{Format, LineParser};
use std::time::Instant;

fn syslog_line(i: usize) -> String {
    let head = format!(
        "<38>1 2026-11-26T09:10:{:02}+00:00 localhost prg{:05} 1234 - - seq: {i:010}, thread: {:04}, runid: 1764147000, stamp: 2026-11-26T09:10:00 ",
        i % 60,
        i % 4,
        i % 4
    );
    let pad = 300usize.saturating_sub(head.len());
    format!("{head}{}", &"PADD".repeat(pad / 4 + 1)[..pad])
}

fn dns_line(i: usize) -> String {
    format!(
        r#"{{"time":1764064800123,"class":"dns_activity","src_ip":"10.1.{}.{}","src_port":40000,"dns_query":"host{}.zone{}.example.jp","dns_qtype":"A","dns_rcode":"NOERROR"}}"#,
        i % 250,
        i % 200,
        i % 1000,
        i % 50
    )
}

fn run(name: &str, format: Format, lines: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile_dir(name)?;
    let (archive, _) = Archive::recover(&dir)?;
    let n = lines.len();
    let (mut parse, mut flush, mut free) = Default::default();
    let mut parser = LineParser::new(format);
    // In flushes of 50,000 events, as the archive thread's default: memory
    // is reused from one flush to the next, as in the server.
    for (pos, chunk) in lines.chunks(50_000).enumerate() {
        let t = Instant::now();
        let mut events = Vec::with_capacity(chunk.len());
        for (i, l) in chunk.iter().enumerate() {
            if let Some(Ok(body)) = parser.push_line(l.as_bytes()) {
                events.push(Event {
                    id: uuid::Uuid::now_v7().to_string(),
                    org_id: "bench".into(),
                    received: 1_764_064_800_000 + i as i64,
                    body,
                });
            }
        }
        // The normalize thread also writes the archive's JSON text.
        let text = EventText::of(&events);
        parse += t.elapsed();
        let t = Instant::now();
        let rows = events.iter().enumerate().map(|(i, e)| (e, text.get(i)));
        archive.flush_rows(rows, pos as u64, pos as u64 + 1)?;
        flush += t.elapsed();
        let t = Instant::now();
        drop(events);
        free += t.elapsed();
    }
    let bytes: u64 = archive
        .part_files()?
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / n as f64;
    println!(
        "{name}: {n} events; parse+normalize+text {:.0} ns/event, flush {:.0} ns/event, free {:.0} ns/event; {:.1} bytes/event archived",
        per(parse),
        per(flush),
        per(free),
        bytes as f64 / n as f64
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn tempfile_dir(name: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "mimamori-archive-bench-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

// The server's allocator, so the costs are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(500_000);
    let only = args.next();
    if only.as_deref().is_none_or(|o| o == "syslog") {
        let syslog: Vec<String> = (0..n).map(syslog_line).collect();
        run("syslog", Format::Syslog, &syslog)?;
    }
    if only.as_deref().is_none_or(|o| o == "dns") {
        let dns: Vec<String> = (0..n).map(dns_line).collect();
        run("ndjson-dns", Format::Ndjson, &dns)?;
    }
    Ok(())
}
