//! Load generator for `bench/ingest-http.sh`: sends DNS events as NDJSON to
//! `/ingest/v1/events` from several connections and reports events/s.
//!
//! usage: ingest_load URL TOKEN TOTAL_EVENTS [BATCH] [CONNECTIONS]

use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: ingest_load URL TOKEN TOTAL_EVENTS [BATCH=5000] [CONNECTIONS=4]");
        std::process::exit(2);
    }
    let url = format!("{}/ingest/v1/events?source=bench.dns", args[1]);
    let token = args[2].clone();
    let total: usize = args[3].parse().expect("TOTAL_EVENTS");
    let batch: usize = args
        .get(4)
        .map(|s| s.parse().expect("BATCH"))
        .unwrap_or(5000);
    let conns: usize = args
        .get(5)
        .map(|s| s.parse().expect("CONNECTIONS"))
        .unwrap_or(4);
    // Pre-build distinct bodies so generation costs nothing during the run.
    let bodies: Vec<bytes::Bytes> = (0..16)
        .map(|k| {
            let mut s = String::with_capacity(batch * 160);
            for i in 0..batch {
                s.push_str(&format!(
                    "{{\"time\":1764064800{:03},\"class\":\"dns_activity\",\"src_ip\":\"10.{}.{}.{}\",\"src_port\":{},\"dns_query\":\"host{}.zone{}.example.jp\",\"dns_qtype\":\"A\",\"dns_rcode\":\"NOERROR\"}}\n",
                    i % 1000, k, (i / 250) % 250, i % 250, 1024 + i % 60000, i, k
                ));
            }
            bytes::Bytes::from(s)
        })
        .collect();
    let batches = total.div_ceil(batch);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let retries = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..conns {
        let (url, token, bodies, next, retries) = (
            url.clone(),
            token.clone(),
            bodies.clone(),
            next.clone(),
            retries.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                loop {
                    let r = client
                        .post(&url)
                        .bearer_auth(&token)
                        .body(bodies[b % bodies.len()].clone())
                        .send()
                        .await
                        .expect("send");
                    match r.status().as_u16() {
                        200 => break,
                        429 | 503 => {
                            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        }
                        s => panic!("status {s}: {}", r.text().await.unwrap_or_default()),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = batches * batch;
    println!(
        "events={sent} seconds={secs:.2} events_per_sec={:.0} retries_429={}",
        sent as f64 / secs,
        retries.load(std::sync::atomic::Ordering::Relaxed)
    );
}
