//! `mimamori query`: SQL over the event archive, from the command line.

use crate::admin::{find_org, open_store, root_scope};
use clap::Args;
use mimamori_core::Scope;
use mimamori_query::QueryLimits;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// One SQL SELECT over the table `events`, e.g.
    /// "SELECT dns_query, count(*) AS n FROM events GROUP BY dns_query ORDER BY n DESC LIMIT 10"
    pub sql: String,
    /// Only this org's sub-tree (slug or id); default: every org.
    #[arg(long)]
    pub org: Option<String>,
    /// Most rows to print.
    #[arg(long, default_value_t = 1000)]
    pub max_rows: usize,
    /// Deadline in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Memory budget in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory_mib: usize,
}

pub async fn run(data_dir: &Path, args: QueryArgs) -> anyhow::Result<()> {
    let (_, store) = open_store(data_dir).await?;
    let (_, mut scope) = root_scope(&store).await?;
    if let Some(key) = &args.org {
        scope = Scope::Subtree(find_org(&store, &scope, key).await?.path);
    }
    let orgs: Vec<String> = store
        .org_all(&scope)
        .await?
        .into_iter()
        .map(|o| o.id.to_string())
        .collect();
    store.close().await;
    let archive = mimamori_ingest::ingest_dir(data_dir).join("archive");
    let limits = QueryLimits {
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        memory_bytes: args.memory_mib.max(1) * 1024 * 1024,
        max_rows: args.max_rows.max(1),
        ..QueryLimits::default()
    };
    let r = mimamori_query::run(&archive, &orgs, &args.sql, &limits).await?;
    for row in &r.rows {
        println!("{}", serde_json::to_string(row)?);
    }
    eprintln!(
        "{} row(s){} in {} ms over {} org(s)",
        r.rows.len(),
        if r.truncated {
            " (truncated; raise --max-rows)"
        } else {
            ""
        },
        r.elapsed_ms,
        orgs.len()
    );
    Ok(())
}
