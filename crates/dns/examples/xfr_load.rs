//! How long an RPZ zone takes to arrive by zone transfer, and what it
//! costs in memory: a primary on 127.0.0.1 serves N names (each with its
//! `*.` wildcard, → NXDOMAIN, like the benchmark zone) by AXFR, then an
//! IXFR that changes 1,000 of them.
//!
//! ```sh
//! cargo run --release -p mimamori-dns --example xfr_load -- 1000000
//! ```

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use mimamori_dns::{Refreshed, Secondary, XfrConfig};

fn soa(apex: &Name, serial: u32) -> Record {
    let rd = format!("ns.rpz.bench. hostmaster.rpz.bench. {serial} 3600 600 86400 60");
    Record::from_rdata(
        apex.clone(),
        60,
        RData::try_from_str(RecordType::SOA, &rd).expect("soa"),
    )
}

fn block(apex: &Name, name: &str) -> Record {
    let owner = Name::from_ascii(format!("{name}.{apex}")).expect("name");
    Record::from_rdata(owner, 60, RData::CNAME(CNAME(Name::root())))
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Serves AXFR of `names` in messages of 1,000 records; IXFR from serial 1
/// as one difference: the first 1,000 names out, 1,000 new ones in.
fn serve(listener: TcpListener, apex: Name, names: Arc<Vec<String>>, serial: Arc<Mutex<u32>>) {
    for conn in listener.incoming() {
        let Ok(mut s) = conn else { continue };
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            continue;
        }
        let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if s.read_exact(&mut req).is_err() {
            continue;
        }
        let Ok(req) = Message::from_vec(&req) else {
            continue;
        };
        let q = req.queries[0].clone();
        let cur = *serial.lock().expect("serial");
        let mut records: Vec<Record> = vec![soa(&apex, cur)];
        match q.query_type() {
            RecordType::AXFR => {
                for n in names.iter() {
                    records.push(block(&apex, n));
                    records.push(block(&apex, &format!("*.{n}")));
                }
                records.push(soa(&apex, cur));
            }
            RecordType::IXFR => {
                records.push(soa(&apex, 1));
                records.extend(names.iter().take(1000).map(|n| block(&apex, n)));
                records.push(soa(&apex, cur));
                records.extend((0..1000).map(|i| block(&apex, &format!("new{i}.example"))));
                records.push(soa(&apex, cur));
            }
            _ => {}
        }
        for chunk in records.chunks(1000) {
            let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
            m.metadata.authoritative = true;
            m.add_query(q.clone());
            m.add_answers(chunk.iter().cloned());
            let bytes = m.to_vec().expect("encodes");
            let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&bytes);
            if s.write_all(&out).is_err() {
                break;
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let apex = Name::from_ascii("rpz.bench.").expect("apex");
    let names: Arc<Vec<String>> = Arc::new((0..n).map(|i| format!("d{i}.example")).collect());
    let serial = Arc::new(Mutex::new(1u32));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    {
        let (apex, names, serial) = (apex.clone(), names.clone(), serial.clone());
        std::thread::spawn(move || serve(listener, apex, names, serial));
    }
    let before = rss_kib("VmRSS:");
    let sec = Secondary::new(XfrConfig::parse(&format!("rpz.bench.@{addr}")).expect("spec"));
    let t = Instant::now();
    let r = sec.refresh().await.expect("AXFR");
    let axfr = t.elapsed();
    assert_eq!(r, Refreshed::Axfr(1));
    let zone = sec.zone().expect("zone");
    println!(
        "AXFR of {} records ({} names + wildcards): {:.2} s, {} triggers; RSS {} MB (peak {} MB, {} MB before)",
        2 * n + 2,
        n,
        axfr.as_secs_f64(),
        zone.stats().qname_triggers + zone.stats().wildcard_triggers,
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024,
        before / 1024
    );
    *serial.lock().expect("serial") = 2;
    let t = Instant::now();
    let r = sec.refresh().await.expect("IXFR");
    assert_eq!(r, Refreshed::Ixfr(2));
    println!(
        "IXFR of 1,000 deletions + 1,000 additions: {:.2} s (the zone is rebuilt), RSS {} MB (peak {} MB)",
        t.elapsed().as_secs_f64(),
        rss_kib("VmRSS:") / 1024,
        rss_kib("VmHWM:") / 1024
    );
}
