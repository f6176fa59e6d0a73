//! Feed subscriptions: each org's feeds are polled on their interval with
//! conditional requests (ETag / If-Modified-Since), inflated under the
//! decompression-bomb limits, parsed in their format and imported through
//! the hub (so the matcher reloads and a retro-hunt starts). Every poll's
//! outcome is kept on the feed (status, error, count).

use crate::hub::IntelHub;
use mimamori_fetch::{FetchPolicy, Fetcher};
use mimamori_intel::{
    import_list, import_misp_event, import_stix, inflate, ImportBatch, InflateLimits, ListFormat,
    ListOptions, MispOptions, Provenance, StixOptions, Tlp,
};
use mimamori_store::{AuditActor, Feed, FeedPoll};
use std::time::Duration;

/// Largest feed download (before inflation).
pub const MAX_FEED_BYTES: usize = 64 * 1024 * 1024;

/// Polls every due feed once; returns how many were polled.
pub async fn poll_due(hub: &IntelHub, http: &Fetcher) -> Result<usize, mimamori_store::StoreError> {
    let due = hub.store.feeds_due(mimamori_core::now_millis()).await?;
    let n = due.len();
    for feed in due {
        let outcome = poll(hub, http, &feed).await;
        if let Some(e) = &outcome.error {
            tracing::warn!(feed = %feed.name, url = %feed.url, error = %e, "feed poll failed");
        }
        hub.store.feed_polled(&feed.id, &outcome).await?;
    }
    Ok(n)
}

/// Polls feeds until the task is aborted.
pub fn run(hub: IntelHub, every: Duration, policy: FetchPolicy) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = match client(policy) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "feed polling disabled: cannot build the HTTP client");
                return;
            }
        };
        loop {
            if let Err(e) = poll_due(&hub, &http).await {
                tracing::error!(error = %e, "cannot poll feeds");
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The feed client: internal addresses refused unless `policy` allows them
/// (after DNS resolution and on every redirect).
pub fn client(policy: FetchPolicy) -> Result<Fetcher, mimamori_fetch::FetchError> {
    Fetcher::new(
        policy,
        reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("mimamori/", env!("CARGO_PKG_VERSION"))),
    )
}

fn failed(e: impl std::fmt::Display) -> FeedPoll {
    FeedPoll {
        status: "error",
        error: Some(e.to_string()),
        etag: None,
        last_modified: None,
        count: None,
    }
}

/// One conditional GET and import.
pub async fn poll(hub: &IntelHub, http: &Fetcher, feed: &Feed) -> FeedPoll {
    let mut req = http.http().get(&feed.url);
    if let Some(e) = &feed.etag {
        req = req.header("if-none-match", e);
    }
    if let Some(m) = &feed.last_modified {
        req = req.header("if-modified-since", m);
    }
    let resp = match http.send(req).await {
        Ok(r) => r,
        Err(e) => return failed(e),
    };
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return FeedPoll {
            status: "not-modified",
            error: None,
            etag: None,
            last_modified: None,
            count: None,
        };
    }
    if !resp.status().is_success() {
        return failed(format!("{} answered {}", feed.url, resp.status()));
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_FEED_BYTES as u64)
    {
        return failed(format!("the feed is larger than {MAX_FEED_BYTES} bytes"));
    }
    let mut body = Vec::new();
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_FEED_BYTES {
                    return failed(format!("the feed is larger than {MAX_FEED_BYTES} bytes"));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => return failed(mimamori_fetch::describe(&e)),
        }
    }
    // gzip or zip payloads are inflated under ratio and size limits.
    let docs = match inflate(&feed.name, &body, &InflateLimits::default()) {
        Ok(d) => d,
        Err(e) => return failed(e),
    };
    let owner = match hub
        .store
        .org_get(
            // Every org path starts with "/": the poller serves the whole tree.
            &mimamori_core::Scope::Subtree(mimamori_core::OrgPath(String::from("/"))),
            &feed.owner_org_id,
        )
        .await
    {
        Ok(o) => o,
        Err(e) => return failed(e),
    };
    let mut prov = Provenance::new(
        format!("feed:{}", feed.name),
        time::OffsetDateTime::now_utc(),
    );
    prov.tlp = Tlp::parse_label(&feed.tlp).unwrap_or_default();
    prov.confidence = feed.confidence.clamp(0, 100) as u8;
    prov.subdomains = feed.subdomains;
    let mut total = ImportBatch::default();
    for (_, doc) in &docs {
        let batch = match parse(hub, &feed.format, prov.clone(), doc) {
            Ok(b) => b,
            Err(e) => return failed(e),
        };
        for i in batch.indicators {
            total.push(i);
        }
    }
    let actor = AuditActor {
        actor: format!("feed:{}", feed.id),
        role: None,
        org_id: Some(feed.owner_org_id.clone()),
        remote_addr: None,
    };
    match hub
        .import(
            &actor,
            &owner,
            &total,
            &[],
            &format!("feed:{}", feed.name),
            true,
        )
        .await
    {
        Ok(_) => FeedPoll {
            status: "imported",
            error: None,
            etag,
            last_modified,
            count: Some(total.indicators.len() as i64),
        },
        Err(e) => failed(e),
    }
}

fn parse(
    hub: &IntelHub,
    format: &str,
    prov: Provenance,
    doc: &[u8],
) -> Result<ImportBatch, String> {
    match format {
        "stix" => {
            let schemas = hub
                .schemas
                .as_deref()
                .ok_or("STIX feeds need [intel] stix_schemas")?;
            import_stix(doc, schemas, &StixOptions::new(prov)).map_err(|e| e.to_string())
        }
        "misp" => import_misp_event(doc, &MispOptions::new(prov)).map_err(|e| e.to_string()),
        "plain" | "hosts" | "csv" => {
            let text = std::str::from_utf8(doc).map_err(|e| format!("not UTF-8 text: {e}"))?;
            let f = match format {
                "plain" => ListFormat::Plain,
                "hosts" => ListFormat::Hosts,
                _ => ListFormat::Csv,
            };
            Ok(import_list(text, f, &ListOptions::new(prov)))
        }
        other => Err(format!("unknown feed format {other:?}")),
    }
}
