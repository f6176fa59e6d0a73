//! `mimamori demo`: a fresh data directory with a realistic tree of orgs,
//! every service started on local ports, until Ctrl-C.

use crate::admin::init_data_dir;
use crate::config::Config;
use anyhow::{bail, Context};
use clap::Args;
use mimamori_core::org::{Contact, OrgProfile};
use mimamori_core::{NewOrg, Org, OrgKind, Role, Scope, Validated};
use mimamori_store::{AuditActor, NewToken, NewUser, Store};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// API port on 127.0.0.1 (0 picks a free one; if the port is taken a
    /// free one is picked and printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Data directory for the demo (default: a new directory under the
    /// system temp dir). Must not exist yet or be empty.
    #[arg(long = "demo-dir")]
    pub dir: Option<PathBuf>,
    /// The global `--data-dir`, when given: the same as `--demo-dir`.
    #[arg(skip)]
    pub data_dir: Option<PathBuf>,
}

/// How long the demo keeps archived events (it writes a few hundred MB an
/// hour): its archive holds about the last hour.
const DEMO_RETENTION: std::time::Duration = std::time::Duration::from_secs(3600);

/// One org of the demo tree: (slug, parent slug, kind, name, sector,
/// networks, domains).
type DemoOrg = (
    &'static str,
    &'static str,
    OrgKind,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

/// A central SOC, a supervisor with three independent agencies under it,
/// and four ministries. Addresses are from documentation and private
/// ranges; domains are illustrative.
const TREE: &[DemoOrg] = &[
    (
        "ipa",
        "soc",
        OrgKind::Supervisor,
        "情報処理推進機構 (IPA)",
        "government",
        &["198.51.100.0/26", "10.20.0.0/16"],
        &["ipa.example.jp"],
    ),
    (
        "jaxa",
        "ipa",
        OrgKind::Member,
        "宇宙航空研究開発機構 (JAXA)",
        "research",
        &["198.51.100.64/26", "10.21.0.0/16"],
        &["jaxa.example.jp"],
    ),
    (
        "nict",
        "ipa",
        OrgKind::Member,
        "情報通信研究機構 (NICT)",
        "research",
        &["198.51.100.128/26", "10.22.0.0/16"],
        &["nict.example.jp"],
    ),
    (
        "jst",
        "ipa",
        OrgKind::Member,
        "科学技術振興機構 (JST)",
        "research",
        &["198.51.100.192/26", "10.23.0.0/16"],
        &["jst.example.jp"],
    ),
    (
        "mof",
        "soc",
        OrgKind::Member,
        "財務省",
        "government",
        &["203.0.113.0/26", "10.31.0.0/16"],
        &["mof.example.go.jp"],
    ),
    (
        "mhlw",
        "soc",
        OrgKind::Member,
        "厚生労働省",
        "health",
        &["203.0.113.64/26", "10.32.0.0/16"],
        &["mhlw.example.go.jp"],
    ),
    (
        "meti",
        "soc",
        OrgKind::Member,
        "経済産業省",
        "government",
        &["203.0.113.128/26", "10.33.0.0/16"],
        &["meti.example.go.jp"],
    ),
    (
        "mext",
        "soc",
        OrgKind::Member,
        "文部科学省",
        "education",
        &["203.0.113.192/26", "10.34.0.0/16"],
        &["mext.example.go.jp"],
    ),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let given = match (args.dir, args.data_dir) {
        (Some(a), Some(b)) if a != b => bail!(
            "--demo-dir {} and --data-dir {} name different directories; give one",
            a.display(),
            b.display()
        ),
        (a, b) => a.or(b),
    };
    let dir = match given {
        Some(d) => {
            if d.exists() && std::fs::read_dir(&d)?.next().is_some() {
                bail!(
                    "{} is not empty; the demo needs a fresh directory (omit --demo-dir/--data-dir to get one)",
                    d.display()
                );
            }
            d
        }
        None => {
            let stamp = time_stamp();
            std::env::temp_dir().join(format!("mimamori-demo-{stamp}-{}", std::process::id()))
        }
    };
    let report = init_data_dir(
        &dir,
        "soc",
        "中央SOC (Central Security Operations Center)",
        &[],
    )
    .await?;
    let cfg = Config::load(&dir, None)?;
    let store = Store::open(&cfg.database_url(&dir)).await?;
    let orgs = build_tree(&store).await?;
    let tokens = issue_tokens(&store, &orgs).await?;
    let users = create_users(&store, &orgs).await?;
    let seeded = seed_intel(&store).await?;
    store.close().await;

    let mut cfg = cfg;
    // Bounded disk use: the demo keeps about the last hour of events.
    cfg.ingest.retention_override = Some(DEMO_RETENTION);
    // SigmaHQ's rules, where this machine has them (the shared corpora
    // beside the repository): detection then runs the whole rule tree.
    // The resolver: on a free loopback port, forwarding to this machine's
    // resolver, with the demo intel as its policy.
    cfg.pdns.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.pdns.upstreams = system_resolvers()
        .into_iter()
        .map(|a| a.to_string())
        .collect();
    // Blocks answer with a loopback sinkhole whose block page says why and
    // whom to ask (on a free port: a browser would want port 80, so the
    // demo shows it with curl).
    cfg.pdns.sinkhole_v4 = Some(std::net::Ipv4Addr::LOCALHOST);
    cfg.pdns.block_page_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.pdns.block_page_contact =
        Some("Central SOC (demo): soc@example.org, +81-3-0000-0000".into());
    // `dig` from this machine is in no demo org's network: answered with
    // the root's policy and logged as unattributed, credited to no org.
    cfg.pdns.unattributed = crate::dns_policy::Unattributed::Log;
    let corpora = corpora_dir();
    if let Some(c) = &corpora {
        let rules = c.join("sigma/rules");
        if rules.is_dir() {
            cfg.detection.sigma_rules = vec![rules];
        }
    }
    cfg.api.listen = SocketAddr::from(([127, 0, 0, 1], args.port));
    let running = match crate::server::start(&dir, &cfg, crate::server::shutdown_signal()).await {
        Ok(r) => r,
        Err(e) if args.port != 0 => {
            eprintln!(
                "note: port {} is not free ({e:#}); picking a free port",
                args.port
            );
            cfg.api.listen.set_port(0);
            crate::server::start(&dir, &cfg, crate::server::shutdown_signal()).await?
        }
        Err(e) => return Err(e),
    };
    let url = format!("http://{}", running.api_addr);

    println!("mimamori demo is running. Press Ctrl-C to stop.");
    println!();
    println!("  console:    {url}/console/   (Japanese or English; sign in with org, user name and password)");
    for (slug, username, role, password) in &users {
        println!("    {slug:<5} {username:<8} {password}   {role}");
    }
    println!("    (or sign in with any token below that is not a sensor's)");
    println!("  API:        {url}   (OpenAPI: {url}/api/v1/openapi.json)");
    println!("  health:     {url}/healthz   metrics: {url}/metrics");
    if let Some(p) = &running.pdns {
        let a = p.handle.udp_addr();
        println!(
            "  DNS:        {a} (Protective DNS; try: dig @{} -p {} x.{})",
            a.ip(),
            a.port(),
            crate::demo_feed::C2_DOMAIN
        );
        if let Some(page) = p.handle.block_page_addr() {
            println!(
                "  block page: http://{page}/ (try: curl -H 'Host: x.{}' http://{page}/)",
                crate::demo_feed::C2_DOMAIN
            );
        }
    }
    println!("  data dir:   {}", dir.display());
    println!();
    println!("  org tree:");
    for org in &orgs {
        let indent = "  ".repeat(org.path.depth());
        println!(
            "    {indent}{:<5} {} [{}]",
            org.slug,
            org.name,
            org.kind.as_str()
        );
    }
    println!();
    println!("  tokens (each sees only its scope):");
    println!("    {:<28} {}", "soc-admin @ soc", report.admin_token);
    for (label, secret) in &tokens {
        println!("    {label:<28} {secret}");
    }
    println!();
    println!("  try:");
    println!(
        "    curl -s -H 'Authorization: Bearer {}' {url}/api/v1/orgs",
        tokens
            .iter()
            .find(|(l, _)| l.starts_with("supervisor-analyst"))
            .map(|(_, s)| s.as_str())
            .unwrap_or("TOKEN")
    );
    println!();
    println!("  telemetry: every org sends DNS, proxy, endpoint and cloud events once a second,");
    println!(
        "    with planted attacks (C2 domain {} at mof, mhlw and jaxa; encoded",
        crate::demo_feed::C2_DOMAIN
    );
    println!(
        "    PowerShell at meti; payload over HTTP at nict; console login without MFA at mext)."
    );
    println!(
        "    Archive: {} (the demo keeps the last {} minutes of events)",
        mimamori_ingest::ingest_dir(&dir).join("archive").display(),
        DEMO_RETENTION.as_secs() / 60
    );
    println!("    Send your own with the sensor token:");
    println!("      curl -s -H 'Authorization: Bearer {}' --data-binary '{{\"dns_query\":\"example.com\",\"class\":\"dns_activity\"}}' {url}/ingest/v1/events",
        tokens.iter().find(|(l, _)| l.starts_with("sensor")).map(|(_, s)| s.as_str()).unwrap_or("TOKEN"));
    println!();
    println!();
    println!(
        "  detection: {seeded} demo indicators (the C2 domain and its address) from the central SOC's feed,"
    );
    match cfg.detection.sigma_rules.first() {
        Some(r) => println!("    and the Sigma rules in {}.", r.display()),
        None => println!("    no Sigma rules (set MIMAMORI_CORPORA to a folder with sigma/rules)."),
    }
    let soc_analyst = tokens
        .iter()
        .find(|(l, _)| l.starts_with("soc-analyst"))
        .map(|(_, s)| s.as_str())
        .unwrap_or("TOKEN");
    println!(
        "    Within seconds: alerts per org, and campaigns (the same indicator or rule at three or"
    );
    println!("    more orgs), printed below as the detection raises them. Look at them with:");
    println!("      curl -s -H 'Authorization: Bearer {soc_analyst}' {url}/api/v1/alerts");
    println!("      curl -s -H 'Authorization: Bearer {soc_analyst}' {url}/api/v1/campaigns");
    println!("    An org's own analyst sees only its org's alerts; the supervisor its sub-tree.");
    println!("    Add intel (a retro-hunt over the archive follows):");
    println!("      curl -s -H 'Authorization: Bearer {soc_analyst}' --data-binary 'evil.example' '{url}/api/v1/intel/import?format=plain'");
    println!();
    println!("  not in this demo yet: attack surface, cloud configuration, malware triage (see the open issues).");
    if let Some(ingest) = running.ingest.clone() {
        tokio::spawn(crate::demo_feed::run(ingest, orgs.clone()));
    }
    tokio::spawn(report_detections(running.store.clone(), orgs.clone()));
    let result = running.wait().await;
    println!();
    println!(
        "mimamori demo stopped. Its data ({}) is kept in {}",
        human_bytes(dir_bytes(&dir)),
        dir.display()
    );
    println!(
        "  look again: mimamori --data-dir {} serve   remove: rm -rf {}",
        dir.display(),
        dir.display()
    );
    result
}

/// Bytes under `dir` (what could be read; errors count as nothing).
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    total
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n => format!("{} KiB", n.div_ceil(1024)),
    }
}

/// Prints what the detection has raised, read from the store (the demo's
/// summary is the data's, not a promise): the alerts per org once the
/// first planted attacks are in, then every campaign as it forms or gains
/// an org.
async fn report_detections(store: Store, orgs: Vec<Org>) {
    use mimamori_store::{AlertFilter, PageRequest};
    use std::collections::{BTreeMap, HashMap};
    let Some(root) = orgs.first() else { return };
    let scope = Scope::Subtree(root.path.clone());
    let slug = |id: &str| {
        orgs.iter()
            .find(|o| o.id.as_str() == id)
            .map_or_else(|| id.to_string(), |o| o.slug.clone())
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut alerts_shown = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tick.tick().await;
        if !alerts_shown {
            // The planted attacks come at the fourth second of every ten.
            let page = PageRequest {
                after: None,
                limit: mimamori_store::MAX_PAGE,
            };
            if let Ok(p) = store
                .alert_list(&scope, &AlertFilter::default(), &page)
                .await
            {
                if !p.items.is_empty() {
                    let mut per_org: BTreeMap<String, usize> = BTreeMap::new();
                    for a in &p.items {
                        *per_org.entry(slug(&a.org_id)).or_default() += 1;
                    }
                    let list: Vec<String> =
                        per_org.iter().map(|(o, n)| format!("{o} {n}")).collect();
                    let more = if p.next_cursor.is_some() { "+" } else { "" };
                    println!(
                        "  [detection] {}{more} alerts so far, by org: {}",
                        p.items.len(),
                        list.join(", ")
                    );
                    alerts_shown = true;
                }
            }
        }
        let Ok(campaigns) = store.campaign_list(&scope).await else {
            continue;
        };
        for c in campaigns {
            if seen.get(&c.id) == Some(&c.org_ids.len()) {
                continue;
            }
            let verb = if seen.contains_key(&c.id) {
                "grew"
            } else {
                "formed"
            };
            let at: Vec<String> = c.org_ids.iter().map(|o| slug(o)).collect();
            println!(
                "  [detection] campaign {verb}: {} [{}], at {} orgs: {}",
                c.title,
                c.severity.as_str(),
                at.len(),
                at.join(", ")
            );
            seen.insert(c.id, c.org_ids.len());
        }
    }
}

/// The resolvers of /etc/resolv.conf (port 53), else a documentation
/// address that never answers (blocked names are still answered).
fn system_resolvers() -> Vec<SocketAddr> {
    let found = crate::config::system_resolvers();
    if found.is_empty() {
        vec![SocketAddr::from(([192, 0, 2, 53], 53))]
    } else {
        found
    }
}

/// The shared test corpora, when present: `$MIMAMORI_CORPORA`, else
/// `../shared/corpora` from the current directory (the repository root).
fn corpora_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MIMAMORI_CORPORA") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("../shared/corpora");
    p.is_dir().then_some(p)
}

/// The central SOC's demo feed: the campaign's C2 domain (and everything
/// under it) and the address it resolves to and serves the payload from.
async fn seed_intel(store: &Store) -> anyhow::Result<usize> {
    use mimamori_intel::{import_list, ListFormat, ListOptions, Provenance, Tlp};
    let root = store
        .root_org()
        .await?
        .ok_or_else(|| anyhow::anyhow!("no root org"))?;
    let mut prov = Provenance::new("demo C2 feed", time::OffsetDateTime::now_utc());
    prov.tlp = Tlp::Amber;
    prov.confidence = 90;
    let opts = ListOptions::new(prov);
    let text = format!("{}\n192.0.2.66\n", crate::demo_feed::C2_DOMAIN);
    let batch = import_list(&text, ListFormat::Plain, &opts);
    let r = store
        .intel_upsert(
            &mimamori_store::AuditActor::local_operator(),
            &root,
            &batch.indicators,
            &[],
            "demo C2 feed",
        )
        .await?;
    Ok(r.inserted)
}

async fn build_tree(store: &Store) -> anyhow::Result<Vec<Org>> {
    let actor = AuditActor::local_operator();
    let root = store
        .root_org()
        .await?
        .context("demo data dir has no root org")?;
    let scope = Scope::Subtree(root.path.clone());
    let root = store
        .org_update(
            &actor,
            &root,
            &OrgProfile {
                name: root.name.clone(),
                sector: Some("government".into()),
                contacts: vec![Contact {
                    name: "SOC当番 (duty officer)".into(),
                    email: Some("soc-duty@soc.example.go.jp".into()),
                    phone: Some("+81-3-0000-0000".into()),
                    role: Some("incident".into()),
                }],
                networks: vec![],
                domains: vec!["soc.example.go.jp".into()],
            },
        )
        .await?;
    let mut orgs = vec![root];
    for (slug, parent, kind, name, sector, nets, domains) in TREE {
        let parent = store.org_find(&scope, parent).await?;
        let new = NewOrg {
            slug: slug.to_string(),
            name: name.to_string(),
            parent_id: Some(parent.id.clone()),
            kind: Some(*kind),
            sector: Some(sector.to_string()),
            contacts: vec![Contact {
                name: format!("{name} CSIRT"),
                email: Some(format!("csirt@{}", domains[0])),
                phone: None,
                role: Some("incident".into()),
            }],
            networks: nets.iter().map(|s| s.to_string()).collect(),
            domains: domains.iter().map(|s| s.to_string()).collect(),
        };
        let (slug, profile) = new.validate()?;
        orgs.push(
            store
                .org_create(&actor, &parent, &slug, *kind, &profile)
                .await?,
        );
    }
    Ok(orgs)
}

async fn issue_tokens(store: &Store, orgs: &[Org]) -> anyhow::Result<Vec<(String, String)>> {
    let actor = AuditActor::local_operator();
    let wanted: &[(Role, &str)] = &[
        (Role::SocAnalyst, "soc"),
        (Role::SupervisorAnalyst, "ipa"),
        (Role::OrgAdmin, "mof"),
        (Role::OrgAnalyst, "jaxa"),
        (Role::Sensor, "mhlw"),
    ];
    let mut out = Vec::new();
    for (role, slug) in wanted {
        let org = orgs
            .iter()
            .find(|o| o.slug == *slug)
            .context("demo org missing")?;
        let issued = store
            .token_issue(
                &actor,
                org,
                None,
                &NewToken {
                    org_id: org.id.to_string(),
                    name: format!("demo {role}"),
                    role: *role,
                    expires_in_secs: None,
                },
            )
            .await?;
        out.push((format!("{role} @ {slug}"), issued.secret));
    }
    Ok(out)
}

/// One console user per kind of user: (org slug, user name, role,
/// password). Passwords are random, printed once at start.
async fn create_users(
    store: &Store,
    orgs: &[Org],
) -> anyhow::Result<Vec<(String, String, Role, String)>> {
    let actor = AuditActor::local_operator();
    let wanted: &[(Role, &str, &str)] = &[
        (Role::SocAnalyst, "soc", "analyst"),
        (Role::SupervisorAnalyst, "ipa", "analyst"),
        (Role::OrgAnalyst, "mof", "analyst"),
        (Role::OrgAdmin, "jaxa", "admin"),
    ];
    let mut out = Vec::new();
    for (role, slug, username) in wanted {
        let org = orgs
            .iter()
            .find(|o| o.slug == *slug)
            .context("demo org missing")?;
        let secret = mimamori_store::secret::generate_token()
            .map_err(|e| anyhow::anyhow!("cannot make a random password: {e}"))?;
        let password: String = secret
            .trim_start_matches(mimamori_store::secret::TOKEN_PREFIX)
            .chars()
            .take(16)
            .collect();
        store
            .user_create(
                &actor,
                org,
                &NewUser {
                    org_id: org.id.to_string(),
                    username: username.to_string(),
                    display_name: Some(format!("demo {role}")),
                    email: None,
                    role: *role,
                    password: password.clone(),
                },
            )
            .await?;
        out.push((slug.to_string(), username.to_string(), *role, password));
    }
    Ok(out)
}

fn time_stamp() -> String {
    let ms = mimamori_core::now_millis();
    mimamori_core::millis_to_rfc3339(ms)
        .replace([':', '.'], "")
        .replace('-', "")
}
