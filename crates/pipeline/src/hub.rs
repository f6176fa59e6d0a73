//! The intel hub's write path: an import batch is stored, the matcher
//! reloads at once (so detection and Protective DNS apply it within a
//! second), and a retro-hunt over the past days of every protected org's
//! archived events starts for the indicators that are new or changed.

use crate::intel::{IntelMatcher, IntelSnapshot, SnapshotEngine};
use crate::retro::{hunt, HuntRequest, Hunts};
use crate::DetectionConfig;
use mimamori_core::Org;
use mimamori_ingest::archive::Archive;
use mimamori_intel::{ImportBatch, StixSchemas};
use mimamori_store::{AuditActor, Sharing, Store, StoreError, UpsertReport};
use std::sync::Arc;

/// Everything the intel API needs, shared by the handlers.
#[derive(Clone)]
pub struct IntelHub {
    pub store: Store,
    pub matcher: IntelMatcher,
    pub hunts: Hunts,
    /// The event archive, when this server ingests (retro-hunts need it).
    pub archive: Option<Archive>,
    /// The OASIS STIX 2.1 schemas, when configured (STIX import needs them).
    pub schemas: Option<Arc<StixSchemas>>,
    pub config: DetectionConfig,
    /// Days of archived events a retro-hunt covers.
    pub retro_days: u32,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct Imported {
    pub report: UpsertReport,
    /// The retro-hunt started for the new and changed indicators.
    pub hunt_id: Option<String>,
}

impl IntelHub {
    /// Stores `batch` for `owner`, reloads the matcher and starts a
    /// retro-hunt over what changed (in the background; see [`Hunts`]).
    pub async fn import(
        &self,
        actor: &AuditActor,
        owner: &Org,
        batch: &ImportBatch,
        share_with: &[String],
        source: &str,
        retro: bool,
    ) -> Result<Imported, StoreError> {
        let sharing = Sharing {
            orgs: share_with.to_vec(),
            groups: vec![],
        };
        self.import_with(actor, owner, batch, &sharing, source, retro)
            .await
    }

    /// [`IntelHub::import`] sharing AMBER indicators with orgs and sharing
    /// groups.
    pub async fn import_with(
        &self,
        actor: &AuditActor,
        owner: &Org,
        batch: &ImportBatch,
        sharing: &Sharing,
        source: &str,
        retro: bool,
    ) -> Result<Imported, StoreError> {
        let report = self
            .store
            .intel_upsert_with(actor, owner, &batch.indicators, sharing, source)
            .await?;
        self.after_change(owner, &report, source, retro).await
    }

    /// After indicators changed outside an import (an accepted report
    /// proposal): reload the matcher, retro-hunt what changed.
    pub async fn after_change(
        &self,
        owner: &Org,
        report: &UpsertReport,
        source: &str,
        retro: bool,
    ) -> Result<Imported, StoreError> {
        let report = report.clone();
        if let Err(e) = self.matcher.reload_if_changed(&self.store).await {
            tracing::error!(error = %e, "cannot reload the matcher after an import; the watcher will retry");
        }
        let hunt_id = if retro && !report.changed_ids.is_empty() {
            self.retro_hunt(owner, &report.changed_ids, source).await?
        } else {
            None
        };
        Ok(Imported { report, hunt_id })
    }

    /// Starts a retro-hunt for the given indicator rows; returns the job id.
    pub async fn retro_hunt(
        &self,
        owner: &Org,
        indicator_ids: &[String],
        what: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(archive) = self.archive.clone() else {
            return Ok(None);
        };
        let active = self.store.intel_active_among(indicator_ids).await?;
        if active.is_empty() {
            return Ok(None);
        }
        let n = active.len();
        let snapshot = IntelSnapshot::build(
            active,
            self.matcher.snapshot_org_paths(),
            Default::default(),
        );
        let request = HuntRequest {
            what: format!("{n} new or changed indicators from {what}"),
            org_ids: None,
            owner_org_id: Some(owner.id.to_string()),
            since: mimamori_core::now_millis() - i64::from(self.retro_days) * 86_400_000,
        };
        let id = self.hunts.begin(&request);
        let (hunts, store, config, job) = (
            self.hunts.clone(),
            self.store.clone(),
            self.config,
            id.clone(),
        );
        tokio::spawn(async move {
            hunt(
                &hunts,
                job,
                &archive,
                &store,
                Box::new(SnapshotEngine(Arc::new(snapshot))),
                request,
                &config,
            )
            .await;
        });
        Ok(Some(id))
    }
}
