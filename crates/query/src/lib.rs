//! SQL over the event archive, with DataFusion.
//!
//! The query sees one table, `events`, with the archive's columns (see
//! `mimamori_ingest::archive::schema`): OCSF 1.3 attributes (`class_uid`,
//! `activity_id`, `time` in Unix ms, `metadata.product.name`,
//! `src_endpoint.ip`, `query.hostname`, `http_request.url.url_string`,
//! `process.cmd_line`, `api.operation`, …, `unmapped`), plus `org_id`,
//! `id`, `received` and `raw` (the original record as JSON text).
//!
//! Architecture invariants:
//! - Scoping is structural: the `events` table is built only from the
//!   archive directories of the orgs the caller may see, so no SQL can
//!   reach another org's files.
//! - Only queries run: DDL, DML and statements (`SET`, `COPY`, `CREATE`…)
//!   are refused before planning.
//! - Every query has a deadline, a memory budget (DataFusion's memory pool;
//!   operators that exceed it fail with "resources exhausted") and a row
//!   limit on what is returned.
//!
//! This crate is kept apart from `mimamori-ingest` on purpose: the ingest
//! path must not pay for (or depend on) the query engine.

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Limits applied to one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    pub timeout: Duration,
    /// DataFusion memory pool size for the query.
    pub memory_bytes: usize,
    /// Most rows returned; more are cut off and `truncated` is set.
    pub max_rows: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            memory_bytes: 256 * 1024 * 1024,
            max_rows: 10_000,
        }
    }
}

/// A query's answer.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    /// One JSON object per row.
    pub rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// True when more rows matched than `max_rows`.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is wrong (syntax, unknown column, type error) or not a query.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the query ran longer than {0:?} and was stopped; narrow it (e.g. a time range on `time`)"
    )]
    Timeout(Duration),
    #[error("the query needs more memory than its budget: {0}")]
    ResourcesExhausted(String),
    #[error("query engine error: {0}")]
    Engine(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => QueryError::Invalid(e.find_root().to_string()),
            _ => QueryError::Engine(e.to_string()),
        }
    }
}

/// Runs `sql` over the archived events of `org_ids` only.
pub async fn run(
    archive_dir: &Path,
    org_ids: &[String],
    sql: &str,
    limits: &QueryLimits,
) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .build_arc()?;
    // Two cores here: more partitions only add overhead.
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    let schema = mimamori_ingest::archive::schema();
    // A consistent set of files, held in place (compaction and retention
    // wait) until the query is done: listing the directories instead could
    // see a compaction's inputs and output together, or lose a file.
    let snapshot = mimamori_ingest::archive::snapshot(archive_dir, Some(org_ids))
        .map_err(|e| QueryError::Engine(format!("cannot list the archive: {e}")))?;
    let mut urls = vec![];
    for file in &snapshot.files {
        urls.push(ListingTableUrl::parse(file.display().to_string())?);
    }
    if urls.is_empty() {
        ctx.register_table("events", Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
    } else {
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension("")
            .with_collect_stat(false);
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema);
        ctx.register_table("events", Arc::new(ListingTable::try_new(config)?))?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let max_rows = limits.max_rows;
    let work = async {
        let df = ctx.sql_with_options(sql, options).await?;
        let df = df.limit(0, Some(max_rows + 1))?;
        let columns: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = df.collect().await?;
        Ok::<_, QueryError>((columns, batches))
    };
    let (columns, batches) = tokio::time::timeout(limits.timeout, work)
        .await
        .map_err(|_| QueryError::Timeout(limits.timeout))??;
    drop(snapshot);
    let mut rows = Vec::new();
    {
        let mut buf = Vec::new();
        let mut writer = arrow_json::ArrayWriter::new(&mut buf);
        let refs: Vec<&datafusion::arrow::record_batch::RecordBatch> = batches.iter().collect();
        writer
            .write_batches(&refs)
            .map_err(|e| QueryError::Engine(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| QueryError::Engine(e.to_string()))?;
        if !buf.is_empty() {
            let v: Vec<serde_json::Map<String, serde_json::Value>> =
                serde_json::from_slice(&buf).map_err(|e| QueryError::Engine(e.to_string()))?;
            rows = v;
        }
    }
    let truncated = rows.len() > max_rows;
    rows.truncate(max_rows);
    Ok(QueryResult {
        columns,
        rows,
        truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimamori_event::{EventBody, Normalized, OcsfClass};
    use mimamori_ingest::{Ingest, IngestConfig};

    fn body(q: &str, t: i64) -> EventBody {
        EventBody {
            time: Some(t),
            class: OcsfClass::DnsActivity,
            source: "test".into(),
            fields: Normalized {
                dns_query: Some(q.into()),
                src_ip: Some("10.0.0.1".into()),
                ..Default::default()
            },
            raw: serde_json::json!({"marker": q})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    async fn archive() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let (ingest, threads) = Ingest::start(IngestConfig::new(dir.path())).unwrap();
        ingest
            .submit(
                "org-a",
                (0..30)
                    .map(|i| body(&format!("a{i}.example"), 1_795_600_800_000 + i))
                    .collect(),
            )
            .await
            .unwrap();
        ingest
            .submit(
                "org-b",
                (0..5)
                    .map(|i| body(&format!("b{i}.example"), 1_795_600_800_000 + i))
                    .collect(),
            )
            .await
            .unwrap();
        drop(ingest);
        threads.join();
        let archive = dir.path().join("archive");
        (dir, archive)
    }

    #[tokio::test]
    async fn queries_see_only_the_given_orgs() {
        let (_dir, archive) = archive().await;
        let sql = "SELECT org_id, count(*) AS n FROM events GROUP BY org_id ORDER BY org_id";
        let r = run(&archive, &["org-a".into()], sql, &QueryLimits::default())
            .await
            .unwrap();
        assert_eq!(r.columns, vec!["org_id", "n"]);
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0]["org_id"], "org-a");
        assert_eq!(r.rows[0]["n"], 30);
        let r = run(
            &archive,
            &["org-a".into(), "org-b".into()],
            sql,
            &QueryLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.rows.len(), 2);
        // Even naming another org in SQL finds nothing outside the scope.
        let r = run(
            &archive,
            &["org-b".into()],
            "SELECT count(*) AS n FROM events WHERE org_id = 'org-a'",
            &QueryLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.rows[0]["n"], 0);
        // An org with no archive yet: an empty table, not an error.
        let r = run(
            &archive,
            &["org-z".into()],
            "SELECT count(*) AS n FROM events",
            &QueryLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.rows[0]["n"], 0);
        // JSON columns are queryable with string functions.
        let r = run(
            &archive,
            &["org-a".into()],
            "SELECT query.hostname AS hostname, class_uid, metadata.product.name AS product FROM events WHERE raw LIKE '%a7.example%'",
            &QueryLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0]["hostname"], "a7.example");
        assert_eq!(r.rows[0]["class_uid"], 4003);
        assert_eq!(r.rows[0]["product"], "test");
        // OCSF struct columns, filtered and grouped by their fields.
        let r = run(
            &archive,
            &["org-a".into()],
            "SELECT src_endpoint.ip AS ip, count(*) AS n FROM events WHERE class_uid = 4003 AND query.hostname LIKE 'a1%' GROUP BY src_endpoint.ip",
            &QueryLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(r.rows.len(), 1, "{:?}", r.rows);
        assert_eq!(r.rows[0]["ip"], "10.0.0.1");
        assert_eq!(r.rows[0]["n"], 11);
    }

    #[tokio::test]
    async fn limits_and_refusals() {
        let (_dir, archive) = archive().await;
        let orgs = ["org-a".to_string()];
        let few = QueryLimits {
            max_rows: 10,
            ..QueryLimits::default()
        };
        let r = run(&archive, &orgs, "SELECT id FROM events", &few)
            .await
            .unwrap();
        assert_eq!(r.rows.len(), 10);
        assert!(r.truncated);
        for sql in [
            "CREATE TABLE x (a INT)",
            "DROP TABLE events",
            "INSERT INTO events SELECT * FROM events",
            "SET datafusion.execution.batch_size = 1",
            "COPY events TO '/tmp/x.parquet'",
        ] {
            let e = run(&archive, &orgs, sql, &QueryLimits::default())
                .await
                .unwrap_err();
            assert!(matches!(e, QueryError::Invalid(_)), "{sql}: {e:?}");
        }
        let e = run(&archive, &orgs, "SELEC 1", &QueryLimits::default())
            .await
            .unwrap_err();
        assert!(matches!(e, QueryError::Invalid(_)), "{e:?}");
        let e = run(
            &archive,
            &orgs,
            "SELECT nope FROM events",
            &QueryLimits::default(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let tiny = QueryLimits {
            memory_bytes: 1,
            ..QueryLimits::default()
        };
        let e = run(
            &archive,
            &orgs,
            "SELECT raw FROM events ORDER BY raw DESC",
            &tiny,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, QueryError::ResourcesExhausted(_)), "{e:?}");
        // A query that would run for minutes, so the outcome cannot depend on
        // how fast this machine answers a small one (a 1 ns limit on
        // `count(*)` raced with statistics-based answers and flaked in CI).
        let short = QueryLimits {
            timeout: Duration::from_millis(200),
            ..QueryLimits::default()
        };
        let e = run(
            &archive,
            &orgs,
            "SELECT sum(value % 7) FROM range(100000000000)",
            &short,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, QueryError::Timeout(_)), "{e:?}");
    }
}
