//! The SQL hunt input through `mimamori_query::run`, planned and executed
//! against the archive's schema (an empty archive: every input reaches the
//! parser, the planner, the optimizer, the expression guards and the
//! executor, but no file is read). Limits are small so that a hostile
//! query stops quickly. Checked: no input makes the engine panic or fail
//! as the server's fault (`QueryError::Engine`, a 500): every refusal is
//! the query's (invalid, over its limits, past its deadline).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mimamori_query::{GuardLimits, QueryError, QueryLimits};
use std::sync::OnceLock;
use std::time::Duration;

struct Setup {
    runtime: tokio::runtime::Runtime,
    archive: tempfile::TempDir,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| Setup {
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime"),
        archive: tempfile::tempdir().expect("a temporary archive"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    let s = setup();
    let limits = QueryLimits {
        timeout: Duration::from_secs(2),
        memory_bytes: 32 * 1024 * 1024,
        max_rows: 100,
        guard: GuardLimits {
            batch_size: 256,
            max_value_bytes: 64 * 1024,
            max_batch_bytes: 4 * 1024 * 1024,
        },
        max_result_bytes: 1024 * 1024,
    };
    let orgs = ["org-a".to_string()];
    let r = s
        .runtime
        .block_on(mimamori_query::run(s.archive.path(), &orgs, sql, &limits));
    match r {
        Err(QueryError::Engine(e)) => panic!("the server's fault for {sql:?}: {e}"),
        Err(QueryError::Invalid(e)) if e.starts_with("the query engine failed") => {
            panic!("the engine panicked on {sql:?}")
        }
        _ => {}
    }
});
