//! Policy zones read from files (RPZ zones, block and allow lists), read
//! again when they change: the file's modification time, size and inode
//! are checked every [`POLL`], and every file is read again on SIGHUP and
//! on `POST /api/v1/dns/rpz/reload`.
//!
//! A zone is replaced only by a complete, valid parse of its file: a file
//! that does not parse (or vanished) leaves the zone in force and logs
//! the precise error once per change of the file; a file that changed
//! while it was read is read again on the next check. The caller then
//! builds the new policy aside and swaps it in whole (`PolicyHandle::set`),
//! so queries never see a half-built one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use mimamori_dns::{Action, Zone};

/// How often the files are checked for changes.
pub const POLL: Duration = Duration::from_millis(250);

/// What a file holds.
#[derive(Clone)]
pub enum Kind {
    /// An RPZ zone; relative names are relative to `origin` until the
    /// file's own `$ORIGIN`.
    Rpz { origin: String },
    /// Domains never blocked.
    Allow,
    /// Domains blocked: NXDOMAIN, or the sinkhole's answer.
    Block { sinkhole: Option<Action> },
}

impl Kind {
    fn what(&self) -> &'static str {
        match self {
            Kind::Rpz { .. } => "RPZ zone",
            Kind::Allow => "allowlist",
            Kind::Block { .. } => "blocklist",
        }
    }
}

/// A file as seen: a change of any of these means it is read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// What reading a file again did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not changed since it was last read.
    Unchanged,
    /// Replaced: the zone's new counts.
    Reloaded { names: usize, wildcards: usize },
    /// Not replaced (the zone in force is kept): why.
    Failed(String),
}

/// One file's [`Outcome`].
#[derive(Debug, Clone)]
pub struct Reload {
    pub file: PathBuf,
    /// The zone's name (an RPZ zone's apex, else the file).
    pub zone: String,
    pub outcome: Outcome,
}

/// A zone from a file, replaced when the file changes.
pub struct FileZone {
    path: PathBuf,
    kind: Kind,
    zone: Mutex<Arc<Zone>>,
    /// The file as last read, parsed or not.
    seen: Mutex<Option<Stamp>>,
    /// The file was missing at the last check (logged once).
    missing: AtomicBool,
}

impl FileZone {
    /// Reads the file; an error here is fatal (at start).
    pub fn open(path: &Path, kind: Kind) -> anyhow::Result<FileZone> {
        let what = kind.what();
        let st = stamp(path).with_context(|| format!("{what} {}", path.display()))?;
        let text =
            std::fs::read_to_string(path).with_context(|| format!("{what} {}", path.display()))?;
        let zone =
            parse(path, &kind, &text).with_context(|| format!("{what} {}", path.display()))?;
        let s = zone.stats();
        tracing::info!(zone = %zone.name(), file = %path.display(), names = s.qname_triggers,
            wildcards = s.wildcard_triggers, skipped = s.skipped, "DNS policy zone loaded");
        Ok(FileZone {
            path: path.to_path_buf(),
            kind,
            zone: Mutex::new(Arc::new(zone)),
            seen: Mutex::new(Some(st)),
            missing: AtomicBool::new(false),
        })
    }

    /// The zone in force.
    pub fn current(&self) -> Arc<Zone> {
        self.zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn reload_result(&self, outcome: Outcome) -> Reload {
        Reload {
            file: self.path.clone(),
            zone: self.current().name().to_string(),
            outcome,
        }
    }

    /// Reads the file again when it changed since it was last read (or
    /// always, with `force`) and replaces the zone when it parses.
    /// Blocking (file I/O and parsing).
    pub fn reload(&self, force: bool) -> Reload {
        let what = self.kind.what();
        let file = self.path.display();
        let before = match stamp(&self.path) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("{what} {file}: {e}; the zone in force is kept");
                if !self.missing.swap(true, Ordering::Relaxed) || force {
                    tracing::error!("{msg}");
                }
                return self.reload_result(Outcome::Failed(msg));
            }
        };
        self.missing.store(false, Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !force && *seen == Some(before) {
            return self.reload_result(Outcome::Unchanged);
        }
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("{what} {file}: {e}; the zone in force is kept");
                tracing::error!("{msg}");
                *seen = Some(before);
                return self.reload_result(Outcome::Failed(msg));
            }
        };
        if stamp(&self.path).ok() != Some(before) {
            // Still being written: the next check reads it whole.
            tracing::debug!(file = %file, "policy file changed while read; reading it again");
            return self.reload_result(Outcome::Unchanged);
        }
        *seen = Some(before);
        drop(seen);
        match parse(&self.path, &self.kind, &text) {
            Ok(zone) => {
                let s = zone.stats();
                let (names, wildcards) = (s.qname_triggers, s.wildcard_triggers);
                tracing::info!(zone = %zone.name(), file = %file, names, wildcards,
                    skipped = s.skipped, "DNS policy zone reloaded");
                *self.zone.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(zone);
                self.reload_result(Outcome::Reloaded { names, wildcards })
            }
            Err(e) => {
                let msg = format!("{what} {file}: {e}; the zone in force is kept");
                tracing::error!("{msg}");
                self.reload_result(Outcome::Failed(msg))
            }
        }
    }
}

fn parse(path: &Path, kind: &Kind, text: &str) -> Result<Zone, mimamori_dns::PolicyError> {
    let name = path.display().to_string();
    Ok(match kind {
        Kind::Rpz { origin } => Zone::parse_rpz(origin, text)?,
        Kind::Allow => Zone::from_list(&name, text, &Action::Passthru)?,
        Kind::Block { sinkhole } => {
            let z = Zone::from_list(&name, text, &Action::NxDomain)?;
            match sinkhole {
                Some(a) => z.with_action_override(a.clone()),
                None => z,
            }
        }
    })
}

/// Reads every file of `zones` again (see [`FileZone::reload`]) off the
/// async threads.
pub async fn reload_all(zones: Vec<Arc<FileZone>>, force: bool) -> Vec<Reload> {
    match tokio::task::spawn_blocking(move || {
        zones.iter().map(|z| z.reload(force)).collect::<Vec<_>>()
    })
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "policy file reload panicked");
            vec![]
        }
    }
}

/// Whether any file was replaced.
pub fn any_reloaded(r: &[Reload]) -> bool {
    r.iter()
        .any(|r| matches!(r.outcome, Outcome::Reloaded { .. }))
}

/// Checks `zones` every [`POLL`] and reads them all again on SIGHUP;
/// `on_change` after any was replaced. Without files SIGHUP is still
/// taken (and does nothing) rather than ending the process.
pub fn watch(
    zones: Vec<Arc<FileZone>>,
    on_change: Arc<dyn Fn() + Send + Sync>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGHUP; policy files are still checked for changes");
                None
            }
        };
        loop {
            let force = tokio::select! {
                _ = tokio::time::sleep(POLL) => false,
                Some(()) = async {
                    match hup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => true,
            };
            if force {
                tracing::info!(
                    files = zones.len(),
                    "SIGHUP: reading the DNS policy files again"
                );
            }
            if zones.is_empty() {
                continue;
            }
            let r = reload_all(zones.clone(), force).await;
            if any_reloaded(&r) {
                on_change();
            }
        }
    })
}
