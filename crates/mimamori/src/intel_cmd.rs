//! `mimamori intel …`: import and export threat intelligence on the local
//! data directory (as the local operator). A running `serve` picks up
//! imported indicators within a second (its matcher polls the store).

use crate::admin::{find_org, open_store, root_scope};
use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use mimamori_intel::{
    import_list, import_misp_event, import_misp_feed_dir, import_stix, ImportBatch, ListFormat,
    ListOptions, MispOptions, Provenance, StixOptions, StixSchemas, Tlp,
};
use mimamori_store::{AuditActor, NewReport, Sharing};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum IntelCommand {
    /// Import indicators from files: STIX 2.1 bundles, MISP events or feed
    /// directories, plain / hosts / CSV lists.
    Import(ImportArgs),
    /// Export the indicators an org may see: STIX bundle, RPZ zone, plain
    /// list, or a MISP feed directory.
    Export(ExportArgs),
    /// The report library: threat reports with their text per page and
    /// the indicators they mention as proposals.
    #[command(subcommand)]
    Report(ReportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Add a report (PDF, HTML or text): its text is kept per page and the
    /// indicators it mentions (defanged ones too) are listed as proposals
    /// for an analyst to accept over the API.
    Add(ReportAddArgs),
}

#[derive(Debug, Args)]
pub struct ReportAddArgs {
    /// Slug or id of the owning org (default: the root, the central SOC).
    #[arg(long)]
    pub org: Option<String>,
    /// Title (default: the file name).
    #[arg(long)]
    pub title: Option<String>,
    /// Where the report comes from (default: the file name).
    #[arg(long)]
    pub source: Option<String>,
    /// clear, green, amber, amber+strict, red.
    #[arg(long, default_value = "amber")]
    pub tlp: String,
    /// pdf, html or text (default: detected from the content).
    #[arg(long)]
    pub format: Option<String>,
    /// Orgs (slug or id) an AMBER report is shared with; repeatable.
    #[arg(long = "share-with")]
    pub share_with: Vec<String>,
    /// Sharing group ids an AMBER report is shared with; repeatable.
    #[arg(long = "share-group")]
    pub share_group: Vec<String>,
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Slug or id of the owning org (default: the root, the central SOC).
    #[arg(long)]
    pub org: Option<String>,
    /// stix, misp, misp-feed (a directory), plain, hosts, csv.
    #[arg(long)]
    pub format: String,
    /// Source name kept with each indicator (default: the file name).
    #[arg(long)]
    pub source: Option<String>,
    /// TLP for what the input does not mark: clear, green, amber,
    /// amber+strict, red.
    #[arg(long, default_value = "amber")]
    pub tlp: String,
    /// Confidence 0–100 for what the input does not rate.
    #[arg(long, default_value_t = 50)]
    pub confidence: u8,
    /// Orgs (slug or id) AMBER indicators are shared with; repeatable.
    #[arg(long = "share-with")]
    pub share_with: Vec<String>,
    /// Sharing group ids AMBER indicators are shared with; repeatable. (A
    /// MISP event with distribution 4 is also shared with the group named
    /// as its SharingGroup.)
    #[arg(long = "share-group")]
    pub share_group: Vec<String>,
    /// Refuse a whole file if any part of it is invalid.
    #[arg(long)]
    pub strict: bool,
    /// Whether a domain covers its sub-domains when the file does not say
    /// (`true` or `false`; default true). An indicator's own marker wins:
    /// list `=name` (exact) / `*.name`, STIX `x_mimamori_subdomains`, MISP
    /// tag `mimamori:subdomains="false"`.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub subdomains: bool,
    /// STIX schema directory (default: `[intel] stix_schemas`, else the
    /// OASIS STIX 2.1 schemas built into mimamori).
    #[arg(long)]
    pub stix_schemas: Option<PathBuf>,
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The org whose view is exported (default: the root).
    #[arg(long)]
    pub org: Option<String>,
    /// stix, rpz, plain, misp-feed.
    #[arg(long)]
    pub format: String,
    /// Nothing stricter than this TLP is exported.
    #[arg(long, default_value = "amber")]
    pub max_tlp: String,
    /// Output file (misp-feed: a directory); default stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

fn tlp(s: &str) -> anyhow::Result<Tlp> {
    Tlp::parse_label(s)
        .ok_or_else(|| anyhow!("{s:?} is not a TLP: clear, green, amber, amber+strict, red"))
}

pub async fn run(data_dir: &Path, cmd: IntelCommand) -> anyhow::Result<()> {
    match cmd {
        IntelCommand::Import(a) => import(data_dir, a).await,
        IntelCommand::Export(a) => export(data_dir, a).await,
        IntelCommand::Report(ReportCommand::Add(a)) => report_add(data_dir, a).await,
    }
}

async fn import(data_dir: &Path, a: ImportArgs) -> anyhow::Result<()> {
    let (cfg, store) = open_store(data_dir).await?;
    let (root, scope) = root_scope(&store).await?;
    let owner = match &a.org {
        Some(k) => find_org(&store, &scope, k).await?,
        None => root,
    };
    let mut share_with = vec![];
    for k in &a.share_with {
        share_with.push(find_org(&store, &scope, k).await?.id.to_string());
    }
    if a.confidence > 100 {
        bail!("--confidence must be 0 to 100");
    }
    let default_tlp = tlp(&a.tlp)?;
    let schemas = if a.format == "stix" {
        let mut intel = cfg.intel.clone();
        if let Some(d) = &a.stix_schemas {
            intel.stix_schemas = Some(d.clone());
        }
        Some(intel.schemas()?)
    } else {
        None
    };
    let (mut inserted, mut updated, mut unchanged, mut rejected) = (0, 0, 0, 0);
    for path in &a.paths {
        let source = a.source.clone().unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "cli".into())
        });
        let mut prov = Provenance::new(source.clone(), time::OffsetDateTime::now_utc());
        prov.tlp = default_tlp;
        prov.confidence = a.confidence;
        prov.subdomains = a.subdomains;
        let batch = read_batch(&a, path, prov, schemas.as_ref())?;
        for r in batch.rejects.iter().take(20) {
            eprintln!("{}: {r}", path.display());
        }
        if batch.rejects.len() > 20 {
            eprintln!(
                "{}: … and {} more rejects",
                path.display(),
                batch.rejects.len() - 20
            );
        }
        if a.strict && !batch.rejects.is_empty() {
            bail!(
                "{}: strict import refused, nothing stored from it: {} invalid part(s)",
                path.display(),
                batch.rejects.len()
            );
        }
        rejected += batch.rejects.len();
        let mut sharing = Sharing {
            orgs: share_with.clone(),
            groups: a.share_group.clone(),
        };
        let (found, unknown) = store
            .group_resolve_names(&owner, &batch.sharing_groups)
            .await?;
        sharing.groups.extend(found);
        for name in unknown {
            eprintln!(
                "{}: no sharing group named {name:?} that {} owns or is a member of; shared with nobody",
                path.display(),
                owner.slug
            );
        }
        let r = store
            .intel_upsert_with(
                &AuditActor::local_operator(),
                &owner,
                &batch.indicators,
                &sharing,
                &source,
            )
            .await?;
        inserted += r.inserted;
        updated += r.updated;
        unchanged += r.unchanged;
    }
    store.close().await;
    println!(
        "imported into {}: {inserted} new, {updated} updated, {unchanged} unchanged indicator(s); {rejected} rejected",
        owner.slug
    );
    Ok(())
}

fn read_batch(
    a: &ImportArgs,
    path: &Path,
    prov: Provenance,
    schemas: Option<&StixSchemas>,
) -> anyhow::Result<ImportBatch> {
    let read = || std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
    let err = |e: &dyn std::fmt::Display| anyhow!("{}: {e}", path.display());
    Ok(match a.format.as_str() {
        "stix" => {
            let Some(schemas) = schemas else {
                bail!("no STIX schemas");
            };
            let mut o = StixOptions::new(prov);
            o.strict = a.strict;
            import_stix(&read()?, schemas, &o).map_err(|e| err(&e))?
        }
        "misp" => {
            let mut o = MispOptions::new(prov);
            o.strict = a.strict;
            import_misp_event(&read()?, &o).map_err(|e| err(&e))?
        }
        "misp-feed" => {
            let mut o = MispOptions::new(prov);
            o.strict = a.strict;
            import_misp_feed_dir(path, &o).map_err(|e| err(&e))?
        }
        "plain" | "hosts" | "csv" => {
            let bytes = read()?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| anyhow!("{}: a list must be UTF-8 text: {e}", path.display()))?;
            let format = match a.format.as_str() {
                "plain" => ListFormat::Plain,
                "hosts" => ListFormat::Hosts,
                _ => ListFormat::Csv,
            };
            import_list(text, format, &ListOptions::new(prov))
        }
        other => {
            bail!("unknown --format {other:?}; expected stix, misp, misp-feed, plain, hosts or csv")
        }
    })
}

async fn export(data_dir: &Path, a: ExportArgs) -> anyhow::Result<()> {
    let (_, store) = open_store(data_dir).await?;
    let (root, scope) = root_scope(&store).await?;
    let org = match &a.org {
        Some(k) => find_org(&store, &scope, k).await?,
        None => root,
    };
    let max_tlp = tlp(&a.max_tlp)?;
    let mut indicators = vec![];
    let mut page = mimamori_store::PageRequest::first(mimamori_store::MAX_PAGE);
    loop {
        let got = store
            .intel_list(
                org.id.as_str(),
                &mimamori_store::IndicatorFilter {
                    active_only: true,
                    ..Default::default()
                },
                &page,
            )
            .await?;
        indicators.extend(
            got.items
                .into_iter()
                .map(|s| s.indicator)
                .filter(|i| i.tlp <= max_tlp),
        );
        match got.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    store.close().await;
    let now = time::OffsetDateTime::now_utc();
    let text = match a.format.as_str() {
        "stix" => serde_json::to_string_pretty(&mimamori_intel::export_stix(
            &indicators,
            &[],
            &[],
            &mimamori_intel::StixExportOptions { max_tlp, now },
        ))?,
        "rpz" => mimamori_intel::export_rpz(
            &indicators,
            &mimamori_intel::RpzOptions {
                name_server: "localhost.".into(),
                contact: "hostmaster.localhost.".into(),
                serial: (now.unix_timestamp().max(0) as u64 % u64::from(u32::MAX)) as u32,
                ttl: 300,
                max_tlp,
                now,
            },
        ),
        "plain" => mimamori_intel::export_plain(&indicators, &[], max_tlp, now),
        "misp-feed" => {
            let Some(dir) = &a.output else {
                bail!("--format misp-feed writes a directory: pass --output DIR");
            };
            let files = mimamori_intel::export_misp_feed(
                &indicators,
                &mimamori_intel::MispFeedExport {
                    feed_name: format!("mimamori-{}", org.slug),
                    org_name: org.name.clone(),
                    org_uuid: uuid::Uuid::new_v5(
                        &uuid::Uuid::NAMESPACE_OID,
                        org.id.as_str().as_bytes(),
                    ),
                    max_tlp,
                    now,
                },
            );
            std::fs::create_dir_all(dir)?;
            for (name, bytes) in &files {
                std::fs::write(dir.join(name), bytes)
                    .with_context(|| format!("cannot write {}", dir.join(name).display()))?;
            }
            eprintln!("wrote {} file(s) to {}", files.len(), dir.display());
            return Ok(());
        }
        other => bail!("unknown --format {other:?}; expected stix, rpz, plain or misp-feed"),
    };
    match &a.output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?
        }
        None => print!("{text}"),
    }
    eprintln!(
        "exported {} indicator(s) visible to {}",
        indicators.len(),
        org.slug
    );
    Ok(())
}

async fn report_add(data_dir: &Path, a: ReportAddArgs) -> anyhow::Result<()> {
    let (_, store) = open_store(data_dir).await?;
    let (root, scope) = root_scope(&store).await?;
    let owner = match &a.org {
        Some(k) => find_org(&store, &scope, k).await?,
        None => root,
    };
    let mut orgs = vec![];
    for k in &a.share_with {
        orgs.push(find_org(&store, &scope, k).await?.id.to_string());
    }
    let tlp = tlp(&a.tlp)?;
    let meta =
        std::fs::metadata(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    if meta.len() > mimamori_intel::MAX_REPORT_BYTES as u64 {
        bail!(
            "{}: {} bytes; at most {} are accepted",
            a.file.display(),
            meta.len(),
            mimamori_intel::MAX_REPORT_BYTES
        );
    }
    let bytes =
        std::fs::read(&a.file).with_context(|| format!("cannot read {}", a.file.display()))?;
    let (format, report) = mimamori_intel::read_report(
        &bytes,
        a.format.as_deref(),
        &mimamori_intel::PdfLimits::default(),
    )
    .map_err(|e| anyhow!("{}: {e}", a.file.display()))?;
    let name = a
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".into());
    let new = NewReport {
        title: a.title.clone().unwrap_or_else(|| name.clone()),
        source: a.source.clone().unwrap_or(name),
        tlp,
        format: format.to_string(),
        document: bytes,
        pages: report.pages,
        proposals: report.proposals,
    };
    let sharing = Sharing {
        orgs,
        groups: a.share_group.clone(),
    };
    let r = store
        .report_create(&AuditActor::local_operator(), &owner, &new, &sharing)
        .await?;
    let proposals = store.report_proposals(&r).await?;
    store.close().await;
    println!(
        "report {} added to {}: {} page(s) of {format}, {} indicator proposal(s)",
        r.id,
        owner.slug,
        r.page_count,
        proposals.len()
    );
    for p in proposals.iter().take(50) {
        println!("  {} {} {}", p.id, p.kind.name(), p.value);
    }
    Ok(())
}
