//! A minimal migration runner.
//!
//! Written by hand rather than with `sqlx::migrate!` because that macro pulls
//! in sqlx's proc-macro crate (and its compile time) for what is a loop over
//! embedded files. Migrations are applied in order, each in its own
//! transaction, and recorded in `mimamori_schema`.

use sqlx::AnyPool;

/// The embedded migrations, in order. Append only; never edit one that has
/// shipped.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "spine", include_str!("../migrations/0001_spine.sql")),
    (
        2,
        "detection",
        include_str!("../migrations/0002_detection.sql"),
    ),
    (3, "intel", include_str!("../migrations/0003_intel.sql")),
    (
        4,
        "dns_policy",
        include_str!("../migrations/0004_dns_policy.sql"),
    ),
    (
        5,
        "intel_clock",
        include_str!("../migrations/0005_intel_clock.sql"),
    ),
    (
        6,
        "intel_sharing",
        include_str!("../migrations/0006_intel_sharing.sql"),
    ),
    (
        7,
        "intel_stamp",
        include_str!("../migrations/0007_intel_stamp.sql"),
    ),
    (
        8,
        "feed_subdomains",
        include_str!("../migrations/0008_feed_subdomains.sql"),
    ),
    (
        9,
        "feed_auth",
        include_str!("../migrations/0009_feed_auth.sql"),
    ),
    (
        10,
        "console",
        include_str!("../migrations/0010_console.sql"),
    ),
];

pub(crate) async fn run(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS mimamori_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM mimamori_schema")
        .fetch_all(pool)
        .await?;
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let mut tx = pool.begin().await?;
        // Our migrations hold no semicolons inside literals, so splitting on
        // them is exact; it keeps each statement a plain prepared query that
        // both drivers run the same way.
        for stmt in statements(sql) {
            sqlx::query(&stmt).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO mimamori_schema (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(*version)
            .bind(*name)
            .bind(mimamori_core::now_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
    }
    Ok(())
}

fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_statements() {
        let s = super::statements("-- c; x\nCREATE TABLE a (x INT);\n\nCREATE INDEX i ON a (x);\n");
        assert_eq!(s, vec!["CREATE TABLE a (x INT)", "CREATE INDEX i ON a (x)"]);
    }
}
