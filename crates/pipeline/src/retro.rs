//! Retro-hunting: run an engine over the archived events of the past days
//! (every org, or some) and raise retro alerts for what it finds. Used when
//! new indicators arrive (only those indicators are hunted) and on demand.
//!
//! Hunts run as jobs: [`Hunts`] keeps each one's progress (files and bytes
//! read of the total, events, findings, alerts) and timing, so the API and
//! CLI can show them while they run.

use crate::{group, record_all, DetectionConfig, DetectionStats, Engine};
use mimamori_ingest::archive::Archive;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where a hunt job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HuntState {
    Running,
    Done,
    Failed,
}

/// One hunt job's progress, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HuntJob {
    pub id: String,
    /// What is hunted, for people: "12 new indicators", "rule …".
    pub what: String,
    /// The orgs hunted (`None`: every org).
    pub org_ids: Option<Vec<String>>,
    pub since: i64,
    pub state: HuntState,
    pub files_total: u64,
    pub files_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    pub events: u64,
    pub findings: u64,
    pub alerts: u64,
    pub started_at: i64,
    pub elapsed_ms: u64,
    pub error: Option<String>,
    /// The org whose intel started the hunt (absent: an operator's hunt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_org_id: Option<String>,
    /// What the hunt read and found in each org: callers who do not see
    /// every org hunted are shown only their orgs' part (see
    /// [`HuntJob::view`]).
    #[serde(skip)]
    pub per_org: BTreeMap<String, OrgCounts>,
}

/// One org's part of a hunt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgCounts {
    pub files: u64,
    pub bytes: u64,
    pub events: u64,
    pub findings: u64,
    pub alerts: u64,
}

impl HuntJob {
    /// The job as a caller who sees only the orgs `visible` accepts may
    /// see it: the org list and every count limited to those orgs (the
    /// progress of a running job as the same fraction of their part).
    pub fn view(&self, visible: &dyn Fn(&str) -> bool) -> HuntJob {
        let covered: Vec<String> = match &self.org_ids {
            Some(ids) => ids.clone(),
            None => self.per_org.keys().cloned().collect(),
        };
        if covered.iter().all(|o| visible(o)) && self.per_org.keys().all(|o| visible(o)) {
            return self.clone();
        }
        let mut v = self.clone();
        let mine: BTreeMap<String, OrgCounts> = self
            .per_org
            .iter()
            .filter(|(o, _)| visible(o))
            .map(|(o, c)| (o.clone(), c.clone()))
            .collect();
        let sum = |f: fn(&OrgCounts) -> u64| mine.values().map(f).sum::<u64>();
        v.org_ids = Some(covered.into_iter().filter(|o| visible(o)).collect());
        v.files_total = sum(|c| c.files);
        v.bytes_total = sum(|c| c.bytes);
        v.events = sum(|c| c.events);
        v.findings = sum(|c| c.findings);
        v.alerts = sum(|c| c.alerts);
        let fraction = if self.state == HuntState::Running && self.bytes_total > 0 {
            self.bytes_done as f64 / self.bytes_total as f64
        } else {
            1.0
        };
        v.files_done = (v.files_total as f64 * fraction) as u64;
        v.bytes_done = (v.bytes_total as f64 * fraction) as u64;
        v.per_org = mine;
        v
    }
}

/// The org an archive file belongs to (`…/org=ID/…`).
fn org_of(path: &std::path::Path) -> Option<String> {
    path.components().find_map(|c| {
        c.as_os_str()
            .to_str()
            .and_then(|s| s.strip_prefix("org="))
            .map(str::to_string)
    })
}

/// The hunt jobs of this process (the last 100 are kept).
#[derive(Clone, Default)]
pub struct Hunts {
    jobs: Arc<Mutex<Vec<HuntJob>>>,
}

const KEEP_JOBS: usize = 100;

impl Hunts {
    /// Every job, newest first.
    pub fn list(&self) -> Vec<HuntJob> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().rev().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<HuntJob> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().find(|j| j.id == id).cloned()
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut HuntJob)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = jobs.iter_mut().find(|j| j.id == id) {
            f(j);
        }
    }

    fn insert(&self, job: HuntJob) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.push(job);
        let extra = jobs.len().saturating_sub(KEEP_JOBS);
        jobs.drain(..extra);
    }
}

/// What a hunt covers.
#[derive(Debug, Clone)]
pub struct HuntRequest {
    pub what: String,
    pub org_ids: Option<Vec<String>>,
    /// Whose intel started it.
    pub owner_org_id: Option<String>,
    /// Events at or after this time (ms).
    pub since: i64,
}

impl Hunts {
    /// Registers a hunt about to run and returns its id, so a caller can
    /// answer with the id and run [`hunt`] in the background.
    pub fn begin(&self, request: &HuntRequest) -> String {
        let id = mimamori_core::new_id();
        self.insert(HuntJob {
            id: id.clone(),
            what: request.what.clone(),
            org_ids: request.org_ids.clone(),
            since: request.since,
            state: HuntState::Running,
            files_total: 0,
            files_done: 0,
            bytes_total: 0,
            bytes_done: 0,
            events: 0,
            findings: 0,
            alerts: 0,
            started_at: mimamori_core::now_millis(),
            elapsed_ms: 0,
            error: None,
            owner_org_id: request.owner_org_id.clone(),
            per_org: BTreeMap::new(),
        });
        id
    }
}

/// Runs `engine` over the archive as job `id` of `hunts` (from
/// [`Hunts::begin`]), records what it finds as retro alerts, and returns
/// the finished job. The archive scan runs on a blocking thread.
pub async fn hunt(
    hunts: &Hunts,
    id: String,
    archive: &Archive,
    store: &mimamori_store::Store,
    mut engine: Box<dyn Engine>,
    request: HuntRequest,
    config: &DetectionConfig,
) -> HuntJob {
    let started = Instant::now();
    let mut job = HuntJob {
        id: id.clone(),
        what: request.what.clone(),
        org_ids: request.org_ids.clone(),
        since: request.since,
        state: HuntState::Running,
        files_total: 0,
        files_done: 0,
        bytes_total: 0,
        bytes_done: 0,
        events: 0,
        findings: 0,
        alerts: 0,
        started_at: mimamori_core::now_millis(),
        elapsed_ms: 0,
        error: None,
        owner_org_id: request.owner_org_id.clone(),
        per_org: BTreeMap::new(),
    };
    let files = archive.part_files_since(request.org_ids.as_deref(), request.since);
    match &files {
        Ok(files) => {
            job.files_total = files.len() as u64;
            job.bytes_total = files.iter().map(|(_, n)| n).sum();
            for (path, n) in files {
                if let Some(org) = org_of(path) {
                    let c = job.per_org.entry(org).or_default();
                    c.files += 1;
                    c.bytes += n;
                }
            }
        }
        Err(e) => {
            job.state = HuntState::Failed;
            job.error = Some(e.to_string());
        }
    }
    {
        let (files_total, bytes_total, state, error, per_org) = (
            job.files_total,
            job.bytes_total,
            job.state,
            job.error.clone(),
            job.per_org.clone(),
        );
        hunts.update(&id, |j| {
            j.files_total = files_total;
            j.bytes_total = bytes_total;
            j.state = state;
            j.error = error;
            j.per_org = per_org;
        });
    }
    if job.state == HuntState::Failed {
        return job;
    }
    let scan = {
        let hunts = hunts.clone();
        let archive = archive.clone();
        let id = id.clone();
        tokio::task::spawn_blocking(move || {
            // Both closures below need the findings: the scan fills them,
            // the progress callback counts them.
            let found = std::cell::RefCell::new(vec![]);
            // Events and findings per org, for the per-org views.
            let per_org = std::cell::RefCell::new(BTreeMap::<String, (u64, u64)>::new());
            let mut finding_buf = vec![];
            let result = archive.scan(
                request.org_ids.as_deref(),
                request.since,
                |event| {
                    finding_buf.clear();
                    engine.evaluate(event, &mut finding_buf);
                    let mut found = found.borrow_mut();
                    {
                        let mut per_org = per_org.borrow_mut();
                        let c = match per_org.get_mut(&event.org_id) {
                            Some(c) => c,
                            None => per_org.entry(event.org_id.clone()).or_default(),
                        };
                        c.0 += 1;
                        c.1 += finding_buf.len() as u64;
                    }
                    for f in finding_buf.drain(..) {
                        found.push((f, event.org_id.clone(), event.id.clone(), event.time()));
                    }
                },
                |r| {
                    let n = found.borrow().len() as u64;
                    let counts = per_org.borrow().clone();
                    hunts.update(&id, |j| {
                        for (org, (events, findings)) in counts {
                            let c = j.per_org.entry(org).or_default();
                            c.events = events;
                            c.findings = findings;
                        }
                        j.files_done = r.files;
                        j.bytes_done = r.bytes;
                        j.events = r.events;
                        j.findings = n;
                        j.elapsed_ms = started.elapsed().as_millis() as u64;
                    });
                },
            );
            result.map(|r| (r, found.into_inner()))
        })
        .await
    };
    let finish = |state: HuntState, error: Option<String>, alerts: u64| {
        hunts.update(&id, |j| {
            j.state = state;
            j.error = error;
            j.alerts = alerts;
            j.elapsed_ms = started.elapsed().as_millis() as u64;
        });
        hunts.get(&id)
    };
    let (report, found) = match scan {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return finish(HuntState::Failed, Some(e.to_string()), 0).unwrap_or(job),
        Err(e) => return finish(HuntState::Failed, Some(e.to_string()), 0).unwrap_or(job),
    };
    let sightings = crate::sightings(&found);
    let detections = group(found, true);
    // Recorded org by org, to count each org's alerts.
    let mut by_org: BTreeMap<String, Vec<mimamori_store::Detection>> = BTreeMap::new();
    for d in &detections {
        by_org.entry(d.org_id.clone()).or_default().push(d.clone());
    }
    let mut alerts = 0;
    for (org, ds) in by_org {
        let stats = DetectionStats::default();
        record_all(store, &ds, config, &stats, &mut []).await;
        let n = stats
            .alerts_opened
            .load(std::sync::atomic::Ordering::Relaxed)
            + stats
                .alerts_grouped
                .load(std::sync::atomic::Ordering::Relaxed);
        alerts += n;
        hunts.update(&id, |j| j.per_org.entry(org).or_default().alerts = n);
    }
    for ((org, time), ids) in sightings {
        if let Err(e) = store.intel_sighted(&ids, &org, time).await {
            tracing::warn!(error = %e, "cannot record indicator sightings of a retro-hunt");
        }
    }
    tracing::info!(
        hunt = %id,
        what = %request.what,
        files = report.files,
        events = report.events,
        detections = detections.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "retro-hunt finished"
    );
    finish(HuntState::Done, None, alerts).unwrap_or(job)
}
