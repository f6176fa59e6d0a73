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
    };
    let files = archive.part_files_since(request.org_ids.as_deref(), request.since);
    match &files {
        Ok(files) => {
            job.files_total = files.len() as u64;
            job.bytes_total = files.iter().map(|(_, n)| n).sum();
        }
        Err(e) => {
            job.state = HuntState::Failed;
            job.error = Some(e.to_string());
        }
    }
    {
        let (files_total, bytes_total, state, error) = (
            job.files_total,
            job.bytes_total,
            job.state,
            job.error.clone(),
        );
        hunts.update(&id, |j| {
            j.files_total = files_total;
            j.bytes_total = bytes_total;
            j.state = state;
            j.error = error;
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
            let mut finding_buf = vec![];
            let result = archive.scan(
                request.org_ids.as_deref(),
                request.since,
                |event| {
                    finding_buf.clear();
                    engine.evaluate(event, &mut finding_buf);
                    let mut found = found.borrow_mut();
                    for f in finding_buf.drain(..) {
                        found.push((f, event.org_id.clone(), event.id.clone(), event.time()));
                    }
                },
                |r| {
                    let n = found.borrow().len() as u64;
                    hunts.update(&id, |j| {
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
    let stats = DetectionStats::default();
    record_all(store, &detections, config, &stats, &mut []).await;
    for ((org, time), ids) in sightings {
        if let Err(e) = store.intel_sighted(&ids, &org, time).await {
            tracing::warn!(error = %e, "cannot record indicator sightings of a retro-hunt");
        }
    }
    let alerts = stats
        .alerts_opened
        .load(std::sync::atomic::Ordering::Relaxed)
        + stats
            .alerts_grouped
            .load(std::sync::atomic::Ordering::Relaxed);
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
