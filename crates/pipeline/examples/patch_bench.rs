//! Time from an intel change to its enforcement by the detection matcher,
//! on the embedded store (SQLite in a temporary directory): N domain
//! indicators imported and loaded, then rounds of M new indicators, each
//! followed by the reload the watcher and the intel hub run
//! (`IntelMatcher::reload_if_changed`), which patches the matcher with the
//! changed rows. A full reload is timed for comparison, and matching speed
//! with a patch in place.
//!
//! ```sh
//! cargo run --release -p mimamori-pipeline --example patch_bench -- 1000000 1000
//! ```

use mimamori_core::org::OrgProfile;
use mimamori_core::{NewOrg, OrgKind, Validated};
use mimamori_event::{Event, EventBody, Normalized, OcsfClass};
use mimamori_intel::{Indicator, IndicatorKind, Tlp};
use mimamori_pipeline::intel::{IntelMatcher, IntelSnapshot};
use mimamori_store::{AuditActor, Store};
use std::time::Instant;
use time::OffsetDateTime;

fn domain(value: String) -> Indicator {
    let mut i = Indicator::new(
        IndicatorKind::Domain { exact: false },
        value,
        OffsetDateTime::now_utc(),
    );
    i.tlp = Tlp::Amber;
    i.confidence = 80;
    i
}

fn dns_event(org_id: &str, name: String) -> Event {
    Event {
        id: "e".into(),
        org_id: org_id.into(),
        received: 0,
        body: EventBody {
            time: Some(0),
            class: OcsfClass::DnsActivity,
            source: "bench".into(),
            fields: Normalized {
                dns_query: Some(name),
                ..Default::default()
            },
            raw: Default::default(),
        },
    }
}

fn profile(name: &str) -> OrgProfile {
    NewOrg {
        slug: "x".into(),
        name: name.into(),
        ..Default::default()
    }
    .validate()
    .expect("valid profile")
    .1
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let m: usize = args.next().map_or(Ok(1_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}", dir.path().join("b.db").display())).await?;
    let op = AuditActor::local_operator();
    let root = store.bootstrap_root(&op, "soc", &profile("SOC")).await?;
    let member = store
        .org_create(&op, &root, "m", OrgKind::Member, &profile("M"))
        .await?;
    let org = member.id.to_string();

    let t = Instant::now();
    for start in (0..n).step_by(100_000) {
        let batch: Vec<Indicator> = (start..(start + 100_000).min(n))
            .map(|i| domain(format!("b{i}.bench.example")))
            .collect();
        store.intel_upsert(&op, &root, &batch, &[], "bench").await?;
    }
    eprintln!(
        "imported {n} indicators in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let matcher = IntelMatcher::new(IntelSnapshot::load(&store).await?);
    let full = t.elapsed();
    eprintln!("full load: {:.2} s", full.as_secs_f64());

    let mut enforced = vec![];
    for round in 0..5 {
        let batch: Vec<Indicator> = (0..m)
            .map(|i| domain(format!("p{round}-{i}.new.example")))
            .collect();
        store.intel_upsert(&op, &root, &batch, &[], "bench").await?;
        let t = Instant::now();
        let changed = matcher.reload_if_changed(&store).await?;
        let took = t.elapsed();
        let view = matcher.view();
        let mut out = vec![];
        view.evaluate(
            &dns_event(&org, format!("www.p{round}-7.new.example")),
            &mut out,
        );
        if !changed || out.len() != 1 {
            return Err(format!("round {round}: the new indicator does not match").into());
        }
        eprintln!(
            "round {round}: +{m} indicators enforced in {:.0} ms (patch of {} rows)",
            took.as_secs_f64() * 1000.0,
            view.patch_rows()
        );
        enforced.push(took.as_secs_f64());
    }

    // Matching with the patch in place: 1% of queries hit.
    let view = matcher.view();
    let events: Vec<Event> = (0..10_000)
        .map(|i| {
            let name = if i % 100 == 0 {
                format!("www.b{}.bench.example", i * 7 % n.max(1))
            } else {
                format!("host{i}.benign.org")
            };
            dns_event(&org, name)
        })
        .collect();
    let mut out = vec![];
    let rounds = 2_000_000;
    let t = Instant::now();
    for i in 0..rounds {
        out.clear();
        view.evaluate(&events[i % events.len()], &mut out);
    }
    let rate = rounds as f64 / t.elapsed().as_secs_f64();
    enforced.sort_by(f64::total_cmp);
    println!(
        "{n} indicators: a change of {m} enforced in {:.0}-{:.0} ms by a patch (full reload {:.2} s); {rate:.0} events/s on one thread with the patch",
        enforced[0] * 1000.0,
        enforced[enforced.len() - 1] * 1000.0,
        full.as_secs_f64()
    );
    Ok(())
}
