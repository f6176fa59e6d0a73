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

mod guard;

pub use guard::GuardLimits;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Limits applied to one query.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    pub timeout: Duration,
    /// DataFusion memory pool size for the query (sorts, joins,
    /// aggregations and the other operators that account their memory).
    pub memory_bytes: usize,
    /// Most rows returned; more are cut off and `truncated` is set.
    pub max_rows: usize,
    /// Limits on what expressions may produce, for the memory functions
    /// such as `repeat()` allocate outside the pool.
    pub guard: GuardLimits,
    /// Most bytes (Arrow memory) of the rows returned.
    pub max_result_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            memory_bytes: 256 * 1024 * 1024,
            max_rows: 10_000,
            guard: GuardLimits::default(),
            max_result_bytes: 32 * 1024 * 1024,
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
    #[error("the query needs more than its resource limits allow: {0}")]
    ResourcesExhausted(String),
    /// Too many queries run already (of the caller's org, or in all).
    #[error("{detail}")]
    Busy {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("query engine error: {0}")]
    Engine(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            // Reading the archive failed: the server's problem.
            DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::ParquetError(_) => QueryError::Engine(e.to_string()),
            DataFusionError::Internal(m) => {
                // Bad input the engine did not expect; still the query's.
                tracing::warn!(error = %m, "query engine internal error");
                QueryError::Invalid(format!("the query engine cannot run this query: {m}"))
            }
            // Syntax, planning, types; and what the data and the SQL make
            // of each other: a division by zero, a bad cast, a function
            // refusing its arguments.
            root => QueryError::Invalid(root.to_string()),
        }
    }
}

/// The `[query]` settings: how many queries may run at once, on how many
/// threads, and the limits each one runs under.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Worker threads of the query runtime (apart from the API's, so a
    /// busy query engine does not stall other requests).
    pub threads: usize,
    /// Queries running at once, in all; more are refused (429).
    pub max_concurrent: usize,
    /// Queries running at once for one org (the caller's own).
    pub max_concurrent_per_org: usize,
    /// Memory pool of one query (sorts, joins, aggregations).
    pub memory_bytes: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Largest value one expression may make (`repeat()`, `lpad()`…).
    pub max_value_bytes: usize,
    /// Largest batch, or one function's result over a batch.
    pub max_batch_bytes: usize,
    /// Largest result (Arrow memory of the rows returned).
    pub max_result_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        let guard = GuardLimits::default();
        let limits = QueryLimits::default();
        EngineConfig {
            threads: 2,
            max_concurrent: 4,
            max_concurrent_per_org: 2,
            memory_bytes: limits.memory_bytes,
            batch_size: guard.batch_size,
            max_value_bytes: guard.max_value_bytes,
            max_batch_bytes: guard.max_batch_bytes,
            max_result_bytes: limits.max_result_bytes,
        }
    }
}

impl EngineConfig {
    /// The limits of one query, with its deadline and row limit.
    pub fn limits(&self, timeout: Duration, max_rows: usize) -> QueryLimits {
        QueryLimits {
            timeout,
            memory_bytes: self.memory_bytes,
            max_rows,
            guard: GuardLimits {
                batch_size: self.batch_size,
                max_value_bytes: self.max_value_bytes,
                max_batch_bytes: self.max_batch_bytes,
            },
            max_result_bytes: self.max_result_bytes,
        }
    }
}

/// Runs queries on a runtime of their own, a few at a time, each stopped
/// at its deadline (the running plan is dropped, which cancels its tasks).
#[derive(Clone)]
pub struct QueryEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    /// Started with the first query.
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    global: Arc<tokio::sync::Semaphore>,
    per_org: Arc<Mutex<HashMap<String, usize>>>,
    config: EngineConfig,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        // Also when dropped inside an async context (tests, shutdown).
        let rt = self
            .runtime
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }
}

/// One org's slot; given back when the query's task ends.
struct OrgSlot {
    map: Arc<Mutex<HashMap<String, usize>>>,
    org: String,
}

impl Drop for OrgSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.org);
            }
        }
    }
}

/// Aborts the query's task when the caller stops waiting (deadline,
/// client gone).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl QueryEngine {
    pub fn new(config: EngineConfig) -> Self {
        QueryEngine {
            inner: Arc::new(EngineInner {
                runtime: Mutex::new(None),
                global: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent.max(1))),
                per_org: Default::default(),
                config,
            }),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, QueryError> {
        let mut rt = self.inner.runtime.lock().unwrap_or_else(|p| p.into_inner());
        if rt.is_none() {
            let built = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(self.inner.config.threads.max(1))
                .thread_name("mimamori-query")
                .enable_time()
                .build()
                .map_err(|e| QueryError::Engine(format!("cannot start the query runtime: {e}")))?;
            *rt = Some(built);
        }
        rt.as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| QueryError::Engine("the query runtime is shut down".into()))
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.inner.config.max_concurrent.max(1) - self.inner.global.available_permits()
    }

    /// Runs `sql` for a caller of org `tenant` over the archived events of
    /// `org_ids` only.
    pub async fn run(
        &self,
        tenant: &str,
        archive_dir: &Path,
        org_ids: &[String],
        sql: &str,
        limits: &QueryLimits,
    ) -> Result<QueryResult, QueryError> {
        let inner = &self.inner;
        let runtime = self.handle()?;
        let slot = {
            let mut m = inner.per_org.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(tenant.to_string()).or_insert(0);
            if *n >= inner.config.max_concurrent_per_org.max(1) {
                return Err(QueryError::Busy {
                    detail: format!(
                        "your org already runs {} queries, the most at once; retry when one ends",
                        *n
                    ),
                    retry_after_secs: 2,
                });
            }
            *n += 1;
            OrgSlot {
                map: inner.per_org.clone(),
                org: tenant.to_string(),
            }
        };
        let Ok(permit) = inner.global.clone().try_acquire_owned() else {
            return Err(QueryError::Busy {
                detail: format!(
                    "the server already runs {} queries, the most at once; retry shortly",
                    inner.config.max_concurrent
                ),
                retry_after_secs: 2,
            });
        };
        let archive_dir = archive_dir.to_path_buf();
        let orgs = org_ids.to_vec();
        let sql = sql.to_string();
        let task_limits = limits.clone();
        let handle = runtime.spawn(async move {
            // Held until the plan is really gone, not only the response.
            let _slots = (slot, permit);
            execute(&archive_dir, &orgs, &sql, &task_limits).await
        });
        await_with_deadline(handle, limits.timeout).await
    }
}

async fn await_with_deadline(
    handle: tokio::task::JoinHandle<Result<QueryResult, QueryError>>,
    timeout: Duration,
) -> Result<QueryResult, QueryError> {
    let abort = AbortOnDrop(handle.abort_handle());
    let r = match tokio::time::timeout(timeout, handle).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) if e.is_panic() => {
            // A bug in the engine on this input, not the server failing.
            tracing::error!(error = %e, "the query engine panicked");
            Err(QueryError::Invalid(
                "the query engine failed on this query; the server log has the details".into(),
            ))
        }
        Ok(Err(e)) => Err(QueryError::Engine(format!("the query task failed: {e}"))),
        Err(_) => Err(QueryError::Timeout(timeout)),
    };
    drop(abort);
    r
}

/// Runs `sql` over the archived events of `org_ids` only, on the current
/// runtime (the CLI); the deadline stops the running plan.
pub async fn run(
    archive_dir: &Path,
    org_ids: &[String],
    sql: &str,
    limits: &QueryLimits,
) -> Result<QueryResult, QueryError> {
    let archive_dir = archive_dir.to_path_buf();
    let orgs = org_ids.to_vec();
    let sql = sql.to_string();
    let task_limits = limits.clone();
    let handle =
        tokio::spawn(async move { execute(&archive_dir, &orgs, &sql, &task_limits).await });
    await_with_deadline(handle, limits.timeout).await
}

async fn execute(
    archive_dir: &Path,
    org_ids: &[String],
    sql: &str,
    limits: &QueryLimits,
) -> Result<QueryResult, QueryError> {
    let started = Instant::now();
    // No spilling: a query over its memory budget fails rather than fill
    // the disk (the budget is the bound, on memory and on disk).
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()?;
    // Two cores here: more partitions only add overhead.
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(limits.guard.batch_size.max(1))
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    guard::guard_functions(&ctx, &limits.guard);
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
    let df = ctx.sql_with_options(sql, options).await?;
    // EXPLAIN must stay the root of its plan: no LIMIT around it (its
    // output is a few rows anyway).
    let explain = matches!(
        df.logical_plan(),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)
    );
    let df = if explain {
        df
    } else {
        df.limit(0, Some(max_rows + 1))?
    };
    let (state, plan) = df.into_parts();
    let plan = state.optimize(&plan)?;
    // Constants folded at planning (`repeat('x', 1000000)`) are copied
    // into every batch: bound them like computed values.
    guard::check_constants(&plan, &limits.guard)?;
    let columns: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let physical = state
        .query_planner()
        .create_physical_plan(&plan, &state)
        .await?;
    let mut stream = datafusion::physical_plan::execute_stream(physical, ctx.task_ctx())?;
    let mut batches = vec![];
    let mut rows_seen = 0usize;
    let mut bytes = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let size = batch.get_array_memory_size();
        guard::check_batch(size, &limits.guard)?;
        bytes += size;
        if bytes > limits.max_result_bytes {
            return Err(QueryError::ResourcesExhausted(format!(
                "the result is larger than {} bytes; select fewer columns or rows",
                limits.max_result_bytes
            )));
        }
        rows_seen += batch.num_rows();
        batches.push(batch);
        if rows_seen > max_rows {
            break;
        }
    }
    // Stops whatever the plan still had running.
    drop(stream);
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
        drop(batches);
        if !buf.is_empty() {
            let v: Vec<serde_json::Map<String, serde_json::Value>> =
                serde_json::from_slice(&buf).map_err(|e| QueryError::Engine(e.to_string()))?;
            rows = v;
        }
    }
    if explain {
        // Plans name the archive's files: show them relative to it.
        // (Object-store paths drop the leading '/'.)
        let dir = archive_dir.display().to_string();
        let prefixes = [
            format!("{dir}/"),
            format!("{}/", dir.trim_start_matches('/')),
        ];
        for row in &mut rows {
            for v in row.values_mut() {
                if let serde_json::Value::String(s) = v {
                    for prefix in &prefixes {
                        if s.contains(prefix.as_str()) {
                            *s = s.replace(prefix.as_str(), "");
                        }
                    }
                }
            }
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
