//! Feed subscriptions: each org's feeds are polled on their interval with
//! conditional requests (ETag / If-Modified-Since), inflated under the
//! decompression-bomb limits, parsed in their format and imported through
//! the hub (so the matcher reloads and a retro-hunt starts). Every poll's
//! outcome is kept on the feed (status, error, count).

use crate::hub::IntelHub;
use mimamori_fetch::{FetchPolicy, Fetcher};
use mimamori_intel::{
    import_list, import_misp_event, import_stix, import_taxii_envelope, inflate, ImportBatch,
    InflateLimits, ListFormat, ListOptions, MispOptions, Provenance, StixOptions, Tlp,
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
            if hub.store.is_closed() {
                break;
            }
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

/// The media type of TAXII 2.1 requests and answers.
const TAXII_MEDIA_TYPE: &str = "application/taxii+json;version=2.1";

/// Most pages one poll of a TAXII feed reads; the next poll goes on from
/// where this one stopped (its cursor is saved with what was imported).
pub const MAX_TAXII_PAGES: usize = 100;

/// What a download brought.
enum Download {
    NotModified,
    Fetched {
        /// Boxed: an import batch is large beside `NotModified`.
        batch: Box<ImportBatch>,
        etag: Option<String>,
        /// `Last-Modified`, or a TAXII feed's added-after cursor.
        last_modified: Option<String>,
    },
}

/// One poll: a conditional GET (or the new pages of a TAXII collection)
/// and the import.
pub async fn poll(hub: &IntelHub, http: &Fetcher, feed: &Feed) -> FeedPoll {
    poll_pages(hub, http, feed, MAX_TAXII_PAGES).await
}

/// [`poll`], reading at most `max_pages` pages of a TAXII feed (the rest
/// on the next poll).
pub async fn poll_pages(hub: &IntelHub, http: &Fetcher, feed: &Feed, max_pages: usize) -> FeedPoll {
    let mut prov = Provenance::new(
        format!("feed:{}", feed.name),
        time::OffsetDateTime::now_utc(),
    );
    prov.tlp = Tlp::parse_label(&feed.tlp).unwrap_or_default();
    prov.confidence = feed.confidence.clamp(0, 100) as u8;
    prov.subdomains = feed.subdomains;
    let download = if feed.format == "taxii" {
        download_taxii(hub, http, feed, &prov, max_pages).await
    } else {
        download_document(hub, http, feed, &prov).await
    };
    let (total, etag, last_modified) = match download {
        Ok(Download::NotModified) => {
            return FeedPoll {
                status: "not-modified",
                error: None,
                etag: None,
                last_modified: None,
                count: None,
            }
        }
        Ok(Download::Fetched {
            batch,
            etag,
            last_modified,
        }) => (batch, etag, last_modified),
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

/// Reads a response body, at most [`MAX_FEED_BYTES`] of it.
async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_large = || format!("the feed is larger than {MAX_FEED_BYTES} bytes");
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_FEED_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > MAX_FEED_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(mimamori_fetch::describe(&e)),
        }
    }
}

fn header_of(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A feed that is one document: a conditional GET, inflated and parsed.
async fn download_document(
    hub: &IntelHub,
    http: &Fetcher,
    feed: &Feed,
    prov: &Provenance,
) -> Result<Download, String> {
    let mut req = http.http().get(&feed.url);
    if let Some(a) = &feed.auth_header {
        req = req.header("authorization", a);
    }
    if let Some(e) = &feed.etag {
        req = req.header("if-none-match", e);
    }
    if let Some(m) = &feed.last_modified {
        req = req.header("if-modified-since", m);
    }
    let resp = http.send(req).await.map_err(|e| e.to_string())?;
    if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Download::NotModified);
    }
    if !resp.status().is_success() {
        return Err(format!("{} answered {}", feed.url, resp.status()));
    }
    let (etag, last_modified) = (header_of(&resp, "etag"), header_of(&resp, "last-modified"));
    let body = read_bounded(resp).await?;
    // gzip or zip payloads are inflated under ratio and size limits.
    let docs = inflate(&feed.name, &body, &InflateLimits::default()).map_err(|e| e.to_string())?;
    let mut batch = ImportBatch::default();
    for (_, doc) in &docs {
        for i in parse(hub, &feed.format, prov.clone(), doc)?.indicators {
            batch.push(i);
        }
    }
    Ok(Download::Fetched {
        batch: Box::new(batch),
        etag,
        last_modified,
    })
}

/// The objects URL of a TAXII 2.1 collection given by its own URL
/// (`…/collections/{id}/`) or by its objects URL.
fn taxii_objects_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/objects") {
        format!("{base}/")
    } else {
        format!("{base}/objects/")
    }
}

/// A TAXII 2.1 collection (TAXII 2.1 section 5.4): the objects added since
/// the last poll (`added_after`, from the server's
/// `X-TAXII-Date-Added-Last`), page by page (`next`, or `added_after`
/// again where the server pages by date), each page an envelope imported
/// like a STIX bundle.
///
/// A poll that stops at `max_pages` while the server still pages with
/// `next` keeps its query (`last_modified` stays that query's
/// `added_after`) and saves the `next` token in the feed's `etag`, so the
/// next poll resumes exactly there: many objects can share one date added
/// (a bulk import), and asking `added_after` the newest date seen would
/// skip the rest of them.
async fn download_taxii(
    hub: &IntelHub,
    http: &Fetcher,
    feed: &Feed,
    prov: &Provenance,
    max_pages: usize,
) -> Result<Download, String> {
    let schemas = stix_schemas(hub)?;
    let url = taxii_objects_url(&feed.url);
    let opts = StixOptions::new(prov.clone());
    // `cursor`: the newest date added seen, saved for the next poll.
    // `query_after`: the `added_after` of the current request, fixed while
    // the server pages with `next` (which continues that same query).
    let mut cursor = feed.last_modified.clone();
    let mut query_after = cursor.clone();
    // An unfinished poll's `next` (an empty etag: none).
    let mut next: Option<String> = feed.etag.clone().filter(|n| !n.is_empty());
    let mut resuming = next.is_some();
    let mut batch = ImportBatch::default();
    let mut pages = 0;
    loop {
        if pages == max_pages.max(1) {
            // Stopped early: resume this query next time, or (paging by
            // date) from the newest date seen.
            return Ok(Download::Fetched {
                batch: Box::new(batch),
                etag: Some(next.clone().unwrap_or_default()),
                last_modified: if next.is_some() { query_after } else { cursor },
            });
        }
        pages += 1;
        let mut req = http.http().get(&url).header("accept", TAXII_MEDIA_TYPE);
        if let Some(a) = &feed.auth_header {
            req = req.header("authorization", a);
        }
        let mut query = vec![];
        if let Some(a) = &query_after {
            query.push(("added_after", a.as_str()));
        }
        if let Some(n) = &next {
            query.push(("next", n.as_str()));
        }
        let resp = http
            .send(req.query(&query))
            .await
            .map_err(|e| e.to_string())?;
        if resuming && resp.status().is_client_error() {
            // The saved `next` is no longer the server's (expired, or the
            // server restarted): ask the same query again from its start.
            tracing::info!(feed = %feed.name, status = %resp.status(), "TAXII feed: the saved page token was refused; restarting the query");
            resuming = false;
            next = None;
            continue;
        }
        resuming = false;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        // A login page or a proxy's error page is not an empty envelope.
        let media = header_of(&resp, "content-type").unwrap_or_default();
        if !(media.starts_with("application/taxii+json") || media.starts_with("application/json")) {
            return Err(format!(
                "{url} answered {media:?}, not a TAXII 2.1 envelope ({TAXII_MEDIA_TYPE})"
            ));
        }
        let added_last = header_of(&resp, "x-taxii-date-added-last");
        let body = read_bounded(resp).await?;
        let page = import_taxii_envelope(&body, schemas, &opts)
            .map_err(|e| format!("{url}: not a TAXII 2.1 envelope: {e}"))?;
        for i in page.batch.indicators {
            batch.push(i);
        }
        let moved = added_last.is_some() && added_last != cursor;
        if moved {
            cursor = added_last;
        }
        if !page.more {
            break;
        }
        match page.next {
            Some(n) => next = Some(n),
            // Paged by date alone: the next page is what came after this
            // page's last object.
            None if moved => {
                next = None;
                query_after = cursor.clone();
            }
            None => {
                return Err(format!(
                    "{url} says it has more objects but gives neither `next` nor a new X-TAXII-Date-Added-Last"
                ))
            }
        }
    }
    Ok(Download::Fetched {
        batch: Box::new(batch),
        // Done: no unfinished paging to resume.
        etag: Some(String::new()),
        last_modified: cursor,
    })
}

/// The schemas STIX and TAXII feeds are validated with.
fn stix_schemas(hub: &IntelHub) -> Result<&mimamori_intel::StixSchemas, String> {
    hub.schemas
        .as_deref()
        .ok_or_else(|| "STIX and TAXII feeds need STIX schemas ([intel] stix_schemas)".into())
}

fn parse(
    hub: &IntelHub,
    format: &str,
    prov: Provenance,
    doc: &[u8],
) -> Result<ImportBatch, String> {
    match format {
        "stix" => {
            import_stix(doc, stix_schemas(hub)?, &StixOptions::new(prov)).map_err(|e| e.to_string())
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
