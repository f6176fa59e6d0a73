//! Test support: fresh databases on every backend the tests should cover.
//!
//! SQLite is always tested. PostgreSQL is tested when it can be reached at
//! `MIMAMORI_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`).
//! In CI (`CI=true`) or with `MIMAMORI_REQUIRE_POSTGRES=1` an unreachable
//! PostgreSQL fails the test; elsewhere it is skipped with a printed reason.

use sqlx::{Connection, Executor};
use std::io::Write;

/// Says, in the normal output of `cargo test`, that a suite was skipped and
/// why: written to the process's stderr directly, past libtest's capture
/// (which takes only what `print!` and `eprint!` write, and shows it for
/// failing tests alone), once per test binary and suite.
pub fn skip_notice(suite: &str, reason: &str) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if said.iter().any(|s| s == suite) {
        return;
    }
    said.push(suite.to_string());
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // Test binaries are named `<target>-<hash>`.
    let exe = exe.rsplit_once('-').map_or(exe.as_str(), |(name, _)| name);
    let _ = writeln!(std::io::stderr(), "SKIPPED {suite} (in {exe}): {reason}");
}

/// Default administrative URL of the test PostgreSQL server.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

fn postgres_required() -> bool {
    let on = |k: &str| {
        std::env::var(k)
            .map(|v| !v.is_empty() && v != "0" && v != "false")
            .unwrap_or(false)
    };
    on("CI") || on("MIMAMORI_REQUIRE_POSTGRES")
}

/// Creates a fresh, empty PostgreSQL database and returns its URL, or
/// `None` (after printing why) when PostgreSQL is not available and not
/// required.
pub async fn fresh_postgres_url() -> Option<String> {
    sqlx::any::install_default_drivers();
    let base = std::env::var("MIMAMORI_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_POSTGRES.into());
    let admin = format!("{}/postgres", base.trim_end_matches('/'));
    let mut conn = match sqlx::AnyConnection::connect(&admin).await {
        Ok(c) => c,
        Err(e) => {
            if postgres_required() {
                panic!("PostgreSQL is required here (CI) but {admin} is unreachable: {e}");
            }
            skip_notice(
                "PostgreSQL variants",
                &format!("{admin} is unreachable ({e}); start PostgreSQL or set MIMAMORI_TEST_POSTGRES (CI requires it)"),
            );
            return None;
        }
    };
    let name = format!("mimamori_test_{}", uuid::Uuid::now_v7().simple());
    if let Err(e) = conn
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
    {
        if postgres_required() {
            panic!("cannot create test database on {admin}: {e}");
        }
        skip_notice(
            "PostgreSQL variants",
            &format!("cannot create a database on {admin} ({e})"),
        );
        return None;
    }
    let _ = conn.close().await;
    Some(format!("{}/{name}", base.trim_end_matches('/')))
}

/// Database URLs to run a test against: a fresh SQLite file in `dir`, and a
/// fresh PostgreSQL database when available.
pub async fn backends(dir: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        "sqlite",
        format!("sqlite://{}", dir.join("test.db").display()),
    )];
    if let Some(pg) = fresh_postgres_url().await {
        out.push(("postgres", pg));
    }
    out
}
