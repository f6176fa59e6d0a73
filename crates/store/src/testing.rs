//! Test support: fresh databases on every backend the tests should cover.
//!
//! SQLite is always tested. PostgreSQL is tested when it can be reached at
//! `MIMAMORI_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432`).
//! In CI (`CI=true`) or with `MIMAMORI_REQUIRE_POSTGRES=1` an unreachable
//! PostgreSQL fails the test; elsewhere it is skipped with a printed reason.

use sqlx::{Connection, Executor};

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
            eprintln!("skipping the PostgreSQL variant: {admin} is unreachable ({e}); set MIMAMORI_TEST_POSTGRES to test it");
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
        eprintln!("skipping the PostgreSQL variant: cannot create a database ({e})");
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
