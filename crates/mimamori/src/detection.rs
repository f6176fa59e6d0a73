//! Wiring of streaming detection and the intel hub: which engines run,
//! with which settings.

use crate::config::Config;
use anyhow::Context;
use mimamori_pipeline::hub::IntelHub;
use mimamori_pipeline::intel::{IntelMatcher, IntelSnapshot};
use mimamori_pipeline::sigma::SigmaEngine;
use mimamori_pipeline::{DetectionConfig, DetectionConsumer, Engine};
use mimamori_store::{CampaignPolicy, Store};
use std::sync::Arc;

/// Detection settings from the configuration.
pub fn detection_config(cfg: &Config) -> DetectionConfig {
    let d = &cfg.detection;
    DetectionConfig {
        group_window_ms: i64::from(d.group_minutes.max(1)) * 60_000,
        campaigns: CampaignPolicy {
            min_orgs: d.campaign_min_orgs.max(1),
            window_ms: i64::from(d.campaign_window_hours.max(1)) * 3_600_000,
        },
    }
}

/// The indicator matcher, loaded from the store, kept current by a
/// watcher that polls for changes every 500 ms.
pub async fn matcher(store: &Store) -> anyhow::Result<IntelMatcher> {
    let started = std::time::Instant::now();
    let snapshot = IntelSnapshot::load(store)
        .await
        .context("cannot load the indicators")?;
    tracing::info!(
        indicators = snapshot.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "indicator matcher loaded"
    );
    let matcher = IntelMatcher::new(snapshot);
    mimamori_pipeline::intel::watch(
        matcher.clone(),
        store.clone(),
        std::time::Duration::from_millis(500),
    );
    Ok(matcher)
}

/// The detection consumer for the ingest pipeline, with every configured
/// engine.
pub async fn consumer(
    cfg: &Config,
    store: &Store,
    matcher: &IntelMatcher,
) -> anyhow::Result<DetectionConsumer> {
    let mut engines: Vec<Box<dyn Engine>> = vec![Box::new(
        matcher.engine_refreshing(store.clone(), tokio::runtime::Handle::current()),
    )];
    if !cfg.detection.sigma_rules.is_empty() {
        let dirs = cfg.detection.sigma_rules.clone();
        let sigma = tokio::task::spawn_blocking(move || SigmaEngine::load(&dirs))
            .await?
            .context("cannot load the Sigma rules of [detection] sigma_rules")?;
        engines.push(Box::new(sigma));
    }
    Ok(DetectionConsumer::new(
        engines,
        store.clone(),
        tokio::runtime::Handle::current(),
        detection_config(cfg),
    ))
}

/// The intel hub the API serves.
pub fn hub(
    cfg: &Config,
    store: &Store,
    matcher: IntelMatcher,
    archive: Option<mimamori_ingest::archive::Archive>,
) -> anyhow::Result<IntelHub> {
    let schemas = Some(Arc::new(cfg.intel.schemas()?));
    Ok(IntelHub {
        store: store.clone(),
        matcher,
        hunts: Default::default(),
        archive,
        schemas,
        config: detection_config(cfg),
        retro_days: cfg.detection.retro_hunt_days,
    })
}
