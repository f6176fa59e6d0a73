//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The `mimamori` binary on `data_dir`, logging warnings only.
pub fn mimamori(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    c.arg("--data-dir")
        .arg(data_dir)
        .env("MIMAMORI_LOG", "warn");
    c
}

/// Runs `cmd`, failing the test (with its output) unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, failing the test unless it fails; returns its stderr.
pub fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} should have failed");
    String::from_utf8(out.stderr).unwrap()
}

/// Kills the child when dropped, so a failed test leaves no server behind
/// (an orphan would also hold the test harness's output open).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shared test corpora: `$MIMAMORI_CORPORA`, else `shared/corpora`
/// beside the repository.
pub fn corpora() -> PathBuf {
    if let Some(p) = std::env::var_os("MIMAMORI_CORPORA") {
        return p.into();
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpora");
    assert!(
        beside.is_dir(),
        "test corpora not found at {} (set MIMAMORI_CORPORA)",
        beside.display()
    );
    beside
}
