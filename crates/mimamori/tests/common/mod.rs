//! Helpers shared by the binary's integration tests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `mimamori` binary on `data_dir`, logging warnings only. The
/// resolver `init`'s config turns on listens on a free port, so that tests
/// running side by side do not compete for its fixed one.
pub fn mimamori(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mimamori"));
    c.arg("--data-dir")
        .arg(data_dir)
        .env("MIMAMORI_LOG", "warn")
        .env("MIMAMORI_PDNS_LISTEN", "127.0.0.1:0");
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

/// Starts a long-running command; returns it with every stdout line that
/// contains one of `markers`, waiting (up to `limit`) for all of them.
pub fn spawn_until(cmd: &mut Command, markers: &[&str], limit: Duration) -> (Running, Vec<String>) {
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut found = vec![];
    let start = Instant::now();
    for m in markers {
        loop {
            let left = limit.saturating_sub(start.elapsed());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line with {m:?} within {limit:?}"));
            if line.contains(m) {
                found.push(line);
                break;
            }
        }
    }
    (child, found)
}

/// A DNS query for `name`/A with EDNS (so the answer can carry an Extended
/// DNS Error).
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = vec![];
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    // OPT: root name, type 41, UDP size 1232, no extended flags, no data.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}
