//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

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
